/*
 * The permutohedral lattice (permutohedral.c), private to src/geometry.
 *
 * A lattice is built once for a set of n points with d-dimensional features
 * (already divided by the kernel widths) and then filters any number of
 * value vectors: the dense CRF filters its marginals with the same lattice
 * at every mean-field iteration, so the hashing is paid once.
 */
#ifndef SL_LATTICE_H
#define SL_LATTICE_H

#include <stdint.h>
#include "segloss/core.h"
#include "segloss/crf.h"

#define SLG_LATTICE_MAX_D 16

typedef struct slg_lattice {
    int d;           /* feature dimension, 1..SLG_LATTICE_MAX_D */
    int64_t n;       /* points */
    int64_t m;       /* lattice vertices (vertex 0 is a zero pad: indices below are 1-based) */
    int32_t *off;    /* (n, d+1) the vertices each point splats to */
    float *bary;     /* (n, d+1) its barycentric weights */
    int32_t *nb;     /* (d+1, m, 2) the two neighbours of a vertex along each lattice axis (0: none) */
    int threads;
} slg_lattice;

/* Builds the lattice of features (n, d). SL_EINVAL / SL_ENONFINITE /
 * SL_ERANGE (coordinates too large) / SL_EOVERFLOW / SL_ENOMEM, with msg. */
sl_status slg_lattice_build(slg_lattice *L, const float *features, int64_t n, int d, int threads, char *msg,
                            size_t msglen);

/* out (nv, n) = the lattice's Gaussian sum of values (nv, n). out must not
 * alias values. SL_ENOMEM only. */
sl_status slg_lattice_filter(const slg_lattice *L, const float *values, int nv, float *out);

void slg_lattice_free(slg_lattice *L);

/* The parameter checks of sl_crf (crf.c), shared with sl_crf_params_parse. */
sl_status slg_crf_check_params(const sl_crf_params *p, char *msg, size_t msglen);

#endif
