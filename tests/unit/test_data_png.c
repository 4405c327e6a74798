/*
 * Pictures of the data, to look at: writes PNG montages of phantom and
 * colin samples and of augmented batches (rows of image | label overlay).
 *
 *   SL_DATA_PNG_DIR=/tmp/pics build/tests/test_data_png
 *
 * writes into that folder; without it, the montages go to a temporary
 * folder, are read back with libpng (size and a non-constant image are
 * checked) and removed, so the test also runs in the suite.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "segloss/data.h"
#include "test_util.h"

static const unsigned char palette[8][3] = {{0, 0, 0},     {255, 200, 0}, {255, 40, 40}, {40, 200, 255},
                                            {80, 255, 80}, {255, 0, 255}, {255, 255, 255}, {120, 120, 255}};

/* A canvas of rows x 2 tiles of (h, w): left the image (window [-2.5, 2.5]),
 * right the image with the labels tinted. */
typedef struct canvas {
    int64_t h, w, rows, cols;
    unsigned char *rgb;
} canvas;

static void put_tile(canvas *c, int64_t row, int64_t col, const float *img, const int32_t *lab)
{
    int64_t W = c->w * c->cols;
    for (int64_t y = 0; y < c->h; y++)
        for (int64_t x = 0; x < c->w; x++) {
            double v = (img[y * c->w + x] + 2.5) / 5.0;
            v = v < 0 ? 0 : (v > 1 ? 1 : v);
            unsigned char g = (unsigned char)(255 * v);
            unsigned char *p = c->rgb + 3 * ((row * c->h + y) * W + col * c->w + x);
            p[0] = p[1] = p[2] = g;
            if (lab && lab[y * c->w + x] > 0) {
                const unsigned char *q = palette[lab[y * c->w + x] % 8];
                for (int k = 0; k < 3; k++) p[k] = (unsigned char)(0.45 * g + 0.55 * q[k]);
            }
        }
}

static int write_png(const char *path, const canvas *c)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return 0;
    }
    png_init_io(png, f);
    int64_t W = c->w * c->cols, H = c->h * c->rows;
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int64_t y = 0; y < H; y++) png_write_row(png, c->rgb + 3 * y * W);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return 1;
}

/* Reads a PNG back: returns 1 when it is W x H RGB and not constant. */
static int check_png(const char *path, int64_t W, int64_t H)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    unsigned char *row = NULL;
    int ok = 0;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(row);
        fclose(f);
        return 0;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    if ((int64_t)png_get_image_width(png, info) == W && (int64_t)png_get_image_height(png, info) == H &&
        png_get_color_type(png, info) == PNG_COLOR_TYPE_RGB) {
        row = malloc((size_t)(3 * W));
        int lo = 255, hi = 0;
        for (int64_t y = 0; y < H; y++) {
            png_read_row(png, row, NULL);
            for (int64_t i = 0; i < 3 * W; i++) {
                if (row[i] < lo) lo = row[i];
                if (row[i] > hi) hi = row[i];
            }
        }
        ok = hi > lo;
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(row);
    fclose(f);
    return ok;
}

/* Montage of `rows` samples of a split (or, with a sampler, one batch). */
static void montage(const char *dir, const char *name, const sl_dataset *ds, const sl_sampler *sp,
                    int rows, int keep)
{
    sl_dataset_info info;
    sl_dataset_get_info(ds, &info);
    int64_t h = info.size[0], w = info.size[1];
    if (sp) sl_sampler_patch(sp, &h, &w);
    canvas c = {h, w, rows, 2, calloc((size_t)(3 * h * w * rows * 2), 1)};
    float *img = malloc((size_t)(rows * h * w) * sizeof *img);
    int32_t *lab = malloc((size_t)(rows * h * w) * sizeof *lab);
    char msg[256] = "";
    sl_status st = SL_OK;
    if (sp) {
        st = sl_sampler_batch(sp, 3, img, lab, NULL, msg, sizeof msg);
    } else {
        for (int i = 0; i < rows && st == SL_OK; i++) {
            /* spread over the split */
            int64_t idx = (int64_t)i * info.n[SL_SPLIT_TRAIN] / rows;
            st = sl_dataset_get(ds, SL_SPLIT_TRAIN, idx, img + i * h * w, lab + i * h * w, msg, sizeof msg);
        }
    }
    CHECK(st == SL_OK, "%s: %s", name, msg);
    for (int i = 0; i < rows; i++) {
        put_tile(&c, i, 0, img + i * h * w, NULL);
        put_tile(&c, i, 1, img + i * h * w, lab + i * h * w);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.png", dir, name);
    CHECK(write_png(path, &c), "cannot write %s", path);
    CHECK(check_png(path, 2 * w, rows * h), "%s does not read back as a %lldx%lld non-constant RGB PNG", path,
          (long long)(2 * w), (long long)(rows * h));
    if (keep) printf("wrote %s\n", path);
    else remove(path);
    free(c.rgb);
    free(img);
    free(lab);
}

int main(void)
{
    const char *env = getenv("SL_DATA_PNG_DIR");
    char tmp[] = "/tmp/sl_data_png_XXXXXX";
    const char *dir = env;
    if (!dir) {
        dir = mkdtemp(tmp);
        CHECK(dir != NULL, "mkdtemp failed");
        if (!dir) return test_report("test_data_png");
    }
    int keep = env != NULL;
    char msg[256];
    sl_dataset *ds = NULL;
    sl_data_opts o = SL_DATA_OPTS_DEFAULT;
    o.n_train = 24;
    o.n_val = o.n_test = 1;
    o.seed = 7;
    o.threads = 2;
    struct {
        const char *name, *opts;
    } ph[] = {{"phantom_100_10_1", "ratio=100:10:1"},
              {"phantom_small_5pct", "ratio=100:10:1,small_fraction=0.05"},
              {"phantom_small_0.2pct", "ratio=100:10:1,small_fraction=0.002"},
              {"phantom_2class", "ratio=99:1"}};
    for (size_t k = 0; k < sizeof ph / sizeof ph[0]; k++) {
        sl_data_opts q = o;
        CHECK(sl_data_opts_parse(&q, ph[k].opts, msg, sizeof msg) == SL_OK, "%s", msg);
        if (sl_dataset_open(&ds, "phantom", &q, msg, sizeof msg) != SL_OK) {
            CHECK(0, "phantom: %s", msg);
            continue;
        }
        montage(dir, ph[k].name, ds, NULL, 6, keep);
        if (k == 0) {
            sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
            so.batch_size = 6;
            so.seed = 3;
            so.aug.enabled = SL_AUG_ALL;
            /* every augmentation fires often */
            so.aug.p_rotate = so.aug.p_scale = so.aug.p_crop = so.aug.p_elastic = 0.8;
            so.aug.p_gamma = so.aug.p_contrast = so.aug.p_noise = so.aug.p_blur = 0.5;
            so.aug.p_copypaste = 1.0;
            sl_sampler *sp = NULL;
            CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_OK, "%s", msg);
            if (sp) montage(dir, "phantom_augmented_batch", ds, sp, 6, keep);
            sl_sampler_free(sp);
        }
        sl_dataset_free(ds);
    }
    if (access("/usr/share/mricron/templates/ch2bet.nii.gz", R_OK) == 0) {
        sl_data_opts q = o;
        q.height = 192;
        q.width = 160;
        if (sl_dataset_open(&ds, "colin", &q, msg, sizeof msg) == SL_OK) {
            montage(dir, "colin_slices", ds, NULL, 6, keep);
            sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
            so.batch_size = 6;
            so.patch[0] = so.patch[1] = 128;
            so.seed = 5;
            CHECK(sl_aug_parse(&so.aug, "all,p_copypaste=1", msg, sizeof msg) == SL_OK, "%s", msg);
            sl_sampler *sp = NULL;
            CHECK(sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg) == SL_OK, "%s", msg);
            if (sp) montage(dir, "colin_augmented_batch", ds, sp, 6, keep);
            sl_sampler_free(sp);
            sl_dataset_free(ds);
        } else {
            CHECK(0, "colin: %s", msg);
        }
    } else {
        printf("skip colin pictures: /usr/share/mricron/templates/ch2bet.nii.gz missing (apt-get install mricron-data)\n");
    }
    if (!env) rmdir(dir);
    return test_report("test_data_png");
}
