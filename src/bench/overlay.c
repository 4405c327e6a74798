/*
 * Overlay pictures of the report: a test image in grey with the contour of
 * every foreground class of the target and of a prediction, as an RGB PNG
 * (encoded by io's PNG encoder, written by the atomic writer). This file
 * only draws.
 *
 * Contours are drawn on the upscaled grid: a pixel of the picture is on
 * the contour of a mask when its source pixel is in the mask and one of
 * its 4 neighbours in the picture maps to a source pixel outside (or lies
 * outside the picture). So the line runs along the inside of the mask's
 * pixel edges, one picture pixel wide, and a one-pixel lesion stays a
 * visible square. Target contours are drawn first, prediction contours on
 * top.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_internal.h"
#include "io/png_encode.h"
#include "segloss/metrics.h"

sl_status slb_overlay_path(char *buf, size_t len, const char *dir, const sl_bench_preset *p, int d, int64_t cs, int e)
{
    int n;
    if (e < 0)
        n = snprintf(buf, len, "%s%s%s/%s/case%lld.png", dir ? dir : "", dir ? "/" : "", SLB_OVERLAY_DIR, p->datasets[d].slug,
                     (long long)cs);
    else
        n = snprintf(buf, len, "%s%s%s/%s/case%lld__%s.png", dir ? dir : "", dir ? "/" : "", SLB_OVERLAY_DIR,
                     p->datasets[d].slug, (long long)cs, p->entries[e].slug);
    return n < 0 || (size_t)n >= len ? SL_EINVAL : SL_OK;
}

void slb_overlay_colour(int c, int predicted, unsigned char rgb[3])
{
    /* target: greens and blues; prediction: warm colours (red, orange, magenta) */
    static const unsigned char target[4][3] = {{0, 230, 0}, {0, 200, 255}, {160, 255, 120}, {80, 120, 255}};
    static const unsigned char pred[4][3] = {{255, 160, 0}, {255, 0, 60}, {255, 0, 255}, {255, 255, 0}};
    const unsigned char *src = predicted ? pred[(c - 1) % 4] : target[(c - 1) % 4];
    memcpy(rgb, src, 3);
}

/* Paints the contour of (lab == c) onto rgb (H*k, W*k, 3). */
static void draw_contour(unsigned char *rgb, const int32_t *lab, int64_t h, int64_t w, int k, int c, const unsigned char col[3])
{
    const int64_t H = h * k, W = w * k;
    for (int64_t Y = 0; Y < H; Y++)
        for (int64_t X = 0; X < W; X++) {
            if (lab[(Y / k) * w + X / k] != c) continue;
            int edge = Y == 0 || X == 0 || Y == H - 1 || X == W - 1 || lab[((Y - 1) / k) * w + X / k] != c ||
                       lab[((Y + 1) / k) * w + X / k] != c || lab[(Y / k) * w + (X - 1) / k] != c ||
                       lab[(Y / k) * w + (X + 1) / k] != c;
            if (edge) memcpy(rgb + (Y * W + X) * 3, col, 3);
        }
}

sl_status slb_overlay_write(const char *path, const float *image, const int32_t *target, const int32_t *pred, int64_t h,
                            int64_t w, int num_classes, char *msg, size_t msglen)
{
    const int64_t big = h > w ? h : w;
    int k = big >= 256 ? 1 : (int)(256 / big);
    if (k > 16) k = 16;
    const int64_t H = h * k, W = w * k, n = h * w;
    unsigned char *rgb = sl_malloc(H * W * 3, 1);
    double *v = sl_malloc(n, sizeof *v);
    sl_status st = SL_OK;
    if (!rgb || !v) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory drawing %s", path);
        goto done;
    }
    /* grey window: the 1st..99th percentile of the image */
    for (int64_t i = 0; i < n; i++) v[i] = image[i];
    double lo = 0, hi = 1;
    if (sl_percentile(v, n, 1.0, &lo) != SL_OK || sl_percentile(v, n, 99.0, &hi) != SL_OK) {
        st = sl_errf(msg, msglen, SL_EINVAL, "bench: %s: the image is not finite", path);
        goto done;
    }
    if (!(hi > lo)) hi = lo + 1;
    for (int64_t Y = 0; Y < H; Y++)
        for (int64_t X = 0; X < W; X++) {
            double g = (image[(Y / k) * w + X / k] - lo) / (hi - lo);
            unsigned char u = (unsigned char)(g <= 0 ? 0 : g >= 1 ? 255 : (int)(g * 255 + 0.5));
            unsigned char *px = rgb + (Y * W + X) * 3;
            px[0] = px[1] = px[2] = u;
        }
    for (int c = 1; c < num_classes; c++) {
        unsigned char col[3];
        slb_overlay_colour(c, 0, col);
        draw_contour(rgb, target, h, w, k, c, col);
    }
    for (int c = 1; pred && c < num_classes; c++) {
        unsigned char col[3];
        slb_overlay_colour(c, 1, col);
        draw_contour(rgb, pred, h, w, k, c, col);
    }
    st = sl_png_write_pixels(path, rgb, H, W, 3, 8, msg, msglen);
done:
    free(rgb);
    free(v);
    return st;
}
