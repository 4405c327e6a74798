/*
 * The 2-D and 3-D U-Net: construction, weight initialisation, the memory plan and
 * the forward and backward passes (architecture in include/segloss/nn.h and
 * docs/nn.md; the layer kernels in conv.c, norm.c, pool.c).
 *
 * Memory, llm.c style: all parameters in one float array, all their
 * gradients in another, with a table of (name, offset, shape); all
 * activations of a forward in one arena and all activation gradients in a
 * second one, laid out by a planner for the current (B, D, H, W) and
 * re-planned only when that shape grows or the thread count changes.
 *
 * Internally every net is 3-D: a 2-D net has depth extent 1, kernel 1 and
 * pool factor 1 along that axis, so both run the same code.
 *
 * Skip connections are never copied: the decoder's first convolution reads
 * the encoder output and the upsampled tensor as two inputs of one
 * concatenation (see sl_conv_shape), and its backward writes the two
 * input gradients straight into their own buffers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "nn_internal.h"
#include "segloss/rng.h"

int sl_nn_threads(int requested)
{
    return sl_threads(requested);
}

/* ------------------------------------------------------------ the config */

static int64_t stage_width(const sl_unet_config *c, int s)
{
    int64_t w = c->base_width;
    for (int i = 0; i < s; i++) {
        w *= 2;
        if (c->max_width > 0 && w > c->max_width) return c->max_width;
    }
    if (c->max_width > 0 && w > c->max_width) w = c->max_width;
    return w;
}

sl_status sl_unet_config_check(const sl_unet_config *c, char *msg, size_t msglen)
{
    if (!c) return sl_errf(msg, msglen, SL_EINVAL, "unet config is NULL");
    if (c->spatial_ndim != 2 && c->spatial_ndim != 3)
        return sl_errf(msg, msglen, SL_EINVAL, "spatial_ndim must be 2 or 3, got %d", c->spatial_ndim);
    if (c->in_channels < 1 || c->in_channels > 65536)
        return sl_errf(msg, msglen, SL_EINVAL, "in_channels must be in [1, 65536], got %d", c->in_channels);
    if (c->num_classes < 1 || c->num_classes > 65536)
        return sl_errf(msg, msglen, SL_EINVAL, "num_classes must be in [1, 65536], got %d", c->num_classes);
    if (c->depth < 1 || c->depth > SL_UNET_MAX_DEPTH)
        return sl_errf(msg, msglen, SL_EINVAL, "depth must be in [1, %d], got %d", SL_UNET_MAX_DEPTH, c->depth);
    if (c->base_width < 1 || c->base_width > 65536)
        return sl_errf(msg, msglen, SL_EINVAL, "base_width must be in [1, 65536], got %d", c->base_width);
    if (c->max_width < 0)
        return sl_errf(msg, msglen, SL_EINVAL, "max_width must be >= 0 (0 = no cap), got %d", c->max_width);
    if (c->norm != SL_NORM_INSTANCE && c->norm != SL_NORM_BATCH && c->norm != SL_NORM_NONE)
        return sl_errf(msg, msglen, SL_EINVAL, "unknown norm kind %d", (int)c->norm);
    if (c->down != SL_DOWN_MAXPOOL && c->down != SL_DOWN_STRIDED)
        return sl_errf(msg, msglen, SL_EINVAL, "unknown downsampling kind %d", (int)c->down);
    if (c->deep_supervision != 0 && c->deep_supervision != 1)
        return sl_errf(msg, msglen, SL_EINVAL, "deep_supervision must be 0 or 1, got %d", c->deep_supervision);
    if (!(c->leaky_slope >= 0.0f && c->leaky_slope <= 1.0f))
        return sl_errf(msg, msglen, SL_EINVAL, "leaky_slope must be in [0, 1], got %g", (double)c->leaky_slope);
    if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f))
        return sl_errf(msg, msglen, SL_EINVAL, "norm_eps must be in (0, 1), got %g", (double)c->norm_eps);
    if (!(c->bn_momentum >= 0.0f && c->bn_momentum <= 1.0f))
        return sl_errf(msg, msglen, SL_EINVAL, "bn_momentum must be in [0, 1], got %g", (double)c->bn_momentum);
    for (int st = 0; st < SL_UNET_MAX_DEPTH; st++)
        for (int a = 0; a < 3; a++) {
            const int p = c->pool[st][a], k = c->kernel[st][a];
            const int unused = a >= c->spatial_ndim || st >= c->depth;
            if ((unused || st == 0) && p != 0)
                return sl_errf(msg, msglen, SL_EINVAL, "pool[%d][%d] must be 0 (%s), got %d", st, a,
                               st == 0 ? "stage 0 is not pooled" : "no such stage or axis", p);
            if (unused && k != 0)
                return sl_errf(msg, msglen, SL_EINVAL, "kernel[%d][%d] must be 0 (no such stage or axis), got %d",
                               st, a, k);
            if (p != 0 && p != 1 && p != 2)
                return sl_errf(msg, msglen, SL_EINVAL, "pool[%d][%d] must be 1 or 2 (0 = 2), got %d", st, a, p);
            if (k != 0 && k != 1 && k != 3)
                return sl_errf(msg, msglen, SL_EINVAL, "kernel[%d][%d] must be 1 or 3 (0 = 3), got %d", st, a, k);
        }
    /* the widest layer: 2 w_s input channels * 27 taps must fit in int for
     * BLAS; 65536 * 2^7 * 2 * 27 would not, so check it */
    int64_t wmax = stage_width(c, c->depth - 1);
    if (wmax > 8192 && c->max_width == 0)
        return sl_errf(msg, msglen, SL_EOVERFLOW, "stage width %lld too large (base_width %d, depth %d)",
                       (long long)wmax, c->base_width, c->depth);
    return SL_OK;
}

/* ------------------------------------------------------- the tensor table */

typedef struct builder {
    tensor_entry *t;
    int n, cap;
    int64_t nparams, nbuffers;
    int failed;
} builder;

static int add_tensor(builder *b, const char *name, int is_buffer, int ndim, const int64_t *shape,
                      tensor_init init, double fan_in)
{
    if (b->failed) return -1;
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 64;
        tensor_entry *t = realloc(b->t, (size_t)cap * sizeof *t);
        if (!t) {
            b->failed = 1;
            return -1;
        }
        b->t = t;
        b->cap = cap;
    }
    tensor_entry *e = &b->t[b->n];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->is_buffer = is_buffer;
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->numel *= shape[i];
    }
    e->init = init;
    e->fan_in = fan_in;
    if (is_buffer) {
        e->offset = b->nbuffers;
        b->nbuffers += e->numel;
    } else {
        e->offset = b->nparams;
        b->nparams += e->numel;
    }
    return b->n++;
}

/* Registers conv -> norm for one block; names "<stage>.conv<k>.weight" ... */
static void add_block(builder *bd, const sl_unet_config *c, nn_block *k, const char *stage, int idx,
                      int64_t cin1, int64_t cin2, int64_t cout, int stride, const int kx[3])
{
    char name[SL_NAME_LEN];
    int64_t cin = cin1 + cin2;
    const int nd = c->spatial_ndim, off = 3 - nd;
    int64_t wshape[5] = {cout, cin}, vshape[1] = {cout}, taps = 1;
    for (int a = 0; a < nd; a++) {
        wshape[2 + a] = kx[off + a];
        taps *= kx[off + a];
    }
    memset(k, 0, sizeof *k);
    k->cin1 = cin1;
    k->cin2 = cin2;
    k->cout = cout;
    k->stride = stride;
    k->t_b = k->t_g = k->t_be = k->t_rm = k->t_rv = -1;
    snprintf(name, sizeof name, "%s.conv%d.weight", stage, idx);
    k->t_w = add_tensor(bd, name, 0, 2 + nd, wshape, INIT_KAIMING, (double)(cin * taps));
    if (c->norm == SL_NORM_NONE) {
        snprintf(name, sizeof name, "%s.conv%d.bias", stage, idx);
        k->t_b = add_tensor(bd, name, 0, 1, vshape, INIT_ZERO, 0);
    } else {
        snprintf(name, sizeof name, "%s.norm%d.weight", stage, idx);
        k->t_g = add_tensor(bd, name, 0, 1, vshape, INIT_ONE, 0);
        snprintf(name, sizeof name, "%s.norm%d.bias", stage, idx);
        k->t_be = add_tensor(bd, name, 0, 1, vshape, INIT_ZERO, 0);
    }
}

static void add_block_buffers(builder *bd, const sl_unet_config *c, nn_block *k, const char *stage,
                              int idx)
{
    if (c->norm != SL_NORM_BATCH) return;
    char name[SL_NAME_LEN];
    int64_t vshape[1] = {k->cout};
    snprintf(name, sizeof name, "%s.norm%d.running_mean", stage, idx);
    k->t_rm = add_tensor(bd, name, 1, 1, vshape, INIT_ZERO, 0);
    snprintf(name, sizeof name, "%s.norm%d.running_var", stage, idx);
    k->t_rv = add_tensor(bd, name, 1, 1, vshape, INIT_ONE, 0);
}

static sl_status build_table(sl_unet *net, char *msg, size_t msglen)
{
    const sl_unet_config *c = &net->cfg;
    const int D = c->depth;
    builder bd = {0};
    char stage[16], name[SL_NAME_LEN];
    const int nd = c->spatial_ndim, off = 3 - nd;
    net->D = D;
    net->nout = (c->deep_supervision && D >= 3) ? D - 1 : 1;
    for (int s = 0; s < D; s++) net->width[s] = stage_width(c, s);
    /* per-stage factors on the internal (D, H, W) axes, defaults resolved */
    for (int s = 0; s < D; s++)
        for (int a = 0; a < 3; a++) {
            const int ca = a - off; /* the config's axis, < 0 for a 2-D net's D */
            const int p = ca < 0 ? 1 : c->pool[s][ca], k = ca < 0 ? 1 : c->kernel[s][ca];
            net->pf[s][a] = s == 0 ? 1 : (p ? p : 2);
            net->kx[s][a] = k ? k : 3;
        }

    for (int s = 0; s < D; s++) {
        snprintf(stage, sizeof stage, "enc%d", s);
        int64_t cin = s == 0 ? c->in_channels : net->width[s - 1];
        int stride = (s > 0 && c->down == SL_DOWN_STRIDED) ? 2 : 1;
        add_block(&bd, c, &net->enc[s][0], stage, 1, cin, 0, net->width[s], stride, net->kx[s]);
        add_block(&bd, c, &net->enc[s][1], stage, 2, net->width[s], 0, net->width[s], 1, net->kx[s]);
    }
    for (int s = D - 2; s >= 0; s--) {
        int64_t up_shape[5] = {net->width[s + 1], net->width[s]}, b_shape[1] = {net->width[s]};
        for (int a = 0; a < nd; a++) up_shape[2 + a] = net->pf[s + 1][off + a];
        snprintf(name, sizeof name, "up%d.weight", s);
        net->t_up_w[s] = add_tensor(&bd, name, 0, 2 + nd, up_shape, INIT_KAIMING, (double)net->width[s + 1]);
        snprintf(name, sizeof name, "up%d.bias", s);
        net->t_up_b[s] = add_tensor(&bd, name, 0, 1, b_shape, INIT_ZERO, 0);
        snprintf(stage, sizeof stage, "dec%d", s);
        add_block(&bd, c, &net->dec[s][0], stage, 1, net->width[s], net->width[s], net->width[s], 1,
                  net->kx[s]);
        add_block(&bd, c, &net->dec[s][1], stage, 2, net->width[s], 0, net->width[s], 1, net->kx[s]);
    }
    for (int l = 0; l < net->nout; l++) {
        int64_t h_shape[5] = {c->num_classes, net->width[l], 1, 1, 1}, b_shape[1] = {c->num_classes};
        snprintf(name, sizeof name, "head%d.weight", l);
        net->t_head_w[l] = add_tensor(&bd, name, 0, 2 + nd, h_shape, INIT_KAIMING, (double)net->width[l]);
        snprintf(name, sizeof name, "head%d.bias", l);
        net->t_head_b[l] = add_tensor(&bd, name, 0, 1, b_shape, INIT_ZERO, 0);
    }
    /* buffers after all parameters, in the same stage order */
    for (int s = 0; s < D; s++) {
        snprintf(stage, sizeof stage, "enc%d", s);
        add_block_buffers(&bd, c, &net->enc[s][0], stage, 1);
        add_block_buffers(&bd, c, &net->enc[s][1], stage, 2);
    }
    for (int s = D - 2; s >= 0; s--) {
        snprintf(stage, sizeof stage, "dec%d", s);
        add_block_buffers(&bd, c, &net->dec[s][0], stage, 1);
        add_block_buffers(&bd, c, &net->dec[s][1], stage, 2);
    }
    if (bd.failed) {
        free(bd.t);
        return sl_errf(msg, msglen, SL_ENOMEM, "out of memory building the tensor table");
    }
    net->tensors = bd.t;
    net->ntensors = bd.n;
    net->nparams = bd.nparams;
    net->nbuffers = bd.nbuffers;
    return SL_OK;
}

static void init_tensors(sl_unet *net)
{
    const double a = net->cfg.leaky_slope;
    const double gain = sqrt(2.0 / (1.0 + a * a));
    for (int i = 0; i < net->ntensors; i++) {
        const tensor_entry *e = &net->tensors[i];
        float *p = (e->is_buffer ? net->buffers : net->params) + e->offset;
        switch (e->init) {
        case INIT_ZERO:
            memset(p, 0, (size_t)e->numel * sizeof(float));
            break;
        case INIT_ONE:
            for (int64_t j = 0; j < e->numel; j++) p[j] = 1.0f;
            break;
        case INIT_KAIMING: {
            sl_rng r;
            sl_rng_seed_stream(&r, net->cfg.seed, (uint64_t)i);
            const double std = gain / sqrt(e->fan_in);
            for (int64_t j = 0; j < e->numel; j++) p[j] = (float)(std * sl_rng_normal(&r));
            break;
        }
        }
    }
}

sl_status sl_unet_count(const sl_unet_config *cfg, int64_t *nparams, int64_t *nbuffers)
{
    if (sl_unet_config_check(cfg, NULL, 0)) return SL_EINVAL;
    sl_unet tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = *cfg;
    sl_status st = build_table(&tmp, NULL, 0);
    if (st) return st;
    free(tmp.tensors);
    *nparams = tmp.nparams;
    *nbuffers = tmp.nbuffers;
    return SL_OK;
}

sl_status sl_unet_create(sl_unet **out, const sl_unet_config *cfg, char *msg, size_t msglen)
{
    if (!out) return sl_errf(msg, msglen, SL_EINVAL, "out is NULL");
    *out = NULL;
    sl_status st = sl_unet_config_check(cfg, msg, msglen);
    if (st) return st;
    sl_unet *net = calloc(1, sizeof *net);
    if (!net) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    net->cfg = *cfg;
    net->training = 1;
    if ((st = build_table(net, msg, msglen))) {
        free(net);
        return st;
    }
    size_t pb, bb;
    if (sl_bytes(net->nparams, sizeof(float), &pb) || sl_bytes(net->nbuffers, sizeof(float), &bb)) {
        sl_unet_free(net);
        return sl_errf(msg, msglen, SL_EOVERFLOW, "parameter count overflows");
    }
    net->params = sl_nn_alloc_aligned(pb);
    net->grads = sl_nn_alloc_aligned(pb);
    net->buffers = bb ? sl_nn_alloc_aligned(bb) : NULL;
    if (!net->params || !net->grads || (bb && !net->buffers)) {
        sl_unet_free(net);
        return sl_errf(msg, msglen, SL_ENOMEM, "out of memory for %lld parameters",
                       (long long)net->nparams);
    }
    memset(net->grads, 0, pb);
    init_tensors(net);
    *out = net;
    return SL_OK;
}

static void free_plan(sl_unet *net)
{
    free(net->acts);
    free(net->gacts);
    free(net->work);
    net->acts = net->gacts = NULL;
    net->work = NULL;
    net->acts_cap = net->gacts_cap = net->work_cap = 0;
    net->B = 0;
    memset(net->ext, 0, sizeof net->ext);
    net->have_forward = 0;
}

void sl_unet_free(sl_unet *net)
{
    if (!net) return;
    free_plan(net);
    sl_quant_free(net->quant);
    free(net->params);
    free(net->grads);
    free(net->buffers);
    free(net->tensors);
    free(net);
}

sl_status sl_unet_get_config(const sl_unet *net, sl_unet_config *cfg)
{
    if (!net || !cfg) return SL_EINVAL;
    *cfg = net->cfg;
    return SL_OK;
}

int64_t sl_unet_num_params(const sl_unet *net) { return net ? net->nparams : -1; }
float *sl_unet_params(sl_unet *net) { return net ? net->params : NULL; }
float *sl_unet_grads(sl_unet *net) { return net ? net->grads : NULL; }
int64_t sl_unet_num_buffers(const sl_unet *net) { return net ? net->nbuffers : -1; }
float *sl_unet_buffers(sl_unet *net) { return net ? net->buffers : NULL; }
int sl_unet_num_tensors(const sl_unet *net) { return net ? net->ntensors : -1; }
int sl_unet_num_outputs(const sl_unet *net) { return net ? net->nout : -1; }

sl_status sl_unet_tensor(const sl_unet *net, int index, sl_tensor_info *info)
{
    if (!net || !info || index < 0 || index >= net->ntensors) return SL_EINVAL;
    const tensor_entry *e = &net->tensors[index];
    memset(info, 0, sizeof *info);
    info->name = e->name;
    info->is_buffer = e->is_buffer;
    info->offset = e->offset;
    info->numel = e->numel;
    info->ndim = e->ndim;
    for (int i = 0; i < e->ndim; i++) info->shape[i] = e->shape[i];
    return SL_OK;
}

sl_status sl_unet_set_threads(sl_unet *net, int threads)
{
    if (!net || threads < 0) return SL_EINVAL;
    net->threads = threads;
    return SL_OK;
}

sl_status sl_unet_set_training(sl_unet *net, int training)
{
    if (!net) return SL_EINVAL;
    net->training = training ? 1 : 0;
    return SL_OK;
}

sl_status sl_unet_zero_grad(sl_unet *net)
{
    if (!net) return SL_EINVAL;
    memset(net->grads, 0, (size_t)net->nparams * sizeof(float));
    return SL_OK;
}

sl_status sl_unet_ds_weights(const sl_unet *net, float *w)
{
    if (!net || !w) return SL_EINVAL;
    double sum = 0.0;
    for (int i = 0; i < net->nout; i++) sum += ldexp(1.0, -i);
    for (int i = 0; i < net->nout; i++) w[i] = (float)(ldexp(1.0, -i) / sum);
    return SL_OK;
}

/* ---------------------------------------------------------- the planner */

/* Bump allocation of slots in two arenas. With base == NULL it only counts. */
typedef struct planner {
    float *abase, *gbase;
    int64_t an, gn; /* floats used */
    int overflow;
} planner;

static int64_t pad16(int64_t n) { return (n + 15) & ~(int64_t)15; }

static float *take(float *base, int64_t *used, int64_t n, int *overflow)
{
    float *p = base ? base + *used : NULL;
    if (n < 0 || n > INT64_MAX - 15 || *used > INT64_MAX - pad16(n)) {
        *overflow = 1;
        return NULL;
    }
    *used += pad16(n);
    return p;
}

static void plan_slot(planner *pl, slot *s, int64_t n, int with_grad)
{
    s->n = n;
    s->written = 0;
    s->v = take(pl->abase, &pl->an, n, &pl->overflow);
    s->g = with_grad ? take(pl->gbase, &pl->gn, n, &pl->overflow) : NULL;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static int64_t vox(const int64_t e[3]) { return e[0] * e[1] * e[2]; }

/* The 1x1(x1) head convolution of level l. */
static void head_shape(const sl_unet *net, int l, sl_conv_shape *cs)
{
    const int64_t *e = net->ext[l];
    sl_conv_shape s = {net->B, net->width[l], 0, net->cfg.num_classes, {e[0], e[1], e[2]}, {1, 1, 1},
                       {1, 1, 1}, {0, 0, 0}};
    *cs = s;
}

/* The convolution of a block at stage s reading extent `in`: kernel
 * net->kx[s], "same" padding, and for a strided block stride pf[s]. */
static sl_conv_shape block_shape(const sl_unet *net, const nn_block *bk, int s, int64_t B,
                                 const int64_t in[3])
{
    sl_conv_shape cs = {B, bk->cin1, bk->cin2, bk->cout, {in[0], in[1], in[2]}, {1, 1, 1}, {1, 1, 1},
                        {0, 0, 0}};
    for (int a = 0; a < 3; a++) {
        cs.k[a] = net->kx[s][a];
        cs.pad[a] = (cs.k[a] - 1) / 2;
        cs.stride[a] = bk->stride != 1 ? net->pf[s][a] : 1;
    }
    return cs;
}

/* Lays out every buffer for batch B and stage extents net->ext (set by
 * the caller); returns the work bytes needed (0 on overflow). Called
 * twice: to count, then to assign pointers. */
static size_t plan_layout(sl_unet *net, planner *pl, int64_t B, int threads)
{
    const sl_unet_config *c = &net->cfg;
    const int D = net->D;
    int64_t n, stat_n;
    size_t work = 0;
    if (sl_mul3_size(B, c->in_channels, vox(net->ext[0]), &n)) pl->overflow = 1;
    plan_slot(pl, &net->img, n, 0);
    for (int s = 0; s < D; s++) {
        if (s > 0 && c->down == SL_DOWN_MAXPOOL) {
            if (sl_mul3_size(B, net->width[s - 1], vox(net->ext[s]), &n)) pl->overflow = 1;
            plan_slot(pl, &net->pool[s], n, 1);
        }
        for (int k = 0; k < 2; k++) {
            nn_block *bk = &net->enc[s][k];
            const int64_t *in = (k == 0 && bk->stride != 1) ? net->ext[s - 1] : net->ext[s];
            bk->cs = block_shape(net, bk, s, B, in);
            bk->nvox = vox(net->ext[s]);
        }
    }
    for (int s = D - 2; s >= 0; s--) {
        if (sl_mul3_size(B, net->width[s], vox(net->ext[s]), &n)) pl->overflow = 1;
        plan_slot(pl, &net->up[s], n, 1);
        work = max_sz(work, sl_convt_work_bytes(B, net->width[s + 1], net->width[s], net->ext[s + 1],
                                                net->pf[s + 1], threads));
        for (int k = 0; k < 2; k++) {
            nn_block *bk = &net->dec[s][k];
            bk->cs = block_shape(net, bk, s, B, net->ext[s]);
            bk->nvox = vox(net->ext[s]);
        }
    }
    /* the block activations, encoder then decoder */
    for (int pass = 0; pass < 2; pass++)
        for (int s = 0; s < D; s++)
            for (int k = 0; k < 2; k++) {
                if (pass == 1 && s > D - 2) continue;
                nn_block *bk = pass == 0 ? &net->enc[s][k] : &net->dec[s][k];
                if (sl_mul3_size(B, bk->cout, bk->nvox, &n)) pl->overflow = 1;
                plan_slot(pl, &bk->y, n, 1);
                plan_slot(pl, &bk->a, n, 1);
                stat_n = c->norm == SL_NORM_BATCH ? bk->cout : B * bk->cout;
                bk->mean = take(pl->abase, &pl->an, stat_n, &pl->overflow);
                bk->rstd = take(pl->abase, &pl->an, stat_n, &pl->overflow);
                size_t wb = sl_conv_work_bytes(&bk->cs, threads);
                if (wb == 0) pl->overflow = 1;
                work = max_sz(work, wb);
                work = max_sz(work, sl_norm_work_bytes(B, bk->cout));
            }
    for (int l = 0; l < net->nout; l++) {
        if (sl_mul3_size(B, c->num_classes, vox(net->ext[l]), &n)) pl->overflow = 1;
        plan_slot(pl, &net->logits[l], n, 0);
        sl_conv_shape cs;
        head_shape(net, l, &cs);
        cs.B = B;
        size_t wb = sl_conv_work_bytes(&cs, threads);
        if (wb == 0) pl->overflow = 1;
        work = max_sz(work, wb);
    }
    return pl->overflow ? 0 : work;
}

/* Plans for batch B and input extent e0 (D, H, W), already checked to be
 * divisible by the pool factors. */
static sl_status plan(sl_unet *net, int64_t B, const int64_t e0[3], int threads, char *msg,
                      size_t msglen)
{
    if (net->acts && B == net->B && memcmp(e0, net->ext[0], 3 * sizeof(int64_t)) == 0 &&
        threads == net->plan_threads)
        return SL_OK;
    net->have_forward = 0;
    for (int a = 0; a < 3; a++) {
        net->ext[0][a] = e0[a];
        for (int s = 1; s < net->D; s++) net->ext[s][a] = net->ext[s - 1][a] / net->pf[s][a];
    }
    planner pl = {0};
    size_t work = plan_layout(net, &pl, B, threads);
    size_t ab, gb;
    if (pl.overflow || work == 0 || sl_bytes(pl.an, sizeof(float), &ab) ||
        sl_bytes(pl.gn, sizeof(float), &gb)) {
        net->B = 0; /* the extents above belong to no plan */
        memset(net->ext, 0, sizeof net->ext);
        return sl_errf(msg, msglen, SL_EOVERFLOW, "activation memory for B=%lld, %lldx%lldx%lld overflows",
                       (long long)B, (long long)e0[0], (long long)e0[1], (long long)e0[2]);
    }
    /* keep the arenas when the new shape fits (a smaller last batch of an
     * epoch, validation images): only a larger shape reallocates */
    if (ab > net->acts_cap || gb > net->gacts_cap || work > net->work_cap) {
        int64_t keep[SL_UNET_MAX_DEPTH][3];
        memcpy(keep, net->ext, sizeof keep);
        free_plan(net);
        memcpy(net->ext, keep, sizeof keep);
        net->acts = sl_nn_alloc_aligned(ab);
        net->gacts = sl_nn_alloc_aligned(gb);
        net->work = sl_nn_alloc_aligned(work);
        if (!net->acts || !net->gacts || !net->work) {
            free_plan(net);
            return sl_errf(msg, msglen, SL_ENOMEM, "out of memory for activations (%.1f MiB)",
                           (double)(ab + gb + work) / 1048576.0);
        }
        net->acts_cap = ab;
        net->gacts_cap = gb;
        net->work_cap = work;
    }
    sl_status st = sl_nn_blas_reserve(threads, msg, msglen);
    if (st != SL_OK) {
        free_plan(net);
        return st;
    }
    planner pl2 = {net->acts, net->gacts, 0, 0, 0};
    plan_layout(net, &pl2, B, threads);
    net->B = B;
    net->plan_threads = threads;
    return SL_OK;
}

/* ------------------------------------------------------ forward/backward */

static float *P(sl_unet *net, int t) { return t < 0 ? NULL : net->params + net->tensors[t].offset; }
static float *G(sl_unet *net, int t) { return t < 0 ? NULL : net->grads + net->tensors[t].offset; }
static float *BUF(sl_unet *net, int t)
{
    return t < 0 ? NULL : net->buffers + net->tensors[t].offset;
}

/* ---------------------------------------------------- convolution sites
 * Every convolution of the forward goes through conv_at / convt_at, which
 * record input ranges while an INT8 calibration runs and switch to the
 * int8 kernels once the net is quantised (quant.c). */
static int site_enc(const sl_unet *net, int s, int j) { (void)net; return 2 * s + j; }
static int site_dec(const sl_unet *net, int s, int j) { return 2 * net->D + 2 * s + j; }
static int site_up(const sl_unet *net, int s) { return 4 * net->D + s; }
static int site_head(const sl_unet *net, int l) { return 5 * net->D + l; }

static void conv_at(sl_unet *net, int site, float *out, const float *in1, const float *in2, int t_w, int t_b,
                    const sl_conv_shape *cs, int th)
{
    sl_quant *q = net->quant;
    if (q && q->mode == SL_QUANT_INT8) {
        /* only isotropic 2-D nets are quantised (sl_unet_calibrate) */
        const sl_qsite *qs = &q->site[site];
        const sl_conv2d_shape c2 = {cs->B, cs->C1, cs->C2, cs->Cout, cs->in[1], cs->in[2], cs->k[1],
                                    cs->stride[1], cs->pad[1]};
        sl_qconv2d_forward(out, in1, in2, qs->wq, qs->wscale, qs->wsum, P(net, t_b), qs->scale, qs->zp, &c2, th);
        return;
    }
    if (q) {
        const int64_t hw = vox(cs->in);
        sl_quant_observe(&q->site[site], in1, cs->B * cs->C1 * hw);
        if (in2) sl_quant_observe(&q->site[site], in2, cs->B * cs->C2 * hw);
    }
    sl_conv_forward(out, in1, in2, P(net, t_w), P(net, t_b), cs, net->work, th);
}

static void convt_at(sl_unet *net, int s, float *out, const float *in, int th)
{
    const int64_t Cin = net->width[s + 1], Cout = net->width[s];
    const int64_t *e = net->ext[s + 1], h = e[1], w = e[2];
    sl_quant *q = net->quant;
    if (q && q->mode == SL_QUANT_INT8) {
        const sl_qsite *qs = &q->site[site_up(net, s)];
        sl_qconvt2x2_forward(out, in, qs->wq, qs->wscale, qs->wsum, P(net, net->t_up_b[s]), qs->scale, qs->zp, net->B,
                             Cin, Cout, h, w, th);
        return;
    }
    if (q) sl_quant_observe(&q->site[site_up(net, s)], in, net->B * Cin * vox(e));
    sl_convt_forward(out, in, P(net, net->t_up_w[s]), P(net, net->t_up_b[s]), net->B, Cin, Cout, e,
                     net->pf[s + 1], net->work, th);
}

static void block_forward(sl_unet *net, nn_block *k, int site, const float *in1, const float *in2, int th)
{
    const sl_unet_config *c = &net->cfg;
    const int64_t HW = k->nvox;
    conv_at(net, site, k->y.v, in1, in2, k->t_w, k->t_b, &k->cs, th);
    switch (c->norm) {
    case SL_NORM_INSTANCE:
        sl_instnorm_lrelu_forward(k->a.v, k->mean, k->rstd, k->y.v, P(net, k->t_g), P(net, k->t_be),
                                  net->B, k->cout, HW, c->norm_eps, c->leaky_slope, th);
        break;
    case SL_NORM_BATCH:
        sl_batchnorm_lrelu_forward(k->a.v, k->mean, k->rstd, BUF(net, k->t_rm), BUF(net, k->t_rv),
                                   k->y.v, P(net, k->t_g), P(net, k->t_be), net->B, k->cout, HW,
                                   c->norm_eps, c->bn_momentum, c->leaky_slope, net->training,
                                   net->work, th);
        break;
    case SL_NORM_NONE:
        sl_lrelu_forward(k->a.v, k->y.v, k->y.n, c->leaky_slope, th);
        break;
    }
}

/* Makes a gradient buffer hold a value (0 if nothing wrote it). */
static void ensure_grad(slot *s)
{
    if (!s->written) {
        memset(s->g, 0, (size_t)s->n * sizeof(float));
        s->written = 1;
    }
}

/* The acc flag for a kernel writing the gradients of s1 and s2 (either may
 * be NULL): 0 when both are unwritten, else both are made valid and 1. */
static int acc_for(slot *s1, slot *s2)
{
    int w1 = s1 ? s1->written : -1, w2 = s2 ? s2->written : -1;
    int acc;
    if ((w1 == 0 || w1 == -1) && (w2 == 0 || w2 == -1)) {
        acc = 0;
    } else {
        if (s1) ensure_grad(s1);
        if (s2) ensure_grad(s2);
        acc = 1;
    }
    if (s1) s1->written = 1;
    if (s2) s2->written = 1;
    return acc;
}

static void block_backward(sl_unet *net, nn_block *k, const float *in1, const float *in2, slot *g1,
                           slot *g2, int th)
{
    const sl_unet_config *c = &net->cfg;
    const int64_t HW = k->nvox;
    ensure_grad(&k->a);
    switch (c->norm) {
    case SL_NORM_INSTANCE:
        sl_instnorm_lrelu_backward(k->y.g, G(net, k->t_g), G(net, k->t_be), k->a.g, k->a.v, k->y.v,
                                   k->mean, k->rstd, P(net, k->t_g), net->B, k->cout, HW,
                                   c->leaky_slope, 0, net->work, th);
        break;
    case SL_NORM_BATCH:
        sl_batchnorm_lrelu_backward(k->y.g, G(net, k->t_g), G(net, k->t_be), k->a.g, k->a.v, k->y.v,
                                    k->mean, k->rstd, P(net, k->t_g), net->B, k->cout, HW,
                                    c->leaky_slope, net->fwd_training, 0, net->work, th);
        break;
    case SL_NORM_NONE:
        sl_lrelu_backward(k->y.g, k->a.g, k->y.v, k->y.n, c->leaky_slope, 0, th);
        break;
    }
    k->y.written = 1;
    int acc = acc_for(g1, g2);
    sl_conv_backward(g1 ? g1->g : NULL, g2 ? g2->g : NULL, G(net, k->t_w), G(net, k->t_b), k->y.g,
                     in1, in2, P(net, k->t_w), &k->cs, acc, net->work, th);
}

/* The features a head at level l reads. */
static slot *head_input(sl_unet *net, int l)
{
    return net->D == 1 ? &net->enc[0][1].a : &net->dec[l][1].a;
}


sl_status sl_unet_forward(sl_unet *net, const float *images, const sl_dims *dims, float *logits,
                          char *msg, size_t msglen)
{
    if (!net || !images || !dims || !logits)
        return sl_errf(msg, msglen, SL_EINVAL, "sl_unet_forward: NULL argument");
    const sl_unet_config *c = &net->cfg;
    const int nd = c->spatial_ndim, off = 3 - nd;
    if (dims->spatial_ndim != nd)
        return sl_errf(msg, msglen, SL_ESHAPE, "the U-Net is %d-D: images must be (B, C, %s), got %d spatial axes", nd,
                       nd == 2 ? "H, W" : "D, H, W", dims->spatial_ndim);
    sl_status st = sl_dims_check(dims);
    if (st) return sl_errf(msg, msglen, st, "invalid image dims");
    if (dims->c != c->in_channels)
        return sl_errf(msg, msglen, SL_ESHAPE, "images have %lld channels, the net expects %d",
                       (long long)dims->c, c->in_channels);
    static const char *axis_names[2][3] = {{"H", "W", ""}, {"D", "H", "W"}};
    const int64_t B = dims->n;
    int64_t e0[3] = {1, 1, 1};
    for (int a = 0; a < nd; a++) {
        int64_t f = 1;
        for (int s = 1; s < net->D; s++) f *= net->pf[s][off + a];
        e0[off + a] = dims->spatial[a];
        if (dims->spatial[a] % f)
            return sl_errf(msg, msglen, SL_ESHAPE, "%s must be divisible by %lld (the pooling factors along it), got %lld",
                           axis_names[nd - 2][a], (long long)f, (long long)dims->spatial[a]);
    }
    if (vox(e0) > INT32_MAX)
        return sl_errf(msg, msglen, SL_EOVERFLOW, "image of %lldx%lldx%lld voxels is too large",
                       (long long)e0[0], (long long)e0[1], (long long)e0[2]);
    const int th = sl_nn_threads(net->threads);
    if ((st = plan(net, B, e0, th, msg, msglen))) return st;
    net->have_forward = 0;

    const int D = net->D;
    memcpy(net->img.v, images, (size_t)net->img.n * sizeof(float));
    for (int s = 0; s < D; s++) {
        const float *in = net->img.v;
        if (s > 0) {
            const float *prev = net->enc[s - 1][1].a.v;
            if (c->down == SL_DOWN_MAXPOOL) {
                sl_maxpool_forward(net->pool[s].v, prev, B, net->width[s - 1], net->ext[s - 1], net->pf[s],
                                   th);
                in = net->pool[s].v;
            } else {
                in = prev;
            }
        }
        block_forward(net, &net->enc[s][0], site_enc(net, s, 0), in, NULL, th);
        block_forward(net, &net->enc[s][1], site_enc(net, s, 1), net->enc[s][0].a.v, NULL, th);
    }
    for (int s = D - 2; s >= 0; s--) {
        const float *below = s == D - 2 ? net->enc[D - 1][1].a.v : net->dec[s + 1][1].a.v;
        convt_at(net, s, net->up[s].v, below, th);
        block_forward(net, &net->dec[s][0], site_dec(net, s, 0), net->enc[s][1].a.v, net->up[s].v, th);
        block_forward(net, &net->dec[s][1], site_dec(net, s, 1), net->dec[s][0].a.v, NULL, th);
    }
    for (int l = 0; l < net->nout; l++) {
        sl_conv_shape cs;
        head_shape(net, l, &cs);
        conv_at(net, site_head(net, l), net->logits[l].v, head_input(net, l)->v, NULL, net->t_head_w[l],
                net->t_head_b[l], &cs, th);
    }
    memcpy(logits, net->logits[0].v, (size_t)net->logits[0].n * sizeof(float));
    net->have_forward = 1;
    net->fwd_training = net->training;
    return SL_OK;
}

sl_status sl_unet_backward_ds(sl_unet *net, const float *const *dlogits, char *msg, size_t msglen)
{
    if (!net || !dlogits) return sl_errf(msg, msglen, SL_EINVAL, "sl_unet_backward: NULL argument");
    if (!net->have_forward)
        return sl_errf(msg, msglen, SL_EBADSTATE, "backward needs a forward pass first");
    if (net->quant && net->quant->mode == SL_QUANT_INT8)
        return sl_errf(msg, msglen, SL_EBADSTATE, "an int8 net is for inference only; sl_unet_dequantize it to train");
    const sl_unet_config *c = &net->cfg;
    const int D = net->D, th = net->plan_threads;
    const int64_t B = net->B;

    /* every activation gradient starts unwritten */
    net->img.written = 0;
    for (int s = 0; s < D; s++) {
        net->pool[s].written = net->up[s].written = 0;
        for (int k = 0; k < 2; k++) {
            net->enc[s][k].y.written = net->enc[s][k].a.written = 0;
            net->dec[s][k].y.written = net->dec[s][k].a.written = 0;
        }
    }
    /* heads, then the decoder from the finest level up: a level's features
     * get their gradient from its head and from the upsampling above it,
     * both before its blocks run backward */
    for (int s = 0; s <= (D >= 2 ? D - 2 : 0); s++) {
        if (s < net->nout && dlogits[s]) {
            sl_conv_shape cs;
            head_shape(net, s, &cs);
            slot *hin = head_input(net, s);
            int acc = acc_for(hin, NULL);
            sl_conv_backward(hin->g, NULL, G(net, net->t_head_w[s]), G(net, net->t_head_b[s]),
                               dlogits[s], hin->v, NULL, P(net, net->t_head_w[s]), &cs, acc,
                               net->work, th);
        }
        if (D == 1) break;
        block_backward(net, &net->dec[s][1], net->dec[s][0].a.v, NULL, &net->dec[s][0].a, NULL, th);
        block_backward(net, &net->dec[s][0], net->enc[s][1].a.v, net->up[s].v, &net->enc[s][1].a,
                       &net->up[s], th);
        slot *below = s == D - 2 ? &net->enc[D - 1][1].a : &net->dec[s + 1][1].a;
        ensure_grad(&net->up[s]);
        int acc = acc_for(below, NULL);
        sl_convt_backward(below->g, G(net, net->t_up_w[s]), G(net, net->t_up_b[s]), net->up[s].g,
                          below->v, P(net, net->t_up_w[s]), B, net->width[s + 1], net->width[s],
                          net->ext[s + 1], net->pf[s + 1], acc, net->work, th);
    }
    /* the encoder, deepest stage first */
    for (int s = D - 1; s >= 0; s--) {
        block_backward(net, &net->enc[s][1], net->enc[s][0].a.v, NULL, &net->enc[s][0].a, NULL, th);
        if (s == 0) {
            block_backward(net, &net->enc[0][0], net->img.v, NULL, NULL, NULL, th);
        } else if (c->down == SL_DOWN_MAXPOOL) {
            block_backward(net, &net->enc[s][0], net->pool[s].v, NULL, &net->pool[s], NULL, th);
            slot *prev = &net->enc[s - 1][1].a;
            int acc = acc_for(prev, NULL);
            sl_maxpool_backward(prev->g, net->pool[s].g, prev->v, B, net->width[s - 1], net->ext[s - 1],
                                net->pf[s], acc, th);
        } else {
            block_backward(net, &net->enc[s][0], net->enc[s - 1][1].a.v, NULL, &net->enc[s - 1][1].a,
                           NULL, th);
        }
    }
    return SL_OK;
}

sl_status sl_unet_backward(sl_unet *net, const float *dlogits, char *msg, size_t msglen)
{
    if (!net || !dlogits) return sl_errf(msg, msglen, SL_EINVAL, "sl_unet_backward: NULL argument");
    const float *levels[SL_UNET_MAX_DEPTH] = {0};
    levels[0] = dlogits;
    return sl_unet_backward_ds(net, levels, msg, msglen);
}

sl_status sl_unet_output(const sl_unet *net, int level, const float **logits, sl_dims *dims)
{
    if (!net || level < 0 || level >= net->nout) return SL_EINVAL;
    if (!net->have_forward) return SL_EBADSTATE;
    if (logits) *logits = net->logits[level].v;
    if (dims) {
        memset(dims, 0, sizeof *dims);
        dims->n = net->B;
        dims->c = net->cfg.num_classes;
        const int nd = net->cfg.spatial_ndim, off = 3 - nd;
        dims->spatial_ndim = nd;
        for (int a = 0; a < nd; a++) dims->spatial[a] = net->ext[level][off + a];
    }
    return SL_OK;
}

/* ------------------------------------------------- target downsampling */

sl_status sl_nn_downsample_nearest_axes(void *out, const void *in, const sl_dims *dims,
                                        size_t elem_size, const int *factors, char *msg,
                                        size_t msglen)
{
    if (!out || !in || !dims || !factors || elem_size == 0)
        return sl_errf(msg, msglen, SL_EINVAL, "downsample: NULL argument or elem_size 0");
    sl_status st = sl_dims_check(dims);
    if (st) return sl_errf(msg, msglen, st, "downsample: invalid dims");
    /* the leading axes of a 2-D/1-D map have extent 1 and stride 1 */
    int64_t in_ext[SL_MAX_SPATIAL] = {1, 1, 1}, out_ext[SL_MAX_SPATIAL] = {1, 1, 1};
    int64_t f[SL_MAX_SPATIAL] = {1, 1, 1};
    const int nd = dims->spatial_ndim, off = SL_MAX_SPATIAL - nd;
    for (int i = 0; i < nd; i++) {
        if (factors[i] < 1)
            return sl_errf(msg, msglen, SL_EINVAL, "downsample: factor %d of axis %d is < 1", factors[i], i);
        if (dims->spatial[i] % factors[i])
            return sl_errf(msg, msglen, SL_ESHAPE, "downsample: extent %lld of axis %d is not divisible by %d",
                           (long long)dims->spatial[i], i, factors[i]);
        in_ext[off + i] = dims->spatial[i];
        out_ext[off + i] = dims->spatial[i] / factors[i];
        f[off + i] = factors[i];
    }
    const int64_t planes = dims->n * dims->c;
    const int64_t in_vox = in_ext[0] * in_ext[1] * in_ext[2];
    const int64_t out_vox = out_ext[0] * out_ext[1] * out_ext[2];
    const unsigned char *src = in;
    unsigned char *dst = out;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t z = 0; z < out_ext[0]; z++)
            for (int64_t y = 0; y < out_ext[1]; y++)
                for (int64_t x = 0; x < out_ext[2]; x++) {
                    int64_t si = p * in_vox + ((z * f[0]) * in_ext[1] + y * f[1]) * in_ext[2] + x * f[2];
                    int64_t di = p * out_vox + (z * out_ext[1] + y) * out_ext[2] + x;
                    memcpy(dst + (size_t)di * elem_size, src + (size_t)si * elem_size, elem_size);
                }
    return SL_OK;
}

sl_status sl_nn_downsample_nearest(void *out, const void *in, const sl_dims *dims,
                                   size_t elem_size, int factor, char *msg, size_t msglen)
{
    if (factor < 1)
        return sl_errf(msg, msglen, SL_EINVAL, "downsample: NULL argument, elem_size 0 or factor < 1");
    const int factors[SL_MAX_SPATIAL] = {factor, factor, factor};
    return sl_nn_downsample_nearest_axes(out, in, dims, elem_size, factors, msg, msglen);
}

sl_status sl_unet_level_factors(const sl_unet *net, int level, int factors[3])
{
    if (!net || !factors || level < 0 || level >= net->D) return SL_EINVAL;
    const int nd = net->cfg.spatial_ndim, off = 3 - nd;
    for (int a = 0; a < 3; a++) factors[a] = 0;
    for (int a = 0; a < nd; a++) {
        factors[a] = 1;
        for (int s = 1; s <= level; s++) factors[a] *= net->pf[s][off + a];
    }
    return SL_OK;
}

/* -------------------------------------------------- anisotropic planning */

sl_status sl_unet_plan_anisotropic(sl_unet_config *cfg, const double *spacing,
                                   const int64_t *patch, char *msg, size_t msglen)
{
    if (!cfg || !spacing || !patch)
        return sl_errf(msg, msglen, SL_EINVAL, "plan_anisotropic: NULL argument");
    const int nd = cfg->spatial_ndim;
    if (nd != 2 && nd != 3)
        return sl_errf(msg, msglen, SL_EINVAL, "plan_anisotropic: spatial_ndim must be 2 or 3, got %d", nd);
    if (cfg->depth < 1 || cfg->depth > SL_UNET_MAX_DEPTH)
        return sl_errf(msg, msglen, SL_EINVAL, "plan_anisotropic: depth must be in [1, %d], got %d",
                       SL_UNET_MAX_DEPTH, cfg->depth);
    double sp[3];
    int64_t size[3];
    for (int a = 0; a < nd; a++) {
        if (!(spacing[a] > 0.0 && isfinite(spacing[a])))
            return sl_errf(msg, msglen, SL_EINVAL, "plan_anisotropic: spacing of axis %d must be finite and > 0, got %g",
                           a, spacing[a]);
        if (patch[a] < 1)
            return sl_errf(msg, msglen, SL_EINVAL, "plan_anisotropic: patch extent of axis %d must be >= 1, got %lld", a,
                           (long long)patch[a]);
        sp[a] = spacing[a];
        size[a] = patch[a];
    }
    int pool[SL_UNET_MAX_DEPTH][3] = {{0}}, kernel[SL_UNET_MAX_DEPTH][3] = {{0}};
    for (int s = 0; s < cfg->depth; s++) {
        double m = sp[0];
        for (int a = 1; a < nd; a++) m = sp[a] < m ? sp[a] : m;
        const int last = s == cfg->depth - 1;
        /* an axis counts as fine while its spacing is under twice the finest */
        for (int a = 0; a < nd; a++) kernel[s][a] = (last || sp[a] < 2.0 * m) ? 3 : 1;
        if (last) break;
        int pooled = 0;
        for (int a = 0; a < nd; a++) {
            const int p = sp[a] < 2.0 * m && size[a] >= 8 ? 2 : 1;
            pool[s + 1][a] = p;
            pooled |= p == 2;
        }
        if (!pooled)
            return sl_errf(msg, msglen, SL_EINVAL,
                           "plan_anisotropic: no axis can be pooled into stage %d (patch too small for depth %d)",
                           s + 1, cfg->depth);
        for (int a = 0; a < nd; a++) {
            sp[a] *= pool[s + 1][a];
            size[a] /= pool[s + 1][a];
        }
    }
    memcpy(cfg->pool, pool, sizeof pool);
    memcpy(cfg->kernel, kernel, sizeof kernel);
    return SL_OK;
}

/* ------------------------------------------------------- INT8 inference */

sl_status sl_unet_calibrate(sl_unet *net)
{
    if (!net) return SL_EINVAL;
    /* the int8 kernels are 2-D with 3x3 kernels and 2x2 up-sampling */
    for (int s = 0; s < net->D; s++)
        for (int a = 0; a < 3; a++)
            if (net->pf[s][a] != (s == 0 || a == 0 ? 1 : 2) || net->kx[s][a] != (a == 0 ? 1 : 3))
                return SL_EUNSUPPORTED;
    sl_quant_free(net->quant);
    net->quant = sl_quant_new(6 * net->D);
    if (!net->quant) return SL_ENOMEM;
    net->quant->mode = SL_QUANT_CALIBRATING;
    return SL_OK;
}

/* A convolution to quantise: its site, weight tensor and GEMM shape. */
typedef struct qsite_plan {
    int site, t, transposed;
    int64_t M, K;
} qsite_plan;

sl_status sl_unet_quantize(sl_unet *net, char *msg, size_t msglen)
{
    if (!net) return sl_errf(msg, msglen, SL_EINVAL, "sl_unet_quantize: NULL net");
    sl_quant *q = net->quant;
    if (!q || q->mode != SL_QUANT_CALIBRATING)
        return sl_errf(msg, msglen, SL_EBADSTATE, "int8: start a calibration (sl_unet_calibrate) and run forwards first");
    const int D = net->D;
    qsite_plan sites[6 * SL_UNET_MAX_DEPTH];
    int n = 0;
    for (int s = 0; s < D; s++)
        for (int j = 0; j < 2; j++) {
            const nn_block *e = &net->enc[s][j];
            sites[n++] = (qsite_plan){site_enc(net, s, j), e->t_w, 0, e->cout, (e->cin1 + e->cin2) * 9};
        }
    for (int s = 0; s + 1 < D; s++) {
        for (int j = 0; j < 2; j++) {
            const nn_block *e = &net->dec[s][j];
            sites[n++] = (qsite_plan){site_dec(net, s, j), e->t_w, 0, e->cout, (e->cin1 + e->cin2) * 9};
        }
        sites[n++] = (qsite_plan){site_up(net, s), net->t_up_w[s], 1, net->width[s] * 4, net->width[s + 1]};
    }
    for (int l = 0; l < net->nout; l++)
        sites[n++] = (qsite_plan){site_head(net, l), net->t_head_w[l], 0, net->cfg.num_classes, net->width[l]};
    for (int i = 0; i < n; i++) {
        sl_qsite *qs = &q->site[sites[i].site];
        if (!qs->seen)
            return sl_errf(msg, msglen, SL_EBADSTATE, "int8: no calibration forward ran since sl_unet_calibrate");
        if (sites[i].K >= SL_QUANT_MAX_K)
            return sl_errf(msg, msglen, SL_EUNSUPPORTED, "int8: %s sums %lld products, more than int32 sums allow (%d)",
                           net->tensors[sites[i].t].name, (long long)sites[i].K, SL_QUANT_MAX_K);
        sl_status st = sl_quant_site_weights(qs, P(net, sites[i].t), sites[i].M, sites[i].K, sites[i].transposed);
        if (st == SL_ENONFINITE)
            return sl_errf(msg, msglen, st, "int8: %s or its calibrated input range is not finite",
                           net->tensors[sites[i].t].name);
        if (st != SL_OK) return sl_errf(msg, msglen, st, "int8: out of memory");
    }
    q->mode = SL_QUANT_INT8;
    net->have_forward = 0;
    return SL_OK;
}

sl_status sl_unet_dequantize(sl_unet *net)
{
    if (!net) return SL_EINVAL;
    sl_quant_free(net->quant);
    net->quant = NULL;
    net->have_forward = 0;
    return SL_OK;
}

int sl_unet_is_quantized(const sl_unet *net)
{
    return net && net->quant && net->quant->mode == SL_QUANT_INT8;
}
