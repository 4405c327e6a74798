/* Helpers shared by the subcommands. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli_util.h"
#include "outfile.h"
#include "voxlimit.h"
#include "internal.h"

void cli_fmt_time(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

int cli_fail(const char *cmd, int code, const char *fmt, ...)
{
    /* one line, whatever the arguments hold (file names, bad input) */
    char raw[2048], line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* a library message that names the command already ("bench: ...")
     * does not get it twice ("segloss bench: bench: ...") */
    const char *text = raw;
    size_t n = strlen(cmd);
    if (!strncmp(text, cmd, n) && text[n] == ':' && text[n + 1] == ' ') text += n + 2;
    fprintf(stderr, "segloss %s: %s\n", cmd, sl_escape_line(line, sizeof line, text));
    return code;
}

void cli_warn(const char *cmd, const char *fmt, ...)
{
    char raw[2048], line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    fprintf(stderr, "segloss %s: warning: %s\n", cmd, sl_escape_line(line, sizeof line, raw));
}

int cli_parse_double(const char *s, double *out)
{
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

int cli_parse_int(const char *s, long *out)
{
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno == ERANGE) return 0;
    *out = v;
    return 1;
}

int cli_parse_list(const char *s, double *out, int max)
{
    int n = 0;
    const char *p = s;
    char buf[64];
    while (*p) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 0 || len >= sizeof buf || n >= max) return -1;
        memcpy(buf, p, len);
        buf[len] = 0;
        if (!cli_parse_double(buf, &out[n++])) return -1;
        if (!q) break;
        p = q + 1;
        if (!*p) return -1;
    }
    return n;
}

int cli_load_npy(const char *cmd, const char *path, sl_array *out)
{
    char msg[512];
    if (sl_npy_read(path, out, msg, sizeof msg) != SL_OK) {
        cli_fail(cmd, EXIT_WORK, "%s", msg);
        return 0;
    }
    return 1;
}

int cli_opt(const char *arg, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) return 0;
    if (arg[n] == 0) { *val = NULL; return 1; }
    if (arg[n] == '=') { *val = arg + n + 1; return 1; }
    return 0;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i, const char *inl)
{
    if (inl) return inl;
    if (*i + 1 >= argc) {
        cli_fail(cmd, EXIT_USAGE, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_take_max_voxels(int *argc, char **argv)
{
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *v = NULL;
        /* after "--" everything is an operand */
        if (!strcmp(argv[i], "--")) {
            while (i < *argc) argv[out++] = argv[i++];
            break;
        }
        if (!cli_opt(argv[i], "--max-voxels", &v)) {
            argv[out++] = argv[i];
            continue;
        }
        if (!v) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "segloss: option --max-voxels needs a value\n");
                return 0;
            }
            v = argv[++i];
        }
        int64_t n = sl_parse_voxels(v);
        if (n < 1) {
            fprintf(stderr, "segloss: --max-voxels '%s' is not a positive voxel count (e.g. 268435456, 256M, 2^28)\n",
                    v);
            return 0;
        }
        sl_set_max_voxels(n);
    }
    *argc = out;
    argv[out] = NULL;
    return 1;
}

int cli_write_pair(const char *cmd, const char *const path[2], int (*write)(int k, FILE *f, void *ctx), void *ctx)
{
    sl_out *out[2] = {NULL, NULL};
    char msg[1024];
    int ok = 1;
    for (int k = 0; k < 2 && ok; k++) {
        if (!path[k]) continue;
        if (sl_out_open(path[k], &out[k], msg, sizeof msg) != SL_OK) {
            cli_fail(cmd, EXIT_WORK, "%s", msg);
            ok = 0;
            break;
        }
        if (write(k, sl_out_file(out[k]), ctx)) {
            cli_fail(cmd, EXIT_WORK, "cannot write '%s'", path[k]);
            ok = 0;
        }
    }
    for (int k = 0; k < 2; k++) {
        if (!out[k]) continue;
        if (!ok) {
            sl_out_abort(out[k]);
        } else if (sl_out_commit(out[k], msg, sizeof msg) != SL_OK) {
            cli_fail(cmd, EXIT_WORK, "%s", msg);
            ok = 0;
        }
    }
    return ok;
}
