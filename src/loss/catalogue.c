/*
 * The catalogue: every loss the spec can name, in the order `segloss loss
 * --list` shows them (families as in docs/losses.md). Each entry is an
 * sl_term_class defined in the file of its family.
 *
 * The references are strong, so that linking libsegloss.a pulls in every
 * loss file (test_umbrella checks the catalogue's size).
 */
#include <string.h>
#include "term.h"

#define LOSS(name) extern const sl_term_class sl_loss_##name;
#define LOSSES(X)                                                                                      \
    X(ce) X(bce) X(wce) X(focal) X(topk) X(ohem) X(dpce)                                              \
    X(dice) X(logcosh_dice) X(iou) X(lovasz) X(tversky) X(focal_tversky) X(asym) X(sensspec)         \
    X(gdice) X(pgdice) X(gwdice) X(focal_dice) X(wdice) X(adaptive_dice) X(mcc)                       \
    X(boundary) X(hausdorff_dt) X(log_hausdorff_dt) X(hausdorff_er) X(boundary_aware) X(edge_dice) X(cldice) X(blob) X(ssim) \
    X(combo) X(unified_focal) X(exp_log)
LOSSES(LOSS)
#undef LOSS

#define ENTRY(name) &sl_loss_##name,
static const sl_term_class *const all[] = {LOSSES(ENTRY)};
#undef ENTRY

enum { NALL = sizeof all / sizeof *all };

const sl_term_class *sl_term_class_find(const char *name)
{
    for (int i = 0; i < NALL; i++)
        if (!strcmp(all[i]->info.name, name)) return all[i];
    return NULL;
}

int sl_loss_catalogue_size(void)
{
    int n = 0;
    for (int i = 0; i < NALL; i++) n += all[i] != NULL;
    return n;
}

const sl_loss_info *sl_loss_catalogue(int k)
{
    for (int i = 0; i < NALL && k >= 0; i++)
        if (all[i] && k-- == 0) return &all[i]->info;
    return NULL;
}
