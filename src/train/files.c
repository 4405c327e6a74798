/*
 * The trainer's checkpoint encoding: CRC-32 and a little-endian byte
 * buffer. (Atomic writes, whole-file reads and folders are in src/core:
 * outfile.h and fileio.h.)
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
