/*
 * Connected components by union-find over one raster scan.
 *
 * First pass: each foreground voxel looks at its already-visited neighbours
 * (the half of the neighbourhood that precedes it in raster order), takes
 * the first provisional label it sees and unites it with the others; with no
 * labelled neighbour it opens a new provisional label. Unions always make
 * the smaller label the root, so a root is the first label its component
 * opened — the label of the component's first voxel in raster order (that
 * voxel has no earlier neighbour inside its component, so it opens one).
 * Second pass: roots are numbered in increasing order, which is therefore
 * raster order of first voxel: the labelling is unique and matches
 * scipy.ndimage.label (which numbers the same way) exactly.
 * (Wu, Otoo & Suzuki, "Optimizing two-pass connected-component labeling
 * algorithms", 2009, without their decision tree.)
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "geom_internal.h"

int slg_conn3(int ndim, int c)
{
    switch (ndim) {
    case 1: return (c == 0 || c == 2) ? 6 : 0;
    case 2: return (c == 0 || c == 8) ? 26 : (c == 4 ? 6 : 0);
    case 3: return (c == 0 || c == 26) ? 26 : ((c == 6 || c == 18) ? c : 0);
    }
    return 0;
}

static int32_t uf_find(int32_t *parent, int32_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]]; /* path halving */
        x = parent[x];
    }
    return x;
}

static void uf_union(int32_t *parent, int32_t a, int32_t b)
{
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a < b) parent[b] = a;
    else if (b < a) parent[a] = b;
}

sl_status slg_components(const uint8_t *mask, const slg_vol *v, int conn, int32_t *lab, int64_t *count,
                         int64_t **sizes, int64_t **bbox6)
{
    const int64_t n0 = v->n[0], n1 = v->n[1], n2 = v->n[2];
    /* earlier neighbours for this connectivity */
    int off[13][3], noff = 0;
    for (int d0 = -1; d0 <= 0; d0++)
        for (int d1 = -1; d1 <= 1; d1++)
            for (int d2 = -1; d2 <= 1; d2++) {
                if (d0 == 0 && (d1 > 0 || (d1 == 0 && d2 >= 0))) continue; /* not earlier */
                int nz = (d0 != 0) + (d1 != 0) + (d2 != 0);
                if ((conn == 6 && nz > 1) || (conn == 18 && nz > 2)) continue;
                off[noff][0] = d0;
                off[noff][1] = d1;
                off[noff][2] = d2;
                noff++;
            }
    int64_t loff[13];
    for (int k = 0; k < noff; k++) loff[k] = (off[k][0] * n1 + off[k][1]) * n2 + off[k][2];
    int64_t cap = 1024;
    int32_t *parent = malloc((size_t)cap * sizeof(int32_t));
    if (!parent) return SL_ENOMEM;
    int32_t np = 0;
    parent[0] = 0;
    for (int64_t i0 = 0; i0 < n0; i0++)
        for (int64_t i1 = 0; i1 < n1; i1++) {
            const int64_t base = (i0 * n1 + i1) * n2;
            for (int64_t i2 = 0; i2 < n2; i2++) {
                int64_t idx = base + i2;
                if (!mask[idx]) {
                    lab[idx] = 0;
                    continue;
                }
                int32_t best = 0;
                /* interior voxels read their earlier neighbours at fixed
                 * offsets; only voxels on the faces check bounds */
                const int interior = i0 > 0 && i1 > 0 && i1 < n1 - 1 && i2 > 0 && i2 < n2 - 1;
                for (int k = 0; k < noff; k++) {
                    int32_t l;
                    if (interior) {
                        l = lab[idx + loff[k]];
                    } else {
                        int64_t j0 = i0 + off[k][0], j1 = i1 + off[k][1], j2 = i2 + off[k][2];
                        if (j0 < 0 || j1 < 0 || j1 >= n1 || j2 < 0 || j2 >= n2) continue;
                        l = lab[(j0 * n1 + j1) * n2 + j2];
                    }
                    if (!l) continue;
                    if (!best) best = l;
                    else if (l != best) uf_union(parent, best, l);
                }
                if (!best) {
                    if (np == INT32_MAX) {
                        free(parent);
                        return SL_EOVERFLOW;
                    }
                    best = ++np;
                    if (np >= cap) {
                        int64_t nc = cap * 2 > (int64_t)INT32_MAX + 1 ? (int64_t)INT32_MAX + 1 : cap * 2;
                        int32_t *p2 = realloc(parent, (size_t)nc * sizeof(int32_t));
                        if (!p2) {
                            free(parent);
                            return SL_ENOMEM;
                        }
                        parent = p2;
                        cap = nc;
                    }
                    parent[best] = best;
                }
                lab[idx] = best;
            }
        }
    /* Point every label straight at its root (the smallest label of its
     * set), then number the roots in increasing order, storing final labels
     * negated in place: a root precedes every label of its set, so its
     * entry is already final when the others read it. */
    for (int32_t l = 1; l <= np; l++) parent[l] = uf_find(parent, l);
    int32_t nfinal = 0;
    for (int32_t l = 1; l <= np; l++) parent[l] = parent[l] == l ? -(++nfinal) : parent[parent[l]];
    int64_t *sz = NULL, *bb = NULL;
    if (sizes || bbox6) {
        sz = calloc((size_t)(nfinal ? nfinal : 1), sizeof(int64_t));
        bb = malloc((size_t)(nfinal ? nfinal : 1) * 6 * sizeof(int64_t));
        if (!sz || !bb) {
            free(sz);
            free(bb);
            free(parent);
            return SL_ENOMEM;
        }
        for (int32_t k = 0; k < nfinal; k++) {
            bb[6 * k + 0] = bb[6 * k + 1] = bb[6 * k + 2] = INT64_MAX;
            bb[6 * k + 3] = bb[6 * k + 4] = bb[6 * k + 5] = -1;
        }
    }
    for (int64_t i0 = 0; i0 < n0; i0++)
        for (int64_t i1 = 0; i1 < n1; i1++) {
            const int64_t base = (i0 * n1 + i1) * n2;
            for (int64_t i2 = 0; i2 < n2; i2++) {
                int32_t l = lab[base + i2];
                if (!l) continue;
                int32_t f = -parent[l];
                lab[base + i2] = f;
                if (sz) {
                    int64_t *b = bb + 6 * (f - 1);
                    sz[f - 1]++;
                    if (i0 < b[0]) b[0] = i0;
                    if (i1 < b[1]) b[1] = i1;
                    if (i2 < b[2]) b[2] = i2;
                    if (i0 + 1 > b[3]) b[3] = i0 + 1;
                    if (i1 + 1 > b[4]) b[4] = i1 + 1;
                    if (i2 + 1 > b[5]) b[5] = i2 + 1;
                }
            }
        }
    free(parent);
    if (count) *count = nfinal;
    if (sizes) *sizes = sz;
    else free(sz);
    if (bbox6) *bbox6 = bb;
    else free(bb);
    return SL_OK;
}

sl_status sl_components_label(const uint8_t *mask, const sl_grid *grid, int connectivity, int32_t *labels,
                              sl_components *out, char *msg, size_t msglen)
{
    slg_vol v;
    if (out) memset(out, 0, sizeof *out);
    if (!mask) return sl_errf(msg, msglen, SL_EINVAL, "components: mask is NULL");
    sl_status st = slg_vol_from_grid(grid, &v, msg, msglen);
    if (st != SL_OK) return st;
    int conn = slg_conn3(v.ndim, connectivity);
    if (!conn)
        return sl_errf(msg, msglen, SL_EINVAL, "components: connectivity %d is not valid in %d-D", connectivity,
                       v.ndim);
    int32_t *lab = labels;
    if (!lab) {
        lab = sl_malloc(v.count, sizeof(int32_t));
        if (!lab) return sl_errf(msg, msglen, SL_ENOMEM, "components: out of memory");
    } else if ((const void *)mask < (const void *)(lab + v.count) && (const void *)lab < (const void *)(mask + v.count)) {
        return sl_errf(msg, msglen, SL_EINVAL, "components: labels overlap the mask");
    }
    int64_t count = 0, *sizes = NULL, *bb = NULL;
    st = slg_components(mask, &v, conn, lab, &count, out ? &sizes : NULL, out ? &bb : NULL);
    if (lab != labels) free(lab);
    if (st != SL_OK)
        return sl_errf(msg, msglen, st, st == SL_ENOMEM ? "components: out of memory"
                                                        : "components: more than 2^31-1 components");
    if (out) {
        int off = 3 - v.ndim;
        out->count = count;
        out->ndim = v.ndim;
        out->size = sizes;
        out->bbox = malloc((size_t)(count ? count : 1) * 2 * SL_MAX_SPATIAL * sizeof(int64_t));
        if (!out->bbox) {
            free(bb);
            sl_components_free(out);
            return sl_errf(msg, msglen, SL_ENOMEM, "components: out of memory");
        }
        for (int64_t k = 0; k < count; k++) {
            int64_t *o = out->bbox + k * 2 * SL_MAX_SPATIAL;
            for (int a = 0; a < SL_MAX_SPATIAL; a++) {
                o[a] = a < v.ndim ? bb[6 * k + off + a] : 0;
                o[SL_MAX_SPATIAL + a] = a < v.ndim ? bb[6 * k + 3 + off + a] : 0;
            }
        }
        free(bb);
    }
    return SL_OK;
}

void sl_components_free(sl_components *c)
{
    if (!c) return;
    free(c->size);
    free(c->bbox);
    memset(c, 0, sizeof *c);
}
