"""OpenBLAS without worker threads the package does not use.

segloss's Python bindings never call the BLAS (only the C network does,
and it runs sgemm single-threaded from its own threads). But the package
imports numpy, and numpy loads Debian's OpenBLAS, whose library
constructor starts one worker thread per core, each reserving address
space for a 128 MiB work buffer (on two cores: one thread and about
139 MB of VmSize). OpenBLAS reads its thread count once, in that
constructor, so the count must be in the environment when the library is
first loaded: a later openblas_set_num_threads(1) lowers the count but
leaves the threads and their buffers in place (measured with
/proc/self/task and VmSize).

So when `import segloss` is the first thing in the process to load
OpenBLAS (numpy not imported yet, no OpenBLAS mapped) and the user has not
chosen a count (OPENBLAS_NUM_THREADS or GOTO_NUM_THREADS unset), numpy is
imported here with OPENBLAS_NUM_THREADS=1, and the variable is removed
again at once, so child processes see the environment they had. The
process's numpy (and Debian's torch, which links the same OpenBLAS) then
runs its BLAS on one thread; a user who wants more sets
OPENBLAS_NUM_THREADS before starting Python, imports numpy or torch before
segloss, or raises it later (threadpoolctl, openblas_set_num_threads),
which starts the threads then. See docs/reliability.md.
"""
import os
import sys

_CHOSEN = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS")


def _openblas_loaded():
    if "numpy" in sys.modules:
        return True
    try:
        with open("/proc/self/maps") as f:
            return any("openblas" in line for line in f)
    except OSError:
        return True  # cannot tell: leave the BLAS as it is


def _load_numpy_without_blas_threads():
    """Imports numpy with OpenBLAS at one thread; True when it did."""
    if any(v in os.environ for v in _CHOSEN) or _openblas_loaded():
        return False
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401  (loads OpenBLAS, which reads the variable now)
    except ImportError:
        return False  # the submodules that need numpy will say so
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]
    return True


applied = _load_numpy_without_blas_threads()
