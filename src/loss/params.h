/* Applying a term's key=value pairs (sl_param) to its sl_params. */
#ifndef SL_LOSS_PARAMS_H
#define SL_LOSS_PARAMS_H
#include "term.h"

/* Fills *p with the class's defaults, then applies the given parameters.
 * SL_EUNKNOWN for a key the loss does not take, SL_EINVAL for a value of
 * the wrong type or out of range (message names loss, key and value). */
sl_status sl_params_apply(const sl_term_class *cls, const sl_param *params, int nparams, sl_params *p,
                          char *msg, size_t msglen);
#endif
