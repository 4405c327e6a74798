/*
 * OpenBLAS single-threaded from the first instruction.
 *
 * Debian's OpenBLAS (the pthread build) starts one worker thread per core
 * in its library constructor, before main() runs, and each worker reserves
 * a large buffer. Under a memory limit (`ulimit -v` of about 150 MB) that
 * reservation fails and the worker retries it forever while exit() waits
 * for it: every command, `--help` included, hung at 100 % CPU. segloss
 * never asks the BLAS for threads (the layers call sgemm from their own
 * OpenMP threads with the BLAS set to one thread, src/nn/nn_util.c), so the
 * workers are never needed.
 *
 * OpenBLAS reads OPENBLAS_NUM_THREADS in that constructor, so the variable
 * must be in the environment the process starts with: setting it in main()
 * is too late, and even a function in the program's .preinit_array (which
 * runs before every shared library's constructor) cannot setenv() it,
 * because the C library's own initialisation then reinstalls the original
 * environment. So when the variable is not already 1, the program executes
 * itself once more, from .preinit_array (before OpenBLAS has started
 * anything), with OPENBLAS_NUM_THREADS=1 added. That costs one execve (about
 * a millisecond). Without /proc/self/exe the exec fails and the program
 * simply carries on as before. The variable is forced to 1 even when the
 * user set another value: segloss runs the BLAS single-threaded anyway, and
 * a larger value could only start the threads this file exists to avoid.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SL_BLAS_VAR "OPENBLAS_NUM_THREADS="

static void sl_blas_one_thread(int argc, char **argv, char **envp)
{
    (void)argc;
    size_t n = 0;
    for (; envp && envp[n]; n++)
        if (!strcmp(envp[n], SL_BLAS_VAR "1")) return; /* already set: the usual case after the exec */
    char **env = malloc((n + 2) * sizeof *env);
    if (!env) return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(envp[i], SL_BLAS_VAR, sizeof SL_BLAS_VAR - 1)) env[k++] = envp[i];
    env[k++] = (char *)SL_BLAS_VAR "1";
    env[k] = NULL;
    execve("/proc/self/exe", argv, env);
    free(env); /* exec failed: carry on in this process */
}

#if defined(__ELF__)
__attribute__((section(".preinit_array"), used)) static void (*const sl_blas_preinit)(int, char **, char **) =
    sl_blas_one_thread;
#endif
