/* sl_exp_nonpos against libm's expf on [-87, 0]: relative error in ulp. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "fastexp.h"
#include "test_util.h"

int main(void)
{
    double worst = 0;
    float worst_x = 0;
    for (float x = 0.0f; x >= -87.0f; x = nextafterf(x, -INFINITY) - 1e-6f * (1 + fabsf(x))) {
        double ref = exp((double)x);
        double ulp = nextafterf((float)ref, INFINITY) - (float)ref;
        double err = fabs((double)sl_exp_nonpos(x) - ref) / ulp;
        if (err > worst) worst = err, worst_x = x;
    }
    printf("max ulp error of sl_exp_nonpos on [-87, 0]: %.3f (at x = %.9g)\n", worst, (double)worst_x);
#if SL_HAVE_V16
    /* the 16-lane version gives the scalar function's bits in every lane */
    long differ = 0, differ_u = 0, n = 0;
    for (float x = 0.0f; x >= -100.0f; x = nextafterf(x, -INFINITY) - 1e-5f * (1 + fabsf(x)), n++) {
        sl_v16f v = {0};
        v += x;
        v[n % 16] = x;
        const sl_v16f r = sl_exp_nonpos_v16(v), ru = sl_exp_nonpos_v16_unclamped(v);
        const float s = sl_exp_nonpos(x), q = r[n % 16], qu = ru[n % 16];
        differ += memcmp(&q, &s, sizeof s) != 0;
        differ_u += memcmp(&qu, &s, sizeof s) != 0;
    }
    printf("sl_exp_nonpos_v16 against sl_exp_nonpos: %ld of %ld inputs differ (unclamped: %ld)\n", differ, n,
           differ_u);
    CHECK(differ == 0, "the vector exp differs from the scalar one at %ld inputs", differ);
    CHECK(differ_u == 0, "the unclamped vector exp differs from the scalar one at %ld inputs <= 0", differ_u);
    {
        const sl_v16f nan = {NAN, -NAN}, r = sl_exp_nonpos_v16_unclamped(nan), rc = sl_exp_nonpos_v16(nan);
        CHECK(r[0] != r[0] && r[1] != r[1] && rc[0] != rc[0], "NaN in, NaN out (%g, %g)", (double)r[0],
              (double)r[1]);
    }
#endif
    CHECK(worst <= 2.0, "max error %.3f ulp > 2", worst);
    CHECK(sl_exp_nonpos(0.0f) == 1.0f, "exp(0) = 1");
    CHECK(sl_exp_nonpos(-1000.0f) > 0 && sl_exp_nonpos(-1000.0f) < 2e-38f, "underflow clamps to e^-87");
    return test_report("fastexp");
}
