/*
 * The (sample, chunk) loop the fused loss kernels share: every pair runs
 * once, on some thread, with that thread's scratch; each pair writes its own
 * slot, so which thread ran it does not change any result.
 */
#include <stdlib.h>
#include "internal.h"

sl_status sl_for_chunks(int64_t N, int64_t S, int threads, size_t scratch_bytes, sl_chunk_fn fn, void *arg)
{
    const int64_t nch = sl_nchunks(S);
    int oom = 0;
#pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        void *scratch = scratch_bytes ? malloc(scratch_bytes) : NULL;
        if (scratch_bytes && !scratch) {
#pragma omp atomic write
            oom = 1;
        }
#ifdef _OPENMP
        const int thread = omp_get_thread_num();
#else
        const int thread = 0;
#endif
#pragma omp for schedule(static) collapse(2)
        for (int64_t n = 0; n < N; n++)
            for (int64_t ch = 0; ch < nch; ch++) {
                if (scratch_bytes && !scratch) continue;
                const int64_t lo = ch * SL_CHUNK, hi = lo + SL_CHUNK < S ? lo + SL_CHUNK : S;
                fn(arg, n, ch, lo, hi, scratch, thread);
            }
        free(scratch);
    }
    return oom ? SL_ENOMEM : SL_OK;
}
