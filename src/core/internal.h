/*
 * Private helpers shared by every module: allocation, error messages,
 * deterministic parallel reductions. Not installed.
 */
#ifndef SL_INTERNAL_H
#define SL_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "segloss/core.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* calloc of count * size bytes with the overflow check; NULL on failure
 * (including overflow) or when count is 0. */
void *sl_calloc(int64_t count, size_t size);
void *sl_malloc(int64_t count, size_t size);
/* Asks for transparent huge pages on the 2 MiB-aligned part of a buffer of
 * 8 MiB or more (both allocators above do it); a hint, nothing else. */
void sl_advise_huge_pages(void *p, size_t bytes);

/* A caller-provided buffer for a one-line error message (may be NULL/0).
 * sl_errf writes a printf-formatted message and returns `status`, so an
 * error path reads `return sl_errf(msg, len, SL_EINVAL, "...", ...);`. */
sl_status sl_errf(char *msg, size_t msglen, sl_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Threads to use for a request: requested > 0 is taken as is; 0 means the
 * OpenMP default (OMP_NUM_THREADS or the core count); 1 without OpenMP. */
int sl_threads(int requested);

/*
 * Deterministic chunking. Reductions over voxels are split into chunks whose
 * boundaries depend only on the problem size, never on the thread count;
 * each chunk's partial sum goes to its own slot and the slots are added in
 * chunk order. So 1 thread and 8 threads give bit-identical sums.
 */
#define SL_CHUNK 16384
static inline int64_t sl_nchunks(int64_t count)
{
    return count <= 0 ? 0 : (count + SL_CHUNK - 1) / SL_CHUNK;
}

/* Calls fn(arg, n, ch, lo, hi, scratch, thread) for every sample n < N and
 * every chunk ch of [0, S) (voxels [lo, hi)), the pairs split among
 * `threads` OpenMP threads; `thread` is the caller's index (0..threads-1)
 * and `scratch` its own scratch_bytes of malloc'ed memory (NULL when 0).
 * SL_ENOMEM when a thread's scratch could not be had (its pairs did not
 * run), else SL_OK. src/core/chunks.c. */
typedef void (*sl_chunk_fn)(void *arg, int64_t n, int64_t ch, int64_t lo, int64_t hi, void *scratch, int thread);
sl_status sl_for_chunks(int64_t N, int64_t S, int threads, size_t scratch_bytes, sl_chunk_fn fn, void *arg);

/* Kahan-free ordered sum of `n` partials (plain double addition in index
 * order: the order is what makes it reproducible). */
static inline double sl_sum_ordered(const double *v, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return s;
}

/* 1 when every value of x[0..n) is finite. Parallel, early exit per chunk. */
int sl_all_finite(const float *x, int64_t n, int threads);

/* Advisory lock on a folder (flock on DIR/.segloss.lock, src/core/lock.c)
 * held until sl_dir_unlock: SL_EBADSTATE with a one-line message naming
 * the holder's pid when another process has it. sl_dir_unlock with a
 * folder also removes the lock file (for a folder about to be removed). */
#define SL_LOCK_FILE ".segloss.lock"
sl_status sl_dir_lock(const char *dir, int *fd_out, char *msg, size_t msglen);
void sl_dir_unlock(int fd, const char *dir_to_clean);

/* Copies src into dst (cap bytes, always terminated) with every control
 * byte (< 0x20, 0x7f) written as an escape (\n, \t, \r, \xNN), so text
 * from file names or inputs cannot break a one-line message. Returns dst. */
char *sl_escape_line(char *dst, size_t cap, const char *src);

/* Instruction sets of the run-time dispatched kernels (src/core/isa.c).
 * x86-64 with GCC or clang compiles the AVX2 and AVX-512 variants; elsewhere
 * only the baseline exists. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define SL_X86 1
#else
#define SL_X86 0
#endif
enum { SL_ISA_BASE = 0, SL_ISA_AVX2 = 1, SL_ISA_AVX512 = 2 };
#if SL_X86
/* The target attributes of the AVX2 and AVX-512 copies of a kernel. */
#define SL_T_AVX2 __attribute__((target("avx2")))
#if defined(__clang__)
#define SL_T_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#else /* GCC: 512-bit vectors (some tunings prefer 256 bits) */
#define SL_T_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512")))
#endif
#endif

/* The instruction set to use now: the best the CPU and OS support, at most
 * the cap set by sl_force_isa. */
int sl_isa(void);

/* Caps the instruction set (SL_ISA_*; negative = no cap) for the whole
 * process: for tests and benchmarks that compare the variants. Not thread
 * safe; not part of the public API. */
void sl_force_isa(int isa);

#endif
