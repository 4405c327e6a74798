/*
 * An entry's evaluation options beyond flip: the "tta" value in its three
 * forms (the preset and result files: false/true for none/flip, as before,
 * else the strings "flip", "rot", "aug:N"; results.csv: 0/1, else the
 * string; the tables: "-", "flip", "rot", "aug:N"), and "postprocess":
 * the test labels of a job's net post-processed by the rule chosen on the
 * data set's validation split.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "bench_internal.h"

sl_status slb_get_tta(const cJSON *it, const char *where, int *tta, int *n, char *msg, size_t msglen)
{
    if (cJSON_IsBool(it)) {
        *tta = cJSON_IsTrue(it) ? SL_TTA_FLIP : SL_TTA_NONE;
        *n = 0;
        return SL_OK;
    }
    sl_tta t;
    if (cJSON_IsString(it) && sl_tta_parse(it->valuestring, &t, n) == SL_OK) {
        *tta = (int)t;
        return SL_OK;
    }
    return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s must be true, false, \"none\", \"flip\", \"rot\" or \"aug:N\" (N in 1..256)",
                   where);
}

cJSON *slb_tta_json(const sl_bench_entry *en)
{
    if (en->tta <= SL_TTA_FLIP) return cJSON_CreateBool(en->tta == SL_TTA_FLIP);
    char buf[32];
    return cJSON_CreateString(sl_tta_name((sl_tta)en->tta, en->tta_n, buf, sizeof buf));
}

int slb_tta_json_equal(const cJSON *it, const sl_bench_entry *en)
{
    int t = -1, n = -1;
    return it && slb_get_tta(it, "", &t, &n, NULL, 0) == SL_OK && t == en->tta && n == en->tta_n;
}

const char *slb_tta_text(const sl_bench_entry *en, int csv, char *buf, size_t len)
{
    if (en->tta <= SL_TTA_FLIP) {
        if (csv) snprintf(buf, len, "%d", en->tta);
        else snprintf(buf, len, "%s", en->tta ? "flip" : "-");
        return buf;
    }
    return sl_tta_name((sl_tta)en->tta, en->tta_n, buf, len);
}

sl_status slb_postprocess_cases(sl_unet *net, const sl_preproc *pp, const sl_dataset *ds, int nd, int64_t n,
                                const int64_t size[3], int32_t *pred, char *msg, size_t msglen)
{
    sl_postprocess *rule = malloc(sizeof *rule);
    if (!rule) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    sl_status st = sl_postprocess_fit(net, pp, ds, 1, rule, msg, msglen);
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = nd;
    int64_t vox = 1;
    for (int a = 0; a < nd; a++) vox *= (g.shape[a] = size[a]);
    for (int64_t i = 0; i < n && st == SL_OK; i++) st = sl_postprocess_apply(rule, pred + i * vox, &g, msg, msglen);
    free(rule);
    return st;
}
