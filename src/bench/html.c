/*
 * report.html: one self-contained file (inline CSS and SVG, overlay PNGs
 * as data URIs, no script, nothing fetched), with the sections
 *   #ranking   the overall and per-data-set ranking tables
 *   #cd        the Friedman test and the critical-difference diagram
 *   #per-class per-class Dice and HD95 with CIs, as bar charts
 *   #curves    training curves (validation Dice, relative training loss)
 *   #sweep     small-class Dice against the small class's share
 *   #overlays  test cases with the target's and each loss's contours
 *   #runs      every run: time, parameters, failures; conventions
 * Charts are drawn here as SVG elements, with a <title> per chart and per
 * mark so that hovering shows the numbers.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_internal.h"
#include "search.h"
#include "fileio.h"

/* 12 distinguishable colours (Tableau 10 + 2); entries beyond them are dashed. */
static const char *const palette[12] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
                                        "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#17becf"};

static const char *entry_colour(int e)
{
    return palette[e % 12];
}

static const char *entry_dash(int e)
{
    return e < 12 ? "" : e < 24 ? " stroke-dasharray=\"6 3\"" : " stroke-dasharray=\"2 2\"";
}

static const char *class_colour(int c)
{
    static const char *const cc[6] = {"#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2"};
    return cc[(c - 1) % 6];
}

/* A "nice" upper bound and tick step for [0, hi]. */
static void nice_axis(double hi, double *top, double *step)
{
    if (!(hi > 0) || !isfinite(hi)) hi = 1;
    double raw = hi / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    *step = nice * mag;
    *top = ceil(hi / *step - 1e-9) * *step;
}

static void y_axis(slb_str *h, double x0, double y0, double plot_h, double plot_w, double top, double step, int digits,
                   const char *label)
{
    for (double v = 0; v <= top + step * 1e-6; v += step) {
        double y = y0 + plot_h - v / top * plot_h;
        slb_printf(h, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", x0, y, x0 + plot_w, y);
        slb_printf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%.*f</text>", x0 - 4, y + 4, digits, v);
    }
    slb_printf(h, "<text x=\"14\" y=\"%.1f\" class=\"axis\" transform=\"rotate(-90 14 %.1f)\" text-anchor=\"middle\">", y0 + plot_h / 2,
               y0 + plot_h / 2);
    slb_html(h, label);
    slb_puts(h, "</text>");
}

/* Grouped bars: one group per entry (in ranking order), one bar per
 * foreground class, CI whiskers. */
static void bar_chart(slb_str *h, const slb_report *r, int d, int metric)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int E = p->nentries, C = t->num_classes[d];
    char **names = slb_report_classes(r, d);
    if (!names) return;
    double hi = 0;
    for (int e = 0; e < E; e++)
        for (int c = 1; c < C; c++) {
            const slb_stat *s = slb_stat_at(t, d, e, c, metric);
            if (isfinite(s->hi) && s->hi > hi) hi = s->hi;
        }
    double top, step;
    if (metric == SLB_DICE) {
        top = 1;
        step = 0.2;
    } else {
        nice_axis(hi, &top, &step);
    }
    const double bw = 10, gap = 14, x0 = 56, y0 = 28, ph = 220;
    const double gw = bw * (C - 1) + gap, pw = gw * E + gap;
    const double W = x0 + pw + 220, H = y0 + ph + 120; /* legend: class names up to ~30 characters */
    slb_printf(h, "<svg class=\"chart\" role=\"img\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "xmlns=\"http://www.w3.org/2000/svg\"><title>",
               W, H, W, H);
    slb_html(h, p->datasets[d].name);
    slb_printf(h, ": %s per class (mean over test cases, %g%% CI)</title>", slb_metric_labels[metric], 100 * p->ci_level);
    slb_printf(h, "<text x=\"%.1f\" y=\"16\" class=\"ctitle\">", x0);
    slb_html(h, p->datasets[d].name);
    slb_printf(h, " — %s per class, %g%% CI</text>", slb_metric_labels[metric], 100 * p->ci_level);
    y_axis(h, x0, y0, ph, pw, top, step, metric == SLB_DICE ? 1 : (step < 1 ? 1 : 0),
           metric == SLB_DICE ? "Dice" : (slb_dataset_is_volume(p, d) ? "HD95 (mm)" : "HD95 (pixels)"));
    for (int k = 0; k < E; k++) {
        int e = t->order[d * E + k];
        double gx = x0 + gap + k * gw;
        for (int c = 1; c < C && !t->failed[d * E + e]; c++) {
            const slb_stat *s = slb_stat_at(t, d, e, c, metric);
            double v = fmin(s->mean, top), bh = v / top * ph, x = gx + (c - 1) * bw;
            slb_printf(h, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>", x, y0 + ph - bh, bw - 1, bh,
                       class_colour(c));
            slb_html(h, p->entries[e].name);
            slb_puts(h, ", ");
            slb_html(h, names[c]);
            slb_printf(h, ": %.4f [%.4f, %.4f]</title></rect>", s->mean, s->lo, s->hi);
            double ylo = y0 + ph - fmin(s->lo, top) / top * ph, yhi = y0 + ph - fmin(s->hi, top) / top * ph, xm = x + (bw - 1) / 2;
            slb_printf(h, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" class=\"whisker\"/>", xm, ylo, yhi, xm - 3, ylo,
                       xm + 3, xm - 3, yhi, xm + 3);
        }
        double lx = gx + (C - 1) * bw / 2, ly = y0 + ph + 10;
        slb_printf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\" transform=\"rotate(-40 %.1f %.1f)\">", lx, ly,
                   lx, ly);
        slb_html(h, p->entries[e].name);
        if (t->failed[d * E + e]) slb_puts(h, " (failed)");
        slb_puts(h, "</text>");
    }
    slb_printf(h, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axisline\"/>", x0, y0 + ph, x0 + pw, y0 + ph);
    for (int c = 1; c < C; c++) {
        double ly = y0 + 8 + (c - 1) * 18;
        slb_printf(h, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" class=\"tick\">",
                   x0 + pw + 16, ly, class_colour(c), x0 + pw + 32, ly + 10);
        slb_html(h, names[c]);
        slb_puts(h, "</text>");
    }
    slb_puts(h, "</svg>\n");
}

/* A line chart of one series per entry: x[k], y[e][k] (NaN = gap),
 * optional whiskers lo/hi, legend on the right. */
typedef struct series_chart {
    const char *title, *xlabel, *ylabel;
    int npoints;
    const double *x;          /* [npoints] */
    const char *const *xtick; /* [npoints] labels (NULL: numbers) */
    const double *y, *lo, *hi;/* [nentries][npoints]; lo/hi may be NULL */
    double ytop;              /* 0: from the data */
} series_chart;

static void line_chart(slb_str *h, const slb_report *r, const series_chart *sc)
{
    const sl_bench_preset *p = r->p;
    const int E = p->nentries, n = sc->npoints;
    const double x0 = 56, y0 = 28, pw = 420, ph = 240, W = x0 + pw + 170, H = y0 + ph + 56;
    double top = sc->ytop, step;
    if (top > 0) nice_axis(top, &top, &step);
    else {
        double hi = 0;
        for (int64_t i = 0; i < (int64_t)E * n; i++) {
            double v = sc->hi && isfinite(sc->hi[i]) ? sc->hi[i] : sc->y[i];
            if (isfinite(v) && v > hi) hi = v;
        }
        nice_axis(hi, &top, &step);
    }
    double xmin = INFINITY, xmax = -INFINITY;
    for (int k = 0; k < n; k++) {
        double x = sc->x[k];
        if (isfinite(x)) {
            xmin = fmin(xmin, x);
            xmax = fmax(xmax, x);
        }
    }
    if (!(xmax > xmin)) {
        xmin = isfinite(xmin) ? xmin - 1 : 0;
        xmax = xmin + 2;
    }
    slb_printf(h, "<svg class=\"chart\" role=\"img\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "xmlns=\"http://www.w3.org/2000/svg\"><title>",
               W, H, W, H);
    slb_html(h, sc->title);
    slb_printf(h, "</title><text x=\"%.1f\" y=\"16\" class=\"ctitle\">", x0);
    slb_html(h, sc->title);
    slb_puts(h, "</text>");
    y_axis(h, x0, y0, ph, pw, top, step, step < 1 ? 2 : 0, sc->ylabel);
#define XPOS(v) (x0 + 10 + ((v) - xmin) / (xmax - xmin) * (pw - 20))
#define YPOS(v) (y0 + ph - fmin(fmax((v), 0), top) / top * ph)
    int every = n > 12 ? (n + 11) / 12 : 1;
    for (int k = 0; k < n; k++) {
        if (k % every && k != n - 1) continue;
        double x = XPOS(sc->x[k]);
        slb_printf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">", x, y0 + ph + 16);
        if (sc->xtick) slb_html(h, sc->xtick[k]);
        else slb_printf(h, "%g", sc->x[k]);
        slb_puts(h, "</text>");
    }
    slb_printf(h, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axisline\"/>", x0, y0 + ph, x0 + pw, y0 + ph);
    slb_printf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"axis\" text-anchor=\"middle\">", x0 + pw / 2, y0 + ph + 40);
    slb_html(h, sc->xlabel);
    slb_puts(h, "</text>");
    for (int e = 0; e < E; e++) {
        const double *y = sc->y + (int64_t)e * n;
        slb_str path = {0};
        int pen = 0;
        for (int k = 0; k < n; k++) {
            if (!isfinite(y[k])) {
                pen = 0;
                continue;
            }
            slb_printf(&path, "%s%.1f %.1f", pen ? "L" : "M", XPOS(sc->x[k]), YPOS(y[k]));
            pen = 1;
        }
        if (path.len) {
            slb_printf(h, "<path d=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s><title>", path.p, entry_colour(e), entry_dash(e));
            slb_html(h, p->entries[e].name);
            slb_puts(h, "</title></path>");
        }
        slb_str_free(&path);
        for (int k = 0; k < n && n <= 12; k++) {
            if (!isfinite(y[k])) continue;
            double cx = XPOS(sc->x[k]), cy = YPOS(y[k]);
            if (sc->lo && sc->hi && isfinite(sc->lo[(int64_t)e * n + k]))
                slb_printf(h, "<path d=\"M%.1f %.1fV%.1f\" stroke=\"%s\" class=\"ci\"/>", cx, YPOS(sc->lo[(int64_t)e * n + k]),
                           YPOS(sc->hi[(int64_t)e * n + k]), entry_colour(e));
            slb_printf(h, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"><title>", cx, cy, entry_colour(e));
            slb_html(h, p->entries[e].name);
            slb_printf(h, ": %.4f</title></circle>", y[k]);
        }
    }
#undef XPOS
#undef YPOS
    for (int e = 0; e < E; e++) {
        double ly = y0 + 4 + e * (ph + 30) / (E > 14 ? E : 14);
        slb_printf(h, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/><text x=\"%.1f\" y=\"%.1f\" "
                      "class=\"tick\">",
                   x0 + pw + 14, ly, x0 + pw + 34, ly, entry_colour(e), entry_dash(e), x0 + pw + 40, ly + 4);
        slb_html(h, p->entries[e].name);
        slb_puts(h, "</text>");
    }
    slb_puts(h, "</svg>\n");
}

static void html_table(slb_str *h, const char *const *head, int ncols)
{
    slb_puts(h, "<table><thead><tr>");
    for (int c = 0; c < ncols; c++) {
        slb_puts(h, "<th>");
        slb_html(h, head[c]);
        slb_puts(h, "</th>");
    }
    slb_puts(h, "</tr></thead><tbody>\n");
}

static void td(slb_str *h, const char *text, const char *cls)
{
    slb_printf(h, "<td%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
    slb_html(h, text);
    slb_puts(h, "</td>");
}

static void ranking_section(slb_str *h, const slb_report *r)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int E = p->nentries;
    char buf[160], a[48];
    slb_puts(h, "<section id=\"ranking\"><h2>Ranking</h2>\n<p>Score: the Dice averaged over the foreground classes (mean over "
                "test cases). Overall: the mean rank over the data sets; each cell shows the score and the rank on that data "
                "set.</p>\n");
    {
        const char *head[3 + 64] = {"rank", "loss", "mean rank"};
        int nd = p->ndatasets < 64 ? p->ndatasets : 64;
        for (int d = 0; d < nd; d++) head[3 + d] = p->datasets[d].name;
        html_table(h, head, 3 + nd);
        for (int k = 0; k < E; k++) {
            int e = t->overall[k];
            slb_printf(h, "<tr><td class=\"num\">%d</td>", k + 1);
            td(h, p->entries[e].name, "name");
            snprintf(buf, sizeof buf, "%.2f", t->mean_rank[e]);
            td(h, buf, "num");
            for (int d = 0; d < nd; d++) {
                if (t->failed[d * E + e]) snprintf(buf, sizeof buf, "failed (%d)", t->rank[d * E + e]);
                else snprintf(buf, sizeof buf, "%s (%d)", slb_fmt(a, sizeof a, t->score[d * E + e], 3), t->rank[d * E + e]);
                td(h, buf, "num");
            }
            slb_puts(h, "</tr>\n");
        }
        slb_puts(h, "</tbody></table>\n");
    }
    for (int d = 0; d < p->ndatasets; d++) {
        char **names = slb_report_classes(r, d);
        const int sc = t->small_class[d];
        const char *small = names ? names[sc] : "small class";
        slb_puts(h, "<h3>");
        slb_html(h, p->datasets[d].name);
        slb_printf(h, "</h3>\n<p>%lld test cases; the smallest class (", (long long)t->n_cases[d]);
        slb_html(h, small);
        slb_printf(h, ") covers %.3f %% of the test images. Δ: paired difference per test case against ", 100 * t->fraction[d]);
        slb_html(h, p->entries[p->baseline].name);
        slb_printf(h, ", %g %% bootstrap CI; p: two-sided Wilcoxon signed-rank test; p (Holm): corrected by Holm's "
                      "step-down method over the entries compared on this data set.</p>\n",
                   100 * p->ci_level);
        char h2[64], h3[64], h4[64], h5[96];
        snprintf(h2, sizeof h2, "%.40s Dice", small);
        snprintf(h3, sizeof h3, "%.40s HD95", small);
        snprintf(h4, sizeof h4, "%.40s lesion F1", small);
        snprintf(h5, sizeof h5, "ΔDice vs %.60s", p->entries[p->baseline].name);
        const char *head[] = {"rank", "loss", slb_nreps(p) > 1 ? (p->nfolds ? "Dice (mean ± sd over seeds and folds)" : "Dice (mean ± sd over seeds)") : "Dice", h2, h3, h4, h5, "p", "p (Holm)"};
        html_table(h, head, 9);
        for (int k = 0; k < E; k++) {
            int e = t->order[d * E + k];
            slb_printf(h, "<tr%s><td class=\"num\">%d</td>", e == p->baseline ? " class=\"base\"" : "", t->rank[d * E + e]);
            td(h, p->entries[e].name, "name");
            if (t->failed[d * E + e]) {
                slb_puts(h, "<td colspan=\"7\">failed: ");
                for (int s = 0; s < slb_nreps(p); s++)
                    if (slb_report_run(r, d, s, e)->failed) {
                        slb_html(h, slb_report_run(r, d, s, e)->message);
                        break;
                    }
                slb_puts(h, "</td></tr>\n");
                continue;
            }
            const slb_stat *dm = slb_stat_at(t, d, e, 0, SLB_DICE), *sd = slb_stat_at(t, d, e, sc, SLB_DICE);
            if (slb_nreps(p) > 1 && !p->entries[e].ensemble) snprintf(buf, sizeof buf, "%.3f ± %.3f", dm->mean, dm->seed_std);
            else snprintf(buf, sizeof buf, "%.3f", dm->mean);
            td(h, buf, "num");
            slb_fmt_ci(buf, sizeof buf, sd->mean, sd->lo, sd->hi, 3);
            td(h, buf, "num");
            td(h, slb_fmt(a, sizeof a, slb_stat_at(t, d, e, sc, SLB_HD95)->mean, 2), "num");
            td(h, slb_fmt(a, sizeof a, slb_stat_at(t, d, e, sc, SLB_LESION_F1)->mean, 3), "num");
            if (e == p->baseline) {
                td(h, "baseline", NULL);
                td(h, "-", "num");
                td(h, "-", "num");
            } else {
                slb_fmt_ci(buf, sizeof buf, dm->diff, dm->diff_lo, dm->diff_hi, 3);
                char signed_buf[200];
                snprintf(signed_buf, sizeof signed_buf, "%s%s", dm->diff >= 0 ? "+" : "", buf);
                td(h, signed_buf, dm->diff_lo > 0 ? "num up" : dm->diff_hi < 0 ? "num down" : "num");
                td(h, slb_fmt_p(buf, sizeof buf, dm->p), "num");
                td(h, slb_fmt_p(buf, sizeof buf, dm->p_holm), "num");
            }
            slb_puts(h, "</tr>\n");
        }
        slb_puts(h, "</tbody></table>\n");
    }
    slb_puts(h, "</section>\n");
}

/*
 * The critical-difference diagram (Demšar 2006, fig. 1): an axis of mean
 * ranks (1 = best, at the left), each entry a tick joined by an elbow line
 * to its label (the better half on the left, the rest on the right), the
 * CD drawn to scale above the axis, and a thick bar under the axis for
 * each maximal group whose mean ranks differ by less than the CD.
 */
static void cd_section(slb_str *h, const slb_report *r)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int E = p->nentries;
    slb_puts(h, "<section id=\"cd\"><h2>Critical difference</h2>\n");
    if (!t->friedman) {
        slb_puts(h, "<p>The Friedman test needs at least 2 data sets and 2 entries; this preset has fewer.</p></section>\n");
        return;
    }
    char a[32], b[32];
    slb_printf(h, "<p>Each data set ranks the entries by the ranking score (1 = best, ties at their average rank, failed runs "
                  "tied last); the axis shows the mean rank over the %d data sets. Friedman χ² = %.3f (%d degrees of freedom), "
                  "p = %s; Iman–Davenport F = %.3f, p = %s. Nemenyi test at α = %g: q = %.3f, critical difference CD = %.3f. "
                  "Entries joined by a bar have mean ranks closer than the CD: the benchmark cannot tell them apart. With "
                  "few data sets the CD is wide.</p>\n",
               p->ndatasets, t->fr_chi2, E - 1, slb_fmt_p(a, sizeof a, t->fr_p), t->fr_f, slb_fmt_p(b, sizeof b, t->fr_fp),
               t->nem_alpha, t->nem_q, t->nem_cd);
    size_t maxlen = 0;
    for (int e = 0; e < E; e++)
        if (strlen(p->entries[e].name) > maxlen) maxlen = strlen(p->entries[e].name);
    /* a label is the name and " (r.rr)", about 7 px a character at 12 px */
    const double margin = 40 + 7.0 * (double)((maxlen < 40 ? maxlen : 40) + 7), axis_w = E < 8 ? 400 : 50.0 * E < 900 ? 50.0 * E : 900;
    const double W = 2 * margin + axis_w, y0 = 60, step = 20;
    const double x_of_rank_1 = margin, scale = E > 1 ? axis_w / (E - 1) : axis_w;
#define XR(rk) (x_of_rank_1 + ((rk) - 1) * scale)
    /* group bars on rows: a bar goes on the first row free at its left end */
    int rows = 0, *row = calloc((size_t)E + 1, sizeof *row);
    double *row_end = calloc((size_t)E + 1, sizeof *row_end);
    if (!row || !row_end) {
        free(row), free(row_end);
        h->failed = 1;
        return;
    }
    for (int g = 0; g < t->fr_ngroups; g++) {
        double lo = t->fr_rank[t->fr_order[t->fr_group_lo[g]]];
        int k = 0;
        while (k < rows && row_end[k] >= lo - 1e-9) k++;
        row[g] = k;
        row_end[k] = t->fr_rank[t->fr_order[t->fr_group_hi[g]]];
        if (k == rows) rows++;
    }
    const int nleft = (E + 1) / 2, nlab = nleft > E - nleft ? nleft : E - nleft;
    const double ylab = y0 + 16 + 8.0 * rows + 12, H = ylab + step * nlab + 10;
    slb_printf(h, "<div class=\"scroll\"><svg class=\"chart cd\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "xmlns=\"http://www.w3.org/2000/svg\"><title>Critical difference diagram: mean ranks over %d data sets, "
                  "Nemenyi CD = %.3f</title>",
               W, H, W, H, p->ndatasets, t->nem_cd);
    /* the CD to scale; cut at the axis's end when it is wider than the axis */
    const int cut = 1.0 + t->nem_cd > E;
    const double cd_end = cut ? (double)E : 1.0 + t->nem_cd;
    slb_printf(h, "<line x1=\"%.1f\" y1=\"18\" x2=\"%.1f\" y2=\"18\" class=\"cdbar\"/>", XR(1.0), XR(cd_end));
    slb_printf(h, "<line x1=\"%.1f\" y1=\"13\" x2=\"%.1f\" y2=\"23\" class=\"axisline\"/>", XR(1.0), XR(1.0));
    if (!cut) slb_printf(h, "<line x1=\"%.1f\" y1=\"13\" x2=\"%.1f\" y2=\"23\" class=\"axisline\"/>", XR(cd_end), XR(cd_end));
    slb_printf(h, "<text x=\"%.1f\" y=\"12\" class=\"tick\">CD = %.3f%s</text>", XR(1.0), t->nem_cd,
               cut ? " (wider than the axis)" : "");
    /* the axis of mean ranks */
    slb_printf(h, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axisline\"/>", XR(1.0), y0, XR((double)E), y0);
    for (int k = 1; k <= E; k++) {
        if (E > 20 && k % 5 && k != 1 && k != E) continue;
        slb_printf(h, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axisline\"/>", XR((double)k), y0 - 5,
                   XR((double)k), y0);
        slb_printf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">%d</text>", XR((double)k), y0 - 8, k);
    }
    slb_printf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"axis\" text-anchor=\"end\">mean rank</text>", XR(1.0) - 10, y0 + 4);
    /* entries: elbow lines to the labels */
    for (int k = 0; k < E; k++) {
        const int e = t->fr_order[k], left = k < nleft, line = left ? k : E - 1 - k;
        const double x = XR(t->fr_rank[e]), y = ylab + step * line, xe = left ? margin - 12 : W - margin + 12;
        slb_printf(h, "<g><title>");
        slb_html(h, p->entries[e].name);
        slb_printf(h, ": mean rank %.3f</title><path d=\"M%.1f %.1f V%.1f H%.1f\" fill=\"none\" stroke=\"%s\" "
                      "stroke-width=\"1.5\"/><circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>",
                   t->fr_rank[e], x, y0, y, xe, entry_colour(e), x, y0, entry_colour(e));
        slb_printf(h, "<text x=\"%.1f\" y=\"%.1f\" class=\"axis\" text-anchor=\"%s\">", left ? xe - 4 : xe + 4, y + 4,
                   left ? "end" : "start");
        slb_html(h, p->entries[e].name);
        slb_printf(h, " (%.2f)</text></g>", t->fr_rank[e]);
    }
    /* groups not significantly different */
    for (int g = 0; g < t->fr_ngroups; g++) {
        const double lo = t->fr_rank[t->fr_order[t->fr_group_lo[g]]], hi = t->fr_rank[t->fr_order[t->fr_group_hi[g]]];
        const double y = y0 + 12 + 8.0 * row[g];
        slb_printf(h, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"cdgroup\"><title>not significantly "
                      "different: mean ranks %.3f to %.3f</title></line>",
                   XR(lo) - 4, y, XR(hi) + 4, y, lo, hi);
    }
#undef XR
    free(row), free(row_end);
    slb_puts(h, "</svg></div>\n");
    const char *head[] = {"loss", "mean rank", "group"};
    html_table(h, head, 3);
    for (int k = 0; k < E; k++) {
        int e = t->fr_order[k];
        char buf[64];
        slb_puts(h, "<tr>");
        td(h, p->entries[e].name, "name");
        snprintf(buf, sizeof buf, "%.3f", t->fr_rank[e]);
        td(h, buf, "num");
        slb_group_letters(t, k, buf, sizeof buf);
        td(h, buf, NULL);
        slb_puts(h, "</tr>\n");
    }
    slb_puts(h, "</tbody></table>\n</section>\n");
}

static void curves_section(slb_str *h, const slb_report *r)
{
    const sl_bench_preset *p = r->p;
    const int E = p->nentries, S = slb_nreps(p);
    slb_puts(h, "<section id=\"curves\"><h2>Training curves</h2>\n<p>Per epoch, averaged over the seeds: the validation Dice "
                "(pooled over the validation split, mean over the foreground classes) and the training loss divided by its "
                "first epoch's value (the losses live on different scales).</p>\n");
    for (int d = 0; d < p->ndatasets; d++) {
        int64_t n = 0;
        for (int e = 0; e < E && !n; e++)
            for (int s = 0; s < S && !n; s++)
                if (!slb_report_run(r, d, s, e)->failed) n = slb_report_run(r, d, s, e)->nepochs;
        if (n == 0) continue;
        double *x = sl_malloc(n, sizeof *x), *val = sl_malloc((int64_t)E * n, sizeof *val), *rel = sl_malloc((int64_t)E * n, sizeof *rel);
        if (!x || !val || !rel) {
            h->failed = 1;
            free(x);
            free(val);
            free(rel);
            return;
        }
        for (int64_t k = 0; k < n; k++) x[k] = (double)(k + 1);
        for (int e = 0; e < E; e++)
            for (int64_t k = 0; k < n; k++) {
                double sv = 0, sl = 0;
                int cnt = 0;
                for (int s = 0; s < S; s++) {
                    const slb_run *run = slb_report_run(r, d, s, e);
                    if (run->failed || run->nepochs != n) continue;
                    sv += run->curve_val[k * run->num_classes];
                    sl += run->curve_loss[0] != 0 ? run->curve_loss[k] / run->curve_loss[0] : NAN;
                    cnt++;
                }
                val[(int64_t)e * n + k] = cnt ? sv / cnt : NAN;
                rel[(int64_t)e * n + k] = cnt ? sl / cnt : NAN;
            }
        char title[160];
        slb_puts(h, "<h3>");
        slb_html(h, p->datasets[d].name);
        slb_puts(h, "</h3><div class=\"row\">\n");
        snprintf(title, sizeof title, "%.60s — validation Dice (mean over foreground classes)", p->datasets[d].name);
        series_chart a = {title, "epoch", "validation Dice", (int)n, x, NULL, val, NULL, NULL, 1.0};
        line_chart(h, r, &a);
        snprintf(title, sizeof title, "%.60s — training loss / first epoch", p->datasets[d].name);
        series_chart b = {title, "epoch", "relative loss", (int)n, x, NULL, rel, NULL, NULL, 0.0};
        line_chart(h, r, &b);
        slb_puts(h, "</div>\n");
        free(x);
        free(val);
        free(rel);
    }
    slb_puts(h, "</section>\n");
}

static void sweep_section(slb_str *h, const slb_report *r)
{
    const sl_bench_preset *p = r->p;
    const slb_tables *t = r->t;
    const int E = p->nentries;
    int n = 0;
    for (int d = 0; d < p->ndatasets; d++) n += p->datasets[d].sweep;
    slb_puts(h, "<section id=\"sweep\"><h2>Imbalance sweep</h2>\n");
    if (n == 0) {
        slb_puts(h, "<p>This preset has no sweep data sets (the sweep and full presets run the phantom with its small class "
                    "at about 5 %, 1 % and 0.2 % of the image).</p></section>\n");
        return;
    }
    int *ds = malloc((size_t)n * sizeof *ds);
    double *x = sl_malloc(n, sizeof *x), *y = sl_malloc((int64_t)E * n, sizeof *y), *lo = sl_malloc((int64_t)E * n, sizeof *lo),
           *hi = sl_malloc((int64_t)E * n, sizeof *hi);
    char **ticks = calloc((size_t)n, sizeof *ticks);
    if (!ds || !x || !y || !lo || !hi || !ticks) {
        h->failed = 1;
        goto done;
    }
    n = 0;
    for (int d = 0; d < p->ndatasets; d++)
        if (p->datasets[d].sweep) ds[n++] = d;
    /* by share of the small class, largest first as the target shrinks left to right */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t->fraction[ds[j]] > t->fraction[ds[j - 1]]; j--) {
            int tmp = ds[j];
            ds[j] = ds[j - 1];
            ds[j - 1] = tmp;
        }
    for (int k = 0; k < n; k++) {
        /* -log10(share): a log axis on which the target shrinks from left to right */
        x[k] = -log10(t->fraction[ds[k]] > 0 ? t->fraction[ds[k]] : 1e-12);
        ticks[k] = malloc(32);
        if (!ticks[k]) {
            h->failed = 1;
            goto done;
        }
        snprintf(ticks[k], 32, "%.3g %%", 100 * t->fraction[ds[k]]);
        for (int e = 0; e < E; e++) {
            const slb_stat *s = slb_stat_at(t, ds[k], e, t->small_class[ds[k]], SLB_DICE);
            y[(int64_t)e * n + k] = s->mean;
            lo[(int64_t)e * n + k] = s->lo;
            hi[(int64_t)e * n + k] = s->hi;
        }
    }
    slb_puts(h, "<p>Dice of the smallest class against its share of the test images (log scale), with the bootstrap CI; one "
                "line per loss.</p>\n");
    series_chart c = {"Smallest-class Dice as the target shrinks", "share of the smallest class (log scale)", "Dice",
                      n, x, (const char *const *)ticks, y, lo, hi, 1.0};
    line_chart(h, r, &c);
    {
        const char *head[2 + 16] = {"loss"};
        int m = n < 16 ? n : 16;
        for (int k = 0; k < m; k++) head[1 + k] = ticks[k];
        html_table(h, head, 1 + m);
        for (int e = 0; e < E; e++) {
            slb_puts(h, "<tr>");
            td(h, p->entries[e].name, "name");
            for (int k = 0; k < m; k++) {
                char buf[96];
                slb_fmt_ci(buf, sizeof buf, y[(int64_t)e * n + k], lo[(int64_t)e * n + k], hi[(int64_t)e * n + k], 3);
                td(h, buf, "num");
            }
            slb_puts(h, "</tr>\n");
        }
        slb_puts(h, "</tbody></table>\n");
    }
    slb_puts(h, "</section>\n");
done:
    if (ticks)
        for (int k = 0; k < n; k++) free(ticks[k]);
    free(ticks);
    free(ds);
    free(x);
    free(y);
    free(lo);
    free(hi);
}

/* <img> with the PNG at DIR/rel as a data URI. */
static sl_status img_tag(slb_str *h, const char *dir, const char *rel, const char *alt, char *msg, size_t msglen)
{
    char path[SL_TRAIN_TEXT + 256];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    unsigned char *data;
    size_t len;
    sl_status st = sl_file_read(path, &data, &len, msg, msglen);
    if (st != SL_OK) return st;
    slb_puts(h, "<img alt=\"");
    slb_html(h, alt);
    slb_puts(h, "\" title=\"");
    slb_html(h, rel);
    slb_puts(h, "\" src=\"data:image/png;base64,");
    slb_base64(h, data, len);
    slb_puts(h, "\">");
    free(data);
    return SL_OK;
}

static sl_status overlays_section(slb_str *h, const slb_report *r, char *msg, size_t msglen)
{
    const sl_bench_preset *p = r->p;
    const int E = p->nentries;
    slb_printf(h, "<section id=\"overlays\"><h2>Overlays</h2>\n<p>Test images (seed %llu) with the target's contours and "
                  "each loss's predicted contours, one colour per class (legend under each data set). The cases span the "
                  "smallest class's sizes (smallest, median, largest among the cases that contain it).</p>\n",
               (unsigned long long)p->seeds[0]);
    int shown = 0;
    for (int d = 0; d < p->ndatasets; d++) {
        const slb_run *first = NULL;
        for (int e = 0; e < E && !first; e++)
            if (!slb_report_run(r, d, 0, e)->failed) first = slb_report_run(r, d, 0, e);
        if (!first || first->noverlays == 0) continue;
        slb_puts(h, "<h3>");
        slb_html(h, p->datasets[d].name);
        slb_puts(h, "</h3>\n<p>");
        for (int side = 0; side < 2; side++) {
            slb_puts(h, side ? "; predicted: " : "target: ");
            for (int c = 1; c < first->num_classes; c++) {
                unsigned char rgb[3];
                slb_overlay_colour(c, side, rgb);
                slb_printf(h, "%s<span class=\"sw\" style=\"background:#%02x%02x%02x\"></span>", c > 1 ? ", " : "", rgb[0], rgb[1], rgb[2]);
                slb_html(h, first->class_names[c]);
            }
        }
        slb_puts(h, "</p>\n<div class=\"scroll\"><table class=\"ov\"><thead><tr><th>case</th><th>image + target</th>");
        for (int e = 0; e < E; e++) {
            if (slb_report_run(r, d, 0, e)->failed) continue;
            slb_puts(h, "<th>");
            slb_html(h, p->entries[e].name);
            slb_puts(h, "</th>");
        }
        slb_puts(h, "</tr></thead><tbody>\n");
        for (int64_t k = 0; k < first->noverlays; k++) {
            char rel[512], alt[256];
            int64_t cs = first->overlay_cases[k];
            slb_printf(h, "<tr><td class=\"num\">%lld</td><td>", (long long)cs);
            slb_overlay_path(rel, sizeof rel, NULL, p, d, cs, -1);
            snprintf(alt, sizeof alt, "%.60s case %lld: image and target", p->datasets[d].name, (long long)cs);
            sl_status st = img_tag(h, r->dir, rel, alt, msg, msglen);
            if (st != SL_OK) return st;
            slb_puts(h, "</td>");
            for (int e = 0; e < E; e++) {
                if (slb_report_run(r, d, 0, e)->failed) continue;
                slb_overlay_path(rel, sizeof rel, NULL, p, d, cs, e);
                snprintf(alt, sizeof alt, "%.60s case %lld: %.60s", p->datasets[d].name, (long long)cs, p->entries[e].name);
                slb_puts(h, "<td>");
                if ((st = img_tag(h, r->dir, rel, alt, msg, msglen)) != SL_OK) return st;
                slb_puts(h, "</td>");
                shown++;
            }
            slb_puts(h, "</tr>\n");
        }
        slb_puts(h, "</tbody></table></div>\n");
    }
    if (!shown) slb_puts(h, "<p>No overlays (evaluation.overlay_cases is 0, or no test case contains the smallest class).</p>\n");
    slb_puts(h, "</section>\n");
    return SL_OK;
}

static void runs_section(slb_str *h, const slb_report *r)
{
    const sl_bench_preset *p = r->p;
    const int64_t n = sl_bench_num_runs(p);
    double train = 0, eval = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!slb_rep_listed(p, (int)(i % p->nentries), (int)(i / p->nentries % slb_nreps(p)))) continue;
        train += r->runs[i]->seconds_train;
        eval += r->runs[i]->seconds_eval;
    }
    slb_printf(h, "<section id=\"runs\"><h2>Runs</h2>\n<p>%lld runs; training %.0f s and evaluation %.0f s summed over the runs "
                  "(one thread each)",
               (long long)n, train, eval);
    if (isfinite(r->seconds)) slb_printf(h, "; the last call took %.0f s wall time and %.0f s CPU time", r->seconds, r->cpu_seconds);
    slb_puts(h, ".</p>\n");
    const char *head[] = {"data set", "seed", "loss", "spec", "TTA", "weights", "status", "train s", "eval s", "parameters", "converged"};
    html_table(h, head, 11);
    for (int64_t i = 0; i < n; i++) {
        const slb_run *run = r->runs[i];
        const sl_bench_entry *en = &p->entries[run->entry];
        char buf[64];
        if (!slb_rep_listed(p, (int)(i % p->nentries), (int)(i / p->nentries % slb_nreps(p)))) continue;
        slb_puts(h, "<tr>");
        td(h, p->datasets[run->dataset].name, "name");
        if (en->ensemble) snprintf(buf, sizeof buf, "ens");
        else if (p->nfolds) snprintf(buf, sizeof buf, "%llu / fold %d", (unsigned long long)slb_rep_seed(p, run->seed), slb_rep_fold(p, run->seed));
        else snprintf(buf, sizeof buf, "%llu", (unsigned long long)slb_rep_seed(p, run->seed));
        td(h, buf, "num");
        td(h, en->name, "name");
        slb_puts(h, "<td><code>");
        slb_html(h, en->loss);
        slb_puts(h, "</code></td>");
        char tt[32];
        td(h, slb_tta_text(en, 0, tt, sizeof tt), NULL);
        td(h, en->int8 ? "int8" : "-", NULL);
        td(h, run->failed ? run->message : "ok", NULL);
        snprintf(buf, sizeof buf, "%.1f", run->seconds_train);
        td(h, buf, "num");
        snprintf(buf, sizeof buf, "%.1f", run->seconds_eval);
        td(h, buf, "num");
        snprintf(buf, sizeof buf, "%lld", (long long)run->num_params);
        td(h, run->failed ? "-" : buf, "num");
        td(h, run->failed ? "-" : slb_conv_name(slb_run_converged(run)), NULL);
        slb_puts(h, "</tr>\n");
    }
    slb_puts(h, slb_preset_has_volumes(r->p)
                    ? "</tbody></table>\n<h3>Conventions</h3>\n<p>Per test case (a 2-D slice, or a 3-D volume scored "
                      "whole) and foreground class: Dice; HD95 = max of the two directed 95th percentiles of the distances "
                      "between border pixels (voxels), in pixels for slices and in mm for volumes (one side empty: the slice "
                      "or volume diagonal); NSD (surface Dice) at the preset's tolerance; recall; precision; lesion-wise F1 "
                      "over fully connected components (8 in 2-D, 26 in 3-D; a target lesion is found when a predicted "
                      "component overlaps it by a pixel or voxel). "
                    : "</tbody></table>\n<h3>Conventions</h3>\n<p>Per test case (a 2-D slice) and foreground class: Dice; HD95 = "
                      "max of the two directed 95th percentiles of the distances between border pixels, in pixels (one side empty: "
                      "the slice diagonal); NSD (surface Dice) at the preset's tolerance; recall; precision; lesion-wise F1 over "
                      "8-connected components (a target lesion is found when a predicted component overlaps it by a pixel). ");
    slb_puts(h, "Both "
                "empty: every score 1 and HD95 0. Statistics are over the test cases of the values averaged over the seeds; "
                "± is the standard deviation of the per-seed means; CIs are percentile bootstraps; p is the two-sided "
                "Wilcoxon signed-rank test (scipy's defaults), p (Holm) the same after Holm's step-down correction over the "
                "entries of the data set; across data sets, the Friedman test and the Nemenyi critical difference (Demšar "
                "2006). See docs/benchmark.md.</p>\n</section>\n");
}

static const char *css =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;color:#222}"
    "h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2em}h3{margin-top:1.5em}"
    "table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px}"
    "th{background:#f4f4f4;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "td.up{background:#e6f4e6}td.down{background:#fbe6e6}tr.base td{font-weight:600}"
    "svg.chart{background:#fff;border:1px solid #eee;margin:6px 12px 6px 0}"
    ".grid{stroke:#eee}.axisline{stroke:#888}.tick{font-size:11px;fill:#444}.axis{font-size:12px;fill:#222}"
    ".ctitle{font-size:13px;font-weight:600;fill:#222}.whisker{stroke:#222;stroke-width:1;fill:none}"
    ".ci{stroke-width:1;opacity:.6}.row{display:flex;flex-wrap:wrap}.scroll{overflow-x:auto}"
    "table.ov img{width:160px;height:auto;image-rendering:pixelated;display:block}"
    ".sw{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 3px;border:1px solid #888}"
    "nav a{margin-right:14px}code{font-size:12px}"
    ".cdbar{stroke:#222;stroke-width:2}.cdgroup{stroke:#6a3d9a;stroke-width:4;stroke-linecap:round}";

sl_status slb_write_html(const slb_report *r, char *msg, size_t msglen)
{
    const sl_bench_preset *p = r->p;
    slb_str h = {0};
    slb_puts(&h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>segloss benchmark: ");
    slb_html(&h, p->name);
    slb_printf(&h, "</title>\n<style>%s</style></head><body>\n<h1>segloss benchmark: ", css);
    slb_html(&h, p->name);
    slb_puts(&h, "</h1>\n");
    if (p->description[0]) {
        slb_puts(&h, "<p>");
        slb_html(&h, p->description);
        slb_puts(&h, "</p>\n");
    }
    slb_str training = {0};
    slb_training_text(p, &training);
    slb_printf(&h, "<p>%lld runs: %d loss entries × %d data sets × %d seeds. ", (long long)sl_bench_num_runs(p),
               p->nentries, p->ndatasets, p->nseeds);
    if (training.failed) h.failed = 1;
    else slb_html(&h, training.p);
    slb_str_free(&training);
    slb_puts(&h, " Baseline: <code>");
    slb_html(&h, p->entries[p->baseline].name);
    slb_printf(&h, "</code>. segloss %s.</p>\n<nav><a href=\"#ranking\">Ranking</a><a href=\"#cd\">Critical difference</a><a href=\"#per-class\">Per-class Dice and "
                   "HD95</a><a href=\"#curves\">Training curves</a><a href=\"#sweep\">Imbalance sweep</a><a "
                   "href=\"#overlays\">Overlays</a><a href=\"#convergence\">Convergence</a>%s<a href=\"#runs\">Runs</a></nav>\n",
               sl_version(), p->nbudgets ? "<a href=\"#budget\">Budget study</a>" : "");
    ranking_section(&h, r);
    cd_section(&h, r);
    slb_printf(&h, "<section id=\"per-class\"><h2>Per-class Dice and HD95</h2>\n<p>Mean over the test cases with the %g %% "
                   "bootstrap CI (whiskers), entries in ranking order.</p>\n",
               100 * p->ci_level);
    for (int d = 0; d < p->ndatasets; d++) {
        slb_puts(&h, "<h3>");
        slb_html(&h, p->datasets[d].name);
        slb_puts(&h, "</h3><div class=\"row\">\n");
        bar_chart(&h, r, d, SLB_DICE);
        bar_chart(&h, r, d, SLB_HD95);
        slb_puts(&h, "</div>\n");
    }
    slb_puts(&h, "</section>\n");
    curves_section(&h, r);
    sweep_section(&h, r);
    sl_status st = overlays_section(&h, r, msg, msglen);
    if (st == SL_OK) {
        slb_study_html(r, &h);
        slb_search_html(r, &h);
        runs_section(&h, r);
        slb_puts(&h, "</body></html>\n");
        st = slb_write_text(r->dir, "report.html", &h, msg, msglen);
    }
    slb_str_free(&h);
    return st;
}
