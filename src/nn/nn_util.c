/*
 * Small helpers of the nn module: OpenBLAS thread control and aligned
 * scratch memory.
 */
#include <stdlib.h>
#include <cblas.h>
#include "internal.h"
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

/*
 * OpenBLAS takes a work buffer of 128 MiB (+ a page) per calling thread at
 * that thread's first sgemm, keeps it for the life of the process, and,
 * when the allocation fails (a `ulimit -v` of a few hundred MB), retries it
 * forever: the process spins at 100 % CPU instead of failing. So before a
 * network first runs with `threads` threads, the address space for that many
 * buffers is taken and given back here, and a shortfall is an error. Counts
 * already checked are remembered (the buffers then exist and hold the space
 * a second check would look for).
 */
#define SL_BLAS_BUFFER_BYTES (((size_t)128 << 20) + ((size_t)64 << 10))

sl_status sl_nn_blas_reserve(int threads, char *msg, size_t msglen)
{
#ifdef OPENBLAS_VERSION
    static int checked = 0; /* the largest count that fitted */
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    if (threads <= __atomic_load_n(&checked, __ATOMIC_ACQUIRE)) return SL_OK;
    void *held[256];
    int got = 0;
    while (got < threads && (held[got] = malloc(SL_BLAS_BUFFER_BYTES)) != NULL) got++;
    for (int i = 0; i < got; i++) free(held[i]);
    if (got < threads)
        return sl_errf(msg, msglen, SL_ENOMEM,
                       "out of memory: OpenBLAS needs a 128 MiB work buffer per thread and only %d of %d fit "
                       "(raise the memory limit or use fewer threads)",
                       got, threads);
    int prev = __atomic_load_n(&checked, __ATOMIC_ACQUIRE);
    while (prev < threads && !__atomic_compare_exchange_n(&checked, &prev, threads, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
#else
    (void)threads;
    (void)msg;
    (void)msglen;
#endif
    return SL_OK;
}

void *sl_nn_alloc_aligned(size_t bytes)
{
    if (bytes == 0) return NULL;
    /* aligned_alloc wants a multiple of the alignment */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    return aligned_alloc(64, rounded);
}
