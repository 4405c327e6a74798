/*
 * Connected-component post-processing (src/train/postprocess*.c) on hand
 * cases: the largest component kept per class (all of them on a tie),
 * small ones removed, full connectivity in 2-D and 3-D, and the choice on
 * validation cases, which keeps a step only when the class's mean Dice
 * improves (nnU-Net v2; a tie is not kept); the file round trip and bad
 * files.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segloss/train.h"
#include "test_util.h"

static sl_postprocess rule(int C)
{
    sl_postprocess p;
    memset(&p, 0, sizeof p);
    p.num_classes = C;
    return p;
}

/* Paints rows of a picture: '.' = 0, digits = labels. */
static void paint(int32_t *l, const char *const *rows, int h, int w)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) l[y * w + x] = rows[y][x] == '.' ? 0 : rows[y][x] - '0';
}

static int same(const int32_t *a, const int32_t *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void test_apply_2d(void)
{
    static const char *const in[] = {"11..1.", "11..1.", "......", "2.2..1", "2.....", ".....2"};
    static const char *const largest1[] = {"11....", "11....", "......", "2.2...", "2.....", ".....2"};
    static const char *const min2[] = {"11..1.", "11..1.", "......", "2....1", "2.....", "......"};
    int32_t l[36], want[36];
    const sl_grid g = {2, {6, 6, 0}, {1, 1, 1}};
    char msg[256];
    sl_postprocess p = rule(3);
    p.keep_largest[1] = 1; /* class 1: sizes 4, 2, 1 -> only the 4 stays; class 2 untouched */
    paint(l, in, 6, 6);
    paint(want, largest1, 6, 6);
    EXPECT(sl_postprocess_apply(&p, l, &g, msg, sizeof msg) == SL_OK);
    CHECK(same(l, want, 36), "keep largest of class 1");
    p = rule(3);
    p.min_size[2] = 2; /* class 2: (3,0)+(4,0) is 2, (3,2) and (5,5) are 1 */
    paint(l, in, 6, 6);
    paint(want, min2, 6, 6);
    EXPECT(sl_postprocess_apply(&p, l, &g, msg, sizeof msg) == SL_OK);
    CHECK(same(l, want, 36), "min size 2 of class 2");
    /* full connectivity: a diagonal pair is one component of 2 */
    static const char *const diag[] = {"1..", ".1.", "..."};
    int32_t d[9], dw[9];
    const sl_grid g3 = {2, {3, 3, 0}, {1, 1, 1}};
    paint(d, diag, 3, 3);
    paint(dw, diag, 3, 3);
    p = rule(2);
    p.min_size[1] = 2;
    EXPECT(sl_postprocess_apply(&p, d, &g3, msg, sizeof msg) == SL_OK);
    CHECK(same(d, dw, 9), "diagonal pair kept by min size 2 (8-connected)");
    /* ties: every component of the largest size stays (nnU-Net) */
    static const char *const tie[] = {"1.1..1"};
    static const char *const tie2[] = {"11.1.1"}, *const tie21[] = {"11...."};
    int32_t t[6], tw[6];
    const sl_grid g1 = {2, {1, 6, 0}, {1, 1, 1}};
    p = rule(2);
    p.keep_largest[1] = 1;
    paint(t, tie, 1, 6);
    paint(tw, tie, 1, 6);
    EXPECT(sl_postprocess_apply(&p, t, &g1, msg, sizeof msg) == SL_OK);
    CHECK(same(t, tw, 6), "tie: all largest kept");
    paint(t, tie2, 1, 6);
    paint(tw, tie21, 1, 6);
    EXPECT(sl_postprocess_apply(&p, t, &g1, msg, sizeof msg) == SL_OK);
    CHECK(same(t, tw, 6), "largest 2 kept, singles removed");
    p.num_classes = 1;
    CHECK(sl_postprocess_apply(&p, t, &g1, msg, sizeof msg) == SL_EINVAL, "one class refused");
}

static void test_apply_3d(void)
{
    /* (2, 3, 4), index z*12 + y*4 + x: A = (0,0,0)+(1,1,1), joined only
     * through a corner (26-connected); B = (0,1,3), (0,2,3), (1,2,3) */
    int32_t l[24] = {0}, m[24];
    l[0] = l[17] = 1;
    l[7] = l[11] = l[23] = 1;
    memcpy(m, l, sizeof m);
    const sl_grid g = {3, {2, 3, 4}, {1, 1, 1}};
    char msg[256];
    sl_postprocess p = rule(2);
    p.min_size[1] = 2; /* A is one component of 2: nothing goes */
    EXPECT(sl_postprocess_apply(&p, m, &g, msg, sizeof msg) == SL_OK);
    CHECK(same(l, m, 24), "3-D: corner-joined pair is one component (26-connected)");
    p = rule(2);
    p.keep_largest[1] = 1;
    EXPECT(sl_postprocess_apply(&p, l, &g, msg, sizeof msg) == SL_OK);
    CHECK(l[0] == 0 && l[17] == 0 && l[7] == 1 && l[11] == 1 && l[23] == 1, "3-D keep largest: %d %d %d %d %d", l[0], l[17], l[7],
          l[11], l[23]);
}

/* The choice: a per-class step is kept only when validation Dice improves. */
static void test_choose(void)
{
    const sl_grid g = {2, {5, 6, 0}, {1, 1, 1}};
    char msg[256];
    sl_postprocess p;
    /* case 0: class 1 has a spurious pixel beside its object; class 2 two
     * target objects (3 and 2 pixels), both predicted, and a spurious pixel.
     * case 1: both classes exact. */
    static const char *const pred0[] = {"1112.1", "111...", "......", "222.22", "......"};
    static const char *const gt0[] = {"111...", "111...", "......", "222.22", "......"};
    static const char *const ex1[] = {"11....", "11....", "......", "22....", "......"};
    int32_t pr[60], gt[60];
    paint(pr, pred0, 5, 6);
    paint(gt, gt0, 5, 6);
    paint(pr + 30, ex1, 5, 6);
    paint(gt + 30, ex1, 5, 6);
    EXPECT(sl_postprocess_choose(pr, gt, 2, &g, 3, &p, msg, sizeof msg) == SL_OK);
    /* class 1: case 0 12/13, case 1 1; keep largest -> 1 and 1 */
    CHECK(p.keep_largest[1] == 1 && p.min_size[1] == 0, "class 1: keep largest (%d, %lld)", p.keep_largest[1], (long long)p.min_size[1]);
    CHECK_NEAR(p.dice_before[1], (12.0 / 13.0 + 1.0) / 2.0, 1e-12, "class 1 before");
    CHECK_NEAR(p.dice_after[1], 1.0, 1e-12, "class 1 after");
    /* class 2: case 0 pred 6, gt 5, tp 5 -> 10/11; keep largest leaves 3 -> 6/8: drops, not kept;
     * min size 2 (S = 2 removes the single pixel) -> 1 */
    CHECK(p.keep_largest[2] == 0 && p.min_size[2] == 2, "class 2: min size 2 (%d, %lld)", p.keep_largest[2], (long long)p.min_size[2]);
    CHECK_NEAR(p.dice_before[2], (10.0 / 11.0 + 1.0) / 2.0, 1e-12, "class 2 before");
    CHECK_NEAR(p.dice_after[2], 1.0, 1e-12, "class 2 after");

    /* a step that lowers Dice is not kept: two target objects, both predicted */
    static const char *const both[] = {"11....", "11..1.", "....1.", "......", "......"};
    paint(pr, both, 5, 6);
    paint(gt, both, 5, 6);
    EXPECT(sl_postprocess_choose(pr, gt, 1, &g, 2, &p, msg, sizeof msg) == SL_OK);
    CHECK(p.keep_largest[1] == 0 && p.min_size[1] == 0, "no step when it drops (%d, %lld)", p.keep_largest[1], (long long)p.min_size[1]);
    CHECK_NEAR(p.dice_after[1], 1.0, 1e-12, "unchanged");
    /* a tie is not kept: empty target, two predicted objects (4 and 2): keep
     * largest leaves Dice 0 -> 0; min size 5 removes both: an empty pair, 1 */
    memset(gt, 0, sizeof gt);
    EXPECT(sl_postprocess_choose(pr, gt, 1, &g, 2, &p, msg, sizeof msg) == SL_OK);
    CHECK(p.keep_largest[1] == 0 && p.min_size[1] == 5, "tie not kept, min size 5 (%d, %lld)", p.keep_largest[1], (long long)p.min_size[1]);
    CHECK_NEAR(p.dice_before[1], 0.0, 1e-12, "empty target before");
    CHECK_NEAR(p.dice_after[1], 1.0, 1e-12, "empty target after");
    CHECK(sl_postprocess_choose(pr, gt, 0, &g, 2, &p, msg, sizeof msg) == SL_EINVAL, "no cases refused");
}

static void test_file(void)
{
    char msg[256], path[] = "/tmp/sl_test_pp_XXXXXX";
    int fd = mkstemp(path);
    EXPECT(fd >= 0);
    fclose(fdopen(fd, "w"));
    sl_postprocess p = rule(4), q;
    for (int c = 0; c < 4; c++) p.dice_before[c] = p.dice_after[c] = NAN;
    p.keep_largest[2] = 1;
    p.min_size[3] = 17;
    p.dice_before[3] = 0.5, p.dice_after[3] = 0.75;
    EXPECT(sl_postprocess_save(&p, path, msg, sizeof msg) == SL_OK);
    EXPECT(sl_postprocess_load(&q, path, msg, sizeof msg) == SL_OK);
    CHECK(q.num_classes == 4 && q.keep_largest[2] == 1 && q.keep_largest[1] == 0 && q.min_size[3] == 17 && q.min_size[2] == 0,
          "round trip");
    static const char *const bad[] = {"{}", "{\"num_classes\": 1, \"classes\": []}",
                                      "{\"num_classes\": 3, \"classes\": [{\"class\": 3}]}",
                                      "{\"num_classes\": 3, \"classes\": [{\"class\": 1, \"min_size\": -1}]}",
                                      "{\"num_classes\": 3, \"classes\": [{\"class\": 1, \"size\": 4}]}",
                                      "{\"num_classes\": 3, \"connectivity\": \"face\", \"classes\": []}", "not json"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        FILE *f = fopen(path, "w");
        fputs(bad[k], f);
        fclose(f);
        sl_status st = sl_postprocess_load(&q, path, msg, sizeof msg);
        CHECK(st == SL_EFORMAT || st == SL_EUNKNOWN, "bad file %zu refused (%d: %s)", k, (int)st, msg);
    }
    remove(path);
    CHECK(sl_postprocess_load(&q, path, msg, sizeof msg) == SL_EIO, "missing file: %s", msg);
    /* uint8 arrays as predict writes them */
    uint8_t d[6] = {1, 0, 1, 1, 0, 0};
    sl_array a = {SL_DT_U8, 2, {2, 3, 0}, d};
    p = rule(2);
    p.keep_largest[1] = 1;
    EXPECT(sl_postprocess_apply_array(&p, &a, msg, sizeof msg) == SL_OK);
    CHECK(d[0] == 1 && d[2] == 0 && d[3] == 1, "uint8 array");
    d[1] = 2;
    CHECK(sl_postprocess_apply_array(&p, &a, msg, sizeof msg) == SL_ERANGE, "label beyond the rule refused");
}

int main(void)
{
    TEST_RUN(test_apply_2d);
    TEST_RUN(test_apply_3d);
    TEST_RUN(test_choose);
    TEST_RUN(test_file);
    return test_report("test_postprocess");
}
