/*
 * The nifti:DIR source: a user's own cases, DIR/images/NAME.nii[.gz] with
 * DIR/labels/NAME.nii[.gz] (an image NAME_0000 also matches label NAME, the
 * nnU-Net naming), sliced along one axis.
 *
 * Everything is read and checked at open: every image has its label and
 * every label its image (the message names both files), the grids agree
 * (shape and voxel size), labels are integers >= 0 (float label files are
 * accepted when every value is integral). Each case is normalised on its
 * own (z-score, percentile clip + z-score, or none; optionally over the
 * non-zero voxels only). The kept slices are copied into memory (8 bytes a
 * voxel, refused above max_memory_mb).
 *
 * Split by case: the cases sorted by name are shuffled with the seed
 * (Fisher-Yates, RNG stream 0x73706c6974 "split"); the first
 * round(test_fraction * N) are test, the next round(val_fraction * N)
 * validation, the rest training. Within a split, samples are ordered by
 * case name, then slice index.
 *
 * Volumes (option volumes=1): each case is one 3-D sample (D, H, W), the
 * whole normalised volume, for 3-D training. The voxel spacing (NIfTI
 * pixdim) becomes the dataset's: every case must have the same spacing
 * (within 1e-3 relative) and the same grid size, or the open is refused
 * naming the two files; nothing is resampled (nnU-Net would resample to a
 * target spacing; here the user does that beforehand). height, width,
 * resize and the slice filter concern slices and are refused with volumes.
 *
 * Class names come from DIR/dataset.json when it exists (nnU-Net v2
 * "labels": {"name": value} or v1 "labels": {"value": "name"}).
 */
#define _POSIX_C_SOURCE 200809L
#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "data_internal.h"
#include "sources.h"
#include "fileio.h"
#include "segloss/io.h"

typedef struct nd_case {
    char *image, *label; /* file names inside images/ and labels/ */
    char *stem;
} nd_case;

static size_t nifti_ext(const char *name)
{
    size_t n = strlen(name);
    if (n > 7 && strcmp(name + n - 7, ".nii.gz") == 0) return 7;
    if (n > 4 && strcmp(name + n - 4, ".nii") == 0) return 4;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted NIfTI file names of a folder (regular files only). */
static sl_status list_dir(const char *dir, char ***names, int64_t *count, char *msg, size_t msglen)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return sl_errf(msg, msglen, SL_EIO, "nifti: cannot open folder %s", dir);
    int64_t cap = 0, n = 0;
    char **v = NULL;
    struct dirent *e;
    sl_status st = SL_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !nifti_ext(e->d_name)) continue;
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                st = SL_ENOMEM;
                break;
            }
            v = nv;
        }
        if (!(v[n] = strdup(e->d_name))) {
            st = SL_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (st != SL_OK) {
        for (int64_t i = 0; i < n; i++) free(v[i]);
        free(v);
        return sl_errf(msg, msglen, st, "nifti: out of memory listing %s", dir);
    }
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_str);
    *names = v;
    *count = n;
    return SL_OK;
}

static char *stem_of(const char *name)
{
    size_t n = strlen(name) - nifti_ext(name);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, name, n);
        s[n] = '\0';
    }
    return s;
}

/* Float label volume -> int32 when every value is an integral, finite number. */
static sl_status labels_to_i32(const sl_array *in, sl_array *out, const char *path, char *msg, size_t msglen)
{
    if (sl_dtype_is_integer(in->dtype)) {
        sl_status st = sl_array_to_i32(in, out);
        if (st != SL_OK) return sl_errf(msg, msglen, st, "nifti: %s: labels do not fit in int32", path);
        return SL_OK;
    }
    sl_array f = SL_ARRAY_EMPTY;
    sl_status st = sl_array_to_f32(in, &f);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "nifti: %s: out of memory", path);
    int64_t n = sl_array_count(&f);
    st = sl_array_alloc(out, SL_DT_I32, f.ndim, f.shape);
    if (st != SL_OK) {
        sl_array_free(&f);
        return sl_errf(msg, msglen, st, "nifti: %s: out of memory", path);
    }
    const float *fv = f.data;
    int32_t *iv = out->data;
    for (int64_t i = 0; i < n; i++) {
        float v = fv[i];
        if (!isfinite(v) || v != floorf(v) || fabsf(v) > 2147483520.0f) {
            sl_array_free(&f);
            sl_array_free(out);
            return sl_errf(msg, msglen, SL_EDTYPE, "nifti: %s: label value %g at voxel %lld is not an integer", path,
                           (double)v, (long long)i);
        }
        iv[i] = (int32_t)v;
    }
    sl_array_free(&f);
    return SL_OK;
}

/* The k-th smallest of v[0..n) (v is reordered): Hoare quickselect with a
 * median-of-three pivot, linear on average, so percentiles of a large CT
 * volume do not need a sort. */
static float select_kth(float *v, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        float a = v[lo], b = v[mid], c = v[hi];
        float piv = (a < b) ? ((b < c) ? b : (a < c ? c : a)) : ((a < c) ? a : (b < c ? c : b));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < piv) i++;
            while (v[j] > piv) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else break;
    }
    return v[k];
}

/* numpy.percentile (linear interpolation) of v[0..n), reordering v */
static double percentile(float *v, int64_t n, double q)
{
    double pos = q / 100.0 * (double)(n - 1);
    int64_t i = (int64_t)floor(pos);
    if (i >= n - 1) return select_kth(v, n, n - 1);
    double a = select_kth(v, n, i);
    /* after the selection everything beyond i is >= v[i]: the next order
     * statistic is their minimum */
    float b = v[i + 1];
    for (int64_t j = i + 2; j < n; j++)
        if (v[j] < b) b = v[j];
    return a + (pos - (double)i) * ((double)b - a);
}

/* Normalises one case in place. Statistics over all voxels, or the
 * non-zero ones (which then stay 0). */
static sl_status normalise(float *x, int64_t n, const sl_data_opts *o)
{
    if (o->norm == SL_INTENSITY_NONE) return SL_OK;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) m += !o->norm_nonzero || x[i] != 0.0f;
    if (m == 0) return SL_OK; /* nothing to take statistics from */
    double lo = -INFINITY, hi = INFINITY;
    if (o->norm == SL_INTENSITY_PERCENTILE) {
        float *v = sl_malloc(m, sizeof *v);
        if (!v) return SL_ENOMEM;
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++)
            if (!o->norm_nonzero || x[i] != 0.0f) v[k++] = x[i];
        lo = percentile(v, m, o->clip_lo);
        hi = percentile(v, m, o->clip_hi);
        free(v);
    }
    double s = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (!o->norm_nonzero || x[i] != 0.0f) s += fmin(fmax((double)x[i], lo), hi);
    double mean = s / (double)m;
    for (int64_t i = 0; i < n; i++)
        if (!o->norm_nonzero || x[i] != 0.0f) {
            double d = fmin(fmax((double)x[i], lo), hi) - mean;
            ss += d * d;
        }
    double sd = sqrt(ss / (double)m);
    if (!(sd > 0)) sd = 1.0;
    for (int64_t i = 0; i < n; i++) {
        if (o->norm_nonzero && x[i] == 0.0f) continue;
        x[i] = (float)((fmin(fmax((double)x[i], lo), hi) - mean) / sd);
    }
    return SL_OK;
}

/* Class names from DIR/dataset.json (absent file: names stay NULL). */
static sl_status read_dataset_json(const char *dir, char **names, int *max_label, char *msg, size_t msglen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/dataset.json", dir);
    FILE *f = sl_fopen_read(path);
    *max_label = -1;
    if (!f) return SL_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    while (1) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            if (cap > ((size_t)64 << 20)) {
                free(buf);
                fclose(f);
                return sl_errf(msg, msglen, SL_EFORMAT, "nifti: %s is larger than 64 MB", path);
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return sl_errf(msg, msglen, SL_ENOMEM, "nifti: out of memory reading %s", path);
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, 4096, f);
        len += r;
        if (r < 4096) break;
    }
    fclose(f);
    buf[len] = '\0';
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!root) return sl_errf(msg, msglen, SL_EFORMAT, "nifti: %s is not valid JSON", path);
    sl_status st = SL_OK;
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "labels");
    if (labels && !cJSON_IsObject(labels)) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "nifti: %s: \"labels\" is not an object", path);
        goto out;
    }
    cJSON *it;
    cJSON_ArrayForEach(it, labels)
    {
        long v = -1;
        const char *nm = NULL;
        if (cJSON_IsNumber(it)) { /* v2: "name": value */
            v = (long)it->valuedouble;
            if ((double)v != it->valuedouble) v = -1;
            nm = it->string;
        } else if (cJSON_IsString(it)) { /* v1: "value": "name" */
            char *end;
            v = strtol(it->string, &end, 10);
            if (*end || end == it->string) v = -1;
            nm = it->valuestring;
        } else {
            continue; /* region-based entries (arrays) are not classes */
        }
        if (v < 0 || v >= SL_DATA_MAX_CLASSES) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "nifti: %s: label entry '%s' has no value in [0, %d)", path,
                         it->string, SL_DATA_MAX_CLASSES);
            goto out;
        }
        free(names[v]);
        if (!(names[v] = strdup(nm))) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "nifti: out of memory");
            goto out;
        }
        if (v > *max_label) *max_label = (int)v;
    }
out:
    cJSON_Delete(root);
    return st;
}

typedef struct nd_kept {
    int64_t case_index, slice;
    float *img;
    int32_t *lab;
    int64_t h, w;
    int64_t d; /* volumes: the depth (slices: 1) */
} nd_kept;

/* Everything sld_open_nifti gathers on the way, released by nd_release. */
typedef struct nd_build {
    const char *dir;
    const sl_data_opts *o;
    char idir[4096], ldir[4096];
    char **inames, **lnames;
    int64_t ni, nl;
    char *jnames[SL_DATA_MAX_CLASSES]; /* from dataset.json */
    int json_max;
    nd_case *cases;
    int64_t ncase;
    nd_kept *kept; /* in case-name, slice order */
    int64_t nkept, capkept;
    int maxlab;
    double mb;
    double spacing[3];   /* volumes: case 0's spacing (D, H, W order) */
} nd_build;

static sl_status nd_nomem(char *msg, size_t msglen)
{
    return sl_errf(msg, msglen, SL_ENOMEM, "nifti: out of memory");
}

static void nd_release(nd_build *b)
{
    for (int64_t k = 0; k < b->nkept; k++) {
        free(b->kept[k].img);
        free(b->kept[k].lab);
    }
    free(b->kept);
    if (b->cases)
        for (int64_t c = 0; c < b->ncase; c++) free(b->cases[c].stem);
    free(b->cases);
    for (int64_t i = 0; i < b->ni; i++) free(b->inames[i]);
    for (int64_t i = 0; i < b->nl; i++) free(b->lnames[i]);
    free(b->inames);
    free(b->lnames);
    for (int c = 0; c < SL_DATA_MAX_CLASSES; c++) free(b->jnames[c]);
}

/* Phase 1: pairs every image with the label of the same stem (an image
 * "x_0000" may pair with label "x", as nnU-Net names them); every file
 * must have its partner, and no label two images. */
static sl_status nd_pair(nd_build *b, char *msg, size_t msglen)
{
    b->cases = calloc((size_t)b->ni, sizeof *b->cases);
    uint8_t *used = calloc((size_t)b->nl + 1, 1);
    sl_status st = SL_OK;
    if (!b->cases || !used) {
        free(used);
        return nd_nomem(msg, msglen);
    }
    for (int64_t i = 0; i < b->ni && st == SL_OK; i++) {
        char *stem = stem_of(b->inames[i]);
        if (!stem) {
            st = nd_nomem(msg, msglen);
            break;
        }
        size_t sn = strlen(stem);
        int64_t match = -1;
        for (int64_t j = 0; j < b->nl && match < 0 && st == SL_OK; j++) {
            char *ls = stem_of(b->lnames[j]);
            if (!ls) {
                st = nd_nomem(msg, msglen);
                break;
            }
            if (strcmp(ls, stem) == 0 || (sn > 5 && strcmp(stem + sn - 5, "_0000") == 0 &&
                                          strlen(ls) == sn - 5 && strncmp(ls, stem, sn - 5) == 0))
                match = j;
            free(ls);
        }
        if (st != SL_OK) {
        } else if (match < 0) {
            st = sl_errf(msg, msglen, SL_EIO, "nifti: image %s/%s has no label %s/%s.nii.gz", b->idir, b->inames[i],
                         b->ldir, stem);
        } else if (used[match]) {
            st = sl_errf(msg, msglen, SL_EINVAL, "nifti: label %s/%s matches two images (the second is %s/%s)", b->ldir,
                         b->lnames[match], b->idir, b->inames[i]);
        } else {
            used[match] = 1;
            b->cases[b->ncase].image = b->inames[i];
            b->cases[b->ncase].label = b->lnames[match];
            b->cases[b->ncase].stem = stem;
            b->ncase++;
            stem = NULL;
        }
        free(stem);
    }
    for (int64_t j = 0; j < b->nl && st == SL_OK; j++)
        if (!used[j]) {
            char *ls = stem_of(b->lnames[j]);
            st = sl_errf(msg, msglen, SL_EIO, "nifti: label %s/%s has no image %s/%s.nii.gz", b->ldir, b->lnames[j],
                         b->idir, ls ? ls : "?");
            free(ls);
        }
    free(used);
    return st;
}

/* Phase 2: reads one case's image and label, checks that their grids
 * agree, converts them to float32 / int32 and checks every value. */
static sl_status nd_read_case(nd_build *b, const char *ip, const char *lp, sl_array *fimg, sl_array *ilab,
                              double sp3[3], char *msg, size_t msglen)
{
    const sl_data_opts *o = b->o;
    sl_array img = SL_ARRAY_EMPTY, lab = SL_ARRAY_EMPTY;
    sl_nifti_info ii, li;
    sl_status st = sl_nifti_read(ip, 0, &img, &ii, msg, msglen);
    if (st == SL_OK) st = sl_nifti_read(lp, 0, &lab, &li, msg, msglen);
    if (st != SL_OK) goto done;
    if (img.ndim > 3 || lab.ndim > 3) {
        st = sl_errf(msg, msglen, SL_EUNSUPPORTED, "nifti: %s or %s has more than 3 axes (one channel per file)", ip, lp);
        goto done;
    }
    /* compared as (D, H, W): a 2-D file equals a 3-D one with one slice */
    int64_t pi3[3] = {1, 1, 1}, pl3[3] = {1, 1, 1};
    for (int a = 0; a < img.ndim; a++) pi3[3 - img.ndim + a] = img.shape[a];
    for (int a = 0; a < lab.ndim; a++) pl3[3 - lab.ndim + a] = lab.shape[a];
    if (pi3[0] != pl3[0] || pi3[1] != pl3[1] || pi3[2] != pl3[2]) {
        char a1[96] = "", a2[96] = "";
        for (int a = 0; a < img.ndim; a++) snprintf(a1 + strlen(a1), sizeof a1 - strlen(a1), "%s%lld", a ? "x" : "", (long long)img.shape[a]);
        for (int a = 0; a < lab.ndim; a++) snprintf(a2 + strlen(a2), sizeof a2 - strlen(a2), "%s%lld", a ? "x" : "", (long long)lab.shape[a]);
        st = sl_errf(msg, msglen, SL_ESHAPE, "nifti: grids differ: %s is %s, %s is %s", ip, a1, lp, a2);
        goto done;
    }
    for (int a = 0; a < img.ndim && a < lab.ndim; a++) {
        double s1 = ii.spacing[img.ndim - 1 - a], s2 = li.spacing[lab.ndim - 1 - a];
        if (fabs(s1 - s2) > 1e-3 * fmax(s1, s2)) {
            st = sl_errf(msg, msglen, SL_ESHAPE, "nifti: grids differ: %s has spacing %g on axis %c, %s has %g", ip,
                         s1, "xyz"[a], lp, s2);
            goto done;
        }
    }
    /* (D, H, W) order, a missing leading axis 1 mm */
    for (int a = 0; a < 3; a++) sp3[a] = 1.0;
    for (int a = 0; a < img.ndim; a++) sp3[3 - img.ndim + a] = ii.spacing[a];
    if ((st = sl_array_to_f32(&img, fimg)) != SL_OK) {
        st = sl_errf(msg, msglen, st, "nifti: %s: out of memory", ip);
        goto done;
    }
    if ((st = labels_to_i32(&lab, ilab, lp, msg, msglen)) != SL_OK) goto done;
    const int64_t N = sl_array_count(fimg);
    const float *fv = fimg->data;
    const int32_t *lv = ilab->data;
    for (int64_t i = 0; i < N; i++) {
        if (!isfinite(fv[i])) {
            st = sl_errf(msg, msglen, SL_ENONFINITE, "nifti: %s: non-finite value at voxel %lld", ip, (long long)i);
            goto done;
        }
        if (lv[i] < 0 || (o->num_classes > 0 && lv[i] >= o->num_classes) || lv[i] >= SL_DATA_MAX_CLASSES) {
            st = sl_errf(msg, msglen, SL_ERANGE, "nifti: %s: label %d at voxel %lld is outside [0, %d)", lp,
                         (int)lv[i], (long long)i, o->num_classes > 0 ? o->num_classes : SL_DATA_MAX_CLASSES);
            goto done;
        }
        if (lv[i] > b->maxlab) b->maxlab = lv[i];
    }
done:
    sl_array_free(&img);
    sl_array_free(&lab);
    return st;
}

/* Phase 3: normalises case c's image and keeps the slices along the
 * chosen axis that pass the slice filter (which looks at the stored
 * values, before normalisation), within max_memory_mb. */
static sl_status nd_slice_case(nd_build *b, int64_t c, sl_array *fimg, const sl_array *ilab, char *msg,
                               size_t msglen)
{
    const sl_data_opts *o = b->o;
    /* as (D, H, W): a 2-D image is one slice, a 1-D one a row */
    int64_t sh[3] = {1, 1, 1};
    for (int a = 0; a < fimg->ndim; a++) sh[3 - fimg->ndim + a] = fimg->shape[a];
    const int64_t D = sh[0], H = sh[1], W = sh[2], N = D * H * W;
    float *fv = fimg->data;
    const int32_t *lv = ilab->data;
    int axis = o->axis == 'z' ? 0 : (o->axis == 'y' ? 1 : 2);
    int64_t ns = sh[axis];
    int64_t sh_h = axis == 0 ? H : D, sh_w = axis == 2 ? H : W;
    uint8_t *keep = calloc((size_t)ns, 1);
    if (!keep) return nd_nomem(msg, msglen);
    for (int64_t z = 0; z < D; z++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) {
                int64_t i = (z * H + y) * W + x, s = axis == 0 ? z : (axis == 1 ? y : x);
                if (o->slices == SL_SLICES_ALL) keep[s] = 1;
                else if (o->slices == SL_SLICES_NONZERO && fv[i] != 0.0f) keep[s] = 1;
                else if (o->slices == SL_SLICES_LABELLED && lv[i] > 0) keep[s] = 1;
            }
    sl_status st = normalise(fv, N, o);
    if (st != SL_OK) st = nd_nomem(msg, msglen);
    for (int64_t s = 0; s < ns && st == SL_OK; s++) {
        if (!keep[s]) continue;
        b->mb += sld_mb(sh_h * sh_w);
        if (b->mb > o->max_memory_mb) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "nifti: the slices need more than max_memory_mb = %g MB",
                         o->max_memory_mb);
            break;
        }
        if (b->nkept == b->capkept) {
            int64_t cap = b->capkept ? 2 * b->capkept : 256;
            nd_kept *nk = realloc(b->kept, (size_t)cap * sizeof *nk);
            if (!nk) {
                st = nd_nomem(msg, msglen);
                break;
            }
            b->kept = nk;
            b->capkept = cap;
        }
        nd_kept *k = &b->kept[b->nkept];
        k->img = sl_malloc(sh_h * sh_w, sizeof *k->img);
        k->lab = sl_malloc(sh_h * sh_w, sizeof *k->lab);
        if (!k->img || !k->lab) {
            free(k->img);
            free(k->lab);
            st = nd_nomem(msg, msglen);
            break;
        }
        b->nkept++;
        k->case_index = c;
        k->slice = s;
        k->h = sh_h;
        k->w = sh_w;
        k->d = 1;
        for (int64_t u = 0; u < sh_h; u++)
            for (int64_t v = 0; v < sh_w; v++) {
                int64_t i;
                if (axis == 0) i = (s * H + u) * W + v;
                else if (axis == 1) i = (u * H + s) * W + v;
                else i = (u * H + v) * W + s;
                k->img[u * sh_w + v] = fv[i];
                k->lab[u * sh_w + v] = lv[i];
            }
    }
    free(keep);
    return st;
}

/* Phase 3, volumes: normalises case c's image and keeps the whole volume;
 * its spacing and grid size must be case 0's (named on a mismatch). */
static sl_status nd_volume_case(nd_build *b, int64_t c, sl_array *fimg, const sl_array *ilab, const double sp[3],
                                char *msg, size_t msglen)
{
    const sl_data_opts *o = b->o;
    int64_t sh[3] = {1, 1, 1};
    for (int a = 0; a < fimg->ndim; a++) sh[3 - fimg->ndim + a] = fimg->shape[a];
    const int64_t N = sh[0] * sh[1] * sh[2];
    if (c == 0) {
        memcpy(b->spacing, sp, sizeof b->spacing);
    } else {
        const nd_kept *k0 = &b->kept[0];
        for (int a = 0; a < 3; a++)
            if (fabs(sp[a] - b->spacing[a]) > 1e-3 * fmax(sp[a], b->spacing[a]))
                return sl_errf(msg, msglen, SL_ESHAPE,
                               "nifti: mixed voxel spacings: %s/%s has %gx%gx%g mm, %s/%s has %gx%gx%g mm (volumes are "
                               "not resampled: give every case one spacing)",
                               b->idir, b->cases[0].image, b->spacing[0], b->spacing[1], b->spacing[2], b->idir,
                               b->cases[c].image, sp[0], sp[1], sp[2]);
        if (sh[0] != k0->d || sh[1] != k0->h || sh[2] != k0->w)
            return sl_errf(msg, msglen, SL_ESHAPE,
                           "nifti: volumes differ in size: %s/%s is %lldx%lldx%lld, %s/%s is %lldx%lldx%lld (volumes "
                           "are used at their own size: crop or pad the cases to one grid)",
                           b->idir, b->cases[0].image, (long long)k0->d, (long long)k0->h, (long long)k0->w, b->idir,
                           b->cases[c].image, (long long)sh[0], (long long)sh[1], (long long)sh[2]);
    }
    b->mb += sld_mb(N);
    if (b->mb > o->max_memory_mb)
        return sl_errf(msg, msglen, SL_ENOMEM, "nifti: the volumes need more than max_memory_mb = %g MB", o->max_memory_mb);
    if (normalise(fimg->data, N, o) != SL_OK) return nd_nomem(msg, msglen);
    if (b->nkept == b->capkept) {
        int64_t cap = b->capkept ? 2 * b->capkept : 64;
        nd_kept *nk = realloc(b->kept, (size_t)cap * sizeof *nk);
        if (!nk) return nd_nomem(msg, msglen);
        b->kept = nk;
        b->capkept = cap;
    }
    nd_kept *k = &b->kept[b->nkept];
    k->img = sl_malloc(N, sizeof *k->img);
    k->lab = sl_malloc(N, sizeof *k->lab);
    if (!k->img || !k->lab) {
        free(k->img);
        free(k->lab);
        return nd_nomem(msg, msglen);
    }
    memcpy(k->img, fimg->data, (size_t)N * sizeof *k->img);
    memcpy(k->lab, ilab->data, (size_t)N * sizeof *k->lab);
    k->case_index = c;
    k->slice = -1;
    k->d = sh[0];
    k->h = sh[1];
    k->w = sh[2];
    b->nkept++;
    return SL_OK;
}

/* Sample (split, index) of a volumes dataset: a copy of the stored volume
 * (every case has the dataset's size). */
static sl_status nd_volume_generate(const sl_dataset *ds, int split, int64_t index, float *img, int32_t *lab)
{
    const sld_slice *v = &ds->slices[split][index];
    const size_t n = (size_t)(ds->D * ds->H * ds->W);
    if (img) memcpy(img, v->img, n * sizeof *img);
    if (lab) memcpy(lab, v->lab, n * sizeof *lab);
    return SL_OK;
}

/* Phase 4: the split of every case (seeded shuffle of the cases, then
 * test and validation shares rounded, at least one training case). */
static int *nd_split_cases(const nd_build *b)
{
    const int64_t ncase = b->ncase;
    int64_t *order = malloc((size_t)ncase * sizeof *order);
    int *case_split = malloc((size_t)ncase * sizeof *case_split);
    if (!order || !case_split) {
        free(order);
        free(case_split);
        return NULL;
    }
    for (int64_t c = 0; c < ncase; c++) order[c] = c;
    sl_rng r;
    sl_rng_seed_stream(&r, b->o->seed, 0x73706c6974ULL);
    for (int64_t c = ncase - 1; c > 0; c--) {
        int64_t j = (int64_t)sl_rng_below(&r, (uint64_t)c + 1);
        int64_t t = order[c];
        order[c] = order[j];
        order[j] = t;
    }
    int64_t nt = llround(b->o->test_fraction * (double)ncase), nv = llround(b->o->val_fraction * (double)ncase);
    while (ncase - nt - nv < 1) {
        if (nt >= nv && nt > 0) nt--;
        else nv--;
    }
    for (int64_t k = 0; k < ncase; k++)
        case_split[order[k]] = k < nt ? SL_SPLIT_TEST : (k < nt + nv ? SL_SPLIT_VAL : SL_SPLIT_TRAIN);
    free(order);
    return case_split;
}

/* Phase 5: the dataset, taking the kept slices' buffers: splits, sample
 * size, classes (option, labels seen, dataset.json), case names. */
static sl_status nd_assemble(nd_build *b, const int *case_split, sl_dataset *ds, char *msg, size_t msglen)
{
    const sl_data_opts *o = b->o;
    for (int s = 0; s < SL_NUM_SPLITS; s++)
        if (!(ds->slices[s] = calloc((size_t)b->nkept, sizeof(sld_slice)))) return nd_nomem(msg, msglen);
    nd_kept *kept = b->kept;
    int64_t h0 = kept[0].h, w0 = kept[0].w, odd = -1;
    for (int64_t k = 0; k < b->nkept; k++) {
        int s = case_split[kept[k].case_index];
        sld_slice *sl = &ds->slices[s][ds->n[s]++];
        sl->img = kept[k].img;
        sl->lab = kept[k].lab;
        sl->h = kept[k].h;
        sl->w = kept[k].w;
        sl->case_index = kept[k].case_index;
        sl->slice = kept[k].slice;
        if ((kept[k].h != h0 || kept[k].w != w0) && odd < 0) odd = k;
        float *pi = kept[k].img;
        int32_t *pl = kept[k].lab;
        kept[k].img = NULL;
        kept[k].lab = NULL;
        if (sld_own(ds, pi) != SL_OK || sld_own(ds, pl) != SL_OK) return nd_nomem(msg, msglen);
    }
    if (ds->n[0] == 0)
        return sl_errf(msg, msglen, SL_EEMPTY, "nifti: the training split of %s has no %s", b->dir,
                       o->volumes ? "case" : "slice");
    if (o->height == 0 && odd >= 0)
        return sl_errf(msg, msglen, SL_ESHAPE,
                       "nifti: slices differ in size (%lldx%lld in %s, %lldx%lld in %s): set height and width",
                       (long long)h0, (long long)w0, b->cases[kept[0].case_index].image, (long long)kept[odd].h,
                       (long long)kept[odd].w, b->cases[kept[odd].case_index].image);
    ds->H = o->height ? o->height : h0;
    ds->W = o->width ? o->width : w0;
    if (o->volumes) { /* every case has case 0's size and spacing (nd_volume_case) */
        ds->ndim = 3;
        ds->D = kept[0].d;
        ds->generate = nd_volume_generate;
        memcpy(ds->spacing, b->spacing, sizeof ds->spacing);
    }
    int C = o->num_classes > 0 ? o->num_classes : b->maxlab + 1;
    if (o->num_classes == 0 && b->json_max + 1 > C) C = b->json_max + 1;
    if (C < 2) C = 2;
    const char *cn[SL_DATA_MAX_CLASSES];
    for (int c = 0; c < C; c++) cn[c] = b->jnames[c];
    if (sld_set_classes(ds, C, cn) != SL_OK) return nd_nomem(msg, msglen);
    ds->case_names = calloc((size_t)b->ncase, sizeof *ds->case_names);
    if (!ds->case_names) return nd_nomem(msg, msglen);
    ds->ncases = b->ncase;
    for (int64_t c = 0; c < b->ncase; c++)
        if (!(ds->case_names[c] = strdup(b->cases[c].image))) return nd_nomem(msg, msglen);
    return sld_finish(ds, msg, msglen);
}

sl_status sld_open_nifti(sl_dataset **out, const char *dir, const sl_data_opts *o, char *msg, size_t msglen)
{
    nd_build b;
    memset(&b, 0, sizeof b);
    b.dir = dir;
    b.o = o;
    b.json_max = -1;
    snprintf(b.idir, sizeof b.idir, "%s/images", dir);
    snprintf(b.ldir, sizeof b.ldir, "%s/labels", dir);
    sl_dataset *ds = NULL;
    int *case_split = NULL;
    sl_status st = SL_OK;
    if (o->volumes && (o->height || o->width || o->resize != SL_RESIZE_CROP_PAD || o->slices != SL_SLICES_ALL))
        st = sl_errf(msg, msglen, SL_EINVAL,
                     "nifti: height, width, resize and slices are options of slices; volumes=1 takes the cases at "
                     "their own size");
    if (st == SL_OK) st = list_dir(b.idir, &b.inames, &b.ni, msg, msglen);
    if (st == SL_OK) st = list_dir(b.ldir, &b.lnames, &b.nl, msg, msglen);
    if (st == SL_OK && b.ni == 0) st = sl_errf(msg, msglen, SL_EEMPTY, "nifti: %s has no .nii or .nii.gz file", b.idir);
    if (st == SL_OK) st = read_dataset_json(dir, b.jnames, &b.json_max, msg, msglen);
    if (st == SL_OK) st = nd_pair(&b, msg, msglen);
    /* read, check, normalise and slice every case */
    for (int64_t c = 0; c < b.ncase && st == SL_OK; c++) {
        char ip[8448], lp[8448];
        snprintf(ip, sizeof ip, "%s/%s", b.idir, b.cases[c].image);
        snprintf(lp, sizeof lp, "%s/%s", b.ldir, b.cases[c].label);
        sl_array fimg = SL_ARRAY_EMPTY, ilab = SL_ARRAY_EMPTY;
        double sp[3];
        st = nd_read_case(&b, ip, lp, &fimg, &ilab, sp, msg, msglen);
        if (st == SL_OK)
            st = o->volumes ? nd_volume_case(&b, c, &fimg, &ilab, sp, msg, msglen)
                            : nd_slice_case(&b, c, &fimg, &ilab, msg, msglen);
        sl_array_free(&fimg);
        sl_array_free(&ilab);
    }
    if (st == SL_OK && b.nkept == 0)
        st = sl_errf(msg, msglen, SL_EEMPTY, "nifti: no slice of %s passes the slice filter", dir);
    if (st == SL_OK && !(case_split = nd_split_cases(&b))) st = nd_nomem(msg, msglen);
    if (st == SL_OK && !(ds = sld_alloc(SLD_NIFTI, o))) st = nd_nomem(msg, msglen);
    if (st == SL_OK) st = nd_assemble(&b, case_split, ds, msg, msglen);
    free(case_split);
    if (st == SL_OK) *out = ds;
    else sl_dataset_free(ds);
    nd_release(&b);
    return st;
}
