"""segloss from Python: a ctypes layer over libsegloss.

Submodules are imported on first use, so `import segloss` loads neither
torch nor the C library:

- segloss.torch    SegLoss (a torch.nn.Module) and MONAI / smp drop-ins
- segloss.ndimage  distance transforms and connected components
- segloss.metrics  segmentation metrics with stated conventions
- segloss.compat   drop-ins for MedPy, DeepMind surface-distance and MONAI metrics

Errors from the C library raise segloss.Error subclasses (see segloss.errors).
"""
import importlib

from . import _blas  # noqa: F401  (first: numpy without OpenBLAS threads, see _blas)
from .errors import Error

__version__ = "0.1.0"

_SUBMODULES = ("torch", "ndimage", "metrics", "compat", "errors")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)
    raise AttributeError("module 'segloss' has no attribute %r" % name)


def library_version():
    """The version string of the loaded libsegloss.so."""
    from . import _lib
    return _lib.lib().sl_version().decode()


__all__ = ["Error", "library_version", "__version__"]
