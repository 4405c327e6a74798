/*
 * segloss bench --emit-slurm / --emit-k8s: the files that run a preset's
 * tasks (segloss/bench.h, "Tasks") on a cluster, one task per array
 * element, each `segloss bench --preset P --out DIR --run K`.
 */
#ifndef SL_CLI_BENCH_CLUSTER_H
#define SL_CLI_BENCH_CLUSTER_H

#include <stddef.h>
#include "segloss/bench.h"

typedef struct bench_cluster {
    const sl_bench_preset *p;
    const char *preset_path; /* as given (resolved to an absolute path here) */
    const char *out;         /* DIR as given (made absolute here) */
    const char *k8s_image;   /* container image of the manifest */
    const char *k8s_claim;   /* PersistentVolumeClaim mounted at DIR */
} bench_cluster;

/* Write the sbatch job-array script / the Kubernetes manifest to `file`
 * (atomically; `-` streams to stdout). 0, or the CLI's exit code after one
 * error line. */
int bench_emit_slurm(const bench_cluster *bc, const char *file);
int bench_emit_k8s(const bench_cluster *bc, const char *file);

#endif
