/*
 * The text form of sl_crf_params ("w1=5,theta_b=0.5,iters=10"), shared by
 * segloss predict --crf-params and anything else that takes CRF settings
 * as one string.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/crf.h"
#include "../core/internal.h"
#include "lattice.h"

/* seg (n bytes) as a printable one-line excerpt: input text may hold
 * newlines or control bytes, which must not break the message */
static const char *excerpt(char *buf, size_t cap, const char *seg, size_t n)
{
    char raw[64];
    if (n >= sizeof raw) n = sizeof raw - 1;
    memcpy(raw, seg, n);
    raw[n] = '\0';
    return sl_escape_line(buf, cap, raw);
}

sl_status sl_crf_params_parse(const char *text, sl_crf_params *params, char *msg, size_t msglen)
{
    if (!text || !params) return sl_errf(msg, msglen, SL_EINVAL, "crf params: NULL argument");
    sl_crf_params p = *params;
    const char *s = text;
    char ex[256];
    while (*s) {
        const char *eq = strchr(s, '='), *end = strchr(s, ',');
        if (!end) end = s + strlen(s);
        if (!eq || eq > end)
            return sl_errf(msg, msglen, SL_EINVAL, "crf params: expected key=value, got '%s'", excerpt(ex, sizeof ex, s, (size_t)(end - s)));
        const size_t klen = (size_t)(eq - s), vlen = (size_t)(end - eq - 1);
        excerpt(ex, sizeof ex, s, klen);
        char val[64];
        if (vlen >= sizeof val || vlen == 0) return sl_errf(msg, msglen, SL_EINVAL, "crf params: bad value for '%s'", ex);
        memcpy(val, eq + 1, vlen);
        val[vlen] = '\0';
        char *stop;
        errno = 0;
        const double v = strtod(val, &stop);
        if (*stop || errno || !isfinite(v)) {
            char vx[256];
            return sl_errf(msg, msglen, SL_EINVAL, "crf params: '%s' needs a finite number, got '%s'", ex,
                           sl_escape_line(vx, sizeof vx, val));
        }
#define KEY(name) (klen == sizeof(name) - 1 && strncmp(s, name, klen) == 0)
        if (KEY("w1")) p.w_appearance = v;
        else if (KEY("theta_a")) p.theta_alpha = v;
        else if (KEY("theta_b")) p.theta_beta = v;
        else if (KEY("w2")) p.w_smoothness = v;
        else if (KEY("theta_g")) p.theta_gamma = v;
        else if (KEY("iters")) {
            if (v != floor(v) || v < 0 || v > 1000)
                return sl_errf(msg, msglen, SL_EINVAL, "crf params: iters needs an integer in 0..1000, got '%s'", val);
            p.iterations = (int)v;
        } else {
            return sl_errf(msg, msglen, SL_EINVAL, "crf params: unknown key '%s' (w1, theta_a, theta_b, w2, theta_g, iters)", ex);
        }
#undef KEY
        s = *end ? end + 1 : end;
        if (*end && !*s) return sl_errf(msg, msglen, SL_EINVAL, "crf params: trailing ','");
    }
    sl_status st = slg_crf_check_params(&p, msg, msglen);
    if (st == SL_OK) *params = p;
    return st;
}
