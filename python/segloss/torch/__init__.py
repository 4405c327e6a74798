"""segloss for PyTorch.

- SegLoss(spec, *, spacing=None, threads=None): any segloss loss spec as a
  torch.nn.Module (docs/losses.md lists the losses and their keys).
- boundary_maps(target, num_classes, spacing=None): the `boundary` loss's
  distance maps, e.g. computed in DataLoader workers.
- target_maps(spec, target, num_classes, ...): every target-only map of a
  spec (boundary, dpce, boundary_aware, hausdorff_dt, blob, cldice's target
  skeleton) for SegLoss(spec)(logits, target, maps=...).
- segloss.torch.monai, segloss.torch.smp: drop-ins with the class names,
  arguments, defaults and values of MONAI and segmentation_models_pytorch.

backend="auto" (default) runs the C kernels for CPU tensors and the native
PyTorch formulas (segloss.torch.native) on any other device; process_group=
makes batch statistics global under DDP (docs/python.md).
"""
import importlib

from ._core import SegLoss, boundary_maps, target_maps


def __getattr__(name):
    if name in ("monai", "smp", "native"):
        return importlib.import_module("." + name, __name__)
    raise AttributeError("module 'segloss.torch' has no attribute %r" % name)


__all__ = ["SegLoss", "boundary_maps", "target_maps"]
