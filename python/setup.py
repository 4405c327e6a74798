"""Copies libsegloss.so into the package at build time.

The package is a ctypes layer, so the only thing to "build" is finding the
shared library: ../build/libsegloss.so of this checkout (or $SEGLOSS_BUILD),
built with `make build` when it is missing. The installed package then loads
its own copy, independent of the checkout.
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def find_built_library():
    build = os.environ.get("SEGLOSS_BUILD", os.path.join(ROOT, "build"))
    lib = os.path.join(build, "libsegloss.so")
    if not os.path.exists(lib) and os.path.exists(os.path.join(ROOT, "Makefile")):
        subprocess.run(["make", "-C", ROOT, "build"], check=True)
    if not os.path.exists(lib):
        raise SystemExit("segloss: %s not found; build the library first (make build) "
                         "or set SEGLOSS_BUILD to the build folder" % lib)
    return lib


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "segloss", "libsegloss.so")
        # copyfile, not copy of a symlink: the wheel must hold the bytes.
        shutil.copyfile(os.path.realpath(find_built_library()), dest)


setup(cmdclass={"build_py": BuildWithLibrary})
