/*
 * File helpers of the trainer: atomic writes (temporary file in the same
 * folder, fsync, rename), whole-file reads, folders, and a little-endian
 * byte buffer for the checkpoint.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "train_internal.h"

sl_status slt_write_atomic(const char *path, const void *data, size_t len, char *msg, size_t msglen)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, strerror(e));
    }
    (void)fchmod(fd, 0644); /* mkstemp makes it 0600; these are ordinary files */
    const unsigned char *p = data;
    size_t left = len;
    int e = 0;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            e = errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    /* the bytes must be on disk before the rename makes them the file */
    if (!e && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        free(tmp);
        return sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    return SL_OK;
}

sl_status slt_read_file(const char *path, unsigned char **data, size_t *len, char *msg, size_t msglen)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sl_errf(msg, msglen, SL_EIO, "cannot read %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return sl_errf(msg, msglen, SL_EIO, "cannot read %s: not a regular file", path);
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    unsigned char *b = malloc(cap);
    if (!b) {
        fclose(f);
        return sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", path);
    }
    n = fread(b, 1, cap - 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n != cap - 1) {
        free(b);
        return sl_errf(msg, msglen, SL_EIO, "cannot read %s: short read", path);
    }
    b[n] = 0;
    *data = b;
    *len = n;
    return SL_OK;
}

int slt_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

sl_status slt_join(char *buf, size_t buflen, const char *dir, const char *name)
{
    int n = snprintf(buf, buflen, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= buflen ? SL_EINVAL : SL_OK;
}

sl_status slt_mkdirs(const char *dir, char *msg, size_t msglen)
{
    char path[SL_TRAIN_TEXT];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return sl_errf(msg, msglen, SL_EINVAL, "output folder name too long");
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') path[--n] = 0;
    for (char *p = path + 1; ; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                return sl_errf(msg, msglen, SL_EIO, "cannot create folder %s: %s", path, strerror(errno));
            *p = c;
            if (c == 0) break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return sl_errf(msg, msglen, SL_EIO, "%s is not a folder", path);
    if (access(path, W_OK) != 0)
        return sl_errf(msg, msglen, SL_EIO, "cannot write into folder %s: %s", path, strerror(errno));
    return SL_OK;
}

uint32_t slt_crc32(const void *data, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    const unsigned char *p = data;
    while (len > 0) {
        uInt k = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, k);
        p += k;
        len -= k;
    }
    return (uint32_t)c;
}

/* ------------------------------------------------------------ byte buffer */

void slt_put(slt_buf *b, const void *data, size_t n)
{
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
}

void slt_put_u64(slt_buf *b, uint64_t v)
{
    unsigned char x[8];
    for (int i = 0; i < 8; i++) x[i] = (unsigned char)(v >> (8 * i));
    slt_put(b, x, 8);
}

void slt_put_f64(slt_buf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    slt_put_u64(b, u);
}

void slt_put_str(slt_buf *b, const char *s)
{
    size_t n = strlen(s);
    slt_put_u64(b, n);
    slt_put(b, s, n);
}

uint64_t slt_get_u64(slt_reader *r)
{
    if (r->failed || r->len - r->pos < 8) {
        r->failed = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[r->pos + i] << (8 * i);
    r->pos += 8;
    return v;
}

double slt_get_f64(slt_reader *r)
{
    uint64_t u = slt_get_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

size_t slt_get_bytes(slt_reader *r, const unsigned char **s)
{
    uint64_t n = slt_get_u64(r);
    if (r->failed || n > r->len - r->pos) {
        r->failed = 1;
        *s = NULL;
        return 0;
    }
    *s = r->p + r->pos;
    r->pos += (size_t)n;
    return (size_t)n;
}
