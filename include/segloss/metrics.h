/*
 * segloss/metrics.h — overlap, surface-distance, boundary, lesion-wise and
 * topology metrics for one (prediction, target) pair of label maps.
 *
 * The reference tools disagree (MedPy, MONAI, DeepMind surface-distance,
 * MetricsReloaded, seg-metrics, plastimatch); every convention that differs
 * between them is a field of sl_metric_opts, and sl_metric_opts_describe()
 * writes the conventions in force so that every output can name them.
 * docs/metrics.md gives each definition and the tool each option reproduces.
 *
 * Basic use (one case, labels 1 and 2):
 *
 *     sl_grid g = SL_GRID_DEFAULT;   // ndim, shape, spacing (mm) as the images
 *     sl_labelmap p = {pred_data, SL_DT_U8}, t = {gt_data, SL_DT_I16};
 *     int64_t labels[2] = {1, 2};
 *     sl_metric_opts o = SL_METRIC_OPTS_DEFAULT;
 *     sl_metric_result r[2];
 *     sl_status st = sl_metrics_eval(&p, &t, &g, labels, 2, &o, r, msg, sizeof msg);
 *     // r[0].dice, r[0].hd_perc (HD95), r[0].assd, r[0].nsd, ...
 *
 * Empty masks (P = prediction, G = target, for one label of one case), as
 * docs/metrics.md#empty-masks fixes them, flagged in empty_pred / empty_gt:
 *   both empty: every overlap-type score 1 (Dice, IoU, precision, recall,
 *               specificity, VS, MCC, kappa, NSD, boundary IoU, lesion
 *               precision/recall/F1/Dice, clDice and its two parts), VOE 0,
 *               RVD 0, every distance 0;
 *   one empty:  those scores 0 — except specificity, which measures the
 *               background and keeps its value TN / (TN + FP) — VOE 1,
 *               every distance +inf (the CLI substitutes its
 *               --empty-distance value), RVD +inf (G empty) or -1 (P empty).
 * Surface counts (n_surf_*) are filled in every case where distances are
 * requested, so a caller can tell how large the unmatched side was.
 *
 * Distances are exact: the distance from a point of one surface to the
 * other surface is the value of the exact EDT of that surface's complement
 * there, on the bounding box of P | G; it is found by a bounded search
 * around the point while the surfaces are close and by the EDT when they
 * are far apart (docs/metrics.md), never by brute force.
 */
#ifndef SEGLOSS_METRICS_H
#define SEGLOSS_METRICS_H

#include <stdio.h>
#include "segloss/core.h"
#include "segloss/geometry.h"
#include "segloss/io.h"

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

/*
 * A borrowed label map: `data` points at (grid shape) elements of `dtype`.
 * Any sl_dtype is accepted; a voxel belongs to label L when its value
 * equals L (floats compared as doubles, so 2.0 is label 2 and 2.5 is no
 * label; NaN is no label).
 */
typedef struct sl_labelmap {
    const void *data;
    sl_dtype dtype;
} sl_labelmap;

/* Metric groups (bits of sl_metric_opts.metrics). Fields of a group not
 * requested are set to NaN (counts to -1). */
#define SL_MET_OVERLAP  0x01u /* counts, Dice, IoU, precision, recall, specificity, VOE, RVD, VS, MCC, kappa */
#define SL_MET_DISTANCE 0x02u /* HD, HD at a percentile, ASSD, directed ASD and max (MSD) */
#define SL_MET_NSD      0x04u /* normalised surface distance (surface Dice) at a tolerance */
#define SL_MET_BIOU     0x08u /* boundary IoU */
#define SL_MET_LESION   0x10u /* lesion-wise detection */
#define SL_MET_CLDICE   0x20u /* clDice (skeletons; the slowest group) */
#define SL_MET_ALL      0x3fu

/*
 * How the percentile Hausdorff distance (HD95 for percentile = 95) combines
 * the two directed distance sets d(P->G) and d(G->P):
 *   SL_HD_MAX   (default) max(perc(d(P->G)), perc(d(G->P)))
 *               — MONAI, MetricsReloaded, DeepMind surface-distance
 *   SL_HD_UNION perc(d(P->G) ∪ d(G->P)), one percentile of the pooled set
 *               — MedPy hd95, seg-metrics
 *   SL_HD_MEAN  (perc(d(P->G)) + perc(d(G->P))) / 2 — plastimatch
 * On border voxels, perc is numpy's default percentile (linear
 * interpolation between order statistics). On surfels, it is DeepMind's
 * area-weighted rule (the smallest distance whose cumulative area fraction
 * reaches percentile/100).
 */
typedef enum sl_hd_mode { SL_HD_MAX = 0, SL_HD_UNION = 1, SL_HD_MEAN = 2 } sl_hd_mode;

/*
 * Average symmetric surface distance:
 *   SL_ASSD_POOLED (default) (sum d(P->G) + sum d(G->P)) / (|dP| + |dG|)
 *                  — MONAI (symmetric=True), MetricsReloaded ASSD, MedPy >= 0.5
 *                  assd (the mean of the two distance lists concatenated)
 *   SL_ASSD_MEAN   (mean d(P->G) + mean d(G->P)) / 2, the mean of means —
 *                  MedPy <= 0.4 assd (the mean of asd(P, G) and asd(G, P)),
 *                  MetricsReloaded MASD, DeepMind, plastimatch
 * On surfels, sums and means are weighted by surfel area/length.
 */
typedef enum sl_assd_mode { SL_ASSD_POOLED = 0, SL_ASSD_MEAN = 1 } sl_assd_mode;

/*
 * Which points make a surface for every surface-distance metric (HD, HD at
 * a percentile, ASSD, ASD, MSD, NSD):
 *   SL_SURFACE_BORDER (default) border voxels, sl_surface_border (each
 *                     voxel weight 1) — MONAI, MedPy, MetricsReloaded
 *   SL_SURFACE_SURFELS surface elements on the voxel-corner grid weighted by
 *                     their area/length, sl_surface_elements — DeepMind
 *                     surface-distance (compute_surface_distances)
 */
typedef enum sl_surface_kind { SL_SURFACE_BORDER = 0, SL_SURFACE_SURFELS = 1 } sl_surface_kind;

/*
 * When a target lesion (connected component of G) counts as detected:
 *   SL_LESION_OVERLAP (default) some predicted component shares at least
 *                     lesion_min_overlap voxels with it (default 1)
 *   SL_LESION_IOU     IoU(lesion, union of the predicted components that
 *                     touch it) >= lesion_iou
 * Symmetrically a predicted component is a true positive when it meets the
 * same criterion against the target components; otherwise it is a false
 * positive.
 */
typedef enum sl_lesion_match { SL_LESION_OVERLAP = 0, SL_LESION_IOU = 1 } sl_lesion_match;

typedef struct sl_metric_opts {
    unsigned metrics;          /* SL_MET_* bits; default SL_MET_ALL */
    sl_hd_mode hd_mode;        /* default SL_HD_MAX */
    double percentile;         /* q in [0, 100] for hd_perc; default 95 */
    sl_assd_mode assd_mode;    /* default SL_ASSD_POOLED */
    sl_surface_kind surface;   /* default SL_SURFACE_BORDER */
    double nsd_tolerance;      /* tau in mm, >= 0; default 1 */
    double biou_width;         /* boundary band width d in mm, >= the smallest spacing
                                  (sl_metrics_eval refuses less: empty bands); default 2 */
    int connectivity;          /* lesion components: 0 = full (8/26), or 4/8, 6/18/26 */
    sl_lesion_match lesion_match; /* default SL_LESION_OVERLAP */
    int64_t lesion_min_overlap;   /* voxels, >= 1; default 1 */
    double lesion_iou;            /* in (0, 1]; default 0.5 */
    int threads;               /* 0 = OpenMP default */
} sl_metric_opts;

#define SL_METRIC_OPTS_DEFAULT \
    {SL_MET_ALL, SL_HD_MAX, 95.0, SL_ASSD_POOLED, SL_SURFACE_BORDER, 1.0, 2.0, 0, SL_LESION_OVERLAP, 1, 0.5, 0}

/*
 * The result for one label. Distances in mm; volumes in mm^3 (mm^2 in 2-D).
 * Directed quantities: "pred_to_gt" = over the prediction's surface, the
 * distance to the target's surface.
 */
typedef struct sl_metric_result {
    int64_t label;
    unsigned computed;         /* SL_MET_* groups filled in */
    int empty_pred, empty_gt;  /* 1 when P (resp. G) has no voxel of this label */

    /* SL_MET_OVERLAP (confusion counts over the whole image) */
    int64_t tp, fp, fn, tn;
    double vol_pred, vol_gt;   /* |P|, |G| times the voxel volume */
    double dice;               /* 2TP / (2TP + FP + FN) */
    double iou;                /* TP / (TP + FP + FN), Jaccard */
    double precision;          /* TP / (TP + FP) */
    double recall;             /* TP / (TP + FN), sensitivity */
    double specificity;        /* TN / (TN + FP); 1 when TN + FP = 0 */
    double voe;                /* 1 - IoU */
    double rvd;                /* (|P| - |G|) / |G|, signed */
    double volume_similarity;  /* 1 - |FN - FP| / (2TP + FP + FN) */
    double mcc;                /* Matthews; 1 if P == G, 0 if otherwise undefined */
    double kappa;              /* Cohen's kappa of the 2x2 table; same rule */

    /* SL_MET_DISTANCE and SL_MET_NSD */
    int64_t n_surf_pred, n_surf_gt;  /* border voxels or surfels */
    double surf_pred, surf_gt;       /* total weight: voxel count or area/length */
    double hd;                       /* max(msd_pred_to_gt, msd_gt_to_pred) */
    double hd_perc;                  /* at opts.percentile, combined by opts.hd_mode */
    double hd_perc_pred_to_gt, hd_perc_gt_to_pred; /* directed percentiles */
    double assd;                     /* by opts.assd_mode */
    double asd_pred_to_gt;           /* ASD: mean directed distance (MedPy asd(P, G)) */
    double asd_gt_to_pred;
    double msd_pred_to_gt;           /* MSD: max directed distance */
    double msd_gt_to_pred;
    double nsd;                      /* surface Dice at opts.nsd_tolerance (SL_MET_NSD) */

    /* SL_MET_BIOU: Cheng et al. 2021 with exact Euclidean inner bands of
     * width opts.biou_width mm (outside the image counts as outside) */
    double biou;

    /* SL_MET_LESION */
    int64_t lesions_gt, lesions_pred;
    int64_t lesion_tp;     /* detected target lesions */
    int64_t lesion_fn;     /* missed target lesions */
    int64_t lesion_fp;     /* predicted components that match no target lesion */
    double lesion_precision; /* matched predicted components / lesions_pred */
    double lesion_recall;    /* lesion_tp / lesions_gt */
    double lesion_f1;        /* 2 TP / (2 TP + FP + FN) */
    double lesion_dice;      /* mean over target lesions of the per-lesion Dice */

    /* SL_MET_CLDICE */
    double cldice;           /* 2 Tprec Tsens / (Tprec + Tsens), skeletons of sl_skeletonize */
    double topo_precision;   /* |S(P) ∩ G| / |S(P)| */
    double topo_sensitivity; /* |S(G) ∩ P| / |S(G)| */
} sl_metric_result;

/* Checks every field of opts. SL_EINVAL naming the field. */
sl_status sl_metric_opts_check(const sl_metric_opts *opts, char *msg, size_t msglen);

/*
 * Writes the conventions in force as one line of key=value pairs, e.g.
 * "hd_mode=max percentile=95 assd_mode=pooled surface=border nsd_tol=1
 *  biou_width=2 connectivity=26 lesion_match=overlap:1 percentile_rule=linear".
 * Returns the length that snprintf would return (truncated to buflen - 1).
 */
int sl_metric_opts_describe(const sl_metric_opts *opts, int ndim, char *buf, size_t buflen);

/*
 * Evaluates one case: for each of labels[0..nlabels), the binary masks
 * P = (pred == label), G = (gt == label) on `grid`, and fills results[i].
 *   pred, gt: label maps of grid shape (their dtypes may differ)
 *   labels:   nlabels >= 1 values (0 is allowed: background as a class)
 *   opts:     NULL = SL_METRIC_OPTS_DEFAULT
 *   results:  [nlabels], caller-allocated; fully overwritten
 * Cost: one threaded scan of both maps per label, then work on the
 * bounding box of P | G only (a bounded nearest-point search, or two EDTs
 * when the surfaces are far apart, for the distance group, two EDTs for the
 * boundary IoU, two component labellings, two thinnings for clDice — the
 * slowest group on large 3-D structures).
 * Codes: SL_EINVAL (NULL argument, nlabels < 1, bad opts, connectivity not
 * valid for the grid's ndim, biou_width below the smallest spacing),
 * SL_EDTYPE (unknown dtype), SL_EUNSUPPORTED (surfels on a 1-D grid),
 * SL_ESHAPE / SL_EOVERFLOW (grid), SL_ENOMEM. On failure the results are
 * unspecified.
 */
sl_status sl_metrics_eval(const sl_labelmap *pred, const sl_labelmap *gt, const sl_grid *grid,
                          const int64_t *labels, int nlabels, const sl_metric_opts *opts,
                          sl_metric_result *results, char *msg, size_t msglen);

/* The same for one pair of binary masks (uint8, non-zero = foreground);
 * result->label is set to 1. */
sl_status sl_metrics_eval_mask(const uint8_t *pred, const uint8_t *gt, const sl_grid *grid,
                               const sl_metric_opts *opts, sl_metric_result *result,
                               char *msg, size_t msglen);

/*
 * The raw directed surface distances, for callers that want their own
 * statistics. Arrays are owned by the struct (release: sl_surface_distances_free).
 * d_pred_to_gt[i] is the distance (mm) from the i-th surface point of P
 * (raster order of border voxels, or of surfels on the corner grid) to the
 * surface of G; w_pred[i] its weight (1 for border voxels, area/length for
 * surfels). When G is empty every distance is +inf; when P is empty n_pred = 0.
 */
typedef struct sl_surface_distances {
    int64_t n_pred, n_gt;
    double *d_pred_to_gt, *w_pred; /* [n_pred] */
    double *d_gt_to_pred, *w_gt;   /* [n_gt] */
} sl_surface_distances;

#define SL_SURFACE_DISTANCES_EMPTY {0, 0, NULL, NULL, NULL, NULL}

/* pred, gt: (grid shape) uint8 masks; surface: the kind of surface points.
 * *out is overwritten (not freed first). Codes: SL_EINVAL, SL_ENOMEM,
 * SL_EUNSUPPORTED (surfels on a 1-D grid), grid errors. */
sl_status sl_surface_distances_compute(const uint8_t *pred, const uint8_t *gt, const sl_grid *grid,
                                       sl_surface_kind surface, int threads,
                                       sl_surface_distances *out, char *msg, size_t msglen);
void sl_surface_distances_free(sl_surface_distances *d);

/*
 * Lesion-wise detail for one pair of binary masks: every target lesion and
 * every predicted component, with the matching used by the summary fields
 * of sl_metric_result (opts: connectivity, lesion_match, lesion_min_overlap,
 * lesion_iou, threads; NULL = defaults). Arrays owned by the struct
 * (release: sl_lesion_report_free). Components are numbered as
 * sl_components_label numbers them (raster order of first voxel).
 */
typedef struct sl_lesion_report {
    int64_t n_gt, n_pred;
    int64_t *gt_size;       /* [n_gt] voxels */
    uint8_t *gt_detected;   /* [n_gt] 0/1 */
    double *gt_dice;        /* [n_gt] Dice(lesion, union of predicted components touching it) */
    int64_t *pred_size;     /* [n_pred] */
    uint8_t *pred_matched;  /* [n_pred] 0/1 */
    int64_t tp, fp, fn;
    double precision, recall, f1, mean_dice; /* as in sl_metric_result */
} sl_lesion_report;

#define SL_LESION_REPORT_EMPTY {0, 0, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0.0, 0.0, 0.0, 0.0}

sl_status sl_lesions_eval(const uint8_t *pred, const uint8_t *gt, const sl_grid *grid,
                          const sl_metric_opts *opts, sl_lesion_report *out, char *msg, size_t msglen);
void sl_lesion_report_free(sl_lesion_report *r);

/*
 * Sorted distinct labels present in a label map of n voxels (0 included if
 * present). Writes min(count, cap) labels into `labels` (may be NULL when
 * cap = 0, to query the count) and the total into *count.
 * Float maps: SL_ERANGE if a value is not an integer (or NaN/Inf).
 * Codes: SL_EINVAL, SL_ERANGE, SL_ENOMEM.
 */
sl_status sl_labels_unique(const sl_labelmap *map, int64_t n, int64_t *labels, int64_t cap,
                           int64_t *count, char *msg, size_t msglen);

/* mask[i] = (map[i] == label) for n voxels; *count (may be NULL) receives
 * the number of voxels set. Codes: SL_EINVAL. */
sl_status sl_mask_from_labels(const sl_labelmap *map, int64_t n, int64_t label, uint8_t *mask,
                              int64_t *count);

/*
 * numpy.percentile(v, q) with the default ("linear") method, for n >= 1
 * finite or infinite values; v is not modified. q in [0, 100].
 * Codes: SL_EINVAL (NULL, n < 1, q out of range, NaN in v), SL_ENOMEM.
 */
sl_status sl_percentile(const double *v, int64_t n, double q, double *out);

/* Names used by the CLI and by sl_metric_opts_describe, and their parsers
 * (SL_EUNKNOWN for any other name):
 *   hd_mode: "max", "union", "mean"; assd_mode: "pooled", "mean";
 *   surface: "border", "surfels"; lesion_match: "overlap", "iou". */
const char *sl_hd_mode_name(sl_hd_mode m);
sl_status sl_hd_mode_parse(const char *name, sl_hd_mode *out);
const char *sl_assd_mode_name(sl_assd_mode m);
sl_status sl_assd_mode_parse(const char *name, sl_assd_mode *out);
const char *sl_surface_kind_name(sl_surface_kind k);
sl_status sl_surface_kind_parse(const char *name, sl_surface_kind *out);
const char *sl_lesion_match_name(sl_lesion_match m);
sl_status sl_lesion_match_parse(const char *name, sl_lesion_match *out);

/*
 * Instances and panoptic quality.
 *
 * An instance map holds one id per voxel: 0 is background, every other
 * (integer) value is one instance, wherever its voxels are (MONAI's
 * convention; ids need not be contiguous). The IoU of a target instance g
 * and a predicted instance p is |g ∩ p| / |g ∪ p|; a pair can match only
 * when IoU > iou_threshold (strictly), and each instance matches at most
 * once. How the pairs are chosen:
 *   SL_INST_MONAI (default) MONAI's compute_panoptic_quality: threshold
 *                 >= 0.5, every pair above it (such pairs are unique);
 *                 below 0.5, SL_INST_HUNGARIAN
 *   SL_INST_GREEDY    pairs by decreasing IoU (ties: target id, then
 *                 predicted id, ascending), taken while both are free
 *   SL_INST_HUNGARIAN the assignment of maximal total IoU over all pairs
 *                 (scipy.optimize.linear_sum_assignment on -IoU), then the
 *                 pairs above the threshold are kept
 * Then, as MONAI (Kirillov et al., CVPR 2019, with MONAI's smoothing term
 * s = opts.smooth in the denominators):
 *   TP = matched pairs, FP = unmatched predicted, FN = unmatched target,
 *   SQ = sum IoU / (TP + s), RQ = TP / (TP + FP/2 + FN/2 + s),
 *   PQ = sum IoU / (TP + FP/2 + FN/2 + s)
 * so no instance on either side gives PQ = SQ = RQ = 0, as MONAI does.
 * IoU is computed in double (MONAI: float32).
 */
typedef enum sl_instance_match { SL_INST_MONAI = 0, SL_INST_GREEDY = 1, SL_INST_HUNGARIAN = 2 } sl_instance_match;

typedef struct sl_instance_opts {
    sl_instance_match match; /* default SL_INST_MONAI */
    double iou_threshold;    /* in [0, 1]; default 0.5 */
    double smooth;           /* >= 0; default 1e-6 (MONAI's smooth_numerator) */
} sl_instance_opts;

#define SL_INSTANCE_OPTS_DEFAULT {SL_INST_MONAI, 0.5, 1e-6}

typedef struct sl_instance_result {
    int64_t n_gt, n_pred;    /* instances */
    int64_t tp, fp, fn;
    double iou_sum;          /* over the matched pairs */
    double pq, sq, rq;
} sl_instance_result;

/* The matched pairs (ids as in the maps, ascending target id), owned by
 * the struct: release with sl_instance_pairs_free. */
typedef struct sl_instance_pairs {
    int64_t n;
    int64_t *gt_id, *pred_id;
    double *iou;
} sl_instance_pairs;

#define SL_INSTANCE_PAIRS_EMPTY {0, NULL, NULL, NULL}

/*
 * Matches the instances of two instance maps of n voxels each (dtypes may
 * differ) and fills *out; pairs may be NULL, otherwise it is overwritten.
 * Cost: one pass over the voxels plus the matching; the Hungarian method
 * runs on each connected group of overlapping instances separately.
 * Codes: SL_EINVAL (NULL, n < 1, bad opts), SL_EDTYPE, SL_ERANGE (an id
 * that is not an integer), SL_ENOMEM.
 */
sl_status sl_instances_eval(const sl_labelmap *pred, const sl_labelmap *gt, int64_t n,
                            const sl_instance_opts *opts, sl_instance_result *out,
                            sl_instance_pairs *pairs, char *msg, size_t msglen);

/*
 * The same on the connected components of one class of two semantic label
 * maps: the instances of each side are the components (connectivity as in
 * sl_components_label) of (map == label) on grid.
 */
sl_status sl_instances_eval_label(const sl_labelmap *pred, const sl_labelmap *gt, const sl_grid *grid,
                                  int64_t label, int connectivity, const sl_instance_opts *opts,
                                  sl_instance_result *out, char *msg, size_t msglen);

void sl_instance_pairs_free(sl_instance_pairs *p);

/* "monai", "greedy", "hungarian"; SL_EUNKNOWN for any other name. */
const char *sl_instance_match_name(sl_instance_match m);
sl_status sl_instance_match_parse(const char *name, sl_instance_match *out);

/* ======================================================================
 * Evaluation sets: many cases, one engine (what `segloss eval` runs).
 *
 * An sl_evalset holds cases (a prediction and a ground truth each: two
 * image files, or two label maps in memory on one grid), scores them in
 * parallel with sl_metrics_eval on one label set, summarises every
 * column per label, and writes the CSV / JSON / table of `segloss eval`.
 *
 *     sl_eval_opts eo = SL_EVAL_OPTS_DEFAULT;
 *     eo.columns = "dice,hd95";            // NULL: the default list
 *     sl_evalset *s = NULL;
 *     if (sl_evalset_create(&eo, &s, msg, sizeof msg) != SL_OK) { puts(msg); return 1; }
 *     sl_evalset_add_paths(s, "pred/", "gt/", msg, sizeof msg); // folders
 *     sl_evalset_score(s, msg, sizeof msg);
 *     sl_eval_stats st;
 *     sl_evalset_summary(s, 0, 0, &st, NULL);   // label 0 of the set, column 0
 *     sl_evalset_write(s, "out.csv", "out.json", msg, sizeof msg);
 *     sl_evalset_free(s);
 *
 * Labels: with opts.labels NULL, every non-zero label present in any
 * prediction or ground truth (each case is read once to find them), so
 * that every case is scored on the same label set; a label absent from
 * both sides of a case gives a "both empty" row, counted in the summary.
 *
 * Empty masks follow sl_metrics_eval; in the outputs an infinite distance
 * (one side empty) is replaced by opts.empty_distance (default: the
 * case's image diagonal in mm) and the row is marked
 * distance_substituted.
 *
 * Summary convention (one for every caller): over the cases of one label,
 * of the values that are finite: n, mean, std = the POPULATION standard
 * deviation sqrt(sum (v - mean)^2 / n) (numpy.std's default ddof = 0, as
 * nnU-Net's summary and MONAI's do_metric_reduction report), median
 * (numpy's: the mean of the two middle values for even n), min, max. NaN
 * values (undefined metrics) are left out and n says how many remain.
 *
 * Threads: cases are split between threads; with fewer cases than
 * threads, the remaining threads work inside each case (across labels, or
 * inside one label's metric call). Results do not depend on the count.
 * Memory: a case's two images are held while it is scored; during the
 * label scan up to 1 GiB of read images is kept for the scoring pass.
 *
 * A set is not thread-safe: one call at a time. Every function taking a
 * set accepts NULL and then returns SL_EINVAL (or 0 / NULL for queries).
 * Failures write one line to msg naming the file and the problem; codes:
 * SL_EINVAL for a bad option or request (the CLI's usage error), anything
 * else for inputs that cannot be read or do not match (SL_EIO, SL_ESHAPE,
 * SL_EFORMAT, SL_ERANGE, SL_EEMPTY, SL_ENOMEM, ...). A set whose scoring
 * failed refuses further scoring and output with SL_EBADSTATE.
 * ====================================================================== */

typedef struct sl_evalset sl_evalset;

/*
 * Rows whose ground truth lacks the target (the target absent from G, with
 * P empty too or not):
 *   SL_EVAL_EMPTY_SCORE   (default) the documented scores of sl_metrics_eval
 *                         (both empty: 1 and distances 0; P not empty: 0 and
 *                         distances = the empty distance)
 *   SL_EVAL_EMPTY_NAN     every score and distance of the row is NaN (counts and
 *                         volumes kept) — MONAI's ignore_empty=True; NaN values
 *                         take no part in the summary
 *   SL_EVAL_EMPTY_EXCLUDE the row keeps its scores in the per-case output but is
 *                         left out of the summary
 * Rows with the target in G and not in P (a missed structure) always keep
 * their scores: Dice 0 is well defined there. Every summary reports how many
 * rows were empty in P, in G, in both, and excluded.
 */
typedef enum sl_eval_empty {
    SL_EVAL_EMPTY_SCORE = 0,
    SL_EVAL_EMPTY_NAN = 1,
    SL_EVAL_EMPTY_EXCLUDE = 2
} sl_eval_empty;

/* Called after each case of a phase ("labels": the label scan, "cases":
 * scoring), from one thread at a time; done counts up to total. */
typedef void (*sl_eval_progress_fn)(void *ctx, const char *phase, int done, int total);

typedef struct sl_eval_opts {
    sl_metric_opts metric;     /* conventions; .metrics and .threads are set by the set
                                  (from columns and threads) */
    const char *columns;       /* metric names and aliases, comma-separated, or "all";
                                  NULL = SL_EVAL_DEFAULT_COLUMNS. See sl_eval_column_list. */
    const int64_t *labels;     /* labels to score (0 allowed: background as a class);
                                  NULL = every non-zero label found */
    int nlabels;
    double empty_distance;     /* mm, >= 0, written for infinite distances; < 0 (default)
                                  = the case's image diagonal sqrt(sum (extent*spacing)^2) */
    double spacing[SL_MAX_SPATIAL]; /* voxel size per array axis (mm), used when nspacing > 0 */
    int nspacing;              /* 0 (default): the images' (NIfTI pixdim; 1 for .npy) */
    int threads;               /* 0 = all cores (OpenMP default) */
    sl_eval_progress_fn progress; /* NULL = none */
    void *progress_ctx;

    /* Aggregation (all zero = the behaviour above). */
    int has_ignore;            /* 1: voxels whose GROUND TRUTH is ignore_label take part in
                                  no metric (nnU-Net's ignore label): they are removed from
                                  P and G, and from TN */
    int64_t ignore_label;
    sl_eval_empty empty;       /* rows whose ground truth lacks the target: see sl_eval_empty */
    const char *regions;       /* named label unions scored as targets, e.g.
                                  "WT=1,2,4;TC=1,4;ET=4" (BraTS); regions may overlap; a
                                  name twice, an empty or malformed entry: SL_EINVAL. With
                                  labels NULL only the regions are scored. */
    int label_mean;            /* 1: add a target "mean": per case, the mean over the
                                  foreground targets (label != 0) of each column's finite
                                  values, rows excluded by SL_EVAL_EMPTY_EXCLUDE left out
                                  (nnU-Net's foreground mean, per case) */
    double beta;               /* F-beta's beta, > 0; 0 = 1 */
    int shard_k, shard_n;      /* 1 <= k <= n: score only the cases whose index (in the
                                  order added) is k-1 modulo n; 0, 0 = every case. Needs
                                  explicit labels or regions (every shard must score the same
                                  targets) */

    /* Panoptic quality and instance counts (columns pq, sq, rq and
     * inst_tp, inst_fp, inst_fn, inst_precision, inst_recall, inst_f1: the
     * "instance" family): the connected components (metric.connectivity) of
     * each target's P and G masks are the instances (with .instances: the
     * given ids), matched as sl_instances_eval says. inst_precision =
     * TP / (TP + FP), inst_recall = TP / (TP + FN), inst_f1 = 2 TP /
     * (2 TP + FP + FN), each NaN when its denominator is 0 (no smoothing;
     * RQ is inst_f1 with MONAI's 1e-6 in the denominator). */
    sl_instance_match instance_match; /* 0 = SL_INST_MONAI */
    double instance_iou;       /* matching threshold in (0, 1]; 0 = 0.5 */

    /* 1: the inputs are instance-id maps (`segloss eval --instances`): every
     * distinct non-zero value of a file is one instance (0 = background).
     * One target, "instances", is scored: the overlap, distance and
     * confusion columns on the foreground masks (id != 0), and the
     * panoptic and instance columns (pq sq rq inst_*) by matching the
     * given instances as sl_instances_eval does (no connected components).
     * Excludes labels, regions and the ignore label (SL_EINVAL). */
    int instances;
} sl_eval_opts;

#define SL_EVAL_DEFAULT_COLUMNS "dice,iou,precision,recall,specificity,hd,hd95,assd,nsd"
/* Fields are only ever appended; a field left zero by the macro keeps its
 * documented default. */
#define SL_EVAL_OPTS_DEFAULT                                                                        \
    {SL_METRIC_OPTS_DEFAULT, NULL, NULL, 0, -1.0, {1, 1, 1}, 0, 0, NULL, NULL, 0, 0, SL_EVAL_EMPTY_SCORE, NULL, 0, \
     0.0, 0, 0, SL_INST_MONAI, 0.0, 0}

/* The column names and aliases accepted in opts.columns, one line each
 * ("name: meaning"), for help texts. Static storage. */
const char *sl_eval_column_list(void);

/* Copies opts (labels and strings included) into a new empty set.
 * SL_EINVAL names a bad option (an unknown metric, a label twice, ...). */
sl_status sl_evalset_create(const sl_eval_opts *opts, sl_evalset **out, char *msg, size_t msglen);
void sl_evalset_free(sl_evalset *s);

/*
 * Adds cases from the file system, as `segloss eval --pred P --gt G`:
 * two image files (.nii, .nii.gz, .npy) make one case named after G's
 * file name without its extension; two folders make one case per file
 * name present in both (sorted by name). A case on one side only, two
 * files of one case name in a folder, an empty pair of folders: an error
 * naming them. A file and a folder, or an unknown extension: SL_EINVAL.
 * Images are read when the set is scored.
 */
sl_status sl_evalset_add_paths(sl_evalset *s, const char *pred, const char *gt, char *msg, size_t msglen);

/* One case from two image files, named `id`. */
sl_status sl_evalset_add_files(sl_evalset *s, const char *id, const char *pred, const char *gt, char *msg,
                               size_t msglen);

/* One case from label maps in memory on `grid` (1 to 3 axes; spacing
 * taken from the grid unless opts.nspacing). The data are BORROWED: they
 * must stay valid until sl_evalset_score returns. */
sl_status sl_evalset_add_maps(sl_evalset *s, const char *id, const sl_labelmap *pred, const sl_labelmap *gt,
                              const sl_grid *grid, char *msg, size_t msglen);

/* Scores every case (once; a second call is SL_EBADSTATE). On failure
 * the first failing case in case order is reported, whatever the thread
 * schedule. */
sl_status sl_evalset_score(sl_evalset *s, char *msg, size_t msglen);

/* Warnings collected while reading (e.g. a zero NIfTI pixdim), one line
 * each ending in '\n'; "" when none. Owned by the set. */
const char *sl_evalset_warnings(const sl_evalset *s);

/* ---- results (valid after a successful sl_evalset_score) ---- */

int sl_evalset_ncases(const sl_evalset *s);
const char *sl_evalset_case_id(const sl_evalset *s, int i);
/* Targets: the labels (sorted), then the regions (in the order given),
 * then "mean" with opts.label_mean. nlabels counts them all; label(l) is
 * the label of a plain label target, -1 for a region or the mean. */
int sl_evalset_nlabels(const sl_evalset *s);
int64_t sl_evalset_label(const sl_evalset *s, int l);
int sl_evalset_ncolumns(const sl_evalset *s);
const char *sl_evalset_column(const sl_evalset *s, int k);
/* The raw result of case i, label index l (NULL when out of range). */
const sl_metric_result *sl_evalset_result(const sl_evalset *s, int i, int l);
/* The output value of column k for case i, label l: what the CSV holds
 * (infinite distances replaced; *substituted, if not NULL, set to 1 then).
 * NaN when out of range. */
double sl_evalset_value(const sl_evalset *s, int i, int l, int k, int *substituted);

typedef struct sl_eval_stats {
    int n;                /* finite values used */
    double mean, std;     /* std: population (ddof = 0) */
    double median, min, max;
} sl_eval_stats;

/* Per target: how many cases, and how many had one side / both sides empty. */
typedef struct sl_eval_counts {
    int cases, empty_pred, empty_gt, both_empty;
    int distance_substituted; /* rows with a substituted distance in some column */
    int excluded;             /* rows left out by SL_EVAL_EMPTY_EXCLUDE */
} sl_eval_counts;

/* The summary of column k over the cases of label index l; counts may be NULL. */
sl_status sl_evalset_summary(const sl_evalset *s, int l, int k, sl_eval_stats *st, sl_eval_counts *counts);

/* The name of target l: the label ("3"), a region's name ("WT") or "mean". */
const char *sl_evalset_target_name(const sl_evalset *s, int l);

/*
 * The pooled ("micro") value of column k for target l: the metric computed
 * once from the confusion counts summed over the cases (global Dice =
 * 2 sum TP / (2 sum TP + sum FP + sum FN), as nnU-Net's global Dice and
 * smp's micro reduction), next to the per-case mean of sl_evalset_summary.
 * Only columns that are functions of the counts have one (the overlap and
 * confusion-matrix columns); SL_EUNSUPPORTED for the others and the mean
 * target. Excluded rows (SL_EVAL_EMPTY_EXCLUDE) are left out of the sums.
 */
sl_status sl_evalset_pooled(const sl_evalset *s, int l, int k, double *out);

/*
 * Merges the JSON outputs of the shards of one run (--shard 1/N .. N/N,
 * each written by sl_evalset_write) into a scored set whose outputs are
 * byte-identical to those of the unsharded run. Every shard must be
 * present once, with the same targets, columns and conventions; a case
 * may appear in one shard only. SL_EFORMAT names the offending file.
 */
sl_status sl_evalset_merge(const char *const *json_paths, int n, sl_evalset **out, char *msg, size_t msglen);

/* The conventions line of sl_metric_opts_describe for the set. */
const char *sl_evalset_describe(const sl_evalset *s);

/*
 * Writes the outputs of `segloss eval`: csv_path (one row per case and
 * target) and json_path (cases, per-target summary with the pooled values,
 * conventions); either may be NULL. Both are written completely to
 * temporary files beside their targets before either is renamed over its
 * target, so a failure leaves no partial output, no damaged existing file,
 * and never one of the two without the other. The JSON stores every value
 * exactly (shortest round-trip form, 17 digits where needed), so a merge
 * of shards recomputes every summary bit for bit.
 */
sl_status sl_evalset_write(const sl_evalset *s, const char *csv_path, const char *json_path, char *msg,
                           size_t msglen);

/* SL_EINVAL when an output path names an input of the set (the prediction
 * or ground truth of a case: `--csv gt.npy` would replace it) or both
 * outputs name one file. sl_evalset_write checks this too; a caller may
 * check before the (long) scoring. */
sl_status sl_evalset_check_outputs(const sl_evalset *s, const char *csv_path, const char *json_path, char *msg,
                                   size_t msglen);

/* The summary table of `segloss eval` (one row per label, mean ± std). */
sl_status sl_evalset_print_table(const sl_evalset *s, FILE *f);

/* ==== Metric families of issue 15: probabilities, instances, raters ====== */

/*
 * Probabilities (calibration and ranking) for one case.
 *
 *   prob:   (C, spatial...) float32, channels first, C >= 2: prob[c * n + i]
 *           is the probability of class c at voxel i (a softmax output)
 *   labels: (spatial...) label map of n voxels, values in [0, C) — or
 *           opts.ignore_label, whose voxels take part in nothing
 *
 * Every voxel must hold finite probabilities in [0, 1] whose sum over the
 * classes is within opts.sum_tol of 1; otherwise the call fails naming the
 * first offending voxel (raster order), and nothing is written.
 *
 * Definitions (docs/metrics.md), with n the number of scored voxels:
 *   confidence   max_c p_c (the first class on ties), predicted = that class
 *   ECE          top-label expected calibration error (Guo et al., ICML
 *                2017): bins b = 0..B-1 of equal width on [0, 1], a value v
 *                in bin b when b/B < v <= (b+1)/B (v = 0 in bin 0);
 *                ECE = sum_b (n_b / n) |acc_b - conf_b|
 *   MCE          max over non-empty bins of |acc_b - conf_b|
 *   class-wise ECE  (Kull et al., NeurIPS 2019) per class c: the same bins
 *                over p_c with acc_b = the fraction of voxels of class c;
 *                the summary is the mean over the C classes
 *   Brier        per class: mean (p_c - [y = c])^2, scikit-learn's
 *                brier_score_loss(y == c, p_c); overall: the sum over the
 *                classes (Brier 1950: mean over voxels of sum_c (p_c - y_c)^2)
 *   NLL          mean over voxels of -log(max(p_y, 1e-15))
 *   AUROC, AP    per class, voxel level, p_c as the score of "y = c":
 *                scikit-learn's roc_auc_score (trapezoids through every
 *                distinct score, ties as one step) and
 *                average_precision_score (sum_n (R_n - R_(n-1)) P_n over
 *                the distinct scores, descending). NaN when class c has no
 *                voxel (AUROC also when every voxel is of class c), where
 *                scikit-learn raises or warns.
 */
typedef struct sl_prob_opts {
    int bins;             /* B >= 1; default 15 */
    double sum_tol;       /* allowed |sum_c p_c - 1| per voxel, >= 0; default 1e-4
                             (float32 softmax sums are within C * 6e-8) */
    int has_ignore;       /* 1: voxels labelled ignore_label are left out */
    int64_t ignore_label;
    int threads;          /* 0 = OpenMP default */
} sl_prob_opts;

#define SL_PROB_OPTS_DEFAULT {15, 1e-4, 0, 0, 0}

typedef struct sl_prob_result {
    int64_t n;            /* voxels scored (ignored ones left out) */
    double accuracy;      /* fraction with predicted == y */
    double ece, mce;      /* top-label */
    double classwise_ece; /* mean over classes of sl_prob_class.ece */
    double brier;         /* sum over classes of sl_prob_class.brier */
    double nll;
} sl_prob_result;

typedef struct sl_prob_class {
    int64_t positives;    /* voxels of this class */
    double ece, mce;      /* class-wise calibration of p_c */
    double brier;
    double auroc, ap;     /* NaN when not requested or undefined */
} sl_prob_class;

/*
 * Scores one case. per_class: [C] or NULL; AUROC and AP (one sort of the n
 * scores per class) are computed only when per_class is given and
 * with_ranking is 1. n = 0 voxels scored (all ignored) gives SL_EEMPTY.
 * Codes: SL_EINVAL (NULL, C < 2, n < 1, bad opts), SL_EDTYPE, SL_ERANGE
 * (a probability outside [0, 1], a sum off by more than sum_tol, a label
 * outside [0, C)), SL_ENONFINITE, SL_EEMPTY, SL_ENOMEM.
 */
sl_status sl_prob_eval(const float *prob, int64_t nclass, const sl_labelmap *labels, int64_t n,
                       const sl_prob_opts *opts, int with_ranking, sl_prob_result *out,
                       sl_prob_class *per_class, char *msg, size_t msglen);

/* scikit-learn's roc_auc_score and average_precision_score for n binary
 * targets y (0 or non-zero) and float32 scores (any finite values, -0 and
 * +0 equal): NaN where undefined (see above). Either output may be NULL.
 * Cost: two radix sorts, 8 bytes of scratch per score.
 * Codes: SL_EINVAL (NULL, n < 1), SL_ENONFINITE (a NaN/Inf score), SL_ENOMEM. */
sl_status sl_auroc_ap(const float *score, const uint8_t *y, int64_t n, double *auroc, double *ap);


/*
 * Several raters: label fusion by majority vote or STAPLE.
 *
 * STAPLE (Warfield, Zou & Wells, "Simultaneous truth and performance level
 * estimation", IEEE TMI 23(7), 2004) estimates a hidden true labelling T
 * and each rater's performance by expectation-maximisation. Multi-class
 * (the paper's section on several categories): rater j has a confusion
 * matrix theta_j[s'][s] = P(rater j says s' | T = s) over the K labels
 * present in any rater; the prior f(s) is the fraction of all R n
 * decisions that say s (fixed, as ITK's STAPLE filters). One iteration:
 *   E: W_si = f(s) prod_j theta_j[D_ij][s], normalised over s
 *   M: theta_j[s'][s] = sum_{i: D_ij = s'} W_si / sum_i W_si
 * from theta_j[s][s] = opts.init and (1 - init) / (K - 1) off the
 * diagonal, until no entry moves by more than opts.tol or max_iter
 * iterations. The fused label of a voxel is the s of largest W_si (the
 * smallest label on ties). With K = 2 this is exactly binary STAPLE
 * (sensitivity p_j = theta_j[1][1], specificity q_j = theta_j[0][0]).
 * SL_STAPLE_BINARY runs binary STAPLE on (rater == L) for each non-zero
 * label L separately and gives a voxel the label whose W exceeds 0.5
 * (the largest W if several do; 0 if none).
 * Reported per rater and label L: sensitivity = P(D = L | T = L) and
 * specificity = P(D != L | T != L), both from the final W.
 *
 * Majority vote: the label most raters give a voxel (the smallest label on
 * ties).
 */
typedef enum sl_fuse_method { SL_FUSE_STAPLE = 0, SL_FUSE_MAJORITY = 1 } sl_fuse_method;
typedef enum sl_staple_mode { SL_STAPLE_MULTICLASS = 0, SL_STAPLE_BINARY = 1 } sl_staple_mode;

typedef struct sl_fuse_opts {
    sl_fuse_method method;   /* default SL_FUSE_STAPLE */
    sl_staple_mode mode;     /* default SL_STAPLE_MULTICLASS */
    int max_iter;            /* >= 1; default 200 */
    double tol;              /* >= 0; default 1e-8 */
    double init;             /* initial sensitivity/specificity in (0, 1); default 0.99 */
    int threads;             /* 0 = OpenMP default */
} sl_fuse_opts;

#define SL_FUSE_OPTS_DEFAULT {SL_FUSE_STAPLE, SL_STAPLE_MULTICLASS, 200, 1e-8, 0.99, 0}

/* What a fusion estimated; arrays owned by the struct (sl_fuse_result_free). */
typedef struct sl_fuse_result {
    int nraters, nlabels;
    int64_t *labels;         /* [nlabels] sorted labels present in any rater (0 included) */
    double *sensitivity;     /* [nraters][nlabels] (STAPLE only; NaN for majority and,
                                in binary mode, for label 0) */
    double *specificity;     /* [nraters][nlabels] */
    double *prior;           /* [nlabels] fraction of decisions */
    int iterations;          /* EM iterations (the most over labels in binary mode) */
    int converged;           /* 1 when every run stopped by tol */
} sl_fuse_result;

#define SL_FUSE_RESULT_EMPTY {0, 0, NULL, NULL, NULL, NULL, 0, 0}

/*
 * Fuses nraters >= 2 label maps of n voxels each (dtypes may differ) into
 * fused[n] (int64, caller-allocated). result may be NULL; otherwise it is
 * overwritten. Codes: SL_EINVAL (NULL, nraters < 2, n < 1, bad opts),
 * SL_EDTYPE, SL_ERANGE (a value that is not an integer label),
 * SL_EUNSUPPORTED (more than 255 distinct labels), SL_ENOMEM.
 */
sl_status sl_fuse(const sl_labelmap *raters, int nraters, int64_t n, const sl_fuse_opts *opts, int64_t *fused,
                  sl_fuse_result *result, char *msg, size_t msglen);
void sl_fuse_result_free(sl_fuse_result *r);

/* "staple", "majority"; "multiclass", "binary"; SL_EUNKNOWN otherwise. */
sl_status sl_fuse_method_parse(const char *name, sl_fuse_method *out);
sl_status sl_staple_mode_parse(const char *name, sl_staple_mode *out);

/*
 * Lesion-wise FROC (free-response ROC) as the CAMELYON16 evaluation
 * computes it (Evaluation_FROC.py: computeFROC, then the sensitivity at
 * chosen average numbers of false positives per case by linear
 * interpolation, numpy.interp on the curve).
 *
 * Input over all cases: the scores of the false-positive candidates
 * (candidates that hit no target lesion) and, per target lesion, the
 * highest score of a candidate that hits it (0 when none does). The
 * thresholds are the distinct values of both lists but the smallest; at
 * threshold t, FP(t) = #false-positive scores >= t divided by ncases and
 * sens(t) = #lesion scores >= t divided by the number of lesions; the
 * point (0, 0) closes the curve. sensitivity[k] at fp_rates[k] is
 * numpy.interp(fp_rates[k], FP, sens) over the curve in increasing FP (a
 * rate beyond the curve takes its last sensitivity).
 */
typedef struct sl_froc_curve {
    int64_t n;             /* points */
    double *fp_per_case;   /* [n], decreasing (thresholds increasing), ending at 0 */
    double *sensitivity;   /* [n] */
    double *threshold;     /* [n]; +inf for the closing point */
} sl_froc_curve;

#define SL_FROC_CURVE_EMPTY {0, NULL, NULL, NULL}

/* fp_scores [nfp], lesion_scores [nlesions >= 1], ncases >= 1; curve may
 * be NULL (else overwritten; release with sl_froc_curve_free);
 * sensitivity [nrates] at fp_rates [nrates] (>= 0), may be NULL with
 * nrates = 0. Codes: SL_EINVAL, SL_ENONFINITE, SL_ENOMEM. */
sl_status sl_froc(const double *fp_scores, int64_t nfp, const double *lesion_scores, int64_t nlesions,
                  int64_t ncases, const double *fp_rates, int nrates, double *sensitivity, sl_froc_curve *curve);
void sl_froc_curve_free(sl_froc_curve *c);

/*
 * The candidates of one case for sl_froc, from a probability map and a
 * target mask on grid: the candidates are the connected components
 * (connectivity as sl_components_label) of prob >= cand_threshold, each
 * scored by its highest probability; a candidate hits a target lesion (a
 * component of gt) when they share a voxel. Appends to the caller's
 * arrays: fp_scores (capacity *nfp_cap, grown with realloc) receives the
 * scores of the candidates that hit nothing, lesion_scores the best score
 * per lesion (0 if missed). Codes: SL_EINVAL, SL_ENOMEM, grid errors.
 */
sl_status sl_froc_case(const float *prob, const uint8_t *gt, const sl_grid *grid, double cand_threshold,
                       int connectivity, double **fp_scores, int64_t *nfp, int64_t *nfp_cap,
                       double **lesion_scores, int64_t *nles, int64_t *nles_cap, char *msg, size_t msglen);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
