/* sl_log_pos against log (double) on every binade of the normal floats:
 * error in ulp of the float result, sampled densely near 1 where log is small. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "fastexp.h"
#include "test_util.h"

static double worst;
static float worst_x;

static void probe(float x)
{
    double ref = log((double)x);
    float rf = (float)ref;
    double ulp = fabs((double)nextafterf(rf, INFINITY) - rf);
    if (rf == 0) ulp = 1.401298464e-45; /* log(1) = 0 exactly */
    double err = fabs((double)sl_log_pos(x) - ref) / ulp;
    if (err > worst) worst = err, worst_x = x;
}

int main(void)
{
    int n = 0;
    /* every binade, 40 000 points each */
    for (int e = -126; e < 128; e++)
        for (int k = 0; k < 40000; k++, n++) probe(ldexpf(1.0f + k / 40000.0f, e));
    /* [0.5, 8] (sums of exponentials lie in [1, C]) at every representable float in [1, 1.01] */
    for (float x = 0.5f; x <= 8.0f; x += 1.0f / 65536, n++) probe(x);
    for (float x = 1.0f; x <= 1.01f; x = nextafterf(x, INFINITY), n++) probe(x);
    printf("max ulp error of sl_log_pos over %d points: %.3f (at x = %.9g)\n", n, worst, (double)worst_x);
    CHECK(worst <= 2.0, "max error %.3f ulp > 2", worst);
#if SL_HAVE_V16
    /* the 16-lane version gives the scalar function's bits in every lane */
    long differ = 0, m = 0;
    for (float x = 1e-37f; x < 1e37f; x *= 1.0001f, m++) {
        sl_v16f v = {0};
        v += 1.0f;
        v[m % 16] = x;
        const sl_v16f r = sl_log_pos_v16(v);
        const float s = sl_log_pos(x), q = r[m % 16];
        differ += memcmp(&q, &s, sizeof s) != 0;
    }
    printf("sl_log_pos_v16 against sl_log_pos: %ld of %ld inputs differ\n", differ, m);
    CHECK(differ == 0, "the vector log differs from the scalar one at %ld inputs", differ);
#endif
    CHECK(sl_log_pos(1.0f) == 0.0f, "log(1) = %g, not 0", (double)sl_log_pos(1.0f));
    CHECK(fabs(sl_log_pos(4.0f) - log(4.0)) < 3e-7, "log(4)");
    return test_report("fastlog");
}
