/*
 * segloss demo — which losses notice a missed small lesion?
 *
 * A 2-D 160×160 slice with three classes: background, a large region
 * (≈ 20 % of the pixels) and a small lesion inside it (≈ 1 %). Five
 * predictions are scored with every loss of the catalogue:
 *   correct      the target itself (confident logits)
 *   missed       the lesion predicted as the large region
 *   over-seg     the lesion predicted 2.5× too large
 *   shifted      the lesion moved by 6 pixels
 *   noisy-bg     correct, plus scattered false-positive lesion pixels
 * and the table shows each loss's value, plus how many times larger the
 * "missed" value is than the "correct" one: a loss whose missed/correct
 * ratio is close to 1 barely notices the lesion.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli_util.h"
#include "commands.h"
#include "segloss/loss.h"

#define H 160
#define W 160
#define C 3
#define NPRED 5

static const char *pred_names[NPRED] = {"correct", "missed", "over-seg", "shifted", "noisy-bg"};

/* Losses whose defaults need a value the demo must supply. */
static const char *demo_spec(const char *name, char *buf, size_t len)
{
    if (!strcmp(name, "wdice")) snprintf(buf, len, "wdice(weight=[1,1,10])");
    else snprintf(buf, len, "%s", name);
    return buf;
}

static int in_ellipse(double y, double x, double cy, double cx, double ry, double rx)
{
    double dy = (y - cy) / ry, dx = (x - cx) / rx;
    return dy * dy + dx * dx <= 1.0;
}

/* The target label map. The large region is an irregular ellipse, the
 * lesion a small disc inside it. */
static void make_target(int32_t *lab, double lesion_cy, double lesion_cx, double lesion_r)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double wobble = 1 + 0.08 * sin(atan2(y - 80.0, x - 78.0) * 3);
            int v = in_ellipse(y, x, 80, 78, 46 * wobble, 36 * wobble) ? 1 : 0;
            if (in_ellipse(y, x, lesion_cy, lesion_cx, lesion_r, lesion_r)) v = 2;
            lab[y * W + x] = v;
        }
}

/* Confident logits for a label map: +4 for the predicted class, −4 elsewhere. */
static void logits_from(const int32_t *lab, float *x)
{
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H * W; i++) x[c * H * W + i] = lab[i] == c ? 4.0f : -4.0f;
}

int cmd_demo(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: segloss demo\n\nScores five predictions of a slice with a small lesion (about 1 %% of the\n"
                   "pixels) with every loss, to show which losses notice a missed lesion.\n");
            return 0;
        }
        return cli_fail("demo", EXIT_USAGE, "unknown option '%s'", argv[i]);
    }
    static int32_t target[H * W], pred[NPRED][H * W];
    static float logits[NPRED][C * H * W];
    const double lr = 9.0; /* lesion radius: π·81 ≈ 254 px ≈ 1 % of 160² */
    make_target(target, 70, 90, lr);
    memcpy(pred[0], target, sizeof target);
    make_target(pred[1], 70, 90, 0); /* no lesion */
    for (int i = 0; i < H * W; i++) pred[1][i] = target[i] == 2 ? 1 : target[i];
    make_target(pred[2], 70, 90, lr * 1.58);
    make_target(pred[3], 76, 90, lr);
    memcpy(pred[4], target, sizeof target);
    unsigned seed = 12345;
    for (int k = 0; k < 60; k++) { /* scattered false-positive lesion pixels */
        seed = seed * 1103515245u + 12345u;
        pred[4][(seed >> 8) % (H * W)] = 2;
    }
    for (int p = 0; p < NPRED; p++) logits_from(pred[p], logits[p]);

    int counts[C] = {0};
    for (int i = 0; i < H * W; i++) counts[target[i]]++;
    printf("segloss demo: a %dx%d slice, background %.1f %%, large region %.1f %%, lesion %.2f %%\n", H, W,
           100.0 * counts[0] / (H * W), 100.0 * counts[1] / (H * W), 100.0 * counts[2] / (H * W));
    printf("Each loss scores five predictions; 'missed/correct' is how much worse a missed lesion looks.\n\n");
    printf("%-16s", "loss");
    for (int p = 0; p < NPRED; p++) printf(" %10s", pred_names[p]);
    printf(" %14s\n", "missed/correct");

    sl_dims dims = {.n = 1, .c = C, .spatial_ndim = 2, .spatial = {H, W}};
    sl_target tg = {.kind = SL_TARGET_LABELS, .labels = target};
    int failures = 0;
    for (int i = 0; i < sl_loss_catalogue_size(); i++) {
        const sl_loss_info *info = sl_loss_catalogue(i);
        char spec[128], msg[256];
        sl_loss *loss;
        if (sl_loss_create(demo_spec(info->name, spec, sizeof spec), &loss, msg, sizeof msg) != SL_OK) {
            printf("%-16s error: %s\n", info->name, msg);
            failures++;
            continue;
        }
        double v[NPRED];
        int ok = 1;
        for (int p = 0; p < NPRED && ok; p++)
            ok = sl_loss_forward(loss, logits[p], &dims, &tg, NULL, &v[p], NULL, msg, sizeof msg) == SL_OK;
        sl_loss_free(loss);
        if (!ok) {
            printf("%-16s error: %s\n", info->name, msg);
            failures++;
            continue;
        }
        printf("%-16s", info->name);
        for (int p = 0; p < NPRED; p++) printf(" %10.4f", v[p]);
        if (fabs(v[0]) > 1e-12) printf(" %13.1fx\n", v[1] / v[0]);
        else printf(" %14s\n", "(correct = 0)");
    }
    printf("\nLosses averaged over all pixels (ce, bce, ...) barely move when 1 %% of the image is wrong;\n"
           "region losses averaged over classes (dice, tversky, ...) weigh the lesion like a whole class.\n");
    return failures ? EXIT_WORK : 0;
}
