/*
 * segloss train --out DIR [options]
 *
 * Trains the U-Net with a loss spec or schedule on a data source and
 * leaves config.json, log.csv, model.bin and metrics.json in DIR
 * (docs/train.md). Thin over sl_train_run; this file parses options,
 * shows progress (a bar on a terminal, one line per epoch otherwise) and
 * turns Ctrl-C into a clean stop at the last checkpoint.
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, sigaction */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli_util.h"
#include "commands.h"
#include "segloss/train.h"

static const char *usage_text =
    "usage: segloss train --out DIR [options]\n"
    "\n"
    "Trains a 2-D U-Net (3-D on a volume source with --patch D,H,W) with a loss (or a\n"
    "loss schedule) and tests it. DIR receives config.json, log.csv (per epoch),\n"
    "model.bin, metrics.json (test metrics), and checkpoint.bin while the run is\n"
    "unfinished. The defaults train phantom 128x128\n"
    "in 12 epochs x 30 steps x batch 8 (about 90 CPU-seconds, a minute on 2 free\n"
    "cores; docs/train.md has the measurements).\n"
    "\n"
    "data\n"
    "  --data SRC             phantom | phantom3d | colin | colin3d | nifti:DIR (phantom)\n"
    "  --size H,W             sample size (phantom: generated at it; colin/nifti: slices\n"
    "                         (D,H,W: the phantom3d volume, 64,64,64 by default)\n"
    "                         brought to it by the resize option); default: the source's\n"
    "  --ratio R              phantom class ratio, background:class1:... (100:10:1)\n"
    "  --small-fraction F     phantom: share of the smallest class, others rescaled (0 = ratio)\n"
    "  --n-train N, --n-val N, --n-test N   phantom split sizes (200, 50, 50)\n"
    "  --data-seed S          seed of the data (phantom images, nifti split) (0)\n"
    "  --data-opt LIST        any data option, key=value,... (docs/data.md), e.g.\n"
    "                         noise=0.8,axis=y,norm=percentile; repeatable\n"
    "loss\n"
    "  --loss SPEC            a loss spec (dice+ce) or a schedule with stages\n"
    "                         '0:ce; 5:dice+ce' and/or '| ramp(...)' (dice+ce)\n"
    "  --ramp[=KEYS]          add Kervadec's weight ramp to the (last) stage:\n"
    "                         '| ramp' or '| ramp(KEYS)', e.g. --ramp=start=0.05,step=0.05\n"
    "network\n"
    "  --depth N              encoder stages (4); sides must divide by 2^(N-1)\n"
    "  --base-channels N      channels of the first stage, doubled per stage (8)\n"
    "  --max-channels N       cap on a stage's channels, 0 = none (0)\n"
    "  --norm KIND            instance | batch | none (instance)\n"
    "  --down KIND            maxpool | strided (maxpool)\n"
    "  --deep-supervision     loss on every decoder output, weights 2^-i normalised\n"
    "  --anisotropic MODE     auto | off: for volumes whose voxel spacing differs between\n"
    "                         axes, auto plans the pooling/kernels by nnU-Net's rule\n"
    "                         (config.json dataset.plan); off keeps the isotropic net (auto)\n"
    "optimisation\n"
    "  --epochs N             (12)\n"
    "  --steps-per-epoch N    (30)\n"
    "  --batch B              (8)\n"
    "  --patch H,W            training patch; default: the sample size rounded down to a\n"
    "                         multiple of 2^(depth-1), at most 128 a side\n"
    "  --patch D,H,W          3-D patch for a volume source (phantom3d, colin3d, or nifti:DIR,\n"
    "                         which then trains on whole volumes with their spacing; default:\n"
    "                         the volume rounded down likewise, at most 64 a side; shorter\n"
    "                         volumes are zero-padded, centred)\n"
    "  --optimizer KIND       adam | adamw | sgd (adam; sgd uses Nesterov momentum)\n"
    "  --lr LR                peak (onecycle), initial (poly) or constant rate (0.003)\n"
    "  --schedule KIND        onecycle | poly | constant (onecycle)\n"
    "  --pct-start F          onecycle: share of the steps rising to the peak lr, 0 < F < 1 (0.3)\n"
    "  --weight-decay W       (0)\n"
    "  --momentum M           SGD momentum (0.99)\n"
    "  --clip-norm X          clip the gradient's global L2 norm, 0 = off (12)\n"
    "  --augment LIST         augmentations, e.g. flip,rotate,scale | default | all | none,\n"
    "                         and key=value parameters (flip,rotate,scale)\n"
    "  --fg-fraction F        share of each batch forced to hold the smallest class (0.333)\n"
    "  --seed S               weights and batches (0)\n"
    "  --threads T            threads (default: all cores; results do not depend on T)\n";

/* split in two: C11 compilers need only take 4095-character literals */
static const char *usage_run =
    "run\n"
    "  --out DIR              run folder (required)\n"
    "  --resume               continue the unfinished run in DIR from its last checkpoint;\n"
    "                         its config.json supplies every option not given\n"
    "  --force                replace a run already in DIR\n"
    "  --stop-after N         stop after N epochs of this call, as a kill would (for tests)\n"
    "  --quiet                no progress output\n"
    "  --postprocess auto|none\n"
    "                         auto: after the run, choose connected-component post-processing\n"
    "                         per class on the validation split (keep the largest component,\n"
    "                         or remove those under a size, when it raises the class's Dice)\n"
    "                         and write it to DIR/postprocess.json (none)\n"
    "\n"
    "Exit codes: 0 ok, 1 the run failed (message names why; DIR keeps its last checkpoint),\n"
    "2 bad usage.\n";

#define CMD "train"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

#define BAR_CLASSES 8

typedef struct view {
    int tty, quiet;
    int nval;                    /* classes of the last validation shown in the bar */
    double val[BAR_CLASSES];     /* its Dice per class (entry 0 unused) */
} view;

static int progress(const sl_train_progress *p, void *user)
{
    view *v = user;
    if (v->quiet) return interrupted ? 1 : 0;
    char el[32], eta[32];
    cli_fmt_time(el, sizeof el, p->seconds);
    cli_fmt_time(eta, sizeof eta, p->eta);
    if (p->event == SL_TRAIN_START) {
        if (p->resumed) fprintf(stderr, "resuming at epoch %lld of %lld\n", (long long)p->epoch + 1, (long long)p->epochs);
    } else if (p->event == SL_TRAIN_STEP && v->tty) {
        const int width = 20;
        int fill = (int)(width * p->step / (p->steps_per_epoch ? p->steps_per_epoch : 1));
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] step %lld/%lld loss %.4f lr %.2e",
                (long long)p->epoch + 1, (long long)p->epochs, bar, (long long)p->step, (long long)p->steps_per_epoch,
                p->epoch_loss, p->lr);
        if (v->nval > 1) {
            fputs(" | val dice", stderr);
            for (int c = 1; c < v->nval; c++) fprintf(stderr, " %s %.3f", p->class_names[c], v->val[c]);
        }
        fprintf(stderr, " | %s ETA %s", el, eta);
        fflush(stderr);
    } else if (p->event == SL_TRAIN_EPOCH) {
        if (v->tty) fputs("\r\033[K", stderr);
        fprintf(stderr, "epoch %lld/%lld loss %.4f", (long long)p->epoch + 1, (long long)p->epochs, p->loss);
        if (p->nterms > 1) {
            fputs(" (", stderr);
            for (int i = 0; i < p->nterms; i++)
                fprintf(stderr, "%s%s %.4f", i ? ", " : "", p->term_names[i], p->term_values[i]);
            fputc(')', stderr);
        }
        fprintf(stderr, " lr %.2e", p->lr);
        if (p->val_dice && p->num_classes > 1 && !isnan(p->val_dice[1])) {
            v->nval = p->num_classes < BAR_CLASSES ? p->num_classes : BAR_CLASSES;
            for (int c = 1; c < v->nval; c++) v->val[c] = p->val_dice[c];
            fputs(" | val dice", stderr);
            for (int c = 1; c < p->num_classes; c++) fprintf(stderr, " %s %.3f", p->class_names[c], p->val_dice[c]);
        }
        fprintf(stderr, " | %s ETA %s\n", el, eta);
    } else if (p->event == SL_TRAIN_STOP && v->tty) {
        fputs("\r\033[K", stderr);
    }
    return interrupted ? 1 : 0;
}

/* "H,W" or "D,H,W" into out[3] = (D or 0, H, W); returns the count, 0 if bad. */
static int parse_2or3(const char *s, int64_t out[3])
{
    double v[3];
    int n = cli_parse_list(s, v, 3);
    if (n != 2 && n != 3) return 0;
    out[0] = 0;
    for (int k = 0; k < n; k++) {
        if (!(v[k] >= 1 && v[k] <= (1 << 20)) || v[k] != floor(v[k])) return 0;
        out[k + 3 - n] = (int64_t)v[k];
    }
    return n;
}

static int set_text(char *dst, size_t cap, const char *s, const char *opt)
{
    if (strlen(s) >= cap) return cli_fail(CMD, EXIT_USAGE, "%s: value longer than %zu characters", opt, cap - 1);
    snprintf(dst, cap, "%s", s);
    return 0;
}

static int int_opt(const char *s, const char *opt, long lo, long hi, long *out)
{
    if (!cli_parse_int(s, out) || *out < lo || *out > hi)
        return cli_fail(CMD, EXIT_USAGE, "%s expects an integer in [%ld, %ld], got '%s'", opt, lo, hi, s);
    return 0;
}

static int num_opt(const char *s, const char *opt, double *out)
{
    if (!cli_parse_double(s, out)) return cli_fail(CMD, EXIT_USAGE, "%s expects a number, got '%s'", opt, s);
    return 0;
}

static int data_opt(sl_train_config *c, const char *key, const char *val, const char *opt)
{
    char msg[400];
    if (sl_data_opts_set(&c->data_opts, key, val, msg, sizeof msg) != SL_OK)
        return cli_fail(CMD, EXIT_USAGE, "%s: %s", opt, msg);
    return 0;
}

typedef struct flags {
    int quiet, have_out, ramp, postprocess;
    const char *ramp_keys;
} flags;

/* Applies argv onto c (which holds the defaults, or the saved config of a
 * resumed run). */
static int parse(int argc, char **argv, sl_train_config *c, flags *f)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL, *s;
        long n;
        double d;
        int rc = 0;
#define VALUE()                                          \
    do {                                                 \
        s = cli_value(CMD, argc, argv, &i, v);           \
        if (!s) return EXIT_USAGE;                       \
    } while (0)
        if (!strcmp(a, "--resume")) c->resume = 1;
        else if (!strcmp(a, "--force")) c->force = 1;
        else if (!strcmp(a, "--quiet")) f->quiet = 1;
        else if (!strcmp(a, "--deep-supervision")) c->deep_supervision = 1;
        else if (cli_opt(a, "--postprocess", &v)) {
            VALUE();
            if (strcmp(s, "auto") && strcmp(s, "none"))
                return cli_fail(CMD, EXIT_USAGE, "--postprocess expects auto or none, got '%s'", s);
            f->postprocess = !strcmp(s, "auto");
        }
        else if (cli_opt(a, "--ramp", &v)) {
            f->ramp = 1;
            f->ramp_keys = v; /* --ramp alone: the defaults */
        } else if (cli_opt(a, "--out", &v)) {
            VALUE();
            if (!*s) return cli_fail(CMD, EXIT_USAGE, "--out needs a folder name");
            rc = set_text(c->out_dir, sizeof c->out_dir, s, "--out");
            f->have_out = 1;
        } else if (cli_opt(a, "--data", &v)) {
            VALUE();
            rc = set_text(c->data, sizeof c->data, s, "--data");
        } else if (cli_opt(a, "--loss", &v)) {
            VALUE();
            rc = set_text(c->loss, sizeof c->loss, s, "--loss");
        } else if (cli_opt(a, "--augment", &v)) {
            VALUE();
            rc = set_text(c->augment, sizeof c->augment, s, "--augment");
        } else if (cli_opt(a, "--epochs", &v)) {
            VALUE();
            if (!(rc = int_opt(s, a, 1, 1000000, &n))) c->epochs = n;
        } else if (cli_opt(a, "--steps-per-epoch", &v)) {
            VALUE();
            if (!(rc = int_opt(s, a, 1, 100000000, &n))) c->steps_per_epoch = n;
        } else if (cli_opt(a, "--batch", &v)) {
            VALUE();
            if (!(rc = int_opt(s, a, 1, 4096, &n))) c->batch_size = n;
        } else if (cli_opt(a, "--depth", &v)) {
            VALUE();
            if (!(rc = int_opt(s, a, 1, 8, &n))) c->depth = (int)n;
        } else if (cli_opt(a, "--base-channels", &v)) {
            VALUE();
            if (!(rc = int_opt(s, a, 1, 4096, &n))) c->base_width = (int)n;
        } else if (cli_opt(a, "--max-channels", &v)) {
            VALUE();
            if (!(rc = int_opt(s, a, 0, 1 << 20, &n))) c->max_width = (int)n;
        } else if (cli_opt(a, "--seed", &v)) {
            VALUE();
            char *end;
            unsigned long long u = strtoull(s, &end, 10);
            if (!*s || *end || s[0] == '-') return cli_fail(CMD, EXIT_USAGE, "--seed expects an unsigned integer, got '%s'", s);
            c->seed = (uint64_t)u;
        } else if (cli_opt(a, "--threads", &v)) {
            VALUE();
            if (!(rc = int_opt(s, a, 0, 1024, &n))) c->threads = (int)n;
        } else if (cli_opt(a, "--stop-after", &v)) {
            VALUE();
            if (!(rc = int_opt(s, a, 1, 1000000, &n))) c->stop_after = n;
        } else if (cli_opt(a, "--lr", &v)) {
            VALUE();
            if (!(rc = num_opt(s, a, &d))) c->lr = d;
        } else if (cli_opt(a, "--weight-decay", &v)) {
            VALUE();
            if (!(rc = num_opt(s, a, &d))) c->weight_decay = d;
        } else if (cli_opt(a, "--momentum", &v)) {
            VALUE();
            if (!(rc = num_opt(s, a, &d))) c->momentum = d;
        } else if (cli_opt(a, "--pct-start", &v)) {
            VALUE();
            if (!(rc = num_opt(s, a, &d))) {
                if (!(d > 0 && d < 1)) return cli_fail(CMD, EXIT_USAGE, "--pct-start expects a number strictly between 0 and 1, got '%s'", s);
                c->pct_start = d;
            }
        } else if (cli_opt(a, "--anisotropic", &v)) {
            VALUE();
            if (strcmp(s, "auto") && strcmp(s, "off"))
                return cli_fail(CMD, EXIT_USAGE, "--anisotropic expects auto or off, got '%s'", s);
            c->anisotropic = strcmp(s, "auto") == 0;
        } else if (cli_opt(a, "--clip-norm", &v)) {
            VALUE();
            if (!(rc = num_opt(s, a, &d))) c->clip_norm = d;
        } else if (cli_opt(a, "--fg-fraction", &v)) {
            VALUE();
            if (!(rc = num_opt(s, a, &d))) c->fg_fraction = d;
        } else if (cli_opt(a, "--optimizer", &v)) {
            VALUE();
            if (sl_train_optim_parse(s, &c->optimizer)) return cli_fail(CMD, EXIT_USAGE, "--optimizer expects adam, adamw or sgd, got '%s'", s);
        } else if (cli_opt(a, "--schedule", &v)) {
            VALUE();
            if (sl_train_sched_parse(s, &c->lr_schedule))
                return cli_fail(CMD, EXIT_USAGE, "--schedule expects onecycle, poly or constant, got '%s'", s);
        } else if (cli_opt(a, "--norm", &v)) {
            VALUE();
            if (sl_train_norm_parse(s, &c->norm)) return cli_fail(CMD, EXIT_USAGE, "--norm expects instance, batch or none, got '%s'", s);
        } else if (cli_opt(a, "--down", &v)) {
            VALUE();
            if (sl_train_down_parse(s, &c->down)) return cli_fail(CMD, EXIT_USAGE, "--down expects maxpool or strided, got '%s'", s);
        } else if (cli_opt(a, "--size", &v)) {
            VALUE();
            int64_t p[3];
            if (!parse_2or3(s, p))
                return cli_fail(CMD, EXIT_USAGE, "--size expects H,W or D,H,W (positive integers), got '%s'", s);
            c->data_opts.depth = p[0];
            c->data_opts.height = p[1];
            c->data_opts.width = p[2];
        } else if (cli_opt(a, "--patch", &v)) {
            VALUE();
            int64_t p[3];
            if (!parse_2or3(s, p))
                return cli_fail(CMD, EXIT_USAGE, "--patch expects H,W or D,H,W (positive integers), got '%s'", s);
            c->patch_depth = p[0];
            c->patch[0] = p[1];
            c->patch[1] = p[2];
        } else if (cli_opt(a, "--ratio", &v)) {
            VALUE();
            rc = data_opt(c, "ratio", s, a);
        } else if (cli_opt(a, "--small-fraction", &v)) {
            VALUE();
            rc = data_opt(c, "small_fraction", s, a);
        } else if (cli_opt(a, "--n-train", &v)) {
            VALUE();
            rc = data_opt(c, "n_train", s, a);
        } else if (cli_opt(a, "--n-val", &v)) {
            VALUE();
            rc = data_opt(c, "n_val", s, a);
        } else if (cli_opt(a, "--n-test", &v)) {
            VALUE();
            rc = data_opt(c, "n_test", s, a);
        } else if (cli_opt(a, "--data-seed", &v)) {
            VALUE();
            rc = data_opt(c, "seed", s, a);
        } else if (cli_opt(a, "--data-opt", &v)) {
            VALUE();
            char msg[400];
            if (sl_data_opts_parse(&c->data_opts, s, msg, sizeof msg) != SL_OK)
                return cli_fail(CMD, EXIT_USAGE, "--data-opt: %s", msg);
        } else if (a[0] == '-') {
            return cli_fail(CMD, EXIT_USAGE, "unknown option '%s' (see segloss train --help)", a);
        } else {
            return cli_fail(CMD, EXIT_USAGE, "unexpected argument '%s' (options only; see segloss train --help)", a);
        }
        if (rc) return rc;
#undef VALUE
    }
    return 0;
}

/* --postprocess auto: the rule chosen on the validation split, printed. */
static int fit_postprocess(const sl_train_config *c, const sl_train_result *res, char *msg, size_t msglen)
{
    sl_postprocess *pp = malloc(sizeof *pp);
    if (!pp) return cli_fail(CMD, EXIT_WORK, "out of memory");
    if (sl_postprocess_fit_run(c->out_dir, c->threads, pp, msg, msglen) != SL_OK) {
        free(pp);
        return cli_fail(CMD, EXIT_WORK, "--postprocess: %s", msg);
    }
    printf("post-processing (validation mean Dice, %s/postprocess.json):\n", c->out_dir);
    for (int k = 1; k < pp->num_classes; k++) {
        char rule[64];
        if (pp->keep_largest[k]) snprintf(rule, sizeof rule, "keep the largest component");
        else if (pp->min_size[k] > 0) snprintf(rule, sizeof rule, "remove components < %lld voxels", (long long)pp->min_size[k]);
        else snprintf(rule, sizeof rule, "none");
        printf("  %-22s %-36s %.4f -> %.4f\n", k < res->num_classes ? res->class_names[k] : "?", rule, pp->dice_before[k],
               pp->dice_after[k]);
    }
    free(pp);
    return 0;
}

int cmd_train(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            fputs(usage_run, stdout);
            return 0;
        }
    /* pass 1: where the run lives, and whether it continues one */
    sl_train_config *c = malloc(sizeof *c);
    if (!c) return cli_fail(CMD, EXIT_WORK, "out of memory");
    sl_train_config def = SL_TRAIN_CONFIG_DEFAULT;
    *c = def;
    flags f = {0};
    int rc = parse(argc, argv, c, &f);
    if (rc) goto out;
    if (!f.have_out) {
        rc = cli_fail(CMD, EXIT_USAGE, "--out DIR is required (see segloss train --help)");
        goto out;
    }
    char msg[1024];
    if (c->resume) {
        /* pass 2 on top of the saved configuration */
        char path[SL_TRAIN_TEXT + 16];
        snprintf(path, sizeof path, "%s/config.json", c->out_dir);
        if (access(path, F_OK) == 0) {
            if (sl_train_config_load(c, path, msg, sizeof msg) != SL_OK) {
                rc = cli_fail(CMD, EXIT_WORK, "%s", msg);
                goto out;
            }
            memset(&f, 0, sizeof f);
            if ((rc = parse(argc, argv, c, &f)) != 0) goto out;
        }
    }
    if (f.ramp) {
        if (strchr(c->loss, '|') && !(c->resume && strstr(c->loss, "| ramp"))) {
            rc = cli_fail(CMD, EXIT_USAGE, "--ramp: the loss '%s' already has a ramp", c->loss);
            goto out;
        }
        if (!strchr(c->loss, '|')) {
            size_t len = strlen(c->loss);
            int w = f.ramp_keys ? snprintf(c->loss + len, sizeof c->loss - len, " | ramp(%s)", f.ramp_keys)
                                : snprintf(c->loss + len, sizeof c->loss - len, " | ramp");
            if (w < 0 || (size_t)w >= sizeof c->loss - len) {
                rc = cli_fail(CMD, EXIT_USAGE, "--ramp: the loss text is too long");
                goto out;
            }
        }
    }
    if (sl_train_config_check(c, msg, sizeof msg) != SL_OK) {
        rc = cli_fail(CMD, EXIT_USAGE, "%s", msg);
        goto out;
    }

    view vw = {isatty(fileno(stderr)), f.quiet, 0, {0}};
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    sl_train_result res = SL_TRAIN_RESULT_EMPTY;
    sl_status st = sl_train_run(c, &res, progress, &vw, msg, sizeof msg);
    sigaction(SIGINT, &old, NULL);
    if (st != SL_OK) {
        if (vw.tty && !vw.quiet) fputs("\r\033[K", stderr);
        rc = cli_fail(CMD, EXIT_WORK, "%s", msg);
        goto out;
    }
    if (!res.completed) {
        if (interrupted)
            rc = cli_fail(CMD, EXIT_WORK, "interrupted after epoch %lld of %lld; continue with: segloss train --out %s --resume",
                          (long long)res.epochs_done, (long long)c->epochs, c->out_dir);
        else {
            printf("stopped after epoch %lld of %lld (--stop-after); continue with --resume\n", (long long)res.epochs_done,
                   (long long)c->epochs);
            rc = 0;
        }
        sl_train_result_free(&res);
        goto out;
    }
    printf("test (%lld samples, mean per sample):\n", (long long)(res.num_classes > 1 ? res.test[1].n_cases : 0));
    for (int k = 1; k < res.num_classes; k++) {
        const sl_train_class_metrics *m = &res.test[k];
        printf("  %-22s dice %.4f  hd95 %7.2f  nsd %.4f  recall %.4f  precision %.4f  (missed in %lld, spurious in %lld)\n",
               res.class_names[k], m->dice, m->hd95, m->nsd, m->recall, m->precision, (long long)m->n_empty_pred,
               (long long)m->n_empty_gt);
    }
    printf("%s: config.json log.csv model.bin metrics.json (%.1f s)\n", c->out_dir, res.seconds);
    if (f.postprocess) rc = fit_postprocess(c, &res, msg, sizeof msg);
    sl_train_result_free(&res);
out:
    free(c);
    return rc;
}
