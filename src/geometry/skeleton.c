/*
 * Topology-preserving thinning (2-D and 3-D), the skeleton clDice needs.
 *
 * Scheme: Lee, Kashyap & Chu, "Building skeleton models via 3-D medial
 * surface/axis thinning algorithms" (CVGIP 1994) — the algorithm behind
 * skimage's skeletonize_3d: repeat, for each of the 2*ndim border
 * directions, (1) collect the foreground points whose neighbour in that
 * direction is background, that are not end points and that are simple;
 * (2) delete them one by one, re-checking each just before deleting it,
 * until a full round deletes nothing. Re-checking makes the deletions
 * sequential, so topology is preserved exactly.
 *
 * Simple points are tested with topological numbers (Bertrand & Malandain,
 * "A new characterization of three-dimensional simple points", PRL 1994)
 * rather than Lee's Euler table plus octree labelling; the two are
 * equivalent for (26, 6) topology. A point x is simple iff
 *   - the foreground in N26(x) \ {x} has exactly one 26-component, and
 *   - the background in N18(x) has exactly one 6-component 6-adjacent to x.
 * In 2-D the same with (8, 4): one 8-component of foreground in N8, one
 * 4-component of background in N8 that is 4-adjacent to x.
 * An end point has exactly one foreground neighbour (26 / 8).
 *
 * Determinism: candidates are deleted in raster order, so the skeleton
 * depends only on the image. Work is kept proportional to the number of
 * foreground voxels by only visiting the current border points (voxels with
 * a background cross-neighbour), updated as voxels are deleted.
 *
 * Not the same pixels as skimage in general (skimage's 2-D skeletonize is
 * Zhang-Suen style with a different deletion order); the properties that
 * clDice relies on — one voxel thin, inside the mask, same topology — hold.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "geom_internal.h"

typedef struct thin_ctx {
    int ndim;
    int npos;               /* 27 or 9 neighbourhood positions, centre included */
    int centre;
    int64_t off[27];        /* position -> offset in the padded image */
    uint32_t all;           /* every position */
    uint32_t col0, col2;    /* positions with x = 0 / x = 2 */
    uint32_t row0, row2;    /* positions with y = 0 / y = 2 */
    uint32_t bg_domain;     /* N18 (N8) without the centre */
    uint32_t face;          /* the 6 (4) positions 6- (4-) adjacent to the centre */
    int64_t dir[6];         /* border directions as offsets */
    int ndir;
} thin_ctx;

static void thin_ctx_init(thin_ctx *c, int ndim, const int64_t stride[3])
{
    memset(c, 0, sizeof *c);
    c->ndim = ndim;
    c->npos = ndim == 3 ? 27 : 9;
    c->centre = c->npos / 2;
    int d[27][3];
    for (int k = 0; k < c->npos; k++) {
        if (ndim == 3) {
            d[k][0] = k / 9 - 1;
            d[k][1] = (k / 3) % 3 - 1;
            d[k][2] = k % 3 - 1;
        } else {
            d[k][0] = 0;
            d[k][1] = k / 3 - 1;
            d[k][2] = k % 3 - 1;
        }
        c->off[k] = d[k][0] * stride[0] + d[k][1] * stride[1] + d[k][2] * stride[2];
    }
    for (int a = 0; a < c->npos; a++) {
        c->all |= 1u << a;
        if (d[a][2] == -1) c->col0 |= 1u << a;
        if (d[a][2] == 1) c->col2 |= 1u << a;
        if (d[a][1] == -1) c->row0 |= 1u << a;
        if (d[a][1] == 1) c->row2 |= 1u << a;
        if (a == c->centre) continue;
        int nz = (d[a][0] != 0) + (d[a][1] != 0) + (d[a][2] != 0);
        if (nz == 1) c->face |= 1u << a;
        if (nz <= 2) c->bg_domain |= 1u << a; /* N18 in 3-D; all of N8 in 2-D */
    }
    c->ndir = 0;
    for (int axis = 3 - ndim; axis < 3; axis++) {
        c->dir[c->ndir++] = -stride[axis];
        c->dir[c->ndir++] = stride[axis];
    }
}

/*
 * Bit-parallel flood fill. Position k of the neighbourhood is bit k, with
 * k = z*9 + y*3 + x (2-D: y*3 + x), so a step along x is a shift by 1, along
 * y by 3, along z by 9; the masks stop bits from wrapping into the next row
 * or layer. A 26- (8-) dilation is separable: x, then y, then z.
 */
static uint32_t step_x(const thin_ctx *c, uint32_t m)
{
    return m | ((m << 1) & ~c->col0) | ((m >> 1) & ~c->col2);
}

static uint32_t step_y(const thin_ctx *c, uint32_t m)
{
    return m | ((m << 3) & ~c->row0 & c->all) | ((m >> 3) & ~c->row2);
}

static uint32_t step_z(const thin_ctx *c, uint32_t m)
{
    return c->ndim == 3 ? (m | ((m << 9) & c->all) | (m >> 9)) : m;
}

static uint32_t dilate_full(const thin_ctx *c, uint32_t m) /* 26 (8) neighbours */
{
    return step_z(c, step_y(c, step_x(c, m)));
}

static uint32_t dilate_face(const thin_ctx *c, uint32_t m) /* 6 (4) neighbours */
{
    return step_x(c, m) | step_y(c, m) | step_z(c, m);
}

/* Number of components of `set` (full or face adjacency); with `touch` != 0
 * only the components that contain a position of `touch` are counted. */
static int count_components(const thin_ctx *c, uint32_t set, int full, uint32_t touch)
{
    int n = 0;
    while (set) {
        uint32_t comp = set & (~set + 1u), prev;
        do {
            prev = comp;
            comp = (full ? dilate_full(c, comp) : dilate_face(c, comp)) & set;
        } while (comp != prev);
        set &= ~comp;
        if (!touch || (comp & touch)) n++;
    }
    return n;
}

/* Foreground bits of the neighbourhood of p (centre excluded). */
static uint32_t neighbourhood(const thin_ctx *c, const uint8_t *img, int64_t p)
{
    uint32_t m = 0;
    for (int k = 0; k < c->npos; k++)
        if (k != c->centre && img[p + c->off[k]]) m |= 1u << k;
    return m;
}

static int is_endpoint(uint32_t nb)
{
    return __builtin_popcount(nb) == 1;
}

static int is_simple(const thin_ctx *c, uint32_t nb)
{
    if (count_components(c, nb, 1, 0) != 1) return 0;
    uint32_t bg = ~nb & c->bg_domain;
    return count_components(c, bg, 0, c->face) == 1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

sl_status slg_skeleton(const uint8_t *mask, const slg_vol *v, uint8_t *skel)
{
    const int64_t n0 = v->n[0], n1 = v->n[1], n2 = v->n[2];
    if (v->ndim == 1) {
        for (int64_t i = 0; i < v->count; i++) skel[i] = mask[i] != 0;
        return SL_OK;
    }
    /* padded copy: a zero frame on the real axes removes bounds checks */
    const int64_t p0 = v->ndim == 3 ? n0 + 2 : 1, p1 = n1 + 2, p2 = n2 + 2;
    const int64_t o0 = v->ndim == 3 ? 1 : 0;
    const int64_t stride[3] = {p1 * p2, p2, 1};
    const int64_t np = p0 * p1 * p2;
    uint8_t *img = calloc((size_t)np, 1);
    uint8_t *inlist = calloc((size_t)np, 1);
    int64_t cap = 1024, nact = 0, ncand = 0;
    int64_t *act = malloc((size_t)cap * sizeof(int64_t));
    int64_t *cand = malloc((size_t)cap * sizeof(int64_t));
    sl_status st = SL_ENOMEM;
    if (!img || !inlist || !act || !cand) goto done;
    for (int64_t i0 = 0; i0 < n0; i0++)
        for (int64_t i1 = 0; i1 < n1; i1++) {
            const uint8_t *m = mask + (i0 * n1 + i1) * n2;
            uint8_t *r = img + (i0 + o0) * stride[0] + (i1 + 1) * stride[1] + 1;
            for (int64_t i2 = 0; i2 < n2; i2++) r[i2] = m[i2] != 0;
        }
    thin_ctx c;
    thin_ctx_init(&c, v->ndim, stride);

    /* Initial border points, in raster order. */
#define PUSH_ACTIVE(p)                                                        \
    do {                                                                      \
        if (nact == cap) {                                                    \
            int64_t *a2 = realloc(act, (size_t)cap * 2 * sizeof(int64_t));    \
            int64_t *c2 = a2 ? realloc(cand, (size_t)cap * 2 * sizeof(int64_t)) : NULL; \
            if (!a2) goto done;                                               \
            act = a2;                                                         \
            if (!c2) goto done;                                               \
            cand = c2;                                                        \
            cap *= 2;                                                         \
        }                                                                     \
        act[nact++] = (p);                                                    \
        inlist[p] = 1;                                                        \
    } while (0)
    for (int64_t p = 0; p < np; p++) {
        if (!img[p]) continue;
        for (int k = 0; k < c.ndir; k++)
            if (!img[p + c.dir[k]]) {
                PUSH_ACTIVE(p);
                break;
            }
    }

    int64_t changed;
    do {
        changed = 0;
        for (int k = 0; k < c.ndir; k++) {
            ncand = 0;
            for (int64_t i = 0; i < nact; i++) {
                int64_t p = act[i];
                if (!img[p] || img[p + c.dir[k]]) continue;
                uint32_t nb = neighbourhood(&c, img, p);
                if (!is_endpoint(nb) && is_simple(&c, nb)) cand[ncand++] = p;
            }
            if (ncand == 0) continue;
            qsort(cand, (size_t)ncand, sizeof(int64_t), cmp_i64);
            for (int64_t i = 0; i < ncand; i++) {
                int64_t p = cand[i];
                uint32_t nb = neighbourhood(&c, img, p);
                if (is_endpoint(nb) || !is_simple(&c, nb)) continue;
                img[p] = 0;
                changed++;
                /* its foreground cross-neighbours are border points now */
                for (int d = 0; d < c.ndir; d++) {
                    int64_t q = p + c.dir[d];
                    if (img[q] && !inlist[q]) PUSH_ACTIVE(q);
                }
            }
            /* drop deleted points from the active list */
            int64_t w = 0;
            for (int64_t i = 0; i < nact; i++) {
                if (img[act[i]]) act[w++] = act[i];
                else inlist[act[i]] = 0;
            }
            nact = w;
        }
    } while (changed);
#undef PUSH_ACTIVE

    for (int64_t i0 = 0; i0 < n0; i0++)
        for (int64_t i1 = 0; i1 < n1; i1++) {
            uint8_t *s = skel + (i0 * n1 + i1) * n2;
            const uint8_t *r = img + (i0 + o0) * stride[0] + (i1 + 1) * stride[1] + 1;
            memcpy(s, r, (size_t)n2);
        }
    st = SL_OK;
done:
    free(img);
    free(inlist);
    free(act);
    free(cand);
    return st;
}

sl_status sl_skeletonize(const uint8_t *mask, const sl_grid *grid, uint8_t *skel, char *msg, size_t msglen)
{
    slg_vol v;
    if (!mask || !skel) return sl_errf(msg, msglen, SL_EINVAL, "skeletonize: mask or output is NULL");
    sl_status st = slg_vol_from_grid(grid, &v, msg, msglen);
    if (st != SL_OK) return st;
    if (mask < skel + v.count && skel < mask + v.count)
        return sl_errf(msg, msglen, SL_EINVAL, "skeletonize: output overlaps the mask");
    st = slg_skeleton(mask, &v, skel);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "skeletonize: out of memory");
    return SL_OK;
}
