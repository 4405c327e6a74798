/*
 * segloss bench [--preset quick|full|FILE] --out DIR [--threads T]
 *               [--resume | --force | --report-only] [--quiet]
 *
 * The controlled loss benchmark (docs/benchmark.md): trains the preset's
 * matrix of losses x data sets x seeds, evaluates every run on the test
 * split, and writes results.csv, summary.csv, results.json, report.md and
 * report.html to DIR; ends with the ranking tables on stdout. Thin over
 * sl_bench_run; this file finds presets by name, shows progress (run k of
 * n, ETA) and turns Ctrl-C into a clean stop.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench_cluster.h"
#include "cli_util.h"
#include "commands.h"
#include "segloss/bench.h"

#define CMD "bench"

static const char *usage_text =
    "usage: segloss bench [--preset quick|full|FILE] --out DIR [options]\n"
    "\n"
    "Trains a U-Net with each loss of a preset on each of its data sets and seeds, with\n"
    "everything else held fixed (initialisation, batches, augmentation, step budget),\n"
    "tests every run, compares each loss with the baseline (paired bootstrap CI and\n"
    "Wilcoxon p per test case) and ranks them. DIR receives results.csv, summary.csv,\n"
    "results.json, report.md, report.html (self-contained), overlays/, and one result\n"
    "file per run in results/ (a killed benchmark resumes from them).\n"
    "\n"
    "  --preset P      quick (the default; what `make demo` runs), full, or a preset\n"
    "                  .json file (docs/benchmark.md gives the format). Names are looked\n"
    "                  up in $SEGLOSS_PRESETS, then presets/ beside the build folder,\n"
    "                  then share/segloss/presets beside the installed binary\n"
    "  --out DIR       output folder (required); must be new, empty, or a benchmark\n"
    "                  with --resume/--force/--report-only\n"
    "  --threads T     runs trained at once, one thread each (default: all cores);\n"
    "                  results do not depend on T\n"
    "  --resume        keep the runs DIR already holds and do the rest (a new or empty\n"
    "                  DIR is started); without --preset, DIR's own preset is used\n"
    "  --force         remove an earlier benchmark in DIR first\n"
    "  --report-only   train nothing: write the report again from DIR's results\n"
    "  --quiet         no progress output (the ranking is still printed)\n"
    "\n"
    "On a cluster (docs/benchmark.md, \"Running a preset on a cluster\"):\n"
    "  --run K         do task K only (0-based): one training of the preset and the\n"
    "                  entries evaluated from it (an entry with a weight search: the\n"
    "                  search and its run for every seed); writes their result files,\n"
    "                  no report.\n"
    "                  Tasks may run at once on machines sharing DIR; afterwards\n"
    "                  --report-only makes the report\n"
    "  --emit-slurm FILE  write an sbatch job-array script, one array task per task\n"
    "                  (each `bench --preset P --out DIR --run K`), and train nothing\n"
    "  --emit-k8s FILE write a Kubernetes indexed Job (ConfigMap with the preset, Job\n"
    "                  with completionMode Indexed; JOB_COMPLETION_INDEX is --run)\n"
    "  --k8s-image I   the manifest's container image (default: segloss)\n"
    "  --k8s-claim C   the PersistentVolumeClaim mounted at DIR (default: segloss-bench)\n"
    "\n"
    "Exit codes: 0 ok, 1 the benchmark failed or was interrupted (DIR keeps every\n"
    "finished run; continue with --resume), 2 bad usage or a bad preset.\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct view {
    int tty, quiet, line_open;
    const sl_bench_preset *p;
    const char *path, *out;
} view;

static int progress(const sl_bench_progress *p, void *user)
{
    view *v = user;
    if (v->quiet) return interrupted ? 1 : 0;
    char el[32], eta[32];
    cli_fmt_time(el, sizeof el, p->seconds);
    cli_fmt_time(eta, sizeof eta, p->eta);
    if (v->line_open) {
        fputs("\r\033[K", stderr);
        v->line_open = 0;
    }
    switch (p->event) {
    case SL_BENCH_START: {
        char folds[32] = ""; /* cross-validation: every seed trains once per fold */
        if (v->p->nfolds) snprintf(folds, sizeof folds, " x %d folds", v->p->nfolds);
        fprintf(stderr, "segloss bench: preset %s (%s), %d losses x %d data sets x %d seeds%s -> %s\n", v->p->name, v->path,
                v->p->nentries, v->p->ndatasets, v->p->nseeds, folds, v->out);
        fprintf(stderr, "%lld runs, %lld already done\n", (long long)p->runs, (long long)p->runs_done);
        break;
    }
    case SL_BENCH_TRAIN:
    case SL_BENCH_EPOCH:
        if (v->tty) {
            if (p->event == SL_BENCH_TRAIN)
                fprintf(stderr, "[%lld/%lld done] training %s / seed %llu / %s | %s ETA %s", (long long)p->runs_done,
                        (long long)p->runs, p->dataset, (unsigned long long)p->seed, p->entry, el, eta);
            else
                fprintf(stderr, "[%lld/%lld done] %s / seed %llu / %s: epoch %lld/%lld | %s ETA %s", (long long)p->runs_done,
                        (long long)p->runs, p->dataset, (unsigned long long)p->seed, p->entry, (long long)p->epoch + 1,
                        (long long)p->epochs, el, eta);
            v->line_open = 1;
        }
        break;
    case SL_BENCH_RUN:
        fprintf(stderr, "run %lld/%lld  %s / seed %llu / %s: %s | %s ETA %s\n", (long long)p->runs_done, (long long)p->runs,
                p->dataset, (unsigned long long)p->seed, p->entry, p->message, el, eta);
        break;
    case SL_BENCH_REPORT:
        fprintf(stderr, "writing the report (%s)\n", el);
        break;
    }
    fflush(stderr);
    return interrupted ? 1 : 0;
}

/* dir of the running binary, or "" */
static void exe_dir(char *buf, size_t len)
{
    buf[0] = 0;
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0) {
        buf[0] = 0;
        return;
    }
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (slash) *slash = 0;
    else buf[0] = 0;
}

/* Resolves --preset: a path (has '/' or ends in .json) as is, else a name
 * looked up in the preset folders. 0 and a usage error when not found. */
static int find_preset(const char *arg, char *path, size_t len)
{
    size_t n = strlen(arg);
    if (strchr(arg, '/') || (n > 5 && !strcmp(arg + n - 5, ".json"))) {
        snprintf(path, len, "%s", arg);
        return 1;
    }
    for (const char *c = arg; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-')) {
            cli_fail(CMD, EXIT_USAGE, "--preset: '%s' is neither a preset name nor a .json file", arg);
            return 0;
        }
    char dirs[3][PATH_MAX];
    int nd = 0;
    const char *env = getenv("SEGLOSS_PRESETS");
    if (env && *env) snprintf(dirs[nd++], PATH_MAX, "%s", env);
    char exe[PATH_MAX];
    exe_dir(exe, sizeof exe);
    if (exe[0]) {
        snprintf(dirs[nd++], PATH_MAX, "%.*s/../presets", PATH_MAX - 16, exe);
        snprintf(dirs[nd++], PATH_MAX, "%.*s/../share/segloss/presets", PATH_MAX - 32, exe);
    }
    for (int i = 0; i < nd; i++) {
        snprintf(path, len, "%.*s/%s.json", (int)(len - n - 8), dirs[i], arg);
        if (access(path, R_OK) == 0) return 1;
    }
    cli_fail(CMD, EXIT_USAGE, "--preset: no preset '%s' (quick, full, or a .json file; searched $SEGLOSS_PRESETS and the presets "
                              "folder beside %s)",
             arg, exe[0] ? exe : "the binary");
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *preset_arg = NULL, *out = NULL;
    sl_bench_opts o = SL_BENCH_OPTS_DEFAULT;
    int quiet = 0;
    const char *emit_slurm = NULL, *emit_k8s = NULL, *k8s_image = "segloss", *k8s_claim = "segloss-bench";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL, *s;
        long n;
        if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--force")) o.force = 1;
        else if (!strcmp(a, "--report-only")) o.report_only = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (cli_opt(a, "--preset", &v)) {
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            if (!*s) return cli_fail(CMD, EXIT_USAGE, "--preset needs a name or a file");
            preset_arg = s;
        } else if (cli_opt(a, "--out", &v)) {
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            if (!*s) return cli_fail(CMD, EXIT_USAGE, "--out needs a folder name");
            out = s;
        } else if (cli_opt(a, "--threads", &v)) {
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &n) || n < 0 || n > 1024)
                return cli_fail(CMD, EXIT_USAGE, "--threads expects an integer in [0, 1024], got '%s'", s);
            o.threads = (int)n;
        } else if (cli_opt(a, "--run", &v)) {
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            if (!cli_parse_int(s, &n) || n < 0) return cli_fail(CMD, EXIT_USAGE, "--run expects a task number >= 0, got '%s'", s);
            o.run_only = 1;
            o.run = n;
        } else if (cli_opt(a, "--emit-slurm", &v) || cli_opt(a, "--emit-k8s", &v) || cli_opt(a, "--k8s-image", &v) ||
                   cli_opt(a, "--k8s-claim", &v)) {
            const char *opt = a;
            if (!(s = cli_value(CMD, argc, argv, &i, v))) return EXIT_USAGE;
            if (!*s) return cli_fail(CMD, EXIT_USAGE, "%.12s needs a value", opt);
            if (!strncmp(opt, "--emit-slurm", 12)) emit_slurm = s;
            else if (!strncmp(opt, "--emit-k8s", 10)) emit_k8s = s;
            else if (!strncmp(opt, "--k8s-image", 11)) k8s_image = s;
            else k8s_claim = s;
        } else if (a[0] == '-') {
            return cli_fail(CMD, EXIT_USAGE, "unknown option '%s' (see segloss bench --help)", a);
        } else {
            return cli_fail(CMD, EXIT_USAGE, "unexpected argument '%s' (options only; see segloss bench --help)", a);
        }
    }
    if (!out) return cli_fail(CMD, EXIT_USAGE, "--out DIR is required (see segloss bench --help)");
    if (o.resume + o.force + o.report_only > 1)
        return cli_fail(CMD, EXIT_USAGE, "--resume, --force and --report-only exclude each other");
    if (o.run_only && o.resume + o.force + o.report_only > 0)
        return cli_fail(CMD, EXIT_USAGE, "--run excludes --resume, --force and --report-only (a task resumes by itself)");
    const int emit = (emit_slurm != NULL) + (emit_k8s != NULL);
    if (emit && (o.run_only || o.resume + o.force + o.report_only > 0))
        return cli_fail(CMD, EXIT_USAGE, "--emit-slurm and --emit-k8s write a job and run nothing: they exclude --run, --resume, --force "
                                         "and --report-only");
    if (emit && !preset_arg) return cli_fail(CMD, EXIT_USAGE, "--emit-slurm and --emit-k8s need --preset");
    o.out_dir = out;

    /* the preset: given, or the one DIR was started with, or quick */
    char path[PATH_MAX + 64], msg[1024];
    if (preset_arg) {
        if (!find_preset(preset_arg, path, sizeof path)) return EXIT_USAGE;
    } else {
        snprintf(path, sizeof path, "%s/preset.json", out);
        if (!((o.resume || o.report_only || o.run_only) && access(path, F_OK) == 0) && !find_preset("quick", path, sizeof path))
            return EXIT_USAGE;
    }
    sl_bench_preset *p = NULL;
    sl_status st = sl_bench_preset_load(&p, path, msg, sizeof msg);
    if (st != SL_OK) return cli_fail(CMD, st == SL_EIO ? EXIT_WORK : EXIT_USAGE, "%s", msg);
    if (emit) {
        bench_cluster bc = {p, path, out, k8s_image, k8s_claim};
        int rc = emit_slurm ? bench_emit_slurm(&bc, emit_slurm) : 0;
        if (!rc && emit_k8s) rc = bench_emit_k8s(&bc, emit_k8s);
        /* the summary, unless a job went to stdout */
        if (!rc && strcmp(emit_slurm ? emit_slurm : "", "-") && strcmp(emit_k8s ? emit_k8s : "", "-"))
            printf("%lld tasks written to %s%s%s; when all have ended: segloss bench --preset %s --out %s --report-only\n",
                    (long long)sl_bench_num_tasks(p), emit_slurm ? emit_slurm : emit_k8s, emit == 2 ? " and " : "",
                    emit == 2 ? emit_k8s : "", path, out);
        sl_bench_preset_free(p);
        return rc;
    }
    if (o.run_only && o.run >= sl_bench_num_tasks(p)) {
        int rc = cli_fail(CMD, EXIT_USAGE, "--run %lld: preset '%s' has %lld tasks (0 to %lld)", (long long)o.run, p->name,
                          (long long)sl_bench_num_tasks(p), (long long)sl_bench_num_tasks(p) - 1);
        sl_bench_preset_free(p);
        return rc;
    }

    view vw = {isatty(fileno(stderr)), quiet, 0, p, path, out};
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    /* a task of a job array: the scheduler stops it (time limit, cancel,
     * preemption) with SIGTERM; stop as for Ctrl-C, keeping the checkpoint */
    struct sigaction old_term;
    if (o.run_only) sigaction(SIGTERM, &sa, &old_term);
    sl_bench_outcome res = SL_BENCH_OUTCOME_EMPTY;
    st = sl_bench_run(p, &o, progress, &vw, &res, msg, sizeof msg);
    sigaction(SIGINT, &old, NULL);
    if (o.run_only) sigaction(SIGTERM, &old_term, NULL);
    if (vw.line_open) fputs("\r\033[K", stderr);
    int rc = 0;
    if (st != SL_OK) {
        rc = cli_fail(CMD, EXIT_WORK, "%s", msg);
    } else if (o.run_only && res.completed) {
        printf("task %lld: %lld runs done (%lld from earlier calls, %lld failed) in %.0f s; the report: segloss bench --out %s "
               "--report-only\n",
               (long long)o.run, (long long)res.runs_done, (long long)res.runs_resumed, (long long)res.runs_failed, res.seconds, out);
    } else if (o.run_only) {
        rc = cli_fail(CMD, EXIT_WORK, "task %lld interrupted; run it again to resume it", (long long)o.run);
    } else if (!res.completed) {
        rc = cli_fail(CMD, EXIT_WORK, "interrupted with %lld of %lld runs done; continue with: segloss bench --out %s --resume",
                      (long long)res.runs_done, (long long)res.runs, out);
    } else {
        fputs(res.ranking, stdout);
        printf("\n%lld runs (%lld from earlier calls, %lld failed) in %.0f s wall, %.0f s CPU\n", (long long)res.runs,
               (long long)res.runs_resumed, (long long)res.runs_failed, res.seconds, res.cpu_seconds);
        printf("report: %s/report.html (and report.md, results.csv, summary.csv, results.json)\n", out);
    }
    sl_bench_outcome_free(&res);
    sl_bench_preset_free(p);
    return rc;
}
