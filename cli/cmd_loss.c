/*
 * segloss loss SPEC --input X.npy --target Y.npy [--grad G.npy] ...
 *
 * The bridge to NumPy/PyTorch pipelines: evaluates a loss spec on arrays
 * saved with np.save, prints {"loss": ..., "terms": [...]} on stdout, and
 * writes the gradient with respect to the input as float32 .npy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli_util.h"
#include "commands.h"
#include "segloss/loss.h"

static const char *usage_text =
    "usage: segloss loss SPEC --input X.npy --target Y.npy [options]\n"
    "       segloss loss --list\n"
    "\n"
    "Evaluates the loss SPEC (e.g. 'dice+ce', '0.5*dice(batch=true)+0.5*focal(gamma=2)')\n"
    "and prints {\"loss\": value, \"terms\": [...]} as JSON on stdout.\n"
    "\n"
    "  --input X.npy     scores, float32 (N, C, H, W) or (N, C, D, H, W); logits unless\n"
    "                    the spec says activation=none\n"
    "  --target Y.npy    label map (N, H, W) / (N, D, H, W) of any integer dtype, or a\n"
    "                    float one-hot/soft target with the shape of X\n"
    "  --grad G.npy      write d(loss)/d(X), float32, shape of X\n"
    "  --spacing Z,Y,X   voxel size per spatial axis in mm (boundary losses), default 1\n"
    "  --dist D.npy      precomputed signed distance maps (N, C, spatial...) used as phi\n"
    "                    by the boundary loss (the other distance losses compute theirs)\n"
    "  --mask M.npy      per-voxel weights (N, 1, spatial...) or (N, spatial...), any\n"
    "                    numeric dtype, finite and >= 0: 0 excludes a voxel from every\n"
    "                    statistic, w weights it (docs/losses.md#masks)\n"
    "  --training        update stateful losses (adaptive_dice) as a training step would\n"
    "  --reduction none  per-sample values (MONAI/smp reduction=\"none\"): writes the\n"
    "                    matrix M, (N, C) for per-class losses, else (N, 1), float64, to\n"
    "  --values V.npy    (needed with --reduction none); --grad is then d(Σ U·M)/d(X)\n"
    "  --upstream U.npy  the weights U (N, K) of that sum, float; default all ones\n"
    "  --threads N       threads (default: all cores)\n"
    "  --list            list every loss with its keys and defaults\n"
    "\n"
    "Exit codes: 0 ok, 1 the loss could not be computed, 2 bad usage.\n";

static int list_losses(void)
{
    char keys[2048];
    const char *family = "";
    for (int i = 0; i < sl_loss_catalogue_size(); i++) {
        const sl_loss_info *info = sl_loss_catalogue(i);
        if (strcmp(family, info->family) != 0) {
            printf("%s%s-based:\n", i ? "\n" : "", info->family);
            family = info->family;
        }
        sl_loss_describe_keys(info->name, keys, sizeof keys);
        printf("  %-15s %s\n", info->name, info->summary);
        printf("  %-15s keys: %s\n", "", keys[0] ? keys : "(none)");
        printf("  %-15s ref:  %s\n", "", info->reference);
    }
    return 0;
}

typedef struct {
    const char *spec, *input, *target, *grad, *dist, *mask;
    double spacing[3];
    int nspacing, threads, training;
    int none;                       /* --reduction none */
    const char *values, *upstream;  /* with --reduction none */
} loss_opts;

static int parse(int argc, char **argv, loss_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_opt(a, "--input", &v)) {
            if (!(o->input = cli_value("loss", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--target", &v)) {
            if (!(o->target = cli_value("loss", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--grad", &v)) {
            if (!(o->grad = cli_value("loss", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--dist", &v)) {
            if (!(o->dist = cli_value("loss", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--reduction", &v)) {
            const char *s = cli_value("loss", argc, argv, &i, v);
            if (!s) return EXIT_USAGE;
            if (strcmp(s, "none") && strcmp(s, "mean"))
                return cli_fail("loss", EXIT_USAGE, "--reduction expects mean|none, got '%s'", s);
            o->none = !strcmp(s, "none");
        } else if (cli_opt(a, "--values", &v)) {
            if (!(o->values = cli_value("loss", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--upstream", &v)) {
            if (!(o->upstream = cli_value("loss", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--mask", &v)) {
            if (!(o->mask = cli_value("loss", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--spacing", &v)) {
            const char *s = cli_value("loss", argc, argv, &i, v);
            if (!s) return EXIT_USAGE;
            o->nspacing = cli_parse_list(s, o->spacing, 3);
            if (o->nspacing < 1) return cli_fail("loss", EXIT_USAGE, "--spacing expects 1 to 3 numbers, got '%s'", s);
            for (int k = 0; k < o->nspacing; k++)
                if (!(o->spacing[k] > 0))
                    return cli_fail("loss", EXIT_USAGE, "--spacing values must be positive, got '%s'", s);
        } else if (cli_opt(a, "--threads", &v)) {
            const char *s = cli_value("loss", argc, argv, &i, v);
            long t;
            if (!s) return EXIT_USAGE;
            if (!cli_parse_int(s, &t) || t < 0 || t > 1024)
                return cli_fail("loss", EXIT_USAGE, "--threads expects an integer in [0, 1024], got '%s'", s);
            o->threads = (int)t;
        } else if (!strcmp(a, "--training")) {
            o->training = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            return cli_fail("loss", EXIT_USAGE, "unknown option '%s' (see segloss loss --help)", a);
        } else if (!o->spec) {
            o->spec = a;
        } else {
            return cli_fail("loss", EXIT_USAGE, "unexpected argument '%s' (one spec only; quote it)", a);
        }
    }
    if (!o->spec) return cli_fail("loss", EXIT_USAGE, "missing the loss SPEC (see segloss loss --help)");
    if (!o->input) return cli_fail("loss", EXIT_USAGE, "missing --input X.npy");
    if (!o->target) return cli_fail("loss", EXIT_USAGE, "missing --target Y.npy");
    if (!o->none && (o->values || o->upstream))
        return cli_fail("loss", EXIT_USAGE, "%s needs --reduction none", o->values ? "--values" : "--upstream");
    if (o->none && !o->values) return cli_fail("loss", EXIT_USAGE, "--reduction none needs --values V.npy");
    return 0;
}

static void shape_str(const sl_array *a, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < a->ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)a->shape[i]);
    if (n < len) snprintf(buf + n, len - n, ")");
}

/* Maps PATH (segloss/io.h, sl_npy_map: the data stays in the page cache, no copy); 0, or the exit code after one
 * line. */
static int map_npy(const char *path, sl_npy_mapped *m)
{
    char msg[512];
    if (sl_npy_map(path, m, msg, sizeof msg) != SL_OK) return cli_fail("loss", EXIT_WORK, "%s", msg);
    return 0;
}

/* *out = the mapped array itself when it is float32, else a float32 copy of it. */
static sl_status as_f32(const sl_npy_mapped *m, sl_array *out)
{
    if (m->array.dtype == SL_DT_F32) {
        *out = m->array;
        return SL_OK;
    }
    return sl_array_to_f32(&m->array, out);
}

/* The files a loss reads, mapped, and the arrays the loss sees (views of the mappings, or converted copies). */
typedef struct {
    sl_npy_mapped file[4]; /* input, target, dist, mask */
    sl_array x, y, d, m;
} loss_inputs;

static void inputs_free(loss_inputs *in)
{
    sl_array *arr[4] = {&in->x, &in->y, &in->d, &in->m};
    for (int i = 0; i < 4; i++) {
        if (arr[i]->data != in->file[i].array.data) sl_array_free(arr[i]);
        sl_npy_unmap(&in->file[i]);
    }
}

/* Loads the mask M: (N, 1, spatial...) or (N, spatial...), as float32. */
static int load_mask(const char *path, const sl_array *x, sl_npy_mapped *file, sl_array *m)
{
    char s1[128], s2[128];
    if (map_npy(path, file)) return EXIT_WORK;
    const sl_array *raw = &file->array;
    shape_str(x, s1, sizeof s1);
    shape_str(raw, s2, sizeof s2);
    int with_c = raw->ndim == x->ndim, ok = (with_c || raw->ndim == x->ndim - 1) && raw->shape[0] == x->shape[0];
    if (ok && with_c) ok = raw->shape[1] == 1;
    for (int i = 1 + with_c; ok && i < raw->ndim; i++) ok = raw->shape[i] == x->shape[i + 1 - with_c];
    if (!ok)
        return cli_fail("loss", EXIT_WORK, "--mask %s: shape %s does not match scores %s (expected (N, 1, spatial...))",
                        path, s2, s1);
    sl_status st = as_f32(file, m);
    if (st != SL_OK) return cli_fail("loss", EXIT_WORK, "--mask %s: %s", path, sl_strerror(st));
    return 0;
}

/* Loads X, Y (and D) and checks their shapes against each other. */
static int load_inputs(const loss_opts *o, loss_inputs *in, sl_dims *dims, sl_target *tg)
{
    char s1[128], s2[128];
    if (map_npy(o->input, &in->file[0])) return EXIT_WORK;
    const sl_array *raw = &in->file[0].array;
    if (raw->dtype != SL_DT_F32 && raw->dtype != SL_DT_F64)
        return cli_fail("loss", EXIT_WORK, "%s: scores must be float32 (or float64), got %s", o->input,
                        sl_dtype_name(raw->dtype));
    if (raw->ndim < 3 || raw->ndim > 5) {
        shape_str(raw, s1, sizeof s1);
        return cli_fail("loss", EXIT_WORK, "%s: scores must be (N, C, H, W) or (N, C, D, H, W), got shape %s", o->input,
                        s1);
    }
    sl_status st = as_f32(&in->file[0], &in->x);
    if (st != SL_OK) return cli_fail("loss", EXIT_WORK, "%s: %s", o->input, sl_strerror(st));
    const sl_array *x = &in->x;
    dims->n = x->shape[0];
    dims->c = x->shape[1];
    dims->spatial_ndim = x->ndim - 2;
    for (int i = 0; i < dims->spatial_ndim; i++) dims->spatial[i] = x->shape[2 + i];
    if (sl_dims_check(dims) != SL_OK) {
        shape_str(x, s1, sizeof s1);
        return cli_fail("loss", EXIT_WORK, "%s: invalid score shape %s (every axis must be >= 1)", o->input, s1);
    }

    if (map_npy(o->target, &in->file[1])) return EXIT_WORK;
    raw = &in->file[1].array;
    shape_str(x, s1, sizeof s1);
    shape_str(raw, s2, sizeof s2);
    if (sl_dtype_is_integer(raw->dtype)) {
        int ok = raw->ndim == x->ndim - 1 && raw->shape[0] == x->shape[0];
        for (int i = 1; ok && i < raw->ndim; i++) ok = raw->shape[i] == x->shape[i + 1];
        if (!ok)
            return cli_fail("loss", EXIT_WORK, "target label map %s does not match scores %s (expected (N, spatial...))",
                            s2, s1);
        /* the library takes int32 labels (read only): an int32 file is used in place, any other dtype converted */
        if (raw->dtype == SL_DT_I32) in->y = *raw;
        else st = sl_array_to_i32(raw, &in->y);
        if (st == SL_ERANGE) return cli_fail("loss", EXIT_WORK, "%s: a label does not fit in int32", o->target);
        if (st != SL_OK) return cli_fail("loss", EXIT_WORK, "%s: %s", o->target, sl_strerror(st));
        tg->kind = SL_TARGET_LABELS;
        tg->labels = in->y.data;
    } else {
        int ok = raw->ndim == x->ndim;
        for (int i = 0; ok && i < raw->ndim; i++) ok = raw->shape[i] == x->shape[i];
        if (!ok) {
            int looks_like_labels = raw->ndim == x->ndim - 1;
            return cli_fail("loss", EXIT_WORK, "float target %s does not match scores %s%s", s2, s1,
                            looks_like_labels ? " (a label map must have an integer dtype: save it with .astype(np.int64))" : "");
        }
        st = as_f32(&in->file[1], &in->y);
        if (st != SL_OK) return cli_fail("loss", EXIT_WORK, "%s: %s", o->target, sl_strerror(st));
        tg->kind = SL_TARGET_SOFT;
        tg->soft = in->y.data;
    }
    if (o->dist) {
        if (map_npy(o->dist, &in->file[2])) return EXIT_WORK;
        raw = &in->file[2].array;
        int ok = raw->ndim == x->ndim;
        for (int i = 0; ok && i < raw->ndim; i++) ok = raw->shape[i] == x->shape[i];
        shape_str(raw, s2, sizeof s2);
        if (!ok || (raw->dtype != SL_DT_F32 && raw->dtype != SL_DT_F64))
            return cli_fail("loss", EXIT_WORK, "--dist must be float with the shape of the scores %s, got %s", s1, s2);
        st = as_f32(&in->file[2], &in->d);
        if (st != SL_OK) return cli_fail("loss", EXIT_WORK, "%s: %s", o->dist, sl_strerror(st));
    }
    return 0;
}

/* JSON has no inf/nan; the library refuses non-finite losses, so %.17g is safe. */
static void print_result(const sl_loss *loss, double value)
{
    printf("{\"loss\": %.17g, \"terms\": [", value);
    for (int i = 0; i < sl_loss_num_terms(loss); i++)
        printf("%s{\"name\": \"%s\", \"weight\": %.17g, \"value\": %.17g}", i ? ", " : "", sl_loss_term_name(loss, i),
               sl_loss_term_weight(loss, i), sl_loss_term_value(loss, i));
    printf("]}\n");
}

/* --reduction none: M (N, K) to --values, d(Σ U·M)/dX to --grad (g allocated when asked). */
static int run_none(const loss_opts *o, sl_loss *loss, const sl_array *x, const sl_dims *dims, const sl_target *tg,
                    const sl_forward_opts *fo, sl_array *g)
{
    char msg[512];
    int64_t K;
    if (sl_loss_none_columns(loss, dims, &K, msg, sizeof msg) != SL_OK) return cli_fail("loss", EXIT_WORK, "%s", msg);
    const int64_t vshape[2] = {dims->n, K};
    sl_array v = SL_ARRAY_EMPTY, u = SL_ARRAY_EMPTY, raw = SL_ARRAY_EMPTY;
    int rc = 0;
    if (sl_array_alloc(&v, SL_DT_F64, 2, vshape) != SL_OK) return cli_fail("loss", EXIT_WORK, "out of memory");
    if (o->upstream) {
        if (!cli_load_npy("loss", o->upstream, &raw)) rc = EXIT_WORK;
        else if (raw.ndim != 2 || raw.shape[0] != dims->n || raw.shape[1] != K ||
                 (raw.dtype != SL_DT_F64 && raw.dtype != SL_DT_F32))
            rc = cli_fail("loss", EXIT_WORK, "--upstream %s: must be float (N, K) = (%lld, %lld), the shape of the values",
                          o->upstream, (long long)dims->n, (long long)K);
        else if (sl_array_alloc(&u, SL_DT_F64, 2, vshape) != SL_OK)
            rc = cli_fail("loss", EXIT_WORK, "out of memory");
        else
            for (int64_t i = 0; i < dims->n * K; i++)
                ((double *)u.data)[i] = raw.dtype == SL_DT_F64 ? ((const double *)raw.data)[i]
                                                               : (double)((const float *)raw.data)[i];
    }
    if (!rc) {
        sl_status st = sl_loss_forward_none(loss, x->data, dims, tg, fo, v.data, u.data, g->data, msg, sizeof msg);
        if (st != SL_OK) rc = cli_fail("loss", EXIT_WORK, "%s", msg);
        else if (sl_npy_write(o->values, &v, msg, sizeof msg) != SL_OK) rc = cli_fail("loss", EXIT_WORK, "%s", msg);
        else if (o->grad && sl_npy_write(o->grad, g, msg, sizeof msg) != SL_OK) rc = cli_fail("loss", EXIT_WORK, "%s", msg);
        else printf("{\"reduction\": \"none\", \"shape\": [%lld, %lld]}\n", (long long)dims->n, (long long)K);
    }
    sl_array_free(&v);
    sl_array_free(&u);
    sl_array_free(&raw);
    return rc;
}

int cmd_loss(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--list")) return list_losses();
    }
    loss_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;

    char msg[512];
    sl_loss *loss = NULL;
    if (sl_loss_create(o.spec, &loss, msg, sizeof msg) != SL_OK) return cli_fail("loss", EXIT_USAGE, "%s", msg);

    loss_inputs in = {0};
    sl_array g = SL_ARRAY_EMPTY;
    const sl_array *x = &in.x;
    sl_dims dims = {0};
    sl_target tg = {0};
    rc = load_inputs(&o, &in, &dims, &tg);
    if (!rc && o.mask && !(rc = load_mask(o.mask, x, &in.file[3], &in.m))) tg.mask = in.m.data;
    if (!rc && o.nspacing && o.nspacing != dims.spatial_ndim)
        rc = cli_fail("loss", EXIT_USAGE, "--spacing has %d values for %d spatial axes", o.nspacing, dims.spatial_ndim);
    if (!rc && o.grad && sl_array_alloc(&g, SL_DT_F32, x->ndim, x->shape) != SL_OK)
        rc = cli_fail("loss", EXIT_WORK, "out of memory for the gradient");
    if (!rc) {
        sl_forward_opts fo = SL_FORWARD_OPTS_DEFAULT;
        for (int i = 0; i < o.nspacing; i++) fo.spacing[i] = o.spacing[i];
        fo.dist = in.d.data;
        fo.threads = o.threads;
        fo.training = o.training;
        double value;
        sl_status st = SL_OK;
        if (o.none) rc = run_none(&o, loss, x, &dims, &tg, &fo, &g);
        else st = sl_loss_forward(loss, x->data, &dims, &tg, &fo, &value, g.data, msg, sizeof msg);
        if (o.none) {
            /* run_none wrote or reported everything */
        } else if (st != SL_OK) {
            rc = cli_fail("loss", EXIT_WORK, "%s", msg);
        } else if (o.grad && sl_npy_write(o.grad, &g, msg, sizeof msg) != SL_OK) {
            rc = cli_fail("loss", EXIT_WORK, "%s", msg);
        } else {
            print_result(loss, value);
        }
    }
    inputs_free(&in);
    sl_array_free(&g);
    sl_loss_free(loss);
    return rc;
}
