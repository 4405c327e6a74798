/*
 * The sbatch script and the Kubernetes indexed Job of `segloss bench
 * --emit-slurm FILE` / `--emit-k8s FILE` (docs/benchmark.md, "Running a
 * preset on a cluster"). Each array element runs one task of the preset
 * (`--run K`); every task writes only its own result files, atomically, so
 * they may run at once on any machines that share DIR, and `--report-only`
 * makes the report once all have ended. Paths are written absolute (the
 * tasks do not start in this folder), and a path that cannot be quoted
 * safely (a control character) is refused.
 */
#define _XOPEN_SOURCE 700
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench_cluster.h"
#include "cli_util.h"
#include "outfile.h"

#define CMD "bench"

typedef struct buf {
    char *p;
    size_t len, cap;
    int failed;
} buf;

static void put(buf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* a shell word: 'text' with each ' written as '\'' */
static void put_sh(buf *b, const char *s)
{
    put(b, "'");
    for (; *s; s++)
        if (*s == '\'') put(b, "'\\''");
        else put(b, "%c", *s);
    put(b, "'");
}

/* a YAML double-quoted scalar */
static void put_yaml(buf *b, const char *s)
{
    put(b, "\"");
    for (; *s; s++)
        if (*s == '"' || *s == '\\') put(b, "\\%c", *s);
        else put(b, "%c", *s);
    put(b, "\"");
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

/* The absolute paths of the binary, the preset and DIR (which may not
 * exist yet). 0, or an exit code after one error line. */
static int paths(const bench_cluster *bc, char *exe, char *preset, char *out)
{
    ssize_t n = readlink("/proc/self/exe", exe, PATH_MAX - 1);
    if (n <= 0) return cli_fail(CMD, EXIT_WORK, "cannot find the path of the segloss binary (/proc/self/exe)");
    exe[n] = 0;
    if (!realpath(bc->preset_path, preset)) return cli_fail(CMD, EXIT_USAGE, "--preset: cannot resolve '%s'", bc->preset_path);
    if (bc->out[0] == '/') {
        snprintf(out, PATH_MAX, "%s", bc->out);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return cli_fail(CMD, EXIT_WORK, "cannot read the current folder");
        if (snprintf(out, PATH_MAX, "%s/%s", cwd, bc->out) >= PATH_MAX) return cli_fail(CMD, EXIT_USAGE, "--out: path too long");
    }
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/') out[--len] = 0;
    const char *bad = has_control(exe) ? exe : has_control(preset) ? preset : has_control(out) ? out : NULL;
    if (bad) return cli_fail(CMD, EXIT_USAGE, "cannot write a job for the path '%s': it holds a control character", bad);
    return 0;
}

/* the preset's name as a Kubernetes/Slurm name: lower-case letters, digits
 * and '-', at most 40 characters, never empty */
static void slug(const char *name, char *dst, size_t cap)
{
    size_t k = 0;
    for (const char *s = name; *s && k + 1 < cap && k < 40; s++) {
        char ch = (char)tolower((unsigned char)*s);
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) ch = '-';
        if (ch == '-' && (k == 0 || dst[k - 1] == '-')) continue;
        dst[k++] = ch;
    }
    while (k > 0 && dst[k - 1] == '-') k--;
    if (k == 0) k = (size_t)snprintf(dst, cap, "preset");
    dst[k] = 0;
}

static int finish(buf *b, const char *file)
{
    if (b->failed) {
        free(b->p);
        return cli_fail(CMD, EXIT_WORK, "out of memory");
    }
    char msg[1024];
    sl_status st = sl_out_write_file(file, b->p, b->len, msg, sizeof msg);
    free(b->p);
    return st == SL_OK ? 0 : cli_fail(CMD, EXIT_WORK, "%s", msg);
}

int bench_emit_slurm(const bench_cluster *bc, const char *file)
{
    char exe[PATH_MAX], preset[PATH_MAX], out[PATH_MAX], name[48];
    int rc = paths(bc, exe, preset, out);
    if (rc) return rc;
    const int64_t tasks = sl_bench_num_tasks(bc->p);
    if (tasks < 1) return cli_fail(CMD, EXIT_USAGE, "preset '%s' has no runs", bc->p->name);
    slug(bc->p->name, name, sizeof name);
    buf b = {0};
    put(&b, "#!/bin/bash\n");
    put(&b, "# segloss bench, preset '%s', as a Slurm job array: %lld tasks, one training each\n", name, (long long)tasks);
    put(&b, "# (%lld runs; entries that differ only in evaluation options share a training).\n", (long long)sl_bench_num_runs(bc->p));
    put(&b, "#   submit:  sbatch FILE\n");
    put(&b, "#   report, once every task has ended (or submit it with --dependency=afterok:JOBID):\n#     ");
    put_sh(&b, exe);
    put(&b, " bench --preset ");
    put_sh(&b, preset);
    put(&b, " --out ");
    put_sh(&b, out);
    put(&b, " --report-only\n");
    put(&b, "# A task that failed or was stopped runs again with sbatch --array=K FILE (it resumes\n");
    put(&b, "# from its checkpoint). The binary, the preset and the output folder must be at these\n");
    put(&b, "# paths on every node (a shared file system).\n");
    put(&b, "#SBATCH --job-name=segloss-%s\n", name);
    put(&b, "#SBATCH --array=0-%lld\n", (long long)(tasks - 1));
    put(&b, "#SBATCH --ntasks=1\n");
    put(&b, "#SBATCH --cpus-per-task=1\n");
    put(&b, "#SBATCH --output=segloss-%s-%%A_%%a.out\n", name);
    put(&b, "exec ");
    put_sh(&b, exe);
    put(&b, " bench --preset ");
    put_sh(&b, preset);
    put(&b, " --out ");
    put_sh(&b, out);
    put(&b, " --run \"$SLURM_ARRAY_TASK_ID\" --quiet\n");
    return finish(&b, file);
}

int bench_emit_k8s(const bench_cluster *bc, const char *file)
{
    char exe[PATH_MAX], preset[PATH_MAX], out[PATH_MAX], name[48];
    int rc = paths(bc, exe, preset, out);
    if (rc) return rc;
    const char *bad = has_control(bc->k8s_image) ? bc->k8s_image : has_control(bc->k8s_claim) ? bc->k8s_claim : NULL;
    if (bad) return cli_fail(CMD, EXIT_USAGE, "cannot write a manifest for '%s': it holds a control character", bad);
    const int64_t tasks = sl_bench_num_tasks(bc->p);
    if (tasks < 1) return cli_fail(CMD, EXIT_USAGE, "preset '%s' has no runs", bc->p->name);
    slug(bc->p->name, name, sizeof name);
    buf b = {0};
    put(&b, "# segloss bench, preset '%s', as a Kubernetes indexed Job: %lld tasks, one training each\n", name, (long long)tasks);
    put(&b, "# (%lld runs; entries that differ only in evaluation options share a training).\n", (long long)sl_bench_num_runs(bc->p));
    put(&b, "# The preset travels in the ConfigMap; the output folder is the volume claim '%s'\n", bc->k8s_claim);
    put(&b, "# mounted at %s in every pod (ReadWriteMany when pods share nodes' work).\n", out);
    put(&b, "#   apply:   kubectl apply -f FILE\n");
    put(&b, "#   report, once the Job has completed, where the claim is mounted at the same path:\n");
    put(&b, "#     segloss bench --preset %s --out %s --report-only\n", preset, out);
    put(&b, "# A failed index is retried by the Job (backoffLimit) and resumes from its checkpoint.\n");
    put(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: segloss-%s-preset\ndata:\n  preset.json: |\n", name);
    for (const char *s = bc->p->json; *s;) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        put(&b, "    %.*s\n", (int)n, s);
        s += n + (e ? 1 : 0);
    }
    put(&b, "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: segloss-%s\nspec:\n", name);
    put(&b, "  completionMode: Indexed\n  completions: %lld\n  parallelism: %lld\n  backoffLimit: %lld\n", (long long)tasks,
        (long long)tasks, (long long)(tasks * 2));
    put(&b, "  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: segloss\n        image: ");
    put_yaml(&b, bc->k8s_image);
    put(&b, "\n        command: [\"segloss\", \"bench\", \"--preset\", \"/etc/segloss/preset.json\", \"--out\", ");
    put_yaml(&b, out);
    put(&b, ", \"--run\", \"$(JOB_COMPLETION_INDEX)\", \"--quiet\"]\n");
    put(&b, "        env:\n        - name: JOB_COMPLETION_INDEX\n          valueFrom:\n            fieldRef:\n"
            "              fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']\n");
    put(&b, "        resources:\n          requests:\n            cpu: \"1\"\n");
    put(&b, "        volumeMounts:\n        - name: preset\n          mountPath: /etc/segloss\n          readOnly: true\n");
    put(&b, "        - name: out\n          mountPath: ");
    put_yaml(&b, out);
    put(&b, "\n      volumes:\n      - name: preset\n        configMap:\n          name: segloss-%s-preset\n", name);
    put(&b, "      - name: out\n        persistentVolumeClaim:\n          claimName: ");
    put_yaml(&b, bc->k8s_claim);
    put(&b, "\n");
    return finish(&b, file);
}
