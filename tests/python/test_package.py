"""The package skeleton: lazy imports, library discovery, status -> exception
mapping, thread counts (including in a forked child)."""
# sanitized: skip (loads libsegloss.so through ctypes)
import os
import shutil
import subprocess
import sys
import tempfile

import pyref  # noqa: F401  (paths)
import slref

import segloss
from segloss import _lib, errors


def main():
    chk = slref.Check("python package")
    # Importing segloss loads neither torch nor the library.
    r = subprocess.run([sys.executable, "-c", "import sys, segloss; print('torch' in sys.modules, 'segloss._lib' in sys.modules)"],
                       capture_output=True, text=True, env=dict(os.environ))
    chk.true("import segloss pulls in torch or the library: %r %r" % (r.stdout, r.stderr),
             r.returncode == 0 and r.stdout.split() == ["False", "False"])
    chk.true("library version %s" % segloss.library_version(), segloss.library_version() == "0.1.0")

    # Every C status maps to the documented builtin, with the message kept.
    want = {1: ValueError, 2: ValueError, 3: TypeError, 4: ValueError, 5: ValueError, 6: MemoryError,
            7: OSError, 8: ValueError, 9: RuntimeError, 10: OverflowError, 11: ValueError, 12: ValueError,
            13: NotImplementedError}
    for st, builtin in want.items():
        e = errors.from_status(st, "the message %d" % st)
        chk.true("status %d -> %s" % (st, type(e).__name__),
                 isinstance(e, segloss.Error) and isinstance(e, builtin) and e.status == st
                 and str(e) == "the message %d" % st and e.message == "the message %d" % st)
    e = errors.from_status(99, "x")
    chk.true("unknown status -> Error", type(e) is segloss.Error and e.status == 99)
    buf = _lib.msgbuf()
    buf.value = b"loss: bad thing"
    try:
        _lib.check(4, buf, "what")
        chk.true("check(4) raised nothing", False)
    except errors.RangeError as e:
        chk.true("check message %r" % str(e), str(e) == "what: loss: bad thing")
    _lib.check(0, buf)

    # A library that cannot be found: the error lists every path tried.
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.dirname(segloss.__file__), os.path.join(tmp, "segloss"),
                        ignore=shutil.ignore_patterns("libsegloss.so*", "__pycache__"))
        env = dict(os.environ, SEGLOSS_LIB=os.path.join(tmp, "nowhere.so"), PYTHONPATH=tmp)
        env.pop("SEGLOSS_BUILD", None)
        env.pop("LD_LIBRARY_PATH", None)
        r = subprocess.run([sys.executable, "-c", "import segloss; segloss.library_version()"],
                           capture_output=True, text=True, env=env, cwd=tmp)
        last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        chk.true("missing library: %s" % last, r.returncode != 0 and last.startswith("OSError")
                 and "nowhere.so (no such file)" in last and os.path.join(tmp, "segloss", "libsegloss.so") in last
                 and "make build" in last)

    # Threads: explicit, default, and always 1 in a forked child.
    chk.true("threads(3)", _lib.threads(3) == 3)
    chk.true("threads() default >= 1", _lib.threads() >= 1)
    for bad in (0, -1, 1.5, True):
        try:
            _lib.threads(bad)
            chk.true("threads(%r) accepted" % (bad,), False)
        except ValueError:
            pass
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        os.write(wfd, b"%d %d" % (_lib.threads(), _lib.threads(8)))
        os._exit(0)
    os.close(wfd)
    got = os.read(rfd, 64).decode()
    os.waitpid(pid, 0)
    chk.true("threads in a forked child: %r" % got, got == "1 1")

    # Array helpers: no copy when the array already fits, checked conversion otherwise.
    import numpy as np
    a = np.zeros((2, 3), np.float32)
    chk.true("as_f32 no copy", _lib.as_f32(a) is a or np.shares_memory(_lib.as_f32(a), a))
    chk.true("as_f32 from float64", _lib.as_f32(np.zeros(3)).dtype == np.float32)
    chk.true("as_labels int64", _lib.as_labels(np.array([0, 2], np.int64)).dtype == np.int32)
    for bad, exc in ((np.array([2**40]), ValueError), (np.array([0.5]), TypeError)):
        try:
            _lib.as_labels(bad)
            chk.true("as_labels(%r) accepted" % bad, False)
        except exc as e:
            chk.true("as_labels message %s" % e, isinstance(e, segloss.Error))
    chk.report()


if __name__ == "__main__":
    main()
