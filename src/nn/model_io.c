/*
 * Model files: configuration + parameters + buffers (+ optimiser state).
 *
 * Layout (all integers and floats little-endian, whatever the host):
 *
 *   offset size  field
 *   0      8     magic "SLUNET\r\n" (the CR LF, as in PNG, catches a
 *                text-mode transfer that rewrote line ends)
 *   8      4     u32 format version (1, or 2 for a 3-D or anisotropic net)
 *   12     4     u32 header size in bytes (128)
 *   16     36    i32 spatial_ndim, in_channels, num_classes, depth,
 *                base_width, max_width, norm, down, deep_supervision
 *   52     12    f32 leaky_slope, norm_eps, bn_momentum
 *   64     8     u64 seed
 *   72     8     i64 number of parameters P
 *   80     8     i64 number of buffer floats Q
 *   88     4     u32 1 if an optimiser section follows, else 0
 *   92     24    version 2: u8 per (stage s, axis a), at 92 + 3 s + a:
 *                pool[s][a] in the low 4 bits, kernel[s][a] in the high 4
 *                (0 = default); version 1: zero (an isotropic 2-D net)
 *   116    12    zero
 *   128    4P    f32 parameters (tensor table order, nn.h)
 *          4Q    f32 buffers
 *   optimiser section (optional), 152 bytes + state:
 *          u32 kind, nesterov, schedule kind, cycle_momentum
 *          f64 lr, beta1, beta2, eps, weight_decay, momentum, dampening,
 *              clip_norm
 *          i64 total_steps
 *          f64 pct_start, div_factor, final_div_factor, base_momentum,
 *              max_momentum, power
 *          i64 steps taken, i64 number of state floats S (0, P or 2P)
 *          4S  f32 state (first moment / momentum buffer, then second moment)
 *   end    4     u32 CRC-32 (zlib's, ISO 3309) of every byte before it
 *
 * The reader trusts nothing: it derives the parameter count from the
 * configuration, checks it against the header, computes the exact file
 * size that follows and compares it with the real one before allocating,
 * and verifies the checksum before returning a net.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "fileio.h"
#include "model_mem.h"
#include "outfile.h"
#include "internal.h"
#include "nn_internal.h"

#define MODEL_MAGIC "SLUNET\r\n"
/* Version 1 files (isotropic 2-D nets) are still written for such nets, so
 * their bytes do not change; 3-D and anisotropic nets need version 2. */
#define MODEL_VERSION 2u
#define HEADER_BYTES 128
#define OPTIM_FIXED_BYTES 152

/* ---------------------------------------------------- little-endian codec */

static void put_u32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static void put_f32(unsigned char *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}
static void put_f64(unsigned char *b, double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    put_u64(b, u);
}
static uint32_t get_u32(const unsigned char *b)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)b[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}
static float get_f32(const unsigned char *b)
{
    uint32_t u = get_u32(b);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static double get_f64(const unsigned char *b)
{
    uint64_t u = get_u64(b);
    double f;
    memcpy(&f, &u, 8);
    return f;
}

/* --------------------------------------------------------------- writing */

typedef struct writer {
    FILE *f;
    uLong crc;
    int failed;
} writer;

static void w_bytes(writer *w, const unsigned char *b, size_t n)
{
    if (w->failed) return;
    w->crc = crc32(w->crc, b, (uInt)n);
    if (fwrite(b, 1, n, w->f) != n) w->failed = 1;
}

static void w_floats(writer *w, const float *x, int64_t n)
{
    unsigned char buf[16384];
    const int64_t per = (int64_t)sizeof buf / 4;
    for (int64_t i = 0; i < n && !w->failed; i += per) {
        int64_t k = n - i < per ? n - i : per;
        for (int64_t j = 0; j < k; j++) put_f32(buf + 4 * j, x[i + j]);
        w_bytes(w, buf, (size_t)k * 4);
    }
}

static void encode_header(unsigned char *h, const sl_unet_config *c, int64_t np, int64_t nb,
                          int has_optim)
{
    memset(h, 0, HEADER_BYTES);
    memcpy(h, MODEL_MAGIC, 8);
    int v2 = c->spatial_ndim != 2;
    for (int s = 0; s < SL_UNET_MAX_DEPTH; s++)
        for (int a = 0; a < 3; a++) {
            h[92 + 3 * s + a] = (unsigned char)((c->pool[s][a] & 15) | (c->kernel[s][a] & 15) << 4);
            v2 |= c->pool[s][a] != 0 || c->kernel[s][a] != 0;
        }
    put_u32(h + 8, v2 ? 2u : 1u);
    put_u32(h + 12, HEADER_BYTES);
    const int32_t ints[9] = {c->spatial_ndim, c->in_channels, c->num_classes, c->depth, c->base_width,
                             c->max_width, (int32_t)c->norm, (int32_t)c->down, c->deep_supervision};
    for (int i = 0; i < 9; i++) put_u32(h + 16 + 4 * i, (uint32_t)ints[i]);
    put_f32(h + 52, c->leaky_slope);
    put_f32(h + 56, c->norm_eps);
    put_f32(h + 60, c->bn_momentum);
    put_u64(h + 64, c->seed);
    put_u64(h + 72, (uint64_t)np);
    put_u64(h + 80, (uint64_t)nb);
    put_u32(h + 88, has_optim ? 1u : 0u);
}

static void encode_optim(unsigned char *b, const sl_optim_config *c, int64_t step, int64_t nstate)
{
    memset(b, 0, OPTIM_FIXED_BYTES);
    put_u32(b + 0, (uint32_t)c->kind);
    put_u32(b + 4, (uint32_t)c->nesterov);
    put_u32(b + 8, (uint32_t)c->schedule.kind);
    put_u32(b + 12, (uint32_t)c->schedule.cycle_momentum);
    const double d1[8] = {c->lr, c->beta1, c->beta2, c->eps, c->weight_decay, c->momentum,
                          c->dampening, c->clip_norm};
    for (int i = 0; i < 8; i++) put_f64(b + 16 + 8 * i, d1[i]);
    put_u64(b + 80, (uint64_t)c->schedule.total_steps);
    const double d2[6] = {c->schedule.pct_start, c->schedule.div_factor, c->schedule.final_div_factor,
                          c->schedule.base_momentum, c->schedule.max_momentum, c->schedule.power};
    for (int i = 0; i < 6; i++) put_f64(b + 88 + 8 * i, d2[i]);
    put_u64(b + 136, (uint64_t)step);
    put_u64(b + 144, (uint64_t)nstate);
}

/* Writes the model (and the optimiser when given) to f; 0 on a write error
 * (errno says why). */
static int write_model(FILE *f, const sl_unet *net, const sl_optim *opt)
{
    writer w = {f, crc32(0L, Z_NULL, 0), 0};
    unsigned char h[HEADER_BYTES], ob[OPTIM_FIXED_BYTES], tail[4];
    encode_header(h, &net->cfg, net->nparams, net->nbuffers, opt != NULL);
    w_bytes(&w, h, sizeof h);
    w_floats(&w, net->params, net->nparams);
    w_floats(&w, net->buffers, net->nbuffers);
    if (opt) {
        int k = sl_optim_state_per_param(&opt->cfg);
        encode_optim(ob, &opt->cfg, opt->step, (int64_t)k * opt->n);
        w_bytes(&w, ob, sizeof ob);
        if (k >= 1) w_floats(&w, opt->m, opt->n);
        if (k >= 2) w_floats(&w, opt->v, opt->n);
    }
    put_u32(tail, (uint32_t)w.crc);
    if (!w.failed && fwrite(tail, 1, 4, w.f) != 4) w.failed = 1;
    return !w.failed;
}

sl_status sl_unet_save(const sl_unet *net, const sl_optim *opt, const char *path, char *msg,
                       size_t msglen)
{
    if (!net || !path) return sl_errf(msg, msglen, SL_EINVAL, "sl_unet_save: NULL argument");
    if (opt && (opt->params != net->params || opt->n != net->nparams))
        return sl_errf(msg, msglen, SL_EINVAL, "the optimiser does not belong to this net");
    sl_out *o;
    sl_status st = sl_out_open(path, &o, msg, msglen);
    if (st != SL_OK) return st;
    errno = 0;
    if (!write_model(sl_out_file(o), net, opt)) {
        int e = errno ? errno : EIO;
        sl_out_abort(o);
        return sl_errf(msg, msglen, SL_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return sl_out_commit(o, msg, msglen);
}

sl_status slnn_unet_save_mem(const sl_unet *net, const sl_optim *opt, unsigned char **data, size_t *len,
                             char *msg, size_t msglen)
{
    *data = NULL;
    *len = 0;
    if (opt && (opt->params != net->params || opt->n != net->nparams))
        return sl_errf(msg, msglen, SL_EINVAL, "the optimiser does not belong to this net");
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return sl_errf(msg, msglen, SL_ENOMEM, "model: out of memory");
    int ok = write_model(f, net, opt);
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        free(buf);
        return sl_errf(msg, msglen, SL_ENOMEM, "model: out of memory");
    }
    *data = (unsigned char *)buf;
    *len = n;
    return SL_OK;
}

/* --------------------------------------------------------------- reading */

typedef struct reader {
    FILE *f;
    uLong crc;
} reader;

static int r_bytes(reader *r, unsigned char *b, size_t n)
{
    if (fread(b, 1, n, r->f) != n) return 0;
    r->crc = crc32(r->crc, b, (uInt)n);
    return 1;
}

static int r_floats(reader *r, float *x, int64_t n)
{
    unsigned char buf[16384];
    const int64_t per = (int64_t)sizeof buf / 4;
    for (int64_t i = 0; i < n; i += per) {
        int64_t k = n - i < per ? n - i : per;
        if (!r_bytes(r, buf, (size_t)k * 4)) return 0;
        for (int64_t j = 0; j < k; j++) x[i + j] = get_f32(buf + 4 * j);
    }
    return 1;
}

static void decode_optim(const unsigned char *b, sl_optim_config *c, int64_t *step, int64_t *nstate)
{
    sl_optim_config d = SL_OPTIM_CONFIG_DEFAULT;
    d.kind = (sl_optim_kind)get_u32(b + 0);
    d.nesterov = (int)get_u32(b + 4);
    d.schedule.kind = (sl_sched_kind)get_u32(b + 8);
    d.schedule.cycle_momentum = (int)get_u32(b + 12);
    d.lr = get_f64(b + 16);
    d.beta1 = get_f64(b + 24);
    d.beta2 = get_f64(b + 32);
    d.eps = get_f64(b + 40);
    d.weight_decay = get_f64(b + 48);
    d.momentum = get_f64(b + 56);
    d.dampening = get_f64(b + 64);
    d.clip_norm = get_f64(b + 72);
    d.schedule.total_steps = (int64_t)get_u64(b + 80);
    d.schedule.pct_start = get_f64(b + 88);
    d.schedule.div_factor = get_f64(b + 96);
    d.schedule.final_div_factor = get_f64(b + 104);
    d.schedule.base_momentum = get_f64(b + 112);
    d.schedule.max_momentum = get_f64(b + 120);
    d.schedule.power = get_f64(b + 128);
    *step = (int64_t)get_u64(b + 136);
    *nstate = (int64_t)get_u64(b + 144);
    *c = d;
}

static int all_finite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Reads a model of fsize bytes from f (closed here); `path` names it in
 * messages. */
static sl_status read_model(FILE *f, int64_t fsize, sl_unet **out, sl_optim **opt_out, const char *path,
                            char *msg, size_t msglen)
{
    reader r = {f, crc32(0L, Z_NULL, 0)};
    sl_unet *net = NULL;
    sl_optim *opt = NULL;
    sl_status st = SL_OK;
    char sub[200];
    unsigned char h[HEADER_BYTES], ob[OPTIM_FIXED_BYTES], tail[4];
    if (fsize < HEADER_BYTES + 4 || !r_bytes(&r, h, HEADER_BYTES)) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: truncated (%lld bytes, a model has at least %d)",
                     path, (long long)fsize, HEADER_BYTES + 4);
        goto done;
    }
    if (memcmp(h, MODEL_MAGIC, 8) != 0) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: not a segloss model file (bad magic)", path);
        goto done;
    }
    uint32_t version = get_u32(h + 8);
    if (version < 1 || version > MODEL_VERSION) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: model format version %u, this build reads 1 to %u",
                     path, version, MODEL_VERSION);
        goto done;
    }
    if (get_u32(h + 12) != HEADER_BYTES) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: header size %u, expected %d", path,
                     get_u32(h + 12), HEADER_BYTES);
        goto done;
    }
    sl_unet_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (version >= 2)
        for (int s = 0; s < SL_UNET_MAX_DEPTH; s++)
            for (int a = 0; a < 3; a++) {
                cfg.pool[s][a] = h[92 + 3 * s + a] & 15;
                cfg.kernel[s][a] = h[92 + 3 * s + a] >> 4;
            }
    int32_t ints[9];
    for (int i = 0; i < 9; i++) ints[i] = (int32_t)get_u32(h + 16 + 4 * i);
    cfg.spatial_ndim = ints[0];
    cfg.in_channels = ints[1];
    cfg.num_classes = ints[2];
    cfg.depth = ints[3];
    cfg.base_width = ints[4];
    cfg.max_width = ints[5];
    cfg.norm = (sl_norm_kind)ints[6];
    cfg.down = (sl_down_kind)ints[7];
    cfg.deep_supervision = ints[8];
    cfg.leaky_slope = get_f32(h + 52);
    cfg.norm_eps = get_f32(h + 56);
    cfg.bn_momentum = get_f32(h + 60);
    cfg.seed = get_u64(h + 64);
    if (sl_unet_config_check(&cfg, sub, sizeof sub)) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: invalid configuration: %s", path, sub);
        goto done;
    }
    int64_t np, nb;
    if (sl_unet_count(&cfg, &np, &nb)) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: configuration cannot be built", path);
        goto done;
    }
    if ((int64_t)get_u64(h + 72) != np || (int64_t)get_u64(h + 80) != nb) {
        st = sl_errf(msg, msglen, SL_EFORMAT,
                     "%s: header says %lld parameters and %lld buffers, the configuration has %lld and %lld",
                     path, (long long)get_u64(h + 72), (long long)get_u64(h + 80), (long long)np,
                     (long long)nb);
        goto done;
    }
    uint32_t has_optim = get_u32(h + 88);
    if (has_optim > 1) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: bad optimiser flag %u", path, has_optim);
        goto done;
    }
    /* the size the header implies, checked before anything big is read */
    int64_t expect = HEADER_BYTES + 4 * (np + nb) + 4;
    if (expect > fsize) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: truncated: %lld bytes, the header needs at least %lld",
                     path, (long long)fsize, (long long)expect);
        goto done;
    }
    if (!has_optim && expect != fsize) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: %lld bytes where %lld were expected", path,
                     (long long)fsize, (long long)expect);
        goto done;
    }
    if ((st = sl_unet_create(&net, &cfg, sub, sizeof sub))) {
        st = sl_errf(msg, msglen, st, "%s: %s", path, sub);
        goto done;
    }
    if (!r_floats(&r, net->params, np) || !r_floats(&r, net->buffers, nb)) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: truncated in the parameters", path);
        goto done;
    }
    if (has_optim) {
        sl_optim_config oc;
        int64_t step, nstate;
        if (expect + OPTIM_FIXED_BYTES > fsize || !r_bytes(&r, ob, OPTIM_FIXED_BYTES)) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%s: truncated in the optimiser section", path);
            goto done;
        }
        decode_optim(ob, &oc, &step, &nstate);
        if (sl_optim_config_check(&oc, sub, sizeof sub)) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%s: invalid optimiser configuration: %s", path, sub);
            goto done;
        }
        int k = sl_optim_state_per_param(&oc);
        if (step < 0 || nstate != (int64_t)k * np) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%s: optimiser state of %lld floats (step %lld), expected %lld",
                         path, (long long)nstate, (long long)step, (long long)k * np);
            goto done;
        }
        expect += OPTIM_FIXED_BYTES + 4 * nstate;
        if (expect != fsize) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%s: %lld bytes where %lld were expected%s", path,
                         (long long)fsize, (long long)expect, expect > fsize ? " (truncated)" : "");
            goto done;
        }
        if ((st = sl_optim_create(&opt, net, &oc, sub, sizeof sub))) {
            st = sl_errf(msg, msglen, st, "%s: %s", path, sub);
            goto done;
        }
        if ((k >= 1 && !r_floats(&r, opt->m, np)) || (k >= 2 && !r_floats(&r, opt->v, np))) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%s: truncated in the optimiser state", path);
            goto done;
        }
        opt->step = step;
    }
    uLong crc = r.crc;
    if (fread(tail, 1, 4, r.f) != 4) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: truncated before the checksum", path);
        goto done;
    }
    if (get_u32(tail) != (uint32_t)crc) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: checksum mismatch (corrupt file)", path);
        goto done;
    }
    if (!all_finite(net->params, np) || !all_finite(net->buffers, nb) ||
        (opt && opt->m && !all_finite(opt->m, np)) || (opt && opt->v && !all_finite(opt->v, np))) {
        st = sl_errf(msg, msglen, SL_ENONFINITE, "%s: the stored values contain NaN or Inf", path);
        goto done;
    }
done:
    fclose(r.f);
    if (st) {
        sl_optim_free(opt);
        sl_unet_free(net);
        return st;
    }
    *out = net;
    if (opt_out) *opt_out = opt;
    else sl_optim_free(opt);
    return SL_OK;
}

sl_status sl_unet_load(sl_unet **out, sl_optim **opt_out, const char *path, char *msg,
                       size_t msglen)
{
    if (out) *out = NULL;
    if (opt_out) *opt_out = NULL;
    if (!out || !path) return sl_errf(msg, msglen, SL_EINVAL, "sl_unet_load: NULL argument");
    FILE *f = sl_fopen_read(path);
    if (!f) return sl_errf(msg, msglen, SL_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return sl_errf(msg, msglen, SL_EIO, "%s is not a readable regular file", path);
    }
    return read_model(f, (int64_t)sb.st_size, out, opt_out, path, msg, msglen);
}

sl_status slnn_unet_load_mem(sl_unet **out, sl_optim **opt_out, const unsigned char *data, size_t len,
                             const char *name, char *msg, size_t msglen)
{
    *out = NULL;
    if (opt_out) *opt_out = NULL;
    if (len == 0) return sl_errf(msg, msglen, SL_EFORMAT, "%s: empty model", name);
    FILE *f = fmemopen((void *)data, len, "rb");
    if (!f) return sl_errf(msg, msglen, SL_ENOMEM, "model: out of memory");
    return read_model(f, (int64_t)len, out, opt_out, name, msg, msglen);
}
