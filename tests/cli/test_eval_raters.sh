#!/usr/bin/env bash
# segloss eval --gt R1,R2,R3 from the outside: each rater's summary equals
# a separate `segloss eval --gt Rj` run, the mean/min/max over raters are
# those of the per-rater means, and the fused column equals scoring against
# `segloss fuse` (STAPLE) of the raters case by case; raters on other grids
# and a file/folder mix refused in one line.
set -u
. "$(dirname "$0")/lib.sh"

$PY - "$tmp" <<'PYEOF'
import os, sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(8)
for d in ("P", "R1", "R2", "R3", "F", "bad"):
    os.makedirs(os.path.join(t, d), exist_ok=True)
for k in range(3):
    g = np.zeros((16, 20, 18), np.uint8)
    g[3:12, 4:15, 2:14] = 1
    g[6:9, 7:11, 5:8] = 2
    for j, d in enumerate(("R1", "R2", "R3")):
        r = g.copy()
        f = rng.random(g.shape) < 0.04 * (j + 1)
        r[f] = rng.integers(0, 3, int(f.sum()))
        np.save("%s/%s/c%d.npy" % (t, d, k), r)
    p = g.copy()
    f = rng.random(g.shape) < 0.06
    p[f] = rng.integers(0, 3, int(f.sum()))
    np.save("%s/P/c%d.npy" % (t, k), p)
np.save(t + "/bad/c0.npy", np.zeros((16, 20, 17), np.uint8))
PYEOF

run "three raters" $S eval --pred "$tmp/P" --gt "$tmp/R1,$tmp/R2,$tmp/R3" --labels 1,2 --metrics dice,hd95,nsd \
  --json "$tmp/all.json" --csv "$tmp/all.csv"
for j in 1 2 3; do
  run "rater $j alone" $S eval --pred "$tmp/P" --gt "$tmp/R$j" --labels 1,2 --metrics dice,hd95,nsd --json "$tmp/r$j.json"
done
for k in 0 1 2; do
  run "fuse c$k" $S fuse "$tmp/R1/c$k.npy" "$tmp/R2/c$k.npy" "$tmp/R3/c$k.npy" --out "$tmp/F/c$k.npy" --json "$tmp/f$k.json"
done
run "fused alone" $S eval --pred "$tmp/P" --gt "$tmp/F" --labels 1,2 --metrics dice,hd95,nsd --json "$tmp/fz.json"

checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "multi-rater summaries"
import json, sys
import numpy as np
t = sys.argv[1]
a = json.load(open(t + "/all.json"))
bad = 0
def means(path):
    j = json.load(open(path))
    return {lab: {k: v[k]["mean"] for k in ("dice", "hd95", "nsd")} for lab, v in j["summary"].items()}
per = [means("%s/r%d.json" % (t, j)) for j in (1, 2, 3)]
fz = means(t + "/fz.json")
if not per[0] or not fz:
    print("FAILED: could not find the summaries in the single-rater JSON"); sys.exit(1)
worst = 0.0
for lab in ("1", "2"):
    for m in ("dice", "hd95", "nsd"):
        got = a["labels"][lab][m]
        want = [p[lab][m] for p in per]
        d = max(abs(x - y) for x, y in zip(got["per_rater"], want))
        d = max(d, abs(got["mean"] - np.mean(want)), abs(got["min"] - min(want)), abs(got["max"] - max(want)),
                abs(got["fused"] - fz[lab][m]))
        worst = max(worst, d)
        if d > 1e-12:
            print("FAILED", lab, m, got, want, fz[lab][m]); bad += 1
print("max |diff| multi-rater summaries vs separate runs %.3g" % worst)
rows = open(t + "/all.csv").read().splitlines()
refs = sorted(set(r.split(",")[0] for r in rows[1:]))
if refs != ["fused", "rater1", "rater2", "rater3"] or len(rows) != 1 + 4 * 3 * 2:
    print("FAILED csv rows", refs, len(rows)); bad += 1
sys.exit(1 if bad else 0)
PYEOF

expect 1 "grids differ" -- $S eval --pred "$tmp/P/c0.npy" --gt "$tmp/R1/c0.npy,$tmp/bad/c0.npy" --labels 1
expect 2 "is a folder but --pred is a file" -- $S eval --pred "$tmp/P/c0.npy" --gt "$tmp/R1/c0.npy,$tmp/R2" --labels 1
expect 2 "at least two raters" -- $S eval --pred "$tmp/P" --gt "$tmp/R1," --labels 1
echo "test_eval_raters: $checks checks, $fails failed"
[ $fails -eq 0 ]
