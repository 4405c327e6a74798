/* The fused two-pass evaluation of region + cross-entropy specs (fused.c). */
#ifndef SL_LOSS_FUSED_H
#define SL_LOSS_FUSED_H
#include "term.h"

/* 1 when every term can be fused under activation `act` (softmax or
 * sigmoid): region losses with region_finalize, and ce/wce/bce; all with
 * the same ignore_index. */
int sl_fused_eligible(const sl_term *terms, int nterms, int64_t C, int act);

/* Evaluates all terms in two passes over cx->x; sets each term's
 * last_value, writes the total to *value and, when grad is not NULL, the
 * whole gradient (every element overwritten). cx carries the dims, target,
 * activation and threads; its p/logp/dp/dx are not used. */
sl_status sl_fused_forward(sl_term *terms, int nterms, const sl_ctx *cx, double *value, float *grad, char *msg,
                           size_t msglen);
#endif
