"""The package installs offline into a fresh venv the way the README says
(python3 -m venv --system-site-packages V; V/bin/pip install --no-build-isolation
./python), carries its own copy of libsegloss.so, and runs a loss from outside
the checkout with no PYTHONPATH or SEGLOSS_LIB.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import os
import subprocess
import sys
import tempfile
import time

import pyref
import slref


def main():
    chk = slref.Check("offline venv install")
    with tempfile.TemporaryDirectory(prefix="segloss-venv-") as tmp:
        venv = os.path.join(tmp, "V")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEGLOSS_LIB")}
        env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", SEGLOSS_BUILD=pyref.BUILD)
        t0 = time.time()
        r = subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv],
                           capture_output=True, text=True, env=env)
        chk.true("venv: %s" % r.stderr.strip()[-500:], r.returncode == 0)
        # pip builds in place: a copy of python/ keeps the checkout free of build/ and egg-info.
        src = os.path.join(tmp, "src")
        subprocess.run(["cp", "-r", pyref.PYTHON_DIR, src], check=True)
        r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--no-build-isolation", src],
                           capture_output=True, text=True, env=env, cwd=tmp)
        chk.true("pip install: %s" % (r.stdout + r.stderr).strip()[-800:], r.returncode == 0)
        print("venv + install: %.1f s" % (time.time() - t0))
        code = ("import os, torch, segloss, segloss._lib as L; from segloss.torch import SegLoss\n"
                "x = torch.zeros(1, 2, 4, 4, requires_grad=True); y = torch.zeros(1, 4, 4, dtype=torch.long)\n"
                "v = SegLoss('ce')(x, y); v.backward()\n"
                "print(segloss.__file__); print(L.lib()._name); print(float(v))\n")
        r = subprocess.run([os.path.join(venv, "bin", "python"), "-c", code], capture_output=True, text=True,
                           env=dict(env, SEGLOSS_BUILD="/nonexistent"), cwd=tmp)
        out = r.stdout.split()
        print(r.stdout.strip(), r.stderr.strip()[-500:])
        chk.true("venv python ran a loss", r.returncode == 0 and len(out) == 3)
        if len(out) == 3:
            chk.true("package from the venv: %s" % out[0], out[0].startswith(venv))
            chk.true("library copied into the package: %s" % out[1],
                     out[1] == os.path.join(os.path.dirname(out[0]), "libsegloss.so"))
            chk.close("ce of zero logits = log 2", float(out[2]), 0.6931471805599453, rtol=1e-6, atol=1e-7)
    chk.report()


if __name__ == "__main__":
    sys.exit(main())
