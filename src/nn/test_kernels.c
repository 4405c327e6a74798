/*
 * The one test-only export of libsegloss.so: the layer kernels of
 * layers.h by name, for the PyTorch references (tests/ref/test_nn_layers.py,
 * test_nn_int8.py, through tests/ref/slref.py) that check each kernel on its
 * own against torch autograd. The kernels are internal (hidden, like all of
 * src/), so a program linked against the shared library cannot call them by
 * name; this table is the deliberate exception, named so that nobody
 * mistakes it for API. Not declared in any public header; may change.
 */
#include <string.h>
#include "internal.h"
#include "layers.h"

typedef void (*sl_test_fn)(void);

__attribute__((visibility("default"))) sl_test_fn sl_test_nn_kernel(const char *name);

#define SL_TEST_KERNEL(f) {#f, (sl_test_fn)f}

static const struct {
    const char *name;
    sl_test_fn fn;
} kernels[] = {
    SL_TEST_KERNEL(sl_conv2d_work_bytes),   SL_TEST_KERNEL(sl_conv2d_forward),
    SL_TEST_KERNEL(sl_conv2d_backward),     SL_TEST_KERNEL(sl_convt2x2_work_bytes),
    SL_TEST_KERNEL(sl_convt2x2_forward),    SL_TEST_KERNEL(sl_convt2x2_backward),
    SL_TEST_KERNEL(sl_norm_work_bytes),     SL_TEST_KERNEL(sl_instnorm_lrelu_forward),
    SL_TEST_KERNEL(sl_instnorm_lrelu_backward), SL_TEST_KERNEL(sl_batchnorm_lrelu_forward),
    SL_TEST_KERNEL(sl_batchnorm_lrelu_backward), SL_TEST_KERNEL(sl_lrelu_forward),
    SL_TEST_KERNEL(sl_lrelu_backward),      SL_TEST_KERNEL(sl_maxpool2_forward),
    SL_TEST_KERNEL(sl_maxpool2_backward),   SL_TEST_KERNEL(sl_quant_act_params),
    SL_TEST_KERNEL(sl_quant_weights),       SL_TEST_KERNEL(sl_qconv2d_forward),
    SL_TEST_KERNEL(sl_qconvt2x2_forward),
    SL_TEST_KERNEL(sl_conv_work_bytes),     SL_TEST_KERNEL(sl_conv_forward),
    SL_TEST_KERNEL(sl_conv_backward),       SL_TEST_KERNEL(sl_convt_work_bytes),
    SL_TEST_KERNEL(sl_convt_forward),       SL_TEST_KERNEL(sl_convt_backward),
    SL_TEST_KERNEL(sl_maxpool_forward),     SL_TEST_KERNEL(sl_maxpool_backward),
    /* the instruction-set cap (src/core/isa.c): the convolutions' AVX-512
     * path and their cblas path, compared in one process */
    SL_TEST_KERNEL(sl_isa),                 SL_TEST_KERNEL(sl_force_isa),
};

/* The kernel called `name` (its C name, e.g. "sl_conv2d_forward"), or NULL.
 * The caller casts it back to the kernel's type, declared in layers.h. */
sl_test_fn sl_test_nn_kernel(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (strcmp(kernels[i].name, name) == 0) return kernels[i].fn;
    return NULL;
}
