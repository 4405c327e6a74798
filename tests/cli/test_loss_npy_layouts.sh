#!/usr/bin/env bash
# segloss loss on .npy inputs laid out in every way numpy may write them:
# big-endian scores and labels, int64 labels, a data section at an offset
# that is not a multiple of the element size (a header padded by hand), a
# version 2.0 header — each gives the same JSON and a gradient file
# byte-identical to the plain little-endian run's. Fortran order, a
# truncated file and a file longer than its header says are refused with one
# line, exit 1, and leave an existing gradient file as it was.
set -u
. "$(dirname "$0")/lib.sh"

$PY - "$tmp" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(3)
x = rng.normal(0, 2, (2, 4, 5, 6, 7)).astype(np.float32)
y = rng.integers(0, 4, (2, 5, 6, 7))
np.save(d + "/x.npy", x)
np.save(d + "/y.npy", y.astype(np.int32))
np.save(d + "/y64.npy", y.astype(np.int64))
np.save(d + "/xbe.npy", x.astype(">f4"))
np.save(d + "/ybe.npy", y.astype(">i8"))
with open(d + "/xv2.npy", "wb") as f:
    np.lib.format.write_array(f, x, version=(2, 0))
# an odd header length: the data starts at an offset that is not a multiple of 4
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % (x.shape,)
hdr = hdr + " " * ((-(10 + len(hdr) + 1)) % 64 + 1) + "\n"
assert (10 + len(hdr)) % 4 != 0
open(d + "/xodd.npy", "wb").write(b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr.encode() + x.tobytes())
assert np.array_equal(np.load(d + "/xodd.npy"), x)
np.save(d + "/xfortran.npy", np.asfortranarray(x))
raw = open(d + "/x.npy", "rb").read()
open(d + "/xtrunc.npy", "wb").write(raw[:-3])
open(d + "/xlong.npy", "wb").write(raw + b"\0\0\0\0")
PYEOF

$S loss dice+ce --input "$tmp/x.npy" --target "$tmp/y.npy" --grad "$tmp/g_ref.npy" >"$tmp/ref.json" 2>"$tmp/err"
check '[ $? = 0 ] && [ ! -s "$tmp/err" ]' "reference run: $(cat "$tmp/err")"
for pair in "x y64" "xbe y" "xbe ybe" "xodd y" "xv2 y"; do
  set -- $pair
  $S loss dice+ce --input "$tmp/$1.npy" --target "$tmp/$2.npy" --grad "$tmp/g.npy" >"$tmp/out.json" 2>"$tmp/err"
  check '[ $? = 0 ] && [ ! -s "$tmp/err" ]' "$1 / $2: $(cat "$tmp/err")"
  check 'cmp -s "$tmp/out.json" "$tmp/ref.json"' "$1 / $2: JSON differs: $(cat "$tmp/out.json")"
  check 'cmp -s "$tmp/g.npy" "$tmp/g_ref.npy"' "$1 / $2: gradient file differs from the little-endian run's"
done

# refused inputs: one line, exit 1, an existing gradient file untouched
cp "$tmp/g_ref.npy" "$tmp/keep.npy"
expect 1 "Fortran" -- $S loss dice+ce --input "$tmp/xfortran.npy" --target "$tmp/y.npy" --grad "$tmp/keep.npy"
expect 1 "truncated" -- $S loss dice+ce --input "$tmp/xtrunc.npy" --target "$tmp/y.npy" --grad "$tmp/keep.npy"
expect 1 "longer than its shape" -- $S loss dice+ce --input "$tmp/xlong.npy" --target "$tmp/y.npy" --grad "$tmp/keep.npy"
check 'cmp -s "$tmp/keep.npy" "$tmp/g_ref.npy"' "a refused input changed the existing gradient file"
check '[ -z "$(ls -A "$tmp" | grep sltmp)" ]' "a temporary file was left behind: $(ls -A "$tmp")"

echo "test_loss_npy_layouts: $checks checks, $fails failed"
[ $fails -eq 0 ]
