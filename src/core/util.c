/* Allocation, error messages, thread counts and the finiteness scan. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "internal.h"

void *sl_calloc(int64_t count, size_t size)
{
    size_t bytes;
    if (count <= 0 || sl_bytes(count, size, &bytes) != SL_OK) return NULL;
    return calloc((size_t)count, size);
}

void *sl_malloc(int64_t count, size_t size)
{
    size_t bytes;
    if (count <= 0 || sl_bytes(count, size, &bytes) != SL_OK) return NULL;
    return malloc(bytes);
}

sl_status sl_errf(char *msg, size_t msglen, sl_status status, const char *fmt, ...)
{
    if (msg && msglen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
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
        for (int64_t i = a; i < b; i++)
            if (!isfinite(x[i])) { ok = 0; break; }
    }
    return ok;
}
