"""Drop-in replacements for other tools' metric functions, computed by segloss.

- segloss.compat.medpy             medpy.metric.binary (dc, jc, precision, recall, hd, hd95, asd, assd, ravd)
- segloss.compat.surface_distance  DeepMind surface-distance (compute_surface_distances, ...)
- segloss.compat.monai             monai.metrics functional forms (compute_dice, compute_iou, ...)

Each keeps that tool's argument order, defaults, conventions and
empty-mask behaviour (NaN, inf or an exception, whatever the tool does), so
swapping the import gives the same numbers. An argument whose behaviour
segloss does not reproduce exactly raises NotImplementedError naming it.
"""
import importlib

_SUBMODULES = ("medpy", "surface_distance", "monai")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)
    raise AttributeError("module 'segloss.compat' has no attribute %r" % name)
