/*
 * File helpers (fileio.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

FILE *sl_fopen_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return NULL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

sl_status sl_file_read(const char *path, unsigned char **data, size_t *len, char *msg, size_t msglen)
{
    *data = NULL;
    *len = 0;
    FILE *f = sl_fopen_read(path);
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

int sl_file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

sl_status sl_path_join(char *buf, size_t buflen, const char *dir, const char *name)
{
    int n = snprintf(buf, buflen, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= buflen ? SL_EINVAL : SL_OK;
}

sl_status sl_mkdirs(const char *dir, char *msg, size_t msglen)
{
    char path[4096];
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
