/*
 * Memory bandwidth as the loss benchmark's roofline needs it: a triad
 * a[i] = b[i] + s*c[i] over arrays far larger than the caches, with the
 * same OpenMP thread count as the loss, best of several runs. Prints GB/s
 * counting two reads and one write per element (as STREAM does).
 *   usage: stream [THREADS] [MiB per array]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 256;
    size_t n = mib * 1024 * 1024 / sizeof(float);
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *c = malloc(n * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "stream: out of memory\n");
        return 1;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2;
    double best = 1e30;
    for (int rep = 0; rep < 7; rep++) {
        double t0 = omp_get_wtime();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
        double t = omp_get_wtime() - t0;
        if (t < best) best = t;
    }
    printf("%.3f\n", 3.0 * n * sizeof(float) / best / 1e9);
    free(a), free(b), free(c);
    return 0;
}
