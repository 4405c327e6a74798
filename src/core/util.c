/* Allocation, error messages, thread counts and the finiteness scan. */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#ifdef __linux__
#include <sys/mman.h>
#endif

/*
 * A large buffer asks for transparent huge pages. Its pages are mapped on
 * first touch; with 4 KiB pages a 64 MiB buffer takes 16 384 page faults
 * (costly in a virtual machine: a third of lovasz's time went to them), with
 * 2 MiB pages 32, the zeroing being the same. Linux's THP mode "madvise" (the
 * mode of the test machine, and a common default) gives them only to memory
 * that asks ("always" gives them anyway, "never" refuses); the advice is a
 * hint, its failure changes nothing.
 */
void sl_advise_huge_pages(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (!p || bytes < 4 * huge) return;
    uintptr_t first = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (end > first) (void)madvise((void *)first, end - first, MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}

void *sl_calloc(int64_t count, size_t size)
{
    size_t bytes;
    if (count <= 0 || sl_bytes(count, size, &bytes) != SL_OK) return NULL;
    void *p = calloc((size_t)count, size);
    sl_advise_huge_pages(p, bytes);
    return p;
}

void *sl_malloc(int64_t count, size_t size)
{
    size_t bytes;
    if (count <= 0 || sl_bytes(count, size, &bytes) != SL_OK) return NULL;
    void *p = malloc(bytes);
    sl_advise_huge_pages(p, bytes);
    return p;
}

char *sl_escape_line(char *dst, size_t cap, const char *src)
{
    if (!dst || cap == 0) return dst;
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)src; c && *c; c++) {
        char esc[5];
        size_t k;
        if (*c >= 0x20 && *c != 0x7f) {
            esc[0] = (char)*c;
            k = 1;
        } else if (*c == '\n' || *c == '\t' || *c == '\r') {
            esc[0] = '\\';
            esc[1] = *c == '\n' ? 'n' : *c == '\t' ? 't' : 'r';
            k = 2;
        } else {
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned)*c);
            k = 4;
        }
        if (n + k >= cap) break; /* never half an escape */
        memcpy(dst + n, esc, k);
        n += k;
    }
    dst[n] = 0;
    return dst;
}

/* Every message is one line: whatever a format's arguments hold (a file
 * name with a newline, a quoted piece of bad input), control characters
 * come out escaped. */
sl_status sl_errf(char *msg, size_t msglen, sl_status status, const char *fmt, ...)
{
    if (msg && msglen > 0) {
        char raw[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        sl_escape_line(msg, msglen, raw);
    }
    return status;
}

int sl_threads(int requested)
{
    if (requested > 0) return requested;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int sl_all_finite(const float *x, int64_t n, int threads)
{
    int ok = 1;
    int64_t nch = sl_nchunks(n);
#pragma omp parallel for num_threads(sl_threads(threads)) schedule(static) reduction(&& : ok)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < n ? a + SL_CHUNK : n;
        /* blocks of 256 without an early exit vectorise; an early exit per element does not */
        for (int64_t i0 = a; i0 < b && ok; i0 += 256) {
            const int64_t i1 = i0 + 256 < b ? i0 + 256 : b;
            int bad = 0;
            for (int64_t i = i0; i < i1; i++) bad |= !(fabsf(x[i]) <= FLT_MAX);
            if (bad) ok = 0;
        }
    }
    return ok;
}
