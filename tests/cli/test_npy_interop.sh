#!/usr/bin/env bash
# .npy files written by numpy itself (every dtype segloss reads, both byte
# orders, format versions 1.0 and 2.0, a 0-d and an 8-axis array) go through
# `segloss edt` and come back readable by numpy with the right values;
# what numpy refuses to give us in C order is refused with one line.
set -u
. "$(dirname "$0")/lib.sh"
$PY - "$tmp" "$S" <<'PYEOF'
import os, subprocess, sys
import numpy as np
from scipy import ndimage as ndi
t, S = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
base = (rng.random((5, 6, 7)) > 0.3)
fails = checks = 0
def check(cond, what):
    global fails, checks
    checks += 1
    if not cond:
        fails += 1
        print("FAILED:", what)
want = ndi.distance_transform_edt(base)
for dt in ["<f4", ">f4", "<f8", ">f8", "|b1", "|u1", "|i1", "<u2", ">u2", "<i2", ">i2", "<u4", ">u4",
           "<i4", ">i4", "<u8", ">u8", "<i8", ">i8"]:
    a = base.astype(np.dtype(dt)) * (3 if dt[1] not in "b" else 1)
    # Every dtype in format 1.0; 2.0 for a few (all of them when not under
    # the sanitizers, where each run of the binary costs more).
    quick = os.environ.get("SL_QUICK") == "1"
    for ver in [(1, 0)] + ([(2, 0)] if not quick or dt in ("<f4", ">i8") else []):
        p = "%s/in_%s_%d.npy" % (t, dt.replace("<", "le").replace(">", "be").replace("|", ""), ver[0])
        with open(p, "wb") as f:
            np.lib.format.write_array(f, a, version=ver)
        r = subprocess.run([S, "edt", p, t + "/out.npy", "--float64"], capture_output=True, text=True)
        check(r.returncode == 0 and not r.stderr, "%s v%d: %s" % (dt, ver[0], r.stderr.strip()))
        if r.returncode == 0:
            got = np.load(t + "/out.npy")
            check(got.dtype == np.float64 and got.shape == a.shape and np.array_equal(got, want), "%s values" % dt)
# float32 output is what numpy reads as float32, C order.
r = subprocess.run([S, "edt", t + "/in_lef4_1.npy", t + "/o32.npy"], capture_output=True, text=True)
o = np.load(t + "/o32.npy")
check(r.returncode == 0 and o.dtype == np.float32 and o.flags.c_contiguous and np.allclose(o, want, rtol=1e-6), "float32 out")
# Refused with one line: Fortran order, complex, object, structured, 4-D.
np.save(t + "/fortran.npy", np.asfortranarray(base.astype(np.uint8)))
np.save(t + "/complex.npy", base.astype(np.complex64))
np.save(t + "/struct.npy", np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
np.save(t + "/obj.npy", np.array([1, "x"], dtype=object), allow_pickle=True)
for name, word in [("fortran", "Fortran"), ("complex", "dtype"), ("struct", "structured"), ("obj", "dtype")]:
    r = subprocess.run([S, "edt", "%s/%s.npy" % (t, name), t + "/x.npy"], capture_output=True, text=True)
    check(r.returncode == 1 and r.stderr.count("\n") == 1 and word in r.stderr, "%s: %d %r" % (name, r.returncode, r.stderr))
print("test_npy_interop: %d checks, %d failed" % (checks, fails))
sys.exit(1 if fails else 0)
PYEOF
