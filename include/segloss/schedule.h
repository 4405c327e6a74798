/*
 * segloss/schedule.h — loss schedules over training epochs.
 *
 * Two kinds, combinable, written as one string (docs/schedules.md):
 *
 *   stages   epoch ranges, each with its own loss spec:
 *                "0:ce; 50:ce+dice; 100:wdice(weight=[1,5,10])"
 *            stage i runs from its start epoch to the next stage's start
 *            (the last one for ever); the first must start at epoch 0 and the
 *            starts must increase. A single stage may omit "0:".
 *   ramps    within a stage, one term's weight grows by a step per epoch up
 *            to a cap while another's shrinks by a step down to a floor
 *            (Kervadec et al. 2019: boundary weight α from 0.01 by 0.01 per
 *            epoch, the region term 1 − α but not below 0.1):
 *                "gdice+boundary | ramp"                    (those defaults)
 *                "0:ce; 20:dice+boundary | ramp(start=0.05,step=0.05,cap=0.5)"
 *
 *     schedule := stage (';' stage)*
 *     stage    := [epoch ':'] spec ['|' ramp] ['@lr=' number]
 *     ramp     := 'ramp' ['(' key '=' number (',' key '=' number)* ')']
 *
 * A stage's '@lr=X' (X finite, > 0) is its learning rate: the trainer
 * sets the optimiser's base lr to X when the stage starts (stages without
 * it use the configured lr). The lr schedule (onecycle, poly) is not
 * restarted: it keeps running over the global step with X as its base, so
 * the step's lr is schedule(X, global step):
 *                "0:ce @lr=0.01; 50:ce+dice @lr=0.001"
 *
 * Ramp keys (sl_ramp below): grow (index of the growing term, default 1),
 * start (0.01), step (0.01), cap (1), shrink (index of the shrinking term,
 * default 0; −1 for none), shrink_start (default 1 − start), shrink_step
 * (default step), floor (0.1). Epochs of a ramp count from its stage's start:
 *     w_grow(e)   = min(cap, start + step·e)
 *     w_shrink(e) = max(floor, shrink_start − shrink_step·e)
 * The ramp sets the weights of those two terms (a weight written in the spec
 * for them is replaced); every other term keeps its spec weight.
 *
 * The schedule owns one sl_loss per stage. sl_schedule_loss_for_epoch
 * returns the loss of an epoch with that epoch's weights; sl_schedule_apply
 * sets the weights on a loss the caller built from the same stage spec.
 * Stateful losses (adaptive_dice) keep their state in the stage's loss; the
 * state of every stage saves to bytes and restores (resumed training).
 *
 * Errors name the stage and the problem: SL_EFORMAT (syntax, missing or
 * unsorted/overlapping epochs), SL_EINVAL (ramp values), and the codes of
 * sl_loss_create for a bad spec. Functions that take msg write one line.
 */
#ifndef SEGLOSS_SCHEDULE_H
#define SEGLOSS_SCHEDULE_H

#include <math.h> /* NAN in SL_RAMP_DEFAULT */
#include "segloss/core.h"
#include "segloss/loss.h"

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

typedef struct sl_schedule sl_schedule;

/* A weight ramp. shrink = −1: no shrinking term. shrink_start and
 * shrink_step may be NaN: they then mean 1 − grow_start and grow_step (the
 * shrinking weight is the complement 1 − w_grow until the floor). */
typedef struct sl_ramp {
    int grow;
    double grow_start, grow_step, grow_cap;
    int shrink;
    double shrink_start, shrink_step, shrink_floor;
} sl_ramp;

/* Kervadec et al. 2019 on a spec "region + boundary": the boundary term
 * (index 1) from 0.01 by 0.01 per epoch up to 1, the region term (index 0)
 * 1 − that, not below 0.1. */
#define SL_RAMP_DEFAULT {1, 0.01, 0.01, 1.0, 0, NAN, NAN, 0.1}

/* Parses a schedule string and builds the loss of every stage. *out is
 * NULL on failure. Release with sl_schedule_free. */
sl_status sl_schedule_create(const char *text, sl_schedule **out, char *msg, size_t msglen);

/* One stage from epoch 0 with `spec` and the ramp (NULL: no ramp). */
sl_status sl_schedule_create_ramp(const char *spec, const sl_ramp *ramp, sl_schedule **out, char *msg,
                                  size_t msglen);

/* The same schedule over `factor` times the epochs (factor >= 1), written to
 * out: every stage starts at factor × its epoch and every ramp's step and
 * shrink_step are divided by factor, so a stage covers the same share of a
 * run that is factor times longer and a ramp reaches its cap at the same
 * share. Ramps are written with all their keys resolved; '@lr=' is kept.
 * A single stage without a ramp (nothing counted in epochs), or factor 1,
 * is copied unchanged. The codes of sl_schedule_create for a bad text,
 * SL_ERANGE when out (outlen bytes with the NUL) is too small or a start
 * overflows, SL_EINVAL for NULL or factor < 1. The benchmark's budget study
 * trains its longer runs with this (docs/benchmark.md). */
sl_status sl_schedule_stretch(const char *text, int factor, char *out, size_t outlen, char *msg, size_t msglen);

/* Releases the schedule and the losses it owns; NULL is a no-op. */
void sl_schedule_free(sl_schedule *s);

/* Number of stages; a stage's start epoch and spec (−1 / NULL out of range);
 * the stage an epoch falls in (−1 for a negative epoch or NULL). */
int sl_schedule_num_stages(const sl_schedule *s);
int64_t sl_schedule_stage_start(const sl_schedule *s, int stage);
const char *sl_schedule_stage_spec(const sl_schedule *s, int stage);
int sl_schedule_stage_of(const sl_schedule *s, int64_t epoch);

/* A stage's '@lr=' value, NaN when the stage has none (or out of range). */
double sl_schedule_stage_lr(const sl_schedule *s, int stage);

/* The term weights of an epoch: writes min(cap, n) weights to w and the
 * number of terms of the epoch's stage to *nterms. SL_EINVAL for NULL
 * arguments or a negative epoch. */
sl_status sl_schedule_weights(const sl_schedule *s, int64_t epoch, double *w, int cap, int *nterms);

/* The loss of an epoch, owned by the schedule (do not free; valid until
 * sl_schedule_free), with the epoch's weights set. SL_EINVAL for a negative
 * epoch or NULL. */
sl_status sl_schedule_loss_for_epoch(sl_schedule *s, int64_t epoch, sl_loss **loss, char *msg, size_t msglen);

/* Sets the epoch's weights on a caller's loss, which must have the terms of
 * the epoch's stage (same names, same order), else SL_EBADSTATE naming both
 * (a stage with another spec needs sl_schedule_loss_for_epoch). */
sl_status sl_schedule_apply(const sl_schedule *s, sl_loss *loss, int64_t epoch, char *msg, size_t msglen);

/* The state of every stage's loss as bytes (sl_loss_state_get per stage,
 * framed with the stage starts), and its restoration into a schedule made
 * from the same string. Same codes as the sl_loss_state_* functions; a
 * schedule with other stages refuses the buffer with SL_EBADSTATE and is
 * left unchanged. */
sl_status sl_schedule_state_size(const sl_schedule *s, size_t *bytes);
sl_status sl_schedule_state_get(const sl_schedule *s, void *buf, size_t len, size_t *written);
sl_status sl_schedule_state_set(sl_schedule *s, const void *buf, size_t len, char *msg, size_t msglen);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
