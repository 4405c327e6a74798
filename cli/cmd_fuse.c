/*
 * segloss fuse [--method staple|majority] [--mode multiclass|binary]
 *              R1 R2 ... --out F [--json J] [--max-iter N] [--tol T]
 *              [--init P] [--threads N]
 *
 * Fuses the label maps of several raters into one (majority vote or
 * STAPLE) and writes, next to it, a JSON with what was estimated: each
 * rater's sensitivity and specificity per label (STAPLE), the prior, the
 * iterations. Thin over sl_image_read / sl_fuse / sl_image_write.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "cli_util.h"
#include "commands.h"
#include "outfile.h"
#include "segloss/metrics.h"

static const char *usage_text =
    "usage: segloss fuse R1 R2 [R3 ...] --out F [options]\n"
    "\n"
    "Fuses label maps of the same image by several raters (.nii, .nii.gz or .npy; one\n"
    "grid: the same shape and spacing) into one label map F, and writes a JSON next to\n"
    "it (F without its extension + .json, or --json J) with what was estimated.\n"
    "\n"
    "  --method staple     (default) STAPLE, Warfield, Zou & Wells, IEEE TMI 2004:\n"
    "                      expectation-maximisation of the true labelling and of each\n"
    "                      rater's performance; the JSON gives every rater's\n"
    "                      sensitivity P(says L | truth L) and specificity\n"
    "                      P(does not say L | truth not L) per label\n"
    "  --method majority   the label most raters give (the smallest label on ties)\n"
    "  --mode multiclass   (default) one EM over all labels (confusion matrices)\n"
    "  --mode binary       binary STAPLE for each non-zero label on its own; a voxel\n"
    "                      takes the label whose posterior exceeds 0.5 (the largest)\n"
    "  --max-iter N        EM iterations at most (default 200)\n"
    "  --tol T             stop when no estimate moves by more than T (default 1e-8)\n"
    "  --init P            initial sensitivity and specificity (default 0.99)\n"
    "  --threads N         threads (default: all cores; results do not depend on N)\n"
    "\n"
    "F gets the smallest integer dtype that holds every label (uint8, int16, int32,\n"
    "int64) and, for NIfTI, R1's geometry. Nothing is written when anything fails.\n"
    "Exit codes: 0 ok, 1 a rater could not be read or the raters do not match, 2 bad usage.\n";

#define MAX_RATERS 64

typedef struct {
    const char *rater[MAX_RATERS];
    int nraters;
    const char *out, *json;
    sl_fuse_opts fo;
} fuse_args;

static int parse(int argc, char **argv, fuse_args *o)
{
    memset(o, 0, sizeof *o);
    o->fo = (sl_fuse_opts)SL_FUSE_OPTS_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v, *s;
        if (cli_opt(a, "--method", &v)) {
            if (!(s = cli_value("fuse", argc, argv, &i, v))) return EXIT_USAGE;
            if (sl_fuse_method_parse(s, &o->fo.method) != SL_OK)
                return cli_fail("fuse", EXIT_USAGE, "--method expects staple or majority, got '%s'", s);
        } else if (cli_opt(a, "--mode", &v)) {
            if (!(s = cli_value("fuse", argc, argv, &i, v))) return EXIT_USAGE;
            if (sl_staple_mode_parse(s, &o->fo.mode) != SL_OK)
                return cli_fail("fuse", EXIT_USAGE, "--mode expects multiclass or binary, got '%s'", s);
        } else if (cli_opt(a, "--out", &v)) {
            if (!(o->out = cli_value("fuse", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--json", &v)) {
            if (!(o->json = cli_value("fuse", argc, argv, &i, v))) return EXIT_USAGE;
        } else if (cli_opt(a, "--max-iter", &v) || cli_opt(a, "--threads", &v)) {
            int is_iter = !strncmp(a, "--max-iter", 10);
            long t;
            if (!(s = cli_value("fuse", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &t) || t < (is_iter ? 1 : 0) || t > (is_iter ? 100000 : 1024))
                return cli_fail("fuse", EXIT_USAGE, "%s expects an integer in [%d, %d], got '%s'",
                                is_iter ? "--max-iter" : "--threads", is_iter ? 1 : 0, is_iter ? 100000 : 1024, s);
            if (is_iter) o->fo.max_iter = (int)t;
            else o->fo.threads = (int)t;
        } else if (cli_opt(a, "--tol", &v)) {
            if (!(s = cli_value("fuse", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_double(s, &o->fo.tol) || !(o->fo.tol >= 0) || !isfinite(o->fo.tol))
                return cli_fail("fuse", EXIT_USAGE, "--tol expects a number >= 0, got '%s'", s);
        } else if (cli_opt(a, "--init", &v)) {
            if (!(s = cli_value("fuse", argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_double(s, &o->fo.init) || !(o->fo.init > 0 && o->fo.init < 1))
                return cli_fail("fuse", EXIT_USAGE, "--init expects a number in (0, 1), got '%s'", s);
        } else if (a[0] == '-' && a[1] != 0) {
            return cli_fail("fuse", EXIT_USAGE, "unknown option '%s' (see segloss fuse --help)", a);
        } else {
            if (o->nraters == MAX_RATERS) return cli_fail("fuse", EXIT_USAGE, "at most %d raters", MAX_RATERS);
            o->rater[o->nraters++] = a;
        }
    }
    if (o->nraters < 2) return cli_fail("fuse", EXIT_USAGE, "expected at least two rater files (see segloss fuse --help)");
    if (!o->out) return cli_fail("fuse", EXIT_USAGE, "--out F is required");
    for (int j = 0; j < o->nraters; j++)
        if (sl_format_from_path(o->rater[j]) == SL_FORMAT_UNKNOWN)
            return cli_fail("fuse", EXIT_USAGE, "'%s': unknown image format (expected .nii, .nii.gz or .npy)",
                            o->rater[j]);
    if (sl_format_from_path(o->out) == SL_FORMAT_UNKNOWN)
        return cli_fail("fuse", EXIT_USAGE, "'%s': unknown image format (expected .nii, .nii.gz or .npy)", o->out);
    return 0;
}

/* F without its image extension, + ".json" (malloc'ed). */
static char *json_beside(const char *out)
{
    size_t n = strlen(out);
    static const char *ext[] = {".nii.gz", ".nii", ".npy"};
    for (int k = 0; k < 3; k++) {
        size_t e = strlen(ext[k]);
        if (n > e && !strcasecmp(out + n - e, ext[k])) {
            n -= e;
            break;
        }
    }
    char *p = malloc(n + 6);
    if (p) {
        memcpy(p, out, n);
        memcpy(p + n, ".json", 6);
    }
    return p;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else fputs("null", f);
}

static int write_json(FILE *f, const fuse_args *o, const sl_fuse_result *r)
{
    int staple = o->fo.method == SL_FUSE_STAPLE;
    fprintf(f, "{\n  \"method\": \"%s\",\n", staple ? "staple" : "majority");
    if (staple) {
        fprintf(f, "  \"mode\": \"%s\",\n  \"reference\": \"Warfield, Zou & Wells, IEEE TMI 23(7) 2004\",\n",
                o->fo.mode == SL_STAPLE_BINARY ? "binary" : "multiclass");
        fprintf(f, "  \"iterations\": %d,\n  \"converged\": %s,\n  \"max_iter\": %d,\n  \"tol\": ", r->iterations,
                r->converged ? "true" : "false", o->fo.max_iter);
        json_num(f, o->fo.tol);
        fputs(",\n  \"init\": ", f);
        json_num(f, o->fo.init);
        fputs(",\n", f);
    }
    fputs("  \"labels\": [", f);
    for (int k = 0; k < r->nlabels; k++) fprintf(f, "%s%lld", k ? ", " : "", (long long)r->labels[k]);
    fputs("],\n  \"prior\": [", f);
    for (int k = 0; k < r->nlabels; k++) {
        if (k) fputs(", ", f);
        json_num(f, r->prior[k]);
    }
    fputs("],\n  \"raters\": [\n", f);
    for (int j = 0; j < r->nraters; j++) {
        fputs("    {\"file\": ", f);
        json_str(f, o->rater[j]);
        if (staple) {
            const char *key[2] = {"sensitivity", "specificity"};
            const double *val[2] = {r->sensitivity, r->specificity};
            for (int t = 0; t < 2; t++) {
                fprintf(f, ", \"%s\": {", key[t]);
                for (int k = 0; k < r->nlabels; k++) {
                    fprintf(f, "%s\"%lld\": ", k ? ", " : "", (long long)r->labels[k]);
                    json_num(f, val[t][j * r->nlabels + k]);
                }
                fputc('}', f);
            }
        }
        fprintf(f, "}%s\n", j + 1 < r->nraters ? "," : "");
    }
    fputs("  ]\n}\n", f);
    return ferror(f) ? -1 : 0;
}

/* The smallest of uint8, int16, int32, int64 that holds lo..hi. */
static sl_dtype fit_dtype(int64_t lo, int64_t hi)
{
    if (lo >= 0 && hi <= 255) return SL_DT_U8;
    if (lo >= -32768 && hi <= 32767) return SL_DT_I16;
    if (lo >= INT32_MIN && hi <= INT32_MAX) return SL_DT_I32;
    return SL_DT_I64;
}

int cmd_fuse(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
    fuse_args o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    char msg[1024];
    sl_array in[MAX_RATERS];
    sl_image_info info[MAX_RATERS];
    sl_labelmap maps[MAX_RATERS];
    sl_array out = SL_ARRAY_EMPTY;
    sl_fuse_result res = SL_FUSE_RESULT_EMPTY;
    int64_t *fused = NULL;
    char *json = o.json ? NULL : json_beside(o.out);
    const char *json_path = o.json ? o.json : json;
    int nread = 0;
    rc = EXIT_WORK;
    if (!json_path) {
        cli_fail("fuse", EXIT_WORK, "out of memory");
        goto done;
    }
    for (int j = 0; j < o.nraters; j++) {
        in[j] = (sl_array)SL_ARRAY_EMPTY;
        if (sl_image_read(o.rater[j], &in[j], &info[j], msg, sizeof msg) != SL_OK) {
            cli_fail("fuse", EXIT_WORK, "%s", msg);
            goto done;
        }
        nread = j + 1;
        /* one grid: the same shape, and the same spacing where both files state one */
        int same = in[j].ndim == in[0].ndim;
        for (int a = 0; same && a < in[0].ndim; a++) {
            same = in[j].shape[a] == in[0].shape[a];
            if (same && info[j].has_spacing && info[0].has_spacing)
                same = fabs(info[j].spacing[a] - info[0].spacing[a]) <= 1e-5 * fabs(info[0].spacing[a]);
        }
        if (!same) {
            char a0[96] = "", aj[96] = "";
            for (int a = 0; a < in[0].ndim; a++)
                snprintf(a0 + strlen(a0), sizeof a0 - strlen(a0), "%s%lld@%gmm", a ? "x" : "", (long long)in[0].shape[a],
                         info[0].spacing[a]);
            for (int a = 0; a < in[j].ndim; a++)
                snprintf(aj + strlen(aj), sizeof aj - strlen(aj), "%s%lld@%gmm", a ? "x" : "", (long long)in[j].shape[a],
                         info[j].spacing[a]);
            cli_fail("fuse", EXIT_WORK, "raters on different grids: %s is %s, %s is %s", o.rater[0], a0, o.rater[j], aj);
            goto done;
        }
        maps[j].data = in[j].data;
        maps[j].dtype = in[j].dtype;
    }
    int64_t n = sl_array_count(&in[0]);
    fused = malloc((size_t)(n > 0 ? n : 1) * sizeof *fused);
    if (!fused) {
        cli_fail("fuse", EXIT_WORK, "out of memory for %lld voxels", (long long)n);
        goto done;
    }
    if (sl_fuse(maps, o.nraters, n, &o.fo, fused, &res, msg, sizeof msg) != SL_OK) {
        cli_fail("fuse", EXIT_WORK, "%s", msg);
        goto done;
    }
    /* the JSON first, to its (atomic) output; the image (written atomically
     * by sl_image_write); then the JSON committed into place */
    sl_out *jo = NULL;
    if (sl_out_open(json_path, &jo, msg, sizeof msg) != SL_OK) {
        cli_fail("fuse", EXIT_WORK, "%s", msg);
        goto done;
    }
    if (write_json(sl_out_file(jo), &o, &res)) {
        sl_out_abort(jo);
        cli_fail("fuse", EXIT_WORK, "cannot write '%s'", json_path);
        goto done;
    }
    sl_dtype dt = fit_dtype(res.labels[0], res.labels[res.nlabels - 1]);
    if (sl_array_alloc(&out, dt, in[0].ndim, in[0].shape) != SL_OK) {
        sl_out_abort(jo);
        cli_fail("fuse", EXIT_WORK, "out of memory for the fused map");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) switch (dt) {
        case SL_DT_U8: ((uint8_t *)out.data)[i] = (uint8_t)fused[i]; break;
        case SL_DT_I16: ((int16_t *)out.data)[i] = (int16_t)fused[i]; break;
        case SL_DT_I32: ((int32_t *)out.data)[i] = (int32_t)fused[i]; break;
        default: ((int64_t *)out.data)[i] = fused[i]; break;
        }
    if (sl_image_write(o.out, &out, info[0].spacing, &info[0], msg, sizeof msg) != SL_OK) {
        sl_out_abort(jo);
        cli_fail("fuse", EXIT_WORK, "%s", msg);
        goto done;
    }
    if (sl_out_commit(jo, msg, sizeof msg) != SL_OK) {
        cli_fail("fuse", EXIT_WORK, "%s", msg);
        goto done;
    }
    if (o.fo.method == SL_FUSE_STAPLE && !res.converged)
        fprintf(stderr, "segloss fuse: warning: STAPLE did not converge in %d iterations (--max-iter)\n",
                o.fo.max_iter);
    rc = 0;
done:
    for (int j = 0; j < nread; j++) sl_array_free(&in[j]);
    sl_array_free(&out);
    sl_fuse_result_free(&res);
    free(fused);
    free(json);
    return rc;
}
