/*
 * A model file's bytes in memory (src/nn/model_io.c), for the trainer's
 * checkpoint, which embeds the model: no scratch file with a fixed name in
 * the run folder (another user who can write the folder could plant a
 * symlink there). Private, not installed.
 */
#ifndef SL_NN_MODEL_MEM_H
#define SL_NN_MODEL_MEM_H

#include <stddef.h>
#include "segloss/nn.h"

/* The bytes sl_unet_save would write (malloc'ed; free() them). */
sl_status slnn_unet_save_mem(const sl_unet *net, const sl_optim *opt, unsigned char **data, size_t *len,
                             char *msg, size_t msglen);

/* sl_unet_load from len bytes; `name` names them in messages. */
sl_status slnn_unet_load_mem(sl_unet **net, sl_optim **opt, const unsigned char *data, size_t len,
                             const char *name, char *msg, size_t msglen);

#endif
