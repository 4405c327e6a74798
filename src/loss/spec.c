/*
 * The loss spec parser: a string such as
 *     0.5*dice(batch=true,include_background=false)+0.5*ce(weight=[1,2,5])
 * becomes term descriptions (sl_term_desc), which sl_loss_create_terms then
 * validates against each loss's key table. Keeping syntax here and meaning
 * there gives one path for the spec, the API structs and the CLI.
 *
 *     spec  := term ('+' term)*
 *     term  := [number '*'] name ['(' key '=' value (',' key '=' value)* ')']
 *     value := number | true | false | word | '[' number (',' number)* ']'
 *
 * Whitespace is allowed between tokens. Errors name the position and the
 * text found there.
 */
#include <ctype.h>
#include <math.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "term.h"

#define SPEC_MAX_TERMS 32
#define SPEC_MAX_PARAMS 24
#define SPEC_MAX_LEN 4096

/*
 * Everything a parse produces, in one allocation of about 40 KB. Names,
 * keys and words are copied out of the spec into one text pool and list
 * numbers into one number pool, so the pools are bounded by the spec's
 * length rather than by terms x parameters x the longest list (that layout
 * took 1.6 MB per parse, zeroed, and held the fuzzer to ~440 parses/s).
 * Every identifier takes at least one character of the spec plus its NUL;
 * every list number at least one character plus a ',' or ']'.
 */
typedef struct {
    sl_term_desc terms[SPEC_MAX_TERMS];
    sl_param params[SPEC_MAX_TERMS][SPEC_MAX_PARAMS];
    char text[2 * SPEC_MAX_LEN + 2];
    double numbers[SPEC_MAX_LEN / 2 + 1];
    size_t ntext, nnumbers;
    int nterms;
} parsed_spec;

typedef struct {
    const char *s, *p;
    char *msg;
    size_t msglen;
} parser;

static void ws(parser *ps)
{
    while (*ps->p && isspace((unsigned char)*ps->p)) ps->p++;
}

static sl_status fail(parser *ps, const char *what)
{
    ws(ps);
    if (*ps->p) {
        /* Quote a little of what was found, with control and non-ASCII bytes
         * shown as '?': the message must stay one printable line. */
        char near[13];
        size_t n = 0;
        for (const char *q = ps->p; *q && n < sizeof near - 1; q++)
            near[n++] = (*q >= 0x20 && *q < 0x7f) ? *q : '?';
        near[n] = 0;
        return sl_errf(ps->msg, ps->msglen, SL_EFORMAT, "loss spec: %s at position %d ('%s')", what,
                       (int)(ps->p - ps->s) + 1, near);
    }
    return sl_errf(ps->msg, ps->msglen, SL_EFORMAT, "loss spec: %s at the end of the spec", what);
}

/* A number as strtod reads it, but refusing inf/nan spellings and hex:
 * 1 read, 0 not a number here, -1 a number outside the range of a double
 * (1e309, 1e-400), which the caller reports as such. */
static int number(parser *ps, double *v)
{
    ws(ps);
    const char *q = ps->p;
    if (*q == '+' || *q == '-') q++;
    if (!(isdigit((unsigned char)*q) || (*q == '.' && isdigit((unsigned char)q[1])))) return 0;
    if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) return 0;
    char *end;
    errno = 0;
    double d = strtod(ps->p, &end);
    if (end == ps->p) return 0;
    if (errno == ERANGE || !isfinite(d)) return -1;
    ps->p = end;
    *v = d + 0.0; /* -0 is 0: a weight or value never prints as -0 */
    return 1;
}

/* An identifier [A-Za-z_][A-Za-z0-9_]* of fewer than 64 characters, copied
 * into the text pool; NULL when there is none here. */
static const char *ident(parser *ps, parsed_spec *sp)
{
    ws(ps);
    const char *q = ps->p;
    if (!(isalpha((unsigned char)*q) || *q == '_')) return NULL;
    size_t n = 0;
    while (isalnum((unsigned char)q[n]) || q[n] == '_') {
        if (n + 1 >= 64) return NULL;
        n++;
    }
    if (sp->ntext + n + 1 > sizeof sp->text) return NULL; /* cannot happen: see parsed_spec */
    char *buf = sp->text + sp->ntext;
    memcpy(buf, q, n);
    buf[n] = 0;
    sp->ntext += n + 1;
    ps->p = q + n;
    return buf;
}

static int eat(parser *ps, char ch)
{
    ws(ps);
    if (*ps->p == ch) {
        ps->p++;
        return 1;
    }
    return 0;
}

static sl_status value(parser *ps, parsed_spec *sp, sl_param *pa)
{
    ws(ps);
    if (eat(ps, '[')) {
        int n = 0;
        double *list = sp->numbers + sp->nnumbers;
        if (eat(ps, ']')) return fail(ps, "empty list");
        for (;;) {
            double v;
            if (n >= SL_LIST_MAX) return fail(ps, "list too long");
            int r = number(ps, &v);
            if (r < 0) return fail(ps, "number out of range");
            if (r == 0) return fail(ps, "expected a number in the list");
            if (sp->nnumbers >= sizeof sp->numbers / sizeof *sp->numbers) return fail(ps, "list too long");
            list[n++] = v;
            sp->nnumbers++;
            if (eat(ps, ',')) continue;
            if (eat(ps, ']')) break;
            return fail(ps, "expected ',' or ']' in the list");
        }
        pa->kind = SL_PARAM_LIST;
        pa->list = list;
        pa->list_len = n;
        return SL_OK;
    }
    double v;
    int r = number(ps, &v);
    if (r < 0) return fail(ps, "number out of range");
    if (r > 0) {
        pa->kind = SL_PARAM_NUMBER;
        pa->number = v;
        return SL_OK;
    }
    const char *w = ident(ps, sp);
    if (w) {
        if (!strcmp(w, "true") || !strcmp(w, "false")) {
            pa->kind = SL_PARAM_BOOL;
            pa->boolean = w[0] == 't';
        } else {
            pa->kind = SL_PARAM_WORD;
            pa->word = w;
        }
        return SL_OK;
    }
    return fail(ps, "expected a value (number, true, false, word or [list])");
}

static sl_status term(parser *ps, parsed_spec *sp)
{
    if (sp->nterms >= SPEC_MAX_TERMS) return fail(ps, "too many terms");
    int t = sp->nterms;
    sl_term_desc *d = &sp->terms[t];
    d->weight = 1.0;
    double w;
    const char *save = ps->p;
    int r = number(ps, &w);
    if (r < 0) return fail(ps, "number out of range");
    if (r > 0) {
        if (!eat(ps, '*')) {
            ps->p = save;
            return fail(ps, "expected '*' after a term's weight");
        }
        d->weight = w;
    }
    if (!(d->name = ident(ps, sp))) return fail(ps, "expected a loss name");
    sl_param *params = sp->params[t];
    d->params = params;
    d->nparams = 0;
    if (eat(ps, '(')) {
        if (eat(ps, ')')) return fail(ps, "empty parameter list");
        for (;;) {
            int k = d->nparams;
            if (k >= SPEC_MAX_PARAMS) return fail(ps, "too many parameters");
            memset(&params[k], 0, sizeof params[k]);
            if (!(params[k].key = ident(ps, sp))) return fail(ps, "expected a key");
            for (int j = 0; j < k; j++)
                if (!strcmp(params[j].key, params[k].key))
                    return sl_errf(ps->msg, ps->msglen, SL_EINVAL, "loss spec: key '%s' given twice for '%s'",
                                   params[k].key, d->name);
            if (!eat(ps, '=')) return fail(ps, "expected '=' after a key");
            sl_status st = value(ps, sp, &params[k]);
            if (st != SL_OK) return st;
            d->nparams++;
            if (eat(ps, ',')) continue;
            if (eat(ps, ')')) break;
            return fail(ps, "expected ',' or ')'");
        }
    }
    sp->nterms++;
    return SL_OK;
}

sl_status sl_loss_create(const char *spec, sl_loss **out, char *msg, size_t msglen)
{
    if (out) *out = NULL;
    if (!spec || !out) return sl_errf(msg, msglen, SL_EINVAL, "loss spec: NULL argument");
    if (strlen(spec) > SPEC_MAX_LEN)
        return sl_errf(msg, msglen, SL_EFORMAT, "loss spec: longer than %d characters", SPEC_MAX_LEN);
    /* not zeroed: every field is written before it is read */
    parsed_spec *sp = malloc(sizeof *sp);
    if (!sp) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    sp->ntext = sp->nnumbers = 0;
    sp->nterms = 0;
    parser ps = {spec, spec, msg, msglen};
    sl_status st = SL_OK;
    ws(&ps);
    if (!*ps.p) st = sl_errf(msg, msglen, SL_EFORMAT, "loss spec: empty");
    while (st == SL_OK) {
        st = term(&ps, sp);
        if (st != SL_OK) break;
        if (eat(&ps, '+')) continue;
        ws(&ps);
        if (*ps.p) st = fail(&ps, "expected '+' or the end of the spec");
        break;
    }
    if (st == SL_OK) st = sl_loss_create_terms(sp->terms, sp->nterms, out, msg, msglen);
    free(sp);
    return st;
}
