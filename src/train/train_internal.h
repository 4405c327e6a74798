/*
 * Private pieces of the trainer shared by its files: the configuration as
 * a cJSON tree, the checkpoint container, small file helpers.
 */
#ifndef SL_TRAIN_INTERNAL_H
#define SL_TRAIN_INTERNAL_H

#include <cJSON.h>
#include <stdio.h>
#include "fileio.h"
#include "internal.h"
#include "outfile.h"
#include "segloss/schedule.h"
#include "segloss/train.h"

/* ---- config.c */

/* The run-defining configuration as a JSON object (no run-control fields:
 * out_dir, resume, force, stop_after, threads, dataset, data_opts.threads).
 * Two configurations run the same training exactly when these print the
 * same. NULL when out of memory. */
cJSON *slt_config_json(const sl_train_config *cfg);

/* Applies a parsed config object to *cfg (which the caller has set to the
 * defaults). Codes as sl_train_config_parse. */
sl_status slt_config_apply(sl_train_config *cfg, const cJSON *root, char *msg, size_t msglen);

/* The optimiser configuration of a run (schedule over epochs * steps). */
void slt_optim_config(const sl_train_config *cfg, sl_optim_config *oc);

/* Names the first key where two config objects differ ("training.lr:
 * 0.003 vs 0.01") into buf; 0 when they are the same. */
int slt_config_diff(const cJSON *a, const cJSON *b, const char *prefix, char *buf, size_t buflen);

/* The preprocessing as a JSON object, and back. */
cJSON *slt_preproc_json(const sl_preproc *pp);
sl_status slt_preproc_from_json(sl_preproc *pp, const cJSON *obj, char *msg, size_t msglen);

/* ---- files.c */

/* CRC-32 (zlib) of a buffer. */
uint32_t slt_crc32(const void *data, size_t len);

/* Little-endian byte buffer that grows. */
typedef struct slt_buf {
    unsigned char *p;
    size_t len, cap;
    int failed;
} slt_buf;

void slt_put(slt_buf *b, const void *data, size_t n);
void slt_put_u64(slt_buf *b, uint64_t v);
void slt_put_f64(slt_buf *b, double v);
void slt_put_str(slt_buf *b, const char *s); /* u64 length + bytes */

typedef struct slt_reader {
    const unsigned char *p;
    size_t len, pos;
    int failed;
} slt_reader;

uint64_t slt_get_u64(slt_reader *r);
double slt_get_f64(slt_reader *r);
/* Points *s at a length-prefixed byte run (not NUL-terminated); returns its length. */
size_t slt_get_bytes(slt_reader *r, const unsigned char **s);

/* ---- predict.c: the padded forward used by validation and test */

/* Argmax of probs (n, C, hw) into labels (n, hw). */
void slt_argmax(const float *probs, int64_t n, int64_t C, int64_t hw, int32_t *labels);

/* ---- tta.c: --tta rot and aug:N (the set and draws are described there) */

/* SL_OK, or SL_EINVAL naming a bad tta / tta_n. */
sl_status slt_tta_check(const sl_predict_opts *o, char *msg, size_t msglen);

/* sl_predict_slices for o->tta ROT or AUG (o checked, o->batch > 0, n > 0). */
sl_status slt_predict_slices_tta(sl_unet *net, const float *images, int64_t n, int64_t h, int64_t w,
                                 const sl_predict_opts *o, int64_t C, float *probs, int32_t *labels, char *msg,
                                 size_t msglen);

/* A volume's prediction without TTA: vol (size) -> probs (C, size). */
typedef sl_status (*slt_volume_fn)(const float *vol, const int64_t size[3], float *probs, void *user, char *msg,
                                   size_t msglen);

/* probs (C, size) = the mean over o's elements g of g^-1(fn(g(vol))). */
sl_status slt_predict_volume_tta(const float *vol, const int64_t size[3], const sl_predict_opts *o, int64_t C,
                                 slt_volume_fn fn, void *user, float *probs, char *msg, size_t msglen);

#endif
