/*
 * Small helpers of the nn module: OpenBLAS thread control and aligned
 * scratch memory.
 */
#include <stdlib.h>
#include <cblas.h>
#include "layers.h"

/*
 * Why the BLAS runs single-threaded inside segloss: the layers parallelise
 * over samples and image tiles with OpenMP, and every OpenMP thread calls
 * sgemm on its own small problem. A multi-threaded OpenBLAS (the pthread
 * build Debian installs) would then start its own workers from each of our
 * threads, oversubscribing the cores and serialising on its internal
 * server lock. Per-sample parallelism also makes the results independent of
 * the thread count, which a BLAS splitting one product among threads does
 * not promise. The setting is process-wide, hence restored on the way out.
 */
int sl_nn_blas_enter(void)
{
#ifdef OPENBLAS_VERSION
    int prev = openblas_get_num_threads();
    if (prev != 1) openblas_set_num_threads(1);
    return prev;
#else
    return 1;
#endif
}

void sl_nn_blas_leave(int previous)
{
#ifdef OPENBLAS_VERSION
    if (previous != 1 && previous > 0) openblas_set_num_threads(previous);
#else
    (void)previous;
#endif
}

void *sl_nn_alloc_aligned(size_t bytes)
{
    if (bytes == 0) return NULL;
    /* aligned_alloc wants a multiple of the alignment */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    return aligned_alloc(64, rounded);
}
