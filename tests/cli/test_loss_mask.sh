#!/usr/bin/env bash
# segloss loss --mask from the outside (runs under the sanitizers too): a good
# mask gives JSON and a gradient; a (N, H, W) integer mask equals the same
# (N, 1, H, W) float mask; a binary mask equals ignore_index on the same
# voxels; bad masks (shape, negative, NaN, a loss that takes none, a missing
# file) give exit 1 and one stderr line, and no gradient file.
set -u
. "$(dirname "$0")/lib.sh"

$PY - "$tmp" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
np.save(d + "/x.npy", rng.normal(size=(2, 3, 6, 7)).astype(np.float32))
y = rng.integers(0, 3, (2, 6, 7))
m = (rng.random((2, 1, 6, 7)) < 0.7)
np.save(d + "/y.npy", y.astype(np.int64))
np.save(d + "/yi.npy", np.where(m[:, 0], y, 9).astype(np.int64))
np.save(d + "/m.npy", m.astype(np.float32))
np.save(d + "/m8.npy", m[:, 0].astype(np.uint8))
np.save(d + "/mshape.npy", np.ones((2, 1, 6, 8), np.float32))
np.save(d + "/mc.npy", np.ones((2, 3, 6, 7), np.float32))
np.save(d + "/mneg.npy", -m.astype(np.float32))
mn = m.astype(np.float32); mn[1, 0, 2, 2] = np.nan
np.save(d + "/mnan.npy", mn)
PYEOF

val() { "$S" loss "$@" | $PY -c 'import json,sys; print(repr(json.load(sys.stdin)["loss"]))'; }
for spec in "dice+ce" "focal" "tversky(soft_label=true,pool_classes=true)" "exp_log"; do
  ign=$(echo "$spec" | sed -E 's/\(([^)]*)\)/(\1,ignore_index=9)/g; s/^dice\+ce$/dice(ignore_index=9)+ce(ignore_index=9)/; s/^(focal|exp_log)$/\1(ignore_index=9)/')
  a=$(val "$spec" --input "$tmp/x.npy" --target "$tmp/y.npy" --mask "$tmp/m.npy" --grad "$tmp/ga.npy")
  b=$(val "$spec" --input "$tmp/x.npy" --target "$tmp/y.npy" --mask "$tmp/m8.npy")
  c=$(val "$ign" --input "$tmp/x.npy" --target "$tmp/yi.npy")
  checks=$((checks + 1))
  if ! $PY -c "import sys; a,b,c=map(float,sys.argv[1:]); sys.exit(0 if abs(a-b)<=1e-9*max(1,abs(a)) and abs(a-c)<=1e-6*max(1,abs(a)) else 1)" "$a" "$b" "$c" \
     || [ ! -s "$tmp/ga.npy" ]; then
    fails=$((fails + 1)); echo "FAILED: $spec: mask $a, uint8 mask $b, ignore_index $c"
  fi
done

X=(--input "$tmp/x.npy" --target "$tmp/y.npy" --grad "$tmp/g.npy")
expect 1 "does not match scores" -- "$S" loss dice "${X[@]}" --mask "$tmp/mshape.npy"
expect 1 "does not match scores" -- "$S" loss dice "${X[@]}" --mask "$tmp/mc.npy"
expect 1 "negative" -- "$S" loss dice "${X[@]}" --mask "$tmp/mneg.npy"
expect 1 "NaN or Inf" -- "$S" loss ce "${X[@]}" --mask "$tmp/mnan.npy"
# every loss takes a mask (lovasz, cldice, ssim ... since issue 16's second round)
checks=$((checks + 1))
"$S" loss "dice+lovasz" "${X[@]}" --mask "$tmp/m.npy" >/dev/null 2>&1 || { fails=$((fails + 1)); echo "FAILED: dice+lovasz --mask"; }
expect 1 "nope.npy" -- "$S" loss dice "${X[@]}" --mask "$tmp/nope.npy"
expect 2 "--mask" -- "$S" loss dice "${X[@]}" --mask

echo "loss --mask CLI: $checks checks, $fails failed"
[ "$fails" = 0 ]
