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
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "term.h"

#define SPEC_MAX_TERMS 32
#define SPEC_MAX_PARAMS 24
#define SPEC_MAX_LEN 4096

typedef struct {
    sl_term_desc terms[SPEC_MAX_TERMS];
    sl_param params[SPEC_MAX_TERMS][SPEC_MAX_PARAMS];
    char names[SPEC_MAX_TERMS][64];
    char keys[SPEC_MAX_TERMS][SPEC_MAX_PARAMS][64];
    char words[SPEC_MAX_TERMS][SPEC_MAX_PARAMS][64];
    double lists[SPEC_MAX_TERMS][SPEC_MAX_PARAMS][SL_LIST_MAX];
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

/* A number as strtod reads it, but refusing inf/nan spellings and hex. */
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
    if (end == ps->p || errno == ERANGE || !isfinite(d)) return 0;
    ps->p = end;
    *v = d;
    return 1;
}

/* An identifier [A-Za-z_][A-Za-z0-9_]* into buf. */
static int ident(parser *ps, char *buf, size_t len)
{
    ws(ps);
    const char *q = ps->p;
    if (!(isalpha((unsigned char)*q) || *q == '_')) return 0;
    size_t n = 0;
    while (isalnum((unsigned char)*q) || *q == '_') {
        if (n + 1 >= len) return 0;
        buf[n++] = *q++;
    }
    buf[n] = 0;
    ps->p = q;
    return 1;
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

static sl_status value(parser *ps, parsed_spec *sp, int t, int k)
{
    sl_param *pa = &sp->params[t][k];
    ws(ps);
    if (eat(ps, '[')) {
        int n = 0;
        if (eat(ps, ']')) return fail(ps, "empty list");
        for (;;) {
            double v;
            if (n >= SL_LIST_MAX) return fail(ps, "list too long");
            if (!number(ps, &v)) return fail(ps, "expected a number in the list");
            sp->lists[t][k][n++] = v;
            if (eat(ps, ',')) continue;
            if (eat(ps, ']')) break;
            return fail(ps, "expected ',' or ']' in the list");
        }
        pa->kind = SL_PARAM_LIST;
        pa->list = sp->lists[t][k];
        pa->list_len = n;
        return SL_OK;
    }
    double v;
    if (number(ps, &v)) {
        pa->kind = SL_PARAM_NUMBER;
        pa->number = v;
        return SL_OK;
    }
    char *w = sp->words[t][k];
    if (ident(ps, w, 64)) {
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
    if (number(ps, &w)) {
        if (!eat(ps, '*')) {
            ps->p = save;
            return fail(ps, "expected '*' after a term's weight");
        }
        d->weight = w;
    }
    if (!ident(ps, sp->names[t], sizeof sp->names[t])) return fail(ps, "expected a loss name");
    d->name = sp->names[t];
    d->params = sp->params[t];
    d->nparams = 0;
    if (eat(ps, '(')) {
        if (eat(ps, ')')) return fail(ps, "empty parameter list");
        for (;;) {
            int k = d->nparams;
            if (k >= SPEC_MAX_PARAMS) return fail(ps, "too many parameters");
            if (!ident(ps, sp->keys[t][k], 64)) return fail(ps, "expected a key");
            for (int j = 0; j < k; j++)
                if (!strcmp(sp->keys[t][j], sp->keys[t][k]))
                    return sl_errf(ps->msg, ps->msglen, SL_EINVAL, "loss spec: key '%s' given twice for '%s'",
                                   sp->keys[t][k], d->name);
            sp->params[t][k].key = sp->keys[t][k];
            if (!eat(ps, '=')) return fail(ps, "expected '=' after a key");
            sl_status st = value(ps, sp, t, k);
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
    parsed_spec *sp = calloc(1, sizeof *sp);
    if (!sp) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
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
