#!/usr/bin/env bash
# segloss edt from the outside: distance maps of the fixture masks against
# stored scipy results (tests/cli/fixtures/expected/edt_*.npy), NIfTI
# geometry carried from input to output, every format combination, and
# every bad input with its exit code and one stderr line.
set -u
. "$(dirname "$0")/lib.sh"

M=$FX/edt/mask.nii.gz
run "plain nifti->npy" $S edt "$M" "$tmp/plain.npy"
run "plain nifti->nifti f64" $S edt "$M" "$tmp/plain.nii.gz" --float64 --threads 2
run "signed" $S edt "$M" "$tmp/signed.nii" --signed --threads 1
run "kervadec" $S edt "$M" "$tmp/kerv.npy" --signed-kervadec --float64
run "2-D npy spacing" $S edt "$FX/edt/mask2d.npy" "$tmp/e2d.npy" --spacing 1,2 --float64
run "multilabel" $S edt "$FX/edt/mask2d.npy" "$tmp/ml.npy" --multilabel --spacing 1,2
run "override spacing" $S edt "$M" "$tmp/iso.npy" --spacing 1,1,1 --float64

checks=$((checks + 1))
$PY - "$tmp" "$FX" <<'PYEOF' || fail "distance maps differ from scipy"
import sys
import numpy as np
from scipy import ndimage as ndi
sys.path.insert(0, sys.argv[2])
import evalref
t, fx = sys.argv[1], sys.argv[2]
bad = 0
def close(name, got, want, rtol):
    global bad
    got = np.asarray(got, np.float64)
    d = np.abs(got - want)
    worst = float(d.max())
    print("max |diff| edt %-28s %.3g" % (name, worst))
    if got.shape != want.shape or not np.all(d <= rtol * np.maximum(1.0, np.abs(want))):
        print("FAILED", name); bad += 1
plain = np.load(fx + "/expected/edt_plain.npy")
p32 = np.load(t + "/plain.npy")
assert p32.dtype == np.float32, p32.dtype
close("plain (float32, .npy)", p32, plain, 1e-5)
arr, sp, hdr = evalref.read_nifti(t + "/plain.nii.gz")
assert arr.dtype == np.float64
close("plain (float64, .nii.gz)", arr, plain, 1e-12)
# Geometry copied from the input: spacing, qform/sform codes, srow.
_, sp_in, hin = evalref.read_nifti(fx + "/edt/mask.nii.gz")
assert sp == sp_in == (2.0, 1.0, 0.5), (sp, sp_in)
assert (hdr["qform_code"], hdr["sform_code"]) == (hin["qform_code"], hin["sform_code"]) == (1, 2)
assert hdr["srow"] == hin["srow"], (hdr["srow"], hin["srow"])
arr, _, _ = evalref.read_nifti(t + "/signed.nii")
close("signed (.nii)", arr, np.load(fx + "/expected/edt_signed.npy"), 1e-5)
close("kervadec", np.load(t + "/kerv.npy"), np.load(fx + "/expected/edt_kervadec.npy"), 1e-12)
close("2-D, spacing 1,2", np.load(t + "/e2d.npy"), np.load(fx + "/expected/edt2d_plain.npy"), 1e-12)
m2 = np.load(fx + "/edt/mask2d.npy")
close("multilabel (one label = plain)", np.load(t + "/ml.npy"), ndi.distance_transform_edt(m2 != 0, sampling=(1, 2)), 1e-5)
m3, _, _ = evalref.read_nifti(fx + "/edt/mask.nii.gz")
close("--spacing overrides pixdim", np.load(t + "/iso.npy"), ndi.distance_transform_edt(m3 != 0), 1e-12)
sys.exit(1 if bad else 0)
PYEOF

# Real anatomy: the brain mask of Colin27 (ch2bet), cropped to a block
# around the hippocampus to keep the test fast, against scipy.
CH2=/usr/share/mricron/templates/ch2bet.nii.gz
if [ -f "$CH2" ]; then
  checks=$((checks + 1))
  $PY - "$tmp" "$FX" "$CH2" <<'PYEOF' || fail "Colin27 block: $(cat "$tmp/err" 2>/dev/null)"
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import evalref
t = sys.argv[1]
vol, sp, _ = evalref.read_nifti(sys.argv[3])
block = (vol[40:104, 70:134, 40:104] > 60).astype(np.uint8)   # grey/white matter of a 64^3 block
np.save(t + "/block.npy", block)
PYEOF
  if $S edt "$tmp/block.npy" "$tmp/block_d.npy" --spacing 1.2,1,0.8 2>"$tmp/err"; then
    $PY -c "
import numpy as np, sys
from scipy import ndimage as ndi
b = np.load('$tmp/block.npy'); d = np.load('$tmp/block_d.npy')
r = ndi.distance_transform_edt(b, sampling=(1.2, 1, 0.8))
e = float(np.abs(d - r).max() / max(1.0, r.max()))
print('max |diff| edt Colin27 64^3 block (rel)    %.3g' % e)
sys.exit(0 if e < 1e-5 else 1)" || fail "Colin27 block differs from scipy"
  else
    fail "edt on the Colin27 block: $(cat "$tmp/err")"
  fi
else
  echo "skip: mricron-data is not installed (apt-get install mricron-data); no real-anatomy check"
fi

# An input without background gives +inf everywhere, with a warning.
$PY -c "import numpy as np; np.save('$tmp/ones.npy', np.ones((3, 4), np.uint8))"
checks=$((checks + 1))
if $S edt "$tmp/ones.npy" "$tmp/inf.npy" 2>"$tmp/err"; then
  grep -q "warning: 12 of 12 distances are +-inf" "$tmp/err" || fail "no-background warning: $(cat "$tmp/err")"
  $PY -c "import numpy as np, sys; sys.exit(0 if np.all(np.isposinf(np.load('$tmp/inf.npy'))) else 1)" || fail "+inf map"
else
  fail "all-foreground input should succeed"
fi

# ---- bad input -------------------------------------------------------------
$PY - "$tmp" <<'PYEOF'
import sys, numpy as np
t = sys.argv[1]
np.save(t + "/four_d.npy", np.zeros((2, 3, 4, 5), np.uint8))
np.save(t + "/f.npy", np.zeros((3, 4), np.float32))
np.save(t + "/fortran.npy", np.asfortranarray(np.zeros((3, 4), np.uint8)))
import gzip
open(t + "/trunc.nii.gz", "wb").write(gzip.compress(b"\x5c\x01\x00\x00" + b"\x00" * 400)[:30])
PYEOF
expect 2 "expected IN and OUT" -- $S edt "$M"
expect 2 "unknown option '--fast'" -- $S edt "$M" "$tmp/o.npy" --fast
expect 2 "choose one of" -- $S edt "$M" "$tmp/o.npy" --signed --signed-kervadec
expect 2 "unexpected argument" -- $S edt "$M" "$tmp/o.npy" "$tmp/p.npy"
expect 2 "unknown image format" -- $S edt "$M" "$tmp/o.png"
expect 2 "unknown image format" -- $S edt "$tmp/in.mha" "$tmp/o.npy"
expect 2 "--spacing values must be positive" -- $S edt "$M" "$tmp/o.npy" --spacing 1,-1,1
expect 2 "--spacing has 2 values" -- $S edt "$M" "$tmp/o.npy" --spacing 1,1
expect 2 "--threads" -- $S edt "$M" "$tmp/o.npy" --threads x
expect 1 "nothing.nii" -- $S edt "$tmp/nothing.nii" "$tmp/o.npy"
expect 1 "1-, 2- or 3-D" -- $S edt "$tmp/four_d.npy" "$tmp/o.npy"
expect 1 "--multilabel needs an integer" -- $S edt "$tmp/f.npy" "$tmp/o.npy" --multilabel
expect 1 "Fortran" -- $S edt "$tmp/fortran.npy" "$tmp/o.npy"
expect 1 "trunc.nii.gz" -- $S edt "$tmp/trunc.nii.gz" "$tmp/o.npy"
expect 1 "cannot write" -- $S edt "$M" "$tmp/no/such/dir/o.nii.gz"
checks=$((checks + 1))
[ ! -e "$tmp/o.npy" ] || fail "a failed run left an output file"
checks=$((checks + 1))
$S edt --help | grep -q -- '--signed-kervadec' || fail "--help"

echo "test_edt: $checks checks, $fails failed"
[ $fails -eq 0 ]
