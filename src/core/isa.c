/*
 * The instruction set the run-time dispatched kernels use (the fused losses,
 * the convolution's products): the best this CPU and OS support, at most a
 * cap that tests and benchmarks set to compare the variants.
 */
#include "internal.h"

static int isa_cap = SL_ISA_AVX512;

void sl_force_isa(int isa) { isa_cap = isa < 0 ? SL_ISA_AVX512 : isa; }

int sl_isa(void)
{
    int best = SL_ISA_BASE;
#if SL_X86
    /* libgcc's checks include the OS saving the wider registers */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) best = SL_ISA_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        best = SL_ISA_AVX512;
#endif
    return best < isa_cap ? best : isa_cap;
}
