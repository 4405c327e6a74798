#!/usr/bin/env bash
# The NLL of segloss eval --prob, and its clip of p_y at 1e-15, against
# scikit-learn's log_loss (when python3-sklearn is installed; skipped with a
# message otherwise) and against a transcription of log_loss written here:
#   p = clip(p, eps, 1 - eps); p /= p.sum(axis=1); loss = -sum(y * log p)
# (scikit-learn <= 1.2 with eps = 1e-15, the default before 1.2; 1.2's
# default eps="auto" is numpy.finfo(p.dtype).eps, 1.3 dropped the
# renormalisation). segloss computes -log(max(p_y, 1e-15)): equal to the
# above when every voxel's probabilities sum to 1 exactly (dyadic values
# here), except where p_y > 1 - 1e-15 (a difference below C * 1e-15).
# Cases: p_y = 0 (the clip), p_y = 1e-20, 1e-16 (below the clip), 2e-15
# (above it), p_y = 1, and dyadic values; then random float32 softmax
# volumes, where the renormalisation of the sums (float32: within 1e-7 of
# 1) is the only difference (bounded here by 1e-6 relative).
set -u
. "$(dirname "$0")/lib.sh"

$PY - "$tmp" <<'PYEOF'
import sys
import numpy as np
t = sys.argv[1]
C = 3
# one voxel per row: (p0, p1, p2), label; every row sums to 1 exactly in float32 and double
rows = [((0.0, 0.5, 0.5), 0), ((1e-20, 1.0, 0.0), 0), ((1e-16, 0.75, 0.25), 0), ((2e-15, 0.5, 0.5), 0),
        ((1.0, 0.0, 0.0), 0), ((0.25, 0.25, 0.5), 2), ((0.125, 0.625, 0.25), 1), ((0.0, 0.0, 1.0), 1),
        ((0.5, 0.5, 0.0), 2), ((0.375, 0.375, 0.25), 0)]
p = np.array([r[0] for r in rows], np.float32).T.reshape(C, 2, 5)
y = np.array([r[1] for r in rows], np.uint8).reshape(2, 5)
np.save(t + "/hand_p.npy", p); np.save(t + "/hand_y.npy", y)
rng = np.random.default_rng(5)
z = rng.standard_normal((4, 20, 18, 16)) * 3
z[:, 0, 0, 0] = (60, -60, -60, -60)      # a saturated voxel: p_y underflows in float32
e = np.exp(z - z.max(axis=0))
sm = (e / e.sum(axis=0)).astype(np.float32)
lab = rng.integers(0, 4, (20, 18, 16)).astype(np.uint8)
lab[0, 0, 0] = 3
np.save(t + "/rand_p.npy", sm); np.save(t + "/rand_y.npy", lab)
PYEOF

run "hand" $S eval --prob "$tmp/hand_p.npy" --gt "$tmp/hand_y.npy" --json "$tmp/h.json" --no-ranking
run "random" $S eval --prob "$tmp/rand_p.npy" --gt "$tmp/rand_y.npy" --json "$tmp/r.json" --no-ranking
checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "NLL differs from log_loss (scikit-learn or its transcription)"
import json, sys
import numpy as np
t = sys.argv[1]
bad = 0

def log_loss_transcribed(y, p, eps=1e-15):
    """scikit-learn's log_loss: clip to [eps, 1 - eps], renormalise rows, mean of -log p_y."""
    p = np.clip(p, eps, 1 - eps)
    p = p / p.sum(axis=1)[:, None]
    return float(np.mean(-np.log(p[np.arange(len(y)), y])))

def segloss_rule(y, p):
    return float(np.mean(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-15))))

try:
    from sklearn.metrics import log_loss
except ImportError:
    log_loss = None
    print("scikit-learn not installed (python3-sklearn): log_loss checked through its transcription only")

def check(name, tol_rel, exact):
    global bad
    C = np.load("%s/%s_p.npy" % (t, name)).shape[0]
    p = np.load("%s/%s_p.npy" % (t, name)).reshape(C, -1).T.astype(np.float64)
    y = np.load("%s/%s_y.npy" % (t, name)).ravel().astype(np.int64)
    got = json.load(open("%s/%s.json" % (t, name[0])))["cases"][0]["nll"]
    refs = [("transcription", log_loss_transcribed(y, p))]
    if log_loss is not None:
        refs.append(("scikit-learn", float(log_loss(y, p, eps=1e-15, labels=list(range(C))))))
    if exact:
        refs.append(("-log max(p_y, 1e-15)", segloss_rule(y, p)))
    for what, want in refs:
        d = abs(got - want) / want
        print("%s: nll %.17g vs %s %.17g, rel diff %.3g" % (name, got, what, want, d))
        if not d <= (tol_rel if what != "-log max(p_y, 1e-15)" else 1e-14):
            print("FAILED", name, what); bad += 1

check("hand", 1e-14, True)
check("rand", 1e-6, True)
# the clip matters: p_y = 0 gives -log(1e-15), not scikit-learn 1.2's eps="auto" (finfo(float64).eps)
h = json.load(open(t + "/h.json"))["cases"][0]["nll"]
auto = np.mean([-np.log(max(v, np.finfo(np.float64).eps)) for v in (0.0, 1e-20, 1e-16, 2e-15, 1.0, 0.5, 0.625, 0.0,
                                                                   0.0, 0.375)])
if abs(h - auto) < 1e-3:
    print("FAILED the hand case does not tell the 1e-15 clip from eps=auto"); bad += 1
sys.exit(1 if bad else 0)
PYEOF
echo "test_eval_nll: $checks checks, $fails failed"
[ $fails -eq 0 ]
