/*
 * The benchmark's pieces that do not train: preset parsing and checking
 * (every error names its key), the canonical preset, file-name slugs,
 * base64, the result files (bit-exact round trip, wrong-run and corrupt
 * files refused), the statistics tables on synthetic runs (means, seed
 * spread, paired differences with the bootstrap and Wilcoxon of stats.h,
 * rankings with ties and failed entries), the report writers (every file,
 * its header and row count), and the overlay PNG. Milliseconds; the
 * trained end-to-end runs are in tests/cli/test_bench.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bench/bench_internal.h"
#include "segloss/bench.h"
#include "segloss/png.h"
#include "segloss/stats.h"
#include "test_util.h"

static char root[256];

static const char *base_preset =
    "{\"name\": \"t\", \"description\": \"unit\", \"seeds\": [1, 2],"
    " \"train\": {\"data_opts\": {\"height\": 32, \"width\": 32, \"n_train\": 8, \"n_val\": 2, \"n_test\": 4},"
    "             \"network\": {\"depth\": 2, \"base_width\": 4}, \"training\": {\"epochs\": 2, \"steps_per_epoch\": 2}},"
    " \"datasets\": [{\"name\": \"ph 5%\", \"data\": \"phantom\", \"data_opts\": {\"small_fraction\": 0.05}, \"sweep\": true},"
    "              {\"data\": \"phantom\", \"train\": {\"training\": {\"epochs\": 3}, \"data_opts\": {\"noise\": 0.3}}}],"
    " \"losses\": [\"ce\", \"dice+ce\", {\"name\": \"dice+ce +TTA\", \"loss\": \"dice+ce\", \"tta\": true},"
    "            {\"name\": \"staged\", \"loss\": \"0:ce; 1:ce+dice\"}],"
    " \"evaluation\": {\"bootstrap\": 300, \"ci_level\": 0.9, \"stats_seed\": 5, \"overlay_cases\": 0}}";

/* base_preset with the first occurrence of `from` replaced by `to` */
static char *edit(const char *from, const char *to)
{
    const char *at = strstr(base_preset, from);
    if (!at) return NULL;
    size_t n = strlen(base_preset) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(at - base_preset), base_preset, to, at + strlen(from));
    return s;
}

static void expect_error(const char *from, const char *to, sl_status code, const char *needle)
{
    char *json = edit(from, to);
    CHECK(json != NULL, "edit: '%s' not in the base preset", from);
    if (!json) return;
    sl_bench_preset *p = (sl_bench_preset *)1;
    char msg[700] = "";
    sl_status st = sl_bench_preset_parse(&p, json, msg, sizeof msg);
    CHECK(st == code, "'%s' -> '%s': status %d (want %d): %s", from, to, (int)st, (int)code, msg);
    CHECK(strstr(msg, needle) != NULL, "'%s' -> '%s': message '%s' lacks '%s'", from, to, msg, needle);
    CHECK(p == NULL, "failed parse leaves *out NULL");
    free(json);
}

static void test_preset(void)
{
    sl_bench_preset *p = NULL;
    char msg[700] = "";
    sl_status st = sl_bench_preset_parse(&p, base_preset, msg, sizeof msg);
    CHECK(st == SL_OK, "base preset: %s", msg);
    if (st != SL_OK) return;
    CHECK(!strcmp(p->name, "t") && !strcmp(p->description, "unit"), "name/description");
    CHECK(p->nseeds == 2 && p->seeds[0] == 1 && p->seeds[1] == 2, "seeds");
    CHECK(p->ndatasets == 2 && p->nentries == 4, "sizes %d %d", p->ndatasets, p->nentries);
    CHECK(sl_bench_num_runs(p) == 16, "runs %lld", (long long)sl_bench_num_runs(p));
    CHECK(p->baseline == 1, "default baseline dice+ce is entry 1, got %d", p->baseline);
    CHECK(!strcmp(p->datasets[0].slug, "ph_5_") && !strcmp(p->datasets[1].name, "phantom"), "dataset names %s %s",
          p->datasets[0].slug, p->datasets[1].name);
    CHECK(p->datasets[0].sweep == 1 && p->datasets[1].sweep == 0, "sweep flags");
    /* merged configuration: train, then the data set's train, then its data_opts */
    const sl_train_config *c0 = &p->datasets[0].config, *c1 = &p->datasets[1].config;
    CHECK(c0->data_opts.height == 32 && c0->data_opts.small_fraction == 0.05 && c0->depth == 2 && c0->epochs == 2,
          "dataset 0 config");
    CHECK(c1->epochs == 3 && c1->steps_per_epoch == 2 && c1->data_opts.noise == 0.3 && c1->data_opts.n_train == 8 &&
              c1->data_opts.small_fraction == 0,
          "dataset 1 config: epochs %lld noise %g", (long long)c1->epochs, c1->data_opts.noise);
    CHECK(!strcmp(p->entries[2].loss, "dice+ce") && p->entries[2].tta == 1 && p->entries[0].tta == 0, "entries");
    CHECK(!strcmp(p->entries[2].slug, "dice+ce_+TTA"), "slug %s", p->entries[2].slug);
    CHECK(p->bootstrap == 300 && p->ci_level == 0.9 && p->stats_seed == 5 && p->overlay_cases == 0 && p->nsd_tolerance == 1,
          "evaluation");
    /* the canonical form is a preset with the same canonical form */
    sl_bench_preset *q = NULL;
    st = sl_bench_preset_parse(&q, p->json, msg, sizeof msg);
    CHECK(st == SL_OK, "canonical re-parse: %s", msg);
    if (st == SL_OK) {
        CHECK(!strcmp(p->json, q->json), "canonical form is a fixed point");
        CHECK(q->datasets[1].config.epochs == 3 && q->datasets[1].config.data_opts.noise == 0.3, "canonical keeps the config");
        sl_bench_preset_free(q);
    }
    sl_bench_preset_free(p);
    sl_bench_preset_free(NULL);
    CHECK(sl_bench_num_runs(NULL) == 0, "num_runs(NULL)");

    /* evaluation.tta as the entries' default; an explicit baseline */
    char *j = edit("\"overlay_cases\": 0}", "\"overlay_cases\": 0, \"tta\": true}, \"baseline\": \"staged\"");
    st = sl_bench_preset_parse(&p, j, msg, sizeof msg);
    CHECK(st == SL_OK && p->entries[0].tta == 1 && p->entries[2].tta == 1 && p->baseline == 3, "tta default / baseline: %s", msg);
    if (st == SL_OK) sl_bench_preset_free(p);
    free(j);

    /* errors, each naming what is wrong */
    expect_error("{\"name\"", "[{\"name\"", SL_EFORMAT, "not valid JSON");
    expect_error("\"name\": \"t\",", "", SL_EFORMAT, "\"name\" is missing");
    expect_error("\"name\": \"t\"", "\"name\": \"t\", \"colour\": 1", SL_EUNKNOWN, "unknown key colour");
    expect_error("\"seeds\": [1, 2]", "\"seeds\": [1, 1]", SL_EINVAL, "seed 1 appears twice");
    expect_error("\"seeds\": [1, 2]", "\"seeds\": [1, -2]", SL_ERANGE, "seeds[1]");
    expect_error("\"seeds\": [1, 2]", "\"seeds\": [1.5]", SL_ERANGE, "seeds[0]");
    expect_error("\"seeds\": [1, 2]", "\"seeds\": []", SL_EFORMAT, "seeds must be an array");
    expect_error("\"seeds\": [1, 2]", "\"seeds\": [\"x\"]", SL_EFORMAT, "seeds[0] 'x'");
    expect_error("\"n_test\": 4}", "\"n_test\": 4, \"nosie\": 1}", SL_EUNKNOWN, "nosie");
    expect_error("\"noise\": 0.3", "\"noise\": -1", SL_ERANGE, "datasets[1]");
    expect_error("\"depth\": 2", "\"depth\": 99", SL_ERANGE, "network.depth");
    expect_error("\"training\": {\"epochs\": 2", "\"training\": {\"seed\": 3, \"epochs\": 2", SL_EUNKNOWN, "train.training.seed");
    expect_error("\"network\":", "\"loss\": \"ce\", \"network\":", SL_EUNKNOWN, "train.loss");
    expect_error("\"data\": \"phantom\", \"data_opts\"", "\"data\": \"mri\", \"data_opts\"", SL_EUNKNOWN, "unknown data source 'mri'");
    expect_error("{\"data\": \"phantom\", \"train\"", "{\"train\"", SL_EFORMAT, "datasets[1] needs \"data\"");
    expect_error("\"sweep\": true", "\"sweep\": 1", SL_EFORMAT, "datasets[0].sweep");
    expect_error("{\"name\": \"ph 5%\"", "{\"name\": \"phantom\"", SL_EINVAL, "same name");
    expect_error("[\"ce\", \"dice+ce\"", "[\"ce\", \"dicey\"", SL_EUNKNOWN, "losses[1] (dicey)");
    expect_error("[\"ce\", \"dice+ce\"", "[\"ce\", \"ce\", \"dice+ce\"", SL_EINVAL, "same name");
    expect_error("\"staged\", \"loss\"", "\"staged\", \"tta\": 1, \"loss\"", SL_EFORMAT, "losses[3].tta");
    expect_error("\"staged\", \"loss\"", "\"staged\", \"int8\": \"yes\", \"loss\"", SL_EFORMAT, "losses[3].int8");
    expect_error("\"staged\", \"loss\"", "\"staged\", \"los\": 1, \"loss\"", SL_EUNKNOWN, "losses[3].los");
    expect_error("\"0:ce; 1:ce+dice\"", "\"1:ce; 0:ce+dice\"", SL_EFORMAT, "losses[3] (staged)");
    expect_error("[\"ce\", \"dice+ce\"", "[\"ce\", 3, \"dice+ce\"", SL_EFORMAT, "losses[1] must be");
    expect_error("\"overlay_cases\": 0}", "\"overlay_cases\": 0}, \"baseline\": \"focal\"", SL_EINVAL, "baseline 'focal'");
    expect_error("\"ci_level\": 0.9", "\"ci_level\": 1", SL_ERANGE, "evaluation.ci_level");
    expect_error("\"bootstrap\": 300", "\"bootstrap\": 0", SL_ERANGE, "evaluation.bootstrap");
    expect_error("\"bootstrap\": 300", "\"bootstap\": 300", SL_EUNKNOWN, "evaluation.bootstap");
    expect_error("\"description\": \"unit\"", "\"description\": 3", SL_EFORMAT, "description");
    expect_error("{\"name\": \"t\"", "{\"format\": \"x\", \"name\": \"t\"", SL_EFORMAT, "format");
    char long_name[200];
    memset(long_name, 'a', sizeof long_name);
    long_name[0] = '"';
    snprintf(long_name + 100, 8, "\"");
    expect_error("\"t\"", long_name, SL_ERANGE, "name must have 1 to 63");
    CHECK(sl_bench_preset_parse(NULL, base_preset, msg, sizeof msg) == SL_EINVAL, "NULL out");
    char path[400];
    snprintf(path, sizeof path, "%s/missing.json", root);
    CHECK(sl_bench_preset_load(&p, path, msg, sizeof msg) == SL_EIO && strstr(msg, "missing.json"), "missing file: %s", msg);
}

static void test_text(void)
{
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        slb_str s = {0};
        slb_puts(&s, "");
        slb_base64(&s, (const unsigned char *)in[i], strlen(in[i]));
        CHECK(!s.failed && !strcmp(s.p ? s.p : "", out[i]), "base64(%s) = %s", in[i], s.p ? s.p : "(null)");
        slb_str_free(&s);
    }
    char slug[SL_BENCH_NAME];
    slb_slug("dice+ce (α=0.3)/x", slug);
    CHECK(!strcmp(slug, "dice+ce_____0.3__x"), "slug %s", slug);
    slb_slug(".hidden", slug);
    CHECK(!strcmp(slug, "_hidden"), "leading dot %s", slug);
    slb_slug("", slug);
    CHECK(!strcmp(slug, "_"), "empty slug %s", slug);
    slb_str s = {0};
    slb_html(&s, "<a href=\"x\">&</a>");
    CHECK(!strcmp(s.p, "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"), "html escape %s", s.p);
    for (int i = 0; i < 2000; i++) slb_printf(&s, "%d,", i); /* growth past the first buffers */
    CHECK(!s.failed && strlen(s.p) == s.len && strstr(s.p, ",1999,"), "long string");
    slb_str_free(&s);
    char b[32];
    CHECK(!strcmp(slb_fmt(b, sizeof b, NAN, 3), "-") && !strcmp(slb_fmt(b, sizeof b, INFINITY, 3), "inf") &&
              !strcmp(slb_fmt(b, sizeof b, 0.12345, 3), "0.123"),
          "fmt");
}

/* A synthetic run: value(c, m, i) = base + effect of the entry + noise of (seed, case). */
static slb_run *make_run(int d, int s, int e, int C, int64_t n, int failed)
{
    slb_run *r = calloc(1, sizeof *r);
    r->dataset = d;
    r->seed = s;
    r->entry = e;
    if (failed) {
        r->failed = 1;
        snprintf(r->message, sizeof r->message, "train: the loss became NaN at epoch 2, step 1");
        return r;
    }
    r->num_classes = C;
    r->small_class = C - 1;
    r->fraction = 0.01 * (d + 1);
    r->n_cases = n;
    r->nepochs = 3;
    r->noverlays = 0;
    r->num_params = 1234;
    r->seconds_train = 1.5;
    r->seconds_eval = 0.25;
    if (slb_run_alloc(r) != SL_OK) return r;
    for (int c = 1; c < C; c++) {
        char name[16];
        snprintf(name, sizeof name, "class%d", c);
        r->class_names[c] = strdup(name);
        for (int m = 0; m < SLB_NMET; m++)
            for (int64_t i = 0; i < n; i++) {
                double noise = 0.01 * (double)((i * 7 + s * 3 + c * 5 + m) % 11) + 1e-3 * (double)i * (double)e;
                slb_value(r, c, m)[i] = 0.4 + 0.1 * e - 0.05 * c + noise + 0.02 * s;
            }
    }
    for (int64_t k = 0; k < r->nepochs; k++) {
        r->curve_loss[k] = 1.0 / (double)(k + 1);
        for (int c = 0; c < C; c++) r->curve_val[k * C + c] = k == 1 && c == 1 ? NAN : 0.1 * (double)k + 0.01 * c;
    }
    slb_run_derive_mean(r);
    return r;
}

static int same_run(const slb_run *a, const slb_run *b)
{
    if (a->failed != b->failed || strcmp(a->message, b->message) || a->seconds_train != b->seconds_train ||
        a->seconds_eval != b->seconds_eval)
        return 0;
    if (a->failed) return 1;
    if (a->num_classes != b->num_classes || a->n_cases != b->n_cases || a->small_class != b->small_class ||
        a->fraction != b->fraction || a->nepochs != b->nepochs || a->noverlays != b->noverlays || a->num_params != b->num_params)
        return 0;
    int64_t nv = (int64_t)a->num_classes * SLB_NMET * a->n_cases;
    if (memcmp(a->values, b->values, (size_t)nv * sizeof *a->values)) return 0;
    for (int64_t k = 0; k < a->nepochs; k++) {
        if (a->curve_loss[k] != b->curve_loss[k]) return 0;
        for (int c = 1; c < a->num_classes; c++) {
            double x = a->curve_val[k * a->num_classes + c], y = b->curve_val[k * a->num_classes + c];
            if (!(x == y || (isnan(x) && isnan(y)))) return 0;
        }
    }
    for (int c = 1; c < a->num_classes; c++)
        if (strcmp(a->class_names[c], b->class_names[c])) return 0;
    return 1;
}

static void test_store(const sl_bench_preset *p)
{
    char path[600], msg[700];
    snprintf(path, sizeof path, "%s/%s", root, SLB_RESULTS_DIR);
    mkdir(path, 0777);
    slb_run *a = make_run(1, 1, 3, 3, 7, 0);
    slb_value(a, 1, SLB_DICE)[5] = 0.1 + 0.2; /* a value that needs 17 digits */
    slb_run_derive_mean(a);
    a->noverlays = 0;
    CHECK(slb_result_path(path, sizeof path, root, p, 1, 1, 3) == SL_OK && strstr(path, "results/phantom__seed2__staged.json"),
          "result path %s", path);
    sl_status st = slb_run_write(path, p, a, msg, sizeof msg);
    CHECK(st == SL_OK, "write: %s", msg);
    slb_run b;
    st = slb_run_read(path, p, 1, 1, 3, &b, msg, sizeof msg);
    CHECK(st == SL_OK, "read: %s", msg);
    if (st == SL_OK) {
        CHECK(same_run(a, &b), "round trip is bit-exact");
        slb_run_free(&b);
    }
    st = slb_run_read(path, p, 1, 0, 3, &b, msg, sizeof msg);
    CHECK(st == SL_EBADSTATE && strstr(msg, "another run"), "another seed's file is refused: %s", msg);
    st = slb_run_read(path, p, 0, 1, 3, &b, msg, sizeof msg);
    CHECK(st == SL_EBADSTATE, "another data set's file is refused");
    /* a failed run */
    slb_run *f = make_run(0, 0, 0, 3, 7, 1);
    snprintf(path, sizeof path, "%s/failed.json", root);
    CHECK(slb_run_write(path, p, f, msg, sizeof msg) == SL_OK, "write failed run");
    st = slb_run_read(path, p, 0, 0, 0, &b, msg, sizeof msg);
    CHECK(st == SL_OK && b.failed && same_run(f, &b), "failed run round trip: %s", msg);
    if (st == SL_OK) slb_run_free(&b);
    /* corrupt files */
    static const char *const bad[] = {"{", "[]", "{\"format\": \"segloss-bench-run\", \"version\": 2}",
                                      NULL};
    for (int i = 0; bad[i]; i++) {
        FILE *fp = fopen(path, "w");
        fputs(bad[i], fp);
        fclose(fp);
        st = slb_run_read(path, p, 0, 0, 0, &b, msg, sizeof msg);
        CHECK(st == SL_EFORMAT, "corrupt file %d: %d %s", i, (int)st, msg);
    }
    /* a truncated valid file */
    snprintf(path, sizeof path, "%s/%s", root, SLB_RESULTS_DIR);
    slb_result_path(path, sizeof path, root, p, 1, 1, 3);
    FILE *fp = fopen(path, "r+");
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fclose(fp);
    CHECK(truncate(path, len / 2) == 0, "truncate");
    st = slb_run_read(path, p, 1, 1, 3, &b, msg, sizeof msg);
    CHECK(st == SL_EFORMAT, "truncated result file: %d %s", (int)st, msg);
    slb_run_free(a);
    free(a);
    slb_run_free(f);
    free(f);
}

static double mean_of(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return s / (double)n;
}

static void test_tables(const sl_bench_preset *p)
{
    const int D = p->ndatasets, S = p->nseeds, E = p->nentries, C = 3;
    const int64_t n = 9;
    slb_run **runs = calloc((size_t)D * S * E, sizeof *runs);
    for (int d = 0; d < D; d++)
        for (int s = 0; s < S; s++)
            for (int e = 0; e < E; e++) runs[(d * S + s) * E + e] = make_run(d, s, e, C, n, d == 1 && e == 0 && s == 1);
    slb_tables t;
    char msg[700];
    sl_status st = slb_tables_build(p, runs, &t, msg, sizeof msg);
    CHECK(st == SL_OK, "tables: %s", msg);
    if (st != SL_OK) return;
    double maxdiff = 0;
    for (int d = 0; d < D; d++)
        for (int e = 0; e < E; e++)
            for (int c = 0; c < C; c++)
                for (int m = 0; m < SLB_NMET; m++) {
                    const slb_stat *o = slb_stat_at(&t, d, e, c, m);
                    if (d == 1 && e == 0) {
                        CHECK(o->n == 0 && isnan(o->mean) && isnan(o->diff), "failed entry has no statistics");
                        continue;
                    }
                    double y[9], yb[9], diff[9], sm[2];
                    for (int64_t i = 0; i < n; i++) {
                        y[i] = yb[i] = 0;
                        for (int s = 0; s < S; s++) {
                            y[i] += slb_value(runs[(d * S + s) * E + e], c, m)[i] / S;
                            yb[i] += slb_value(runs[(d * S + s) * E + p->baseline], c, m)[i] / S;
                        }
                        diff[i] = y[i] - yb[i];
                    }
                    for (int s = 0; s < S; s++) sm[s] = mean_of(slb_value(runs[(d * S + s) * E + e], c, m), n);
                    double sd = 0, lo, hi;
                    sl_summary(sm, S, NULL, &sd, NULL);
                    maxdiff = fmax(maxdiff, fabs(o->mean - mean_of(y, n)));
                    maxdiff = fmax(maxdiff, fabs(o->seed_std - sd));
                    sl_bootstrap_ci(y, n, p->bootstrap, p->ci_level, p->stats_seed, &lo, &hi);
                    CHECK(o->lo == lo && o->hi == hi, "CI is stats.h's bootstrap with the preset's seed");
                    CHECK(o->lo <= o->mean && o->mean <= o->hi, "CI brackets the mean");
                    CHECK(o->n == n, "n");
                    if (e == p->baseline) {
                        CHECK(isnan(o->diff) && isnan(o->p), "baseline has no difference");
                    } else {
                        double w, pv;
                        sl_wilcoxon(y, yb, n, &w, &pv);
                        sl_bootstrap_ci(diff, n, p->bootstrap, p->ci_level, p->stats_seed, &lo, &hi);
                        maxdiff = fmax(maxdiff, fabs(o->diff - mean_of(diff, n)));
                        CHECK(o->p == pv && o->wilcoxon == w && o->diff_lo == lo && o->diff_hi == hi, "paired stats d%d e%d c%d m%d", d,
                              e, c, m);
                    }
                }
    printf("max |table - direct| %.3g\n", maxdiff);
    CHECK(maxdiff < 1e-12, "tables equal the direct computation (max %.3g)", maxdiff);
    /* class 0 is the mean over the foreground classes */
    const slb_run *r0 = runs[0];
    CHECK(fabs(slb_value(r0, 0, SLB_DICE)[4] - 0.5 * (slb_value(r0, 1, SLB_DICE)[4] + slb_value(r0, 2, SLB_DICE)[4])) < 1e-15,
          "mean class");
    /* ranking: the score grows with the entry index by construction */
    for (int k = 0; k < E; k++) CHECK(t.order[k] == E - 1 - k, "data set 0 order[%d] = %d", k, t.order[k]);
    CHECK(t.rank[0 * E + 3] == 1 && t.rank[0 * E + 0] == 4, "ranks");
    CHECK(t.failed[1 * E + 0] == 1 && t.rank[1 * E + 0] == E && t.order[1 * E + E - 1] == 0 && isnan(t.score[1 * E + 0]),
          "a failed entry ranks last");
    CHECK(t.overall[0] == 3 && t.overall[E - 1] == 0 && t.mean_rank[3] == 1.0 && t.mean_rank[0] == 4.0, "overall %d %d %g",
          t.overall[0], t.overall[E - 1], t.mean_rank[3]);
    CHECK(fabs(t.mean_score[0] - t.score[0]) < 1e-15, "mean score over the data sets where it ran");
    CHECK(t.num_classes[0] == 3 && t.small_class[0] == 2 && t.n_cases[1] == n && t.fraction[1] == 0.02, "per data set info");

    /* the report writers on these runs */
    slb_report rep = {p, runs, &t, root, 12.5, 20.0};
    CHECK(slb_write_csv(&rep, msg, sizeof msg) == SL_OK, "csv: %s", msg);
    CHECK(slb_write_json(&rep, msg, sizeof msg) == SL_OK, "json: %s", msg);
    CHECK(slb_write_markdown(&rep, msg, sizeof msg) == SL_OK, "md: %s", msg);
    CHECK(slb_write_html(&rep, msg, sizeof msg) == SL_OK, "html: %s", msg);
    char path[600];
    snprintf(path, sizeof path, "%s/results.csv", root);
    FILE *fp = fopen(path, "r");
    char line[512];
    int rows = 0, header_ok = 0, failed_rows = 0;
    while (fp && fgets(line, sizeof line, fp)) {
        if (rows == 0) header_ok = !strcmp(line, "dataset,fraction,seed,loss,spec,tta,int8,status,class,metric,value,n_cases,converged\n");
        else failed_rows += strstr(line, ",failed,") != NULL;
        rows++;
    }
    if (fp) fclose(fp);
    CHECK(header_ok && rows == 1 + D * S * E * C * SLB_NMET, "results.csv: header %d, %d rows", header_ok, rows);
    CHECK(failed_rows == C * SLB_NMET, "rows of the failed run: %d", failed_rows);
    snprintf(path, sizeof path, "%s/report.html", root);
    fp = fopen(path, "r");
    slb_str html = {0};
    while (fp && fgets(line, sizeof line, fp)) slb_puts(&html, line);
    if (fp) fclose(fp);
    static const char *const ids[] = {"id=\"ranking\"", "id=\"per-class\"", "id=\"curves\"", "id=\"sweep\"", "id=\"overlays\"",
                                      "id=\"runs\"", "failed: train: the loss became NaN"};
    for (int i = 0; i < 7; i++) CHECK(html.p && strstr(html.p, ids[i]), "report.html has %s", ids[i]);
    slb_str_free(&html);
    slb_str txt = {0};
    slb_ranking_text(&rep, &txt);
    CHECK(txt.p && strstr(txt.p, "Overall ranking") && strstr(txt.p, "failed (4)") && strstr(txt.p, "baseline"), "ranking text");
    slb_str_free(&txt);

    /* inconsistent runs are refused */
    slb_tables_free(&t);
    runs[1]->n_cases = 8;
    CHECK(slb_tables_build(p, runs, &t, msg, sizeof msg) == SL_EFORMAT && strstr(msg, "disagree"), "inconsistent runs: %s", msg);
    runs[1]->n_cases = n;
    slb_tables_free(&t);
    for (int i = 0; i < D * S * E; i++) {
        slb_run_free(runs[i]);
        free(runs[i]);
    }
    free(runs);
}

static void test_overlay(void)
{
    const int64_t h = 20, w = 16;
    float img[20 * 16];
    int32_t tgt[20 * 16], pred[20 * 16];
    for (int64_t i = 0; i < h * w; i++) {
        img[i] = (float)(i % 17);
        int64_t y = i / w, x = i % w;
        tgt[i] = (y >= 5 && y < 12 && x >= 4 && x < 10) ? 1 : 0;
        pred[i] = (y == 15 && x == 3) ? 2 : 0; /* a one-pixel lesion */
    }
    char path[600], msg[700];
    snprintf(path, sizeof path, "%s/ov.png", root);
    sl_status st = slb_overlay_write(path, img, tgt, pred, h, w, 3, msg, sizeof msg);
    CHECK(st == SL_OK, "overlay: %s", msg);
    sl_array a = SL_ARRAY_EMPTY;
    st = sl_png_read(path, &a, msg, sizeof msg);
    const int k = 256 / 20; /* the upscale factor for a 20-pixel side */
    CHECK(st == SL_OK && a.ndim == 2 && a.shape[0] == h * k && a.shape[1] == w * k, "overlay size %lld x %lld",
          (long long)a.shape[0], (long long)a.shape[1]);
    sl_array_free(&a);
    unsigned char t1[3], p1[3];
    slb_overlay_colour(1, 0, t1);
    slb_overlay_colour(1, 1, p1);
    CHECK(memcmp(t1, p1, 3) != 0, "target and prediction colours differ");
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/sl_test_bench_XXXXXX");
    if (!mkdtemp(root)) return 1;
    test_preset();
    test_text();
    sl_bench_preset *p = NULL;
    char msg[700];
    if (sl_bench_preset_parse(&p, base_preset, msg, sizeof msg) == SL_OK) {
        test_store(p);
        test_tables(p);
        sl_bench_preset_free(p);
    }
    test_overlay();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return test_report("bench");
}
