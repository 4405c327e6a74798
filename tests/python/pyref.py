"""Path setup shared by the Python package's tests (tests/python/test_*.py).

Puts tests/ref (slref.Check, the float64 PyTorch loss references) and python/
(the package, unless PYTHONPATH already points at one) on sys.path.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (os.path.join(ROOT, "tests", "ref"), os.path.join(ROOT, "python")):
    if p not in sys.path:
        sys.path.append(p)
PYTHON_DIR = os.path.join(ROOT, "python")
# Child processes of the tests import the same package.
if PYTHON_DIR not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), PYTHON_DIR) if p)
BUILD = os.environ.get("SEGLOSS_BUILD", os.path.join(ROOT, "build"))
os.environ.setdefault("SEGLOSS_LIB", os.path.join(BUILD, "libsegloss.so"))
