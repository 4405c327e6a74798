/*
 * Small helpers of the nn module: OpenBLAS thread control and aligned
 * scratch memory.
 */
#include <pthread.h>
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
 * OpenBLAS's work buffers, and why a run must own them before it starts.
 *
 * Every sgemm call takes a 128 MiB (+ a page) work buffer from a pool that
 * OpenBLAS keeps for the life of the process (driver/others/memory.c: a
 * table of slots; a call takes the first free slot and gives it back on
 * return; a slot's buffer, once mapped, is never unmapped before exit). A
 * call that finds every mapped slot busy maps a new buffer, and when that
 * mapping fails (`ulimit -v`) it retries forever: the process spins at
 * 100 % CPU instead of failing. The pool grows to the largest number of
 * concurrent sgemm calls seen, so a run with T threads needs T buffers, and
 * the T-th is mapped at whatever moment T calls first overlap: maybe long
 * after the run has allocated its data and network, when the limit no
 * longer leaves room (`bench --threads 2` under `ulimit -v 450000` spun
 * like that while a check that the buffers merely fit had passed).
 *
 * So before a network first runs with `threads` threads, the buffers are
 * made to exist: first the address space for that many is taken and given
 * back (a shortfall is an error, and nothing has been retried yet), then
 * that many slots are taken at once with OpenBLAS's own blas_memory_alloc
 * (exported by every OpenBLAS, not declared in its public headers), which
 * maps their buffers, and given back. From then on no call of the run (at
 * most `threads` at once) can need a new buffer, and every later
 * allocation that fails is an ordinary malloc failure with an error line.
 * Nothing else runs sgemm while this happens (it is called before the
 * workers start). Counts already done are remembered: the buffers stay.
 * Populating is capped at 48 slots, inside the 50 that the smallest pool
 * OpenBLAS builds holds; a build with thread-local pools (USE_TLS=1, not
 * the default) keeps only the address-space check.
 */
#define SL_BLAS_BUFFER_BYTES (((size_t)128 << 20) + ((size_t)64 << 10))
#define SL_BLAS_MAX_SLOTS 48

#ifdef OPENBLAS_VERSION
void *blas_memory_alloc(int procpos);
void blas_memory_free(void *buffer);
#endif

sl_status sl_nn_blas_reserve(int threads, char *msg, size_t msglen)
{
#ifdef OPENBLAS_VERSION
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int done = 0; /* the largest count whose buffers exist */
    if (threads < 1) threads = 1;
    if (threads > SL_BLAS_MAX_SLOTS) threads = SL_BLAS_MAX_SLOTS;
    pthread_mutex_lock(&mu);
    sl_status st = SL_OK;
    if (threads > done) {
        void *held[SL_BLAS_MAX_SLOTS];
        int got = 0;
        while (got < threads && (held[got] = malloc(SL_BLAS_BUFFER_BYTES)) != NULL) got++;
        for (int i = 0; i < got; i++) free(held[i]);
        if (got < threads) {
            st = sl_errf(msg, msglen, SL_ENOMEM,
                         "out of memory: OpenBLAS needs a 128 MiB work buffer per thread and only %d of %d fit "
                         "(raise the memory limit or use fewer threads)",
                         got, threads);
        } else {
            /* the space is there: let OpenBLAS map its buffers now */
            int taken = 0;
            while (taken < threads && (held[taken] = blas_memory_alloc(0)) != NULL) taken++;
            for (int i = 0; i < taken; i++) blas_memory_free(held[i]);
            done = threads;
        }
    }
    pthread_mutex_unlock(&mu);
    return st;
#else
    (void)threads;
    (void)msg;
    (void)msglen;
    return SL_OK;
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
