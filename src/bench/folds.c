/*
 * The folds of a cross-validated benchmark as a file: DIR/runs/DATA/folds.csv
 * lists every sample of the data set with the fold whose validation split
 * holds it ("test" for the held-out test split), so a reader can see
 * which cases each fold's model validated on and check that no case is in
 * two folds or in the test set. The folds themselves are the data module's
 * (sl_dataset_fold, seeded by the data).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include "bench_internal.h"
#include "fileio.h"

sl_status slb_write_folds(const char *dir, const sl_bench_preset *p, int d, const sl_dataset *ds, char *msg, size_t msglen)
{
    sl_dataset_info info;
    sl_dataset_get_info(ds, &info);
    const int64_t n0 = info.n[SL_SPLIT_TRAIN], P = n0 + info.n[SL_SPLIT_VAL];
    int *fold_of = sl_malloc(P, sizeof *fold_of);
    if (!fold_of) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    sl_status st = sl_dataset_fold_assign(ds, p->nfolds, fold_of);
    if (st != SL_OK) {
        free(fold_of);
        return sl_errf(msg, msglen, st, "bench: data set %s: its training and validation cases cannot make %d folds",
                       p->datasets[d].name, p->nfolds);
    }
    slb_str s = {0};
    slb_puts(&s, "split,index,name,case,slice,fold\n");
    for (int sp = 0; sp < SL_NUM_SPLITS; sp++)
        for (int64_t i = 0; i < info.n[sp]; i++) {
            sl_sample_origin o;
            sl_dataset_origin(ds, (sl_split)sp, i, &o);
            slb_printf(&s, "%s,%lld,", sl_split_name((sl_split)sp), (long long)i);
            if (strpbrk(o.name, ",\"\n")) { /* a file name with a comma: quoted, as RFC 4180 */
                slb_puts(&s, "\"");
                for (const char *ch = o.name; *ch; ch++) slb_puts(&s, *ch == '"' ? "\"\"" : (char[2]){*ch, 0});
                slb_puts(&s, "\"");
            } else {
                slb_puts(&s, o.name);
            }
            slb_printf(&s, ",%lld,%lld,", (long long)o.case_index, (long long)o.slice);
            if (sp == SL_SPLIT_TEST) slb_puts(&s, "test\n");
            else slb_printf(&s, "%d\n", fold_of[sp == SL_SPLIT_TRAIN ? i : n0 + i]);
        }
    free(fold_of);
    char sub[SL_TRAIN_TEXT + 64];
    snprintf(sub, sizeof sub, "%s/%s/%s", dir, SLB_RUNS_DIR, p->datasets[d].slug);
    if ((st = sl_mkdirs(sub, msg, msglen)) == SL_OK) st = slb_write_text(sub, "folds.csv", &s, msg, msglen);
    slb_str_free(&s);
    return st;
}
