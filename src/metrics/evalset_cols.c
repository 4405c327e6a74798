/*
 * The metric table of the evaluation set: one entry per output column.
 *
 * Most columns are fields of sl_metric_result. The confusion-matrix
 * family is derived here from the four counts TP, FP, FN, TN of a row
 * (scikit-learn's definitions; a ratio whose denominator is 0 is NaN, as
 * scikit-learn returns with zero_division=np.nan, except F-beta, which
 * follows the Dice table of empty masks since F1 = Dice). The autoPET
 * volumes and the pixel accuracy need the case itself (EV_NEED_*).
 */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "evalset_internal.h"
#include "internal.h"

/* ---- the confusion-matrix family ----------------------------------------- */

static double ratio(double a, double b)
{
    return b > 0 ? a / b : NAN;
}

#define CM                                                                     \
    const double tp = (double)r->tp, fp = (double)r->fp, fn = (double)r->fn, \
                 tn = (double)r->tn;                                           \
    (void)s, (void)c, (void)t, (void)tp, (void)fp, (void)fn, (void)tn

static double g_accuracy(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    return ratio(tp + tn, tp + fp + fn + tn);
}

/* scikit-learn balanced_accuracy_score: the mean of the per-class recalls
 * of the classes present in the ground truth (TPR and TNR when both exist). */
static double g_balanced(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    double sum = 0;
    int n = 0;
    if (tp + fn > 0) sum += tp / (tp + fn), n++;
    if (tn + fp > 0) sum += tn / (tn + fp), n++;
    return n ? sum / n : NAN;
}

static double g_npv(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    return ratio(tn, tn + fn);
}

static double g_fpr(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    return ratio(fp, fp + tn);
}

static double g_fnr(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    return ratio(fn, fn + tp);
}

static double g_fdr(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    return ratio(fp, fp + tp);
}

static double g_for(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    return ratio(fn, fn + tn);
}

/* scikit-learn class_likelihood_ratios: LR+ = TPR / FPR, LR- = FNR / TNR;
 * NaN without positives in the ground truth, or when FP = 0 (LR+) or
 * TN = 0 (LR-). */
static double g_lr_plus(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    if (tp + fn == 0 || fp == 0) return NAN;
    return (tp * (tn + fp)) / (fp * (tp + fn));
}

static double g_lr_minus(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    if (tp + fn == 0 || tn == 0) return NAN;
    return (fn * (tn + fp)) / (tn * (tp + fn));
}

/* Youden's J = informedness (bookmaker informedness) = TPR + TNR - 1. */
static double g_youden(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    if (tp + fn == 0 || tn + fp == 0) return NAN;
    return tp / (tp + fn) + tn / (tn + fp) - 1.0;
}

/* Markedness = PPV + NPV - 1. */
static double g_markedness(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    if (tp + fp == 0 || tn + fn == 0) return NAN;
    return tp / (tp + fp) + tn / (tn + fn) - 1.0;
}

/* F-beta = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP); 1 when P and G
 * are both empty (the Dice rule), 0 when one is. */
static double g_fbeta(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    CM;
    double b2 = s->o.beta > 0 ? s->o.beta * s->o.beta : 1.0;
    double den = (1 + b2) * tp + b2 * fn + fp;
    return den > 0 ? (1 + b2) * tp / den : 1.0;
}

static double g_pixel_accuracy(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r, (void)t;
    return c ? c->pixel_accuracy : NAN;
}

static double g_fp_ml(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return c && c->fp_ml ? c->fp_ml[t] : NAN;
}

static double g_pq(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return c && c->pq ? c->pq[EV_PQ_N * t] : NAN;
}

static double g_sq(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return c && c->pq ? c->pq[EV_PQ_N * t + 1] : NAN;
}

static double g_rq(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return c && c->pq ? c->pq[EV_PQ_N * t + 2] : NAN;
}

/* The instance counts of the matching behind pq (TP, FP, FN) and the
 * detection scores made of them: NaN when the denominator is 0. */
static double inst(const ev_case *c, int t, int k)
{
    return c && c->pq ? c->pq[EV_PQ_N * t + 3 + k] : NAN;
}

static double g_inst_tp(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return inst(c, t, 0);
}

static double g_inst_fp(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return inst(c, t, 1);
}

static double g_inst_fn(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return inst(c, t, 2);
}

static double g_inst_precision(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return ratio(inst(c, t, 0), inst(c, t, 0) + inst(c, t, 1));
}

static double g_inst_recall(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return ratio(inst(c, t, 0), inst(c, t, 0) + inst(c, t, 2));
}

static double g_inst_f1(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return ratio(2 * inst(c, t, 0), 2 * inst(c, t, 0) + inst(c, t, 1) + inst(c, t, 2));
}

static double g_fn_ml(const sl_evalset_t *s, const sl_metric_result *r, const ev_case *c, int t)
{
    (void)s, (void)r;
    return c && c->fn_ml ? c->fn_ml[t] : NAN;
}

/* ---- the table ------------------------------------------------------------- */

#define F(n, f, k, g, p) {n, offsetof(sl_metric_result, f), k, g, 0, p, NULL}
#define D(n, fn, k, need, p) {n, 0, k, SL_MET_OVERLAP, need, p, fn}
const ev_column ev_columns[] = {
    F("dice", dice, 'd', SL_MET_OVERLAP, 1),
    F("iou", iou, 'd', SL_MET_OVERLAP, 1),
    F("precision", precision, 'd', SL_MET_OVERLAP, 1),
    F("recall", recall, 'd', SL_MET_OVERLAP, 1),
    F("specificity", specificity, 'd', SL_MET_OVERLAP, 1),
    F("voe", voe, 'd', SL_MET_OVERLAP, 1),
    F("rvd", rvd, 'd', SL_MET_OVERLAP, 1),
    F("volume_similarity", volume_similarity, 'd', SL_MET_OVERLAP, 1),
    F("mcc", mcc, 'd', SL_MET_OVERLAP, 1),
    F("kappa", kappa, 'd', SL_MET_OVERLAP, 1),
    F("tp", tp, 'i', SL_MET_OVERLAP, 1),
    F("fp", fp, 'i', SL_MET_OVERLAP, 1),
    F("fn", fn, 'i', SL_MET_OVERLAP, 1),
    F("tn", tn, 'i', SL_MET_OVERLAP, 1),
    F("vol_pred", vol_pred, 'v', SL_MET_OVERLAP, 0),
    F("vol_gt", vol_gt, 'v', SL_MET_OVERLAP, 0),
    F("hd", hd, 'D', SL_MET_DISTANCE, 0),
    F("hd95", hd_perc, 'D', SL_MET_DISTANCE, 0),
    F("assd", assd, 'D', SL_MET_DISTANCE, 0),
    F("asd_pred_to_gt", asd_pred_to_gt, 'D', SL_MET_DISTANCE, 0),
    F("asd_gt_to_pred", asd_gt_to_pred, 'D', SL_MET_DISTANCE, 0),
    F("msd_pred_to_gt", msd_pred_to_gt, 'D', SL_MET_DISTANCE, 0),
    F("msd_gt_to_pred", msd_gt_to_pred, 'D', SL_MET_DISTANCE, 0),
    F("nsd", nsd, 'd', SL_MET_NSD, 0),
    F("biou", biou, 'd', SL_MET_BIOU, 0),
    F("lesions_gt", lesions_gt, 'i', SL_MET_LESION, 0),
    F("lesions_pred", lesions_pred, 'i', SL_MET_LESION, 0),
    F("lesion_tp", lesion_tp, 'i', SL_MET_LESION, 0),
    F("lesion_fp", lesion_fp, 'i', SL_MET_LESION, 0),
    F("lesion_fn", lesion_fn, 'i', SL_MET_LESION, 0),
    F("lesion_precision", lesion_precision, 'd', SL_MET_LESION, 0),
    F("lesion_recall", lesion_recall, 'd', SL_MET_LESION, 0),
    F("lesion_f1", lesion_f1, 'd', SL_MET_LESION, 0),
    F("lesion_dice", lesion_dice, 'd', SL_MET_LESION, 0),
    F("cldice", cldice, 'd', SL_MET_CLDICE, 0),
    F("topo_precision", topo_precision, 'd', SL_MET_CLDICE, 0),
    F("topo_sensitivity", topo_sensitivity, 'd', SL_MET_CLDICE, 0),
    /* the confusion-matrix family */
    D("accuracy", g_accuracy, 'd', 0, 1),
    D("pixel_accuracy", g_pixel_accuracy, 'v', EV_NEED_PIXACC, 0),
    D("balanced_accuracy", g_balanced, 'd', 0, 1),
    D("npv", g_npv, 'd', 0, 1),
    D("fpr", g_fpr, 'd', 0, 1),
    D("fnr", g_fnr, 'd', 0, 1),
    D("fdr", g_fdr, 'd', 0, 1),
    D("for", g_for, 'd', 0, 1),
    D("lr_plus", g_lr_plus, 'd', 0, 1),
    D("lr_minus", g_lr_minus, 'd', 0, 1),
    D("youden", g_youden, 'd', 0, 1),
    D("informedness", g_youden, 'd', 0, 1),
    D("markedness", g_markedness, 'd', 0, 1),
    D("fbeta", g_fbeta, 'd', 0, 1),
    /* autoPET */
    D("fp_volume_ml", g_fp_ml, 'v', EV_NEED_FPFN, 0),
    D("fn_volume_ml", g_fn_ml, 'v', EV_NEED_FPFN, 0),
    /* panoptic quality of the target's connected components (MONAI's
     * definition, sl_instances_eval; 0 when both masks are empty) */
    D("pq", g_pq, 'd', EV_NEED_PQ, 0),
    D("sq", g_sq, 'd', EV_NEED_PQ, 0),
    D("rq", g_rq, 'd', EV_NEED_PQ, 0),
    /* the counts of that matching (kept by --empty nan, as tp fp fn are) */
    D("inst_tp", g_inst_tp, 'i', EV_NEED_PQ, 0),
    D("inst_fp", g_inst_fp, 'i', EV_NEED_PQ, 0),
    D("inst_fn", g_inst_fn, 'i', EV_NEED_PQ, 0),
    D("inst_precision", g_inst_precision, 'd', EV_NEED_PQ, 0),
    D("inst_recall", g_inst_recall, 'd', EV_NEED_PQ, 0),
    D("inst_f1", g_inst_f1, 'd', EV_NEED_PQ, 0),
};
const int ev_ncolumns = (int)(sizeof ev_columns / sizeof *ev_columns);

/* Metric names that stand for several columns. */
static const struct {
    const char *name, *cols;
} ALIASES[] = {
    {"vs", "volume_similarity"},
    {"counts", "tp,fp,fn,tn"},
    {"volume", "vol_pred,vol_gt"},
    {"asd", "asd_pred_to_gt,asd_gt_to_pred"},
    {"msd", "msd_pred_to_gt,msd_gt_to_pred"},
    {"lesion", "lesions_gt,lesions_pred,lesion_tp,lesion_fp,lesion_fn,lesion_precision,lesion_recall,lesion_f1,"
               "lesion_dice"},
    {"cldice", "cldice,topo_precision,topo_sensitivity"},
    {"confusion", "accuracy,balanced_accuracy,npv,fpr,fnr,fdr,for,lr_plus,lr_minus,youden,informedness,markedness,"
                  "fbeta"},
    {"autopet", "fp_volume_ml,fn_volume_ml"},
    {"panoptic", "pq,sq,rq"},
    {"instance", "pq,sq,rq,inst_tp,inst_fp,inst_fn,inst_precision,inst_recall,inst_f1"},
};

/* "all" keeps the columns of `segloss eval --metrics all` before the
 * confusion family existed, then the new ones: one list, request order. */
int ev_find_column(const char *name)
{
    for (int c = 0; c < ev_ncolumns; c++)
        if (!strcmp(ev_columns[c].name, name)) return c;
    return -1;
}

static int add_column(int *cols, int *ncols, int cap, const char *name)
{
    int c = ev_find_column(name);
    if (c < 0) return 0;
    for (int k = 0; k < *ncols; k++)
        if (cols[k] == c) return 1;
    if (*ncols < cap) cols[(*ncols)++] = c;
    return 1;
}

sl_status ev_parse_columns(const char *list, int *cols, int *ncols, int cap, char *msg, size_t msglen)
{
    *ncols = 0;
    if (!strcmp(list, "all")) {
        for (int c = 0; c < ev_ncolumns && c < cap; c++) cols[(*ncols)++] = c;
        return SL_OK;
    }
    char buf[1024];
    if (strlen(list) >= sizeof buf) return sl_errf(msg, msglen, SL_EINVAL, "--metrics list is too long");
    strcpy(buf, list);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int done = 0;
        for (size_t a = 0; a < sizeof ALIASES / sizeof *ALIASES && !done; a++)
            if (!strcmp(ALIASES[a].name, t)) {
                char al[512], *s2 = NULL;
                strcpy(al, ALIASES[a].cols);
                for (char *c = strtok_r(al, ",", &s2); c; c = strtok_r(NULL, ",", &s2)) add_column(cols, ncols, cap, c);
                done = 1;
            }
        if (!done && !add_column(cols, ncols, cap, t))
            return sl_errf(msg, msglen, SL_EINVAL, "unknown metric '%s' (see segloss eval --help)", t);
    }
    if (*ncols == 0) return sl_errf(msg, msglen, SL_EINVAL, "--metrics is empty");
    return SL_OK;
}

const char *sl_eval_column_list(void)
{
    return "dice iou precision recall specificity voe rvd volume_similarity (vs) mcc kappa\n"
           "tp fp fn tn (counts) vol_pred vol_gt (volume)\n"
           "hd hd95 assd asd_pred_to_gt asd_gt_to_pred (asd) msd_pred_to_gt msd_gt_to_pred (msd)\n"
           "nsd biou\n"
           "lesions_gt lesions_pred lesion_tp lesion_fp lesion_fn lesion_precision lesion_recall lesion_f1 "
           "lesion_dice (lesion)\n"
           "cldice topo_precision topo_sensitivity (cldice)\n"
           "accuracy pixel_accuracy balanced_accuracy npv fpr fnr fdr for lr_plus lr_minus youden informedness "
           "markedness fbeta (confusion, without pixel_accuracy)\n"
           "fp_volume_ml fn_volume_ml (autopet)\n"
           "pq sq rq (panoptic)\n"
           "pq sq rq inst_tp inst_fp inst_fn inst_precision inst_recall inst_f1 (instance)\n";
}
