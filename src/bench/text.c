/*
 * Text helpers of the benchmark's writers: a growing string, HTML
 * escaping, base64 (for PNGs embedded in the HTML report), file-name
 * slugs and the number format of the tables.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_internal.h"
#include "fileio.h"
#include "outfile.h"

const char *const slb_metric_names[SLB_NMET] = {"dice", "hd95", "nsd", "recall", "precision", "lesion_f1"};
const char *const slb_metric_labels[SLB_NMET] = {"Dice", "HD95", "NSD", "recall", "precision", "lesion F1"};

int slb_metric_higher_better(int metric)
{
    return metric != SLB_HD95;
}

static int reserve(slb_str *s, size_t extra)
{
    if (s->failed) return 0;
    if (s->len + extra + 1 <= s->cap) return 1;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            s->failed = 1;
            return 0;
        }
        cap *= 2;
    }
    char *p = realloc(s->p, cap);
    if (!p) {
        s->failed = 1;
        return 0;
    }
    s->p = p;
    s->cap = cap;
    return 1;
}

void slb_puts(slb_str *s, const char *text)
{
    size_t n = strlen(text);
    if (!reserve(s, n)) return;
    memcpy(s->p + s->len, text, n + 1);
    s->len += n;
}

void slb_printf(slb_str *s, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        slb_puts(s, small);
        return;
    }
    if (!reserve(s, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

void slb_html(slb_str *s, const char *text)
{
    for (const char *c = text; *c; c++) {
        switch (*c) {
        case '&': slb_puts(s, "&amp;"); break;
        case '<': slb_puts(s, "&lt;"); break;
        case '>': slb_puts(s, "&gt;"); break;
        case '"': slb_puts(s, "&quot;"); break;
        default: {
            char one[2] = {*c, 0};
            slb_puts(s, one);
        }
        }
    }
}

void slb_base64(slb_str *s, const unsigned char *data, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!reserve(s, (n + 2) / 3 * 4)) return;
    char *o = s->p + s->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8 | data[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)data[i] << 16 | (i + 1 < n ? (unsigned)data[i + 1] << 8 : 0u);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    s->len = (size_t)(o - s->p);
}

void slb_str_free(slb_str *s)
{
    if (!s) return;
    free(s->p);
    s->p = NULL;
    s->len = s->cap = 0;
    s->failed = 0;
}

void slb_slug(const char *name, char *out)
{
    size_t k = 0;
    for (const char *c = name; *c && k + 1 < SL_BENCH_NAME; c++) {
        char ch = *c;
        int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '+' ||
                   ch == '-' || ch == '_' || (ch == '.' && k > 0);
        out[k++] = keep ? ch : '_';
    }
    if (k == 0) out[k++] = '_';
    out[k] = 0;
}

const char *slb_fmt(char *buf, size_t len, double v, int digits)
{
    if (isnan(v)) snprintf(buf, len, "-");
    else if (isinf(v)) snprintf(buf, len, v > 0 ? "inf" : "-inf");
    else snprintf(buf, len, "%.*f", digits, v);
    return buf;
}

const char *slb_fmt_ci(char *buf, size_t len, double v, double lo, double hi, int digits)
{
    char a[32], b[32], c[32];
    if (isnan(v)) snprintf(buf, len, "-");
    else snprintf(buf, len, "%s [%s, %s]", slb_fmt(a, sizeof a, v, digits), slb_fmt(b, sizeof b, lo, digits), slb_fmt(c, sizeof c, hi, digits));
    return buf;
}

const char *slb_fmt_p(char *buf, size_t len, double p)
{
    if (isnan(p)) snprintf(buf, len, "-");
    else if (p < 1e-4) snprintf(buf, len, "<1e-4");
    else snprintf(buf, len, "%.4f", p);
    return buf;
}

sl_status slb_write_text(const char *dir, const char *name, const slb_str *s, char *msg, size_t msglen)
{
    if (s->failed) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory writing %s", name);
    char path[SL_TRAIN_TEXT + 128];
    if (sl_path_join(path, sizeof path, dir, name) != SL_OK)
        return sl_errf(msg, msglen, SL_EINVAL, "bench: path %s/%s is too long", dir, name);
    return sl_out_write_file(path, s->p ? s->p : "", s->len, msg, msglen);
}
