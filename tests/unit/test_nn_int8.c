/*
 * INT8 inference of the U-Net (sl_unet_calibrate / sl_unet_quantize):
 * int8 logits close to the float ones on a trained-looking net, the same
 * argmax almost everywhere, bit-identical for 1 and 2 threads,
 * dequantisation back to the exact float outputs, and the state errors
 * (quantise without calibration or without a forward, backward of an int8
 * net, NULL arguments). The integer arithmetic itself is checked against
 * PyTorch's quantisation in tests/ref/test_nn_int8.py.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/nn.h"
#include "segloss/rng.h"
#include "test_util.h"

enum { B = 4, H = 32, W = 32, C = 3 };

/* Smooth images with a bright disc, as the phantom has. */
static void images(float *x, uint64_t seed)
{
    sl_rng r;
    sl_rng_seed(&r, seed);
    for (int b = 0; b < B; b++) {
        double cy = 8 + 16 * sl_rng_uniform(&r), cx = 8 + 16 * sl_rng_uniform(&r);
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                double d = hypot(y - cy, xx - cx);
                x[(b * H + y) * W + xx] = (float)((d < 6 ? 1.5 : -0.5) + 0.2 * sl_rng_normal(&r));
            }
    }
}

static double max_abs(const float *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static void argmax(const float *z, int32_t *lab)
{
    for (int b = 0; b < B; b++)
        for (int p = 0; p < H * W; p++) {
            int best = 0;
            for (int c = 1; c < C; c++)
                if (z[(b * C + c) * H * W + p] > z[(b * C + best) * H * W + p]) best = c;
            lab[b * H * W + p] = best;
        }
}

static void check_net(sl_norm_kind norm, sl_down_kind down, int depth)
{
    char msg[256];
    sl_unet_config cfg = SL_UNET_CONFIG_DEFAULT;
    cfg.num_classes = C;
    cfg.depth = depth;
    cfg.base_width = 8;
    cfg.norm = norm;
    cfg.down = down;
    cfg.seed = 7;
    sl_unet *net = NULL;
    CHECK(sl_unet_create(&net, &cfg, msg, sizeof msg) == SL_OK, "create: %s", msg);
    if (!net) return;
    /* spread the head's biases so that the classes compete */
    float *p = sl_unet_params(net);
    for (int i = 0; i < sl_unet_num_tensors(net); i++) {
        sl_tensor_info ti;
        sl_unet_tensor(net, i, &ti);
        if (!strcmp(ti.name, "head0.bias"))
            for (int c = 0; c < C; c++) p[ti.offset + c] = 0.3f * (float)(c - 1);
    }
    sl_unet_set_training(net, 0);
    static float calib[B * H * W], x[B * H * W], zf[B * C * H * W], zq[B * C * H * W], zq2[B * C * H * W],
        zback[B * C * H * W];
    static int32_t lf[B * H * W], lq[B * H * W];
    images(calib, 1);
    images(x, 2);
    sl_dims d = {B, 1, 2, {H, W, 0}};
    CHECK(sl_unet_forward(net, x, &d, zf, msg, sizeof msg) == SL_OK, "float forward: %s", msg);

    CHECK(sl_unet_quantize(net, msg, sizeof msg) == SL_EBADSTATE, "quantize before calibrate must fail");
    CHECK(sl_unet_calibrate(net) == SL_OK, "calibrate");
    CHECK(sl_unet_quantize(net, msg, sizeof msg) == SL_EBADSTATE, "quantize without a calibration forward must fail");
    CHECK(strstr(msg, "calibration") != NULL, "message names the calibration: %s", msg);
    CHECK(!sl_unet_is_quantized(net), "calibrating is not quantised");
    CHECK(sl_unet_forward(net, calib, &d, zq, msg, sizeof msg) == SL_OK, "calibration forward: %s", msg);
    CHECK(sl_unet_quantize(net, msg, sizeof msg) == SL_OK, "quantize: %s", msg);
    CHECK(sl_unet_is_quantized(net), "quantised");

    sl_unet_set_threads(net, 1);
    CHECK(sl_unet_forward(net, x, &d, zq, msg, sizeof msg) == SL_OK, "int8 forward: %s", msg);
    sl_unet_set_threads(net, 2);
    CHECK(sl_unet_forward(net, x, &d, zq2, msg, sizeof msg) == SL_OK, "int8 forward (2 threads): %s", msg);
    CHECK(!memcmp(zq, zq2, sizeof zq), "int8 logits: 1 and 2 threads bit-identical");

    /* int8 rounding through ~10 layers of an untrained net (whose logits
     * are small and close to each other): a few per cent of the logits'
     * scale at worst, 2-10 % on average (InstanceNorm scales the rounding of
     * low-variance deep features up) */
    double diff = 0, sum_diff = 0, sum_abs = 0;
    for (int64_t i = 0; i < B * C * H * W; i++) {
        diff = fmax(diff, fabs((double)zq[i] - zf[i]));
        sum_diff += fabs((double)zq[i] - zf[i]);
        sum_abs += fabs((double)zf[i]);
    }
    const double rel = diff / max_abs(zf, B * C * H * W), mean_rel = sum_diff / sum_abs;
    argmax(zf, lf);
    argmax(zq, lq);
    int64_t agree = 0;
    for (int64_t i = 0; i < B * H * W; i++) agree += lf[i] == lq[i];
    const double share = (double)agree / (B * H * W);
    printf("norm %d down %d depth %d: int8 vs float logits max |diff| %.4g (%.3g of max |logit|), mean |diff| %.3g of "
           "mean |logit|, argmax agrees on %.4f\n",
           (int)norm, (int)down, depth, diff, rel, mean_rel, share);
    CHECK(rel < 0.1, "int8 logits within 10%% of the float scale, got %.4g", rel);
    CHECK(mean_rel < 0.15, "mean int8 error < 15%% of the mean |logit|, got %.4g", mean_rel);
    CHECK(share > 0.93, "argmax agrees on > 93%% of pixels, got %.4f", share);
    CHECK(rel > 0, "int8 logits differ from the float ones (quantisation is active)");

    /* no backward for an int8 net */
    CHECK(sl_unet_backward(net, zq, msg, sizeof msg) == SL_EBADSTATE, "backward of an int8 net must fail");
    CHECK(strstr(msg, "int8") != NULL, "message names int8: %s", msg);

    /* back to float: the exact float outputs */
    CHECK(sl_unet_dequantize(net) == SL_OK, "dequantize");
    CHECK(!sl_unet_is_quantized(net), "dequantised");
    CHECK(sl_unet_forward(net, x, &d, zback, msg, sizeof msg) == SL_OK, "float forward again: %s", msg);
    CHECK(!memcmp(zf, zback, sizeof zf), "dequantised net gives the float logits bit for bit");

    /* a non-finite weight is refused at quantisation */
    CHECK(sl_unet_calibrate(net) == SL_OK, "calibrate again");
    CHECK(sl_unet_forward(net, calib, &d, zback, msg, sizeof msg) == SL_OK, "calibration forward");
    const float keep = p[0];
    p[0] = NAN;
    CHECK(sl_unet_quantize(net, msg, sizeof msg) == SL_ENONFINITE, "NaN weight: SL_ENONFINITE");
    CHECK(strstr(msg, "enc0.conv1.weight") != NULL, "message names the tensor: %s", msg);
    p[0] = keep;
    /* a failure after some sites were quantised leaves the net calibrating;
     * quantising again (weights fixed) succeeds (and leaks nothing: ASan) */
    int64_t head = -1;
    for (int i = 0; i < sl_unet_num_tensors(net); i++) {
        sl_tensor_info ti;
        sl_unet_tensor(net, i, &ti);
        if (!strcmp(ti.name, "head0.weight")) head = ti.offset;
    }
    CHECK(head >= 0, "head0.weight found");
    if (head >= 0) {
        const float h = p[head];
        p[head] = INFINITY;
        CHECK(sl_unet_quantize(net, msg, sizeof msg) == SL_ENONFINITE, "Inf head weight: SL_ENONFINITE");
        CHECK(strstr(msg, "head0.weight") != NULL, "message names the head: %s", msg);
        CHECK(!sl_unet_is_quantized(net), "still calibrating after the failure");
        p[head] = h;
        CHECK(sl_unet_quantize(net, msg, sizeof msg) == SL_OK, "quantize after fixing the weight: %s", msg);
        CHECK(sl_unet_forward(net, x, &d, zq2, msg, sizeof msg) == SL_OK, "int8 forward");
        CHECK(!memcmp(zq, zq2, sizeof zq), "same int8 logits as the first quantisation");
    }
    sl_unet_free(net);
}

int main(void)
{
    check_net(SL_NORM_INSTANCE, SL_DOWN_MAXPOOL, 3);
    check_net(SL_NORM_BATCH, SL_DOWN_STRIDED, 3);
    check_net(SL_NORM_NONE, SL_DOWN_MAXPOOL, 2);
    check_net(SL_NORM_INSTANCE, SL_DOWN_MAXPOOL, 1);
    char msg[64];
    CHECK(sl_unet_calibrate(NULL) == SL_EINVAL, "calibrate NULL");
    CHECK(sl_unet_quantize(NULL, msg, sizeof msg) == SL_EINVAL, "quantize NULL");
    CHECK(sl_unet_dequantize(NULL) == SL_EINVAL, "dequantize NULL");
    CHECK(!sl_unet_is_quantized(NULL), "is_quantized NULL");
    return test_report("test_nn_int8");
}
