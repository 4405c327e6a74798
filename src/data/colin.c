/*
 * The colin source: axial slices of the Colin27 T1 brain (ch2bet.nii.gz,
 * 1 mm, skull-stripped) with labels from the AAL atlas in the same space
 * (aal.nii.gz), both from Debian's mricron-data.
 *
 * Classes: 1 = deep grey nuclei (AAL Caudate, Putamen, Pallidum, Thalamus,
 * left and right), 2 = hippocampus + amygdala (AAL Hippocampus, Amygdala,
 * left and right); everything else 0. The AAL values of these regions are
 * looked up by name in aal.nii.txt at run time, never assumed.
 *
 * Normalisation: z-score over the brain (T1 > 0) of the whole volume,
 * background set to 0 (as nnU-Net does for MRI with a brain mask); labels
 * outside the brain set to 0.
 *
 * Splits: the slices whose brain covers at least min_brain_fraction of the
 * slice, in z order, are cut into blocks of `block` slices; block b goes to
 * the split whose share is most behind (sld_block_split), and `gap` slices
 * are dropped between two blocks of different splits, so no two slices of
 * different splits are closer than gap + 1 in z.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data_internal.h"
#include "sources.h"
#include "fileio.h"
#include "segloss/io.h"

static const char *const class1_regions[] = {"Caudate_L", "Caudate_R", "Putamen_L", "Putamen_R",
                                             "Pallidum_L", "Pallidum_R", "Thalamus_L", "Thalamus_R"};
static const char *const class2_regions[] = {"Hippocampus_L", "Hippocampus_R", "Amygdala_L",
                                             "Amygdala_R"};

static sl_status missing(const char *path, char *msg, size_t msglen)
{
    return sl_errf(msg, msglen, SL_EIO,
                   "colin: %s not found: install Debian's mricron-data (apt-get install mricron-data) "
                   "or set colin_dir", path);
}

sl_status sl_colin_label_table(const char *dir, int32_t *table, int n, char *msg, size_t msglen)
{
    if (!dir || !table || n < 1) return sl_errf(msg, msglen, SL_EINVAL, "colin: NULL argument or bad table size");
    char path[1024];
    snprintf(path, sizeof path, "%s/aal.nii.txt", dir);
    FILE *f = sl_fopen_read(path);
    if (!f) return missing(path, msg, msglen);
    memset(table, 0, (size_t)n * sizeof *table);
    int found1[8] = {0}, found2[4] = {0};
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        long v;
        char name[256];
        /* "37 Hippocampus_L 4101": value, name, code */
        if (sscanf(line, "%ld %255s", &v, name) != 2) continue;
        int cls = 0;
        for (int i = 0; i < 8; i++)
            if (strcmp(name, class1_regions[i]) == 0) {
                cls = 1;
                found1[i] = 1;
            }
        for (int i = 0; i < 4; i++)
            if (strcmp(name, class2_regions[i]) == 0) {
                cls = 2;
                found2[i] = 1;
            }
        if (cls && (v < 1 || v >= n)) {
            fclose(f);
            return sl_errf(msg, msglen, SL_EFORMAT, "colin: %s line %d: value %ld of %s outside [1, %d)", path,
                           lineno, v, name, n);
        }
        if (cls) table[v] = cls;
    }
    fclose(f);
    for (int i = 0; i < 8; i++)
        if (!found1[i]) return sl_errf(msg, msglen, SL_EFORMAT, "colin: %s does not list %s", path, class1_regions[i]);
    for (int i = 0; i < 4; i++)
        if (!found2[i]) return sl_errf(msg, msglen, SL_EFORMAT, "colin: %s does not list %s", path, class2_regions[i]);
    return SL_OK;
}

sl_status sld_colin_load(const sl_data_opts *o, sld_colin_vol *v, char *msg, size_t msglen)
{
    char t1path[1024], aalpath[1024];
    memset(v, 0, sizeof *v);
    snprintf(t1path, sizeof t1path, "%s/ch2bet.nii.gz", o->colin_dir);
    snprintf(aalpath, sizeof aalpath, "%s/aal.nii.gz", o->colin_dir);
    if (access(t1path, R_OK) != 0) return missing(t1path, msg, msglen);
    if (access(aalpath, R_OK) != 0) return missing(aalpath, msg, msglen);

    sl_array t1raw = SL_ARRAY_EMPTY, aalraw = SL_ARRAY_EMPTY;
    sl_array *t1 = &v->t1, *aal = &v->aal;
    *t1 = (sl_array)SL_ARRAY_EMPTY;
    *aal = (sl_array)SL_ARRAY_EMPTY;
    sl_status st = sl_nifti_read(t1path, 0, &t1raw, NULL, msg, msglen);
    if (st == SL_OK) st = sl_nifti_read(aalpath, 0, &aalraw, NULL, msg, msglen);
    if (st != SL_OK) goto done;
    if ((st = sl_array_to_f32(&t1raw, t1)) != SL_OK || (st = sl_array_to_i32(&aalraw, aal)) != SL_OK) {
        st = sl_errf(msg, msglen, st, "colin: cannot convert the volumes (%s)", sl_strerror(st));
        goto done;
    }
    if (t1->ndim != 3 || aal->ndim != 3 || t1->shape[0] != aal->shape[0] || t1->shape[1] != aal->shape[1] ||
        t1->shape[2] != aal->shape[2]) {
        st = sl_errf(msg, msglen, SL_ESHAPE, "colin: %s and %s are not the same 3-D grid", t1path, aalpath);
        goto done;
    }
    const int64_t N = t1->shape[0] * t1->shape[1] * t1->shape[2];
    const float *tv = t1->data;
    int32_t *av = aal->data;
    int32_t amax = 0;
    for (int64_t i = 0; i < N; i++) {
        if (av[i] < 0) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "colin: %s has a negative label", aalpath);
            goto done;
        }
        if (av[i] > amax) amax = av[i];
    }
    v->table = calloc((size_t)amax + 1, sizeof *v->table);
    if (!v->table) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "colin: out of memory");
        goto done;
    }
    if ((st = sl_colin_label_table(o->colin_dir, v->table, amax + 1, msg, msglen)) != SL_OK) goto done;

    /* brain statistics over the whole volume */
    double sum = 0.0, ss = 0.0;
    int64_t nb = 0;
    for (int64_t i = 0; i < N; i++)
        if (tv[i] > 0) {
            sum += tv[i];
            nb++;
        }
    if (nb == 0) {
        st = sl_errf(msg, msglen, SL_EEMPTY, "colin: %s has no brain voxel (all <= 0)", t1path);
        goto done;
    }
    v->mean = sum / (double)nb;
    for (int64_t i = 0; i < N; i++)
        if (tv[i] > 0) ss += ((double)tv[i] - v->mean) * ((double)tv[i] - v->mean);
    v->sd = sqrt(ss / (double)nb);
    if (!(v->sd > 0)) v->sd = 1.0;
done:
    sl_array_free(&t1raw);
    sl_array_free(&aalraw);
    if (st != SL_OK) sld_colin_free(v);
    return st;
}

void sld_colin_free(sld_colin_vol *v)
{
    sl_array_free(&v->t1);
    sl_array_free(&v->aal);
    free(v->table);
    v->table = NULL;
}

sl_status sld_open_colin(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen)
{
    (void)arg;
    sld_colin_vol cv;
    sl_dataset *ds = NULL;
    int64_t *zlist = NULL;
    sl_status st = sld_colin_load(o, &cv, msg, msglen);
    if (st != SL_OK) return st;
    const int64_t D = cv.t1.shape[0], Hs = cv.t1.shape[1], Ws = cv.t1.shape[2], S = Hs * Ws;
    const float *tv = cv.t1.data;
    const int32_t *av = cv.aal.data, *table = cv.table;
    const double mean = cv.mean, sd = cv.sd;

    /* eligible slices */
    zlist = malloc((size_t)D * sizeof *zlist);
    if (!zlist) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "colin: out of memory");
        goto done;
    }
    int64_t nel = 0;
    for (int64_t z = 0; z < D; z++) {
        int64_t c = 0;
        for (int64_t i = 0; i < S; i++) c += tv[z * S + i] > 0;
        if (c > 0 && (double)c >= o->min_brain_fraction * (double)S) zlist[nel++] = z;
    }
    if (nel == 0) {
        st = sl_errf(msg, msglen, SL_EEMPTY, "colin: no slice has a brain fraction >= %g", o->min_brain_fraction);
        goto done;
    }
    if (sld_mb(nel * S) > o->max_memory_mb) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "colin: %lld slices need %.0f MB, more than max_memory_mb = %g",
                     (long long)nel, sld_mb(nel * S), o->max_memory_mb);
        goto done;
    }

    ds = sld_alloc(SLD_COLIN, o);
    if (!ds) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "colin: out of memory");
        goto done;
    }
    static const char *const names[3] = {"background", "deep_grey", "hippocampus_amygdala"};
    float *img = sl_malloc(nel * S, sizeof *img);
    if (!img || sld_own(ds, img) != SL_OK) goto nomem;
    int32_t *lab = sl_malloc(nel * S, sizeof *lab);
    if (!lab || sld_own(ds, lab) != SL_OK) goto nomem;
    if (sld_set_classes(ds, 3, names) != SL_OK) goto nomem;
    for (int s = 0; s < SL_NUM_SPLITS; s++)
        if (!(ds->slices[s] = calloc((size_t)nel, sizeof(sld_slice)))) goto nomem;

    /* blocks over the eligible slices, a gap where the split changes */
    double share[SL_NUM_SPLITS] = {1.0 - o->val_fraction - o->test_fraction, o->val_fraction, o->test_fraction};
    int64_t bcount[SL_NUM_SPLITS] = {0};
    int64_t pos = 0, b = 0;
    int split = sld_block_split(b, share, bcount);
    while (pos < nel) {
        int64_t end = pos + o->block < nel ? pos + o->block : nel;
        for (int64_t k = pos; k < end; k++) {
            int64_t z = zlist[k];
            float *di = img + k * S;
            int32_t *dl = lab + k * S;
            for (int64_t i = 0; i < S; i++) {
                float v = tv[z * S + i];
                di[i] = v > 0 ? (float)(((double)v - mean) / sd) : 0.0f;
                dl[i] = v > 0 ? table[av[z * S + i]] : 0;
            }
            sld_slice *sl = &ds->slices[split][ds->n[split]++];
            sl->img = di;
            sl->lab = dl;
            sl->h = Hs;
            sl->w = Ws;
            sl->case_index = 0;
            sl->slice = z;
        }
        pos = end;
        if (pos >= nel) break;
        int next = sld_block_split(++b, share, bcount);
        if (next != split) pos += o->gap;
        split = next;
    }
    if (ds->n[0] == 0) {
        st = sl_errf(msg, msglen, SL_EEMPTY, "colin: the training split is empty (block %d too large?)", o->block);
        goto done;
    }
    ds->H = o->height ? o->height : Hs;
    ds->W = o->width ? o->width : Ws;
    st = sld_finish(ds, msg, msglen);
    goto done;
nomem:
    st = sl_errf(msg, msglen, SL_ENOMEM, "colin: out of memory");
done:
    if (st == SL_OK) *out = ds;
    else sl_dataset_free(ds);
    sld_colin_free(&cv);
    free(zlist);
    return st;
}
