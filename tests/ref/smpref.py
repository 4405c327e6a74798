"""segmentation_models_pytorch's _functional.focal_loss_with_logits (smp 0.3), transcribed: the one copy that
tests/python/test_torch_smp_focal_args.py checks segloss's drop-in against, tests/ref/test_loss_focal_smp.py
checks the C loss against (focal_from_logpt, also on probabilities) and perf/bench_losses.py times as a peer.
No side effects on import (the dtype is the caller's)."""
import torch
import torch.nn.functional as F


def focal_from_logpt(logpt, target, gamma=2.0, alpha=0.25, normalized=False, reduced_threshold=None, eps=1e-6):
    """smp's focal loss per element from the per-element BCE logpt (before the reduction)."""
    pt = torch.exp(-logpt)
    if reduced_threshold is None:
        focal_term = (1.0 - pt).pow(gamma)
    else:
        focal_term = ((1.0 - pt) / reduced_threshold).pow(gamma)
        focal_term = torch.where(pt < reduced_threshold, torch.ones_like(focal_term), focal_term)
    loss = focal_term * logpt
    if alpha is not None:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    if normalized:
        loss = loss / focal_term.sum().clamp_min(eps)
    return loss


def focal_loss_with_logits(output, target, gamma=2.0, alpha=0.25, normalized=False, reduced_threshold=None,
                           eps=1e-6, reduction="mean"):
    """smp's _functional.focal_loss_with_logits."""
    target = target.type(output.type())
    logpt = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    loss = focal_from_logpt(logpt, target, gamma, alpha, normalized, reduced_threshold, eps)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss.sum(0)          # "batchwise_mean" of a flat vector
