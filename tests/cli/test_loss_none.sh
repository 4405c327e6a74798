#!/usr/bin/env bash
# segloss loss --reduction none from the outside (runs under the sanitizers
# too): the (N, C) matrix of a per-class loss and the (N, 1) values of a
# per-sample one, float64; the mean of the dice matrix is the ordinary loss;
# the gradient with an upstream of ones is N·C times the ordinary gradient;
# bad uses give exit 2 (usage) or 1 with one stderr line and no output files.
# (tests/ref/test_loss_reduction_none.py compares the values with PyTorch.)
set -u
. "$(dirname "$0")/lib.sh"

$PY - "$tmp" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
np.save(d + "/x.npy", rng.normal(size=(2, 3, 6, 7)).astype(np.float32))
np.save(d + "/y.npy", rng.integers(0, 3, (2, 6, 7)).astype(np.int64))
np.save(d + "/u1.npy", np.ones((2, 3)))
np.save(d + "/ubad.npy", np.ones((2, 1)))
PYEOF
X=(--input "$tmp/x.npy" --target "$tmp/y.npy")

run "dice --reduction none" "$S" loss dice "${X[@]}" --reduction none --values "$tmp/v.npy" --upstream "$tmp/u1.npy" \
  --grad "$tmp/gn.npy"
check 'grep -qF "\"shape\": [2, 3]" "$tmp/out"' "dice none prints shape [2, 3]: $(cat "$tmp/out")"
run "dice" "$S" loss dice "${X[@]}" --grad "$tmp/g.npy"
cp "$tmp/out" "$tmp/plain.json"
check '$PY -c "
import json, sys, numpy as np
d = sys.argv[1]
v, gn, g = np.load(d + \"/v.npy\"), np.load(d + \"/gn.npy\"), np.load(d + \"/g.npy\")
loss = json.load(open(d + \"/plain.json\"))[\"loss\"]
ok = v.dtype == np.float64 and v.shape == (2, 3) and abs(v.mean() - loss) <= 1e-6 * max(1, abs(loss))
ok = ok and np.abs(gn - 6 * g).max() <= 1e-5 * max(1, np.abs(6 * g).max())
sys.exit(0 if ok else 1)" "$tmp"' "dice none: matrix mean == loss, gradient of the sum == 6x the gradient"
run "dice+ce --reduction none" "$S" loss "dice+ce" "${X[@]}" --reduction none --values "$tmp/v1.npy"
check '$PY -c "import numpy as np, sys; sys.exit(0 if np.load(sys.argv[1]).shape == (2, 1) else 1)" "$tmp/v1.npy"' \
  "dice+ce none: (2, 1) values"

rm -f "$tmp/v2.npy" "$tmp/g2.npy"
expect 2 "--reduction none needs --values" -- "$S" loss dice "${X[@]}" --reduction none
expect 2 "--values needs --reduction none" -- "$S" loss dice "${X[@]}" --values "$tmp/v2.npy"
expect 2 "--reduction expects mean|none" -- "$S" loss dice "${X[@]}" --reduction sum --values "$tmp/v2.npy"
expect 1 "batch=true" -- "$S" loss "dice(batch=true)" "${X[@]}" --reduction none --values "$tmp/v2.npy" --grad "$tmp/g2.npy"
expect 1 "--upstream" -- "$S" loss dice "${X[@]}" --reduction none --values "$tmp/v2.npy" --upstream "$tmp/ubad.npy" \
  --grad "$tmp/g2.npy"
check '[ ! -e "$tmp/v2.npy" ] && [ ! -e "$tmp/g2.npy" ]' "refused runs write no files"

echo "loss --reduction none CLI: $checks checks, $fails failed"
[ "$fails" = 0 ]
