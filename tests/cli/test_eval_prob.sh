#!/usr/bin/env bash
# segloss eval --prob from the outside: per case ECE/MCE (Guo's loop, bins
# (lo, hi]), class-wise ECE, Brier, NLL and per-class AUROC/AP against
# transcriptions written here (scikit-learn's _binary_clf_curve, roc_auc,
# average_precision; numpy), folders matched by name, the summary's mean
# and population std; bad probabilities (outside [0, 1], not summing to 1)
# and mismatched grids refused in one line with no output written.
set -u
. "$(dirname "$0")/lib.sh"

mkdir -p "$tmp/P" "$tmp/G" "$tmp/bad"
$PY - "$tmp" <<'PYEOF'
import sys
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(11)
for k, (shape, C) in enumerate((((20, 24), 3), ((6, 10, 12), 4), ((30, 30), 2))):
    z = rng.standard_normal((C,) + shape) * 2
    lab = np.where(rng.random(shape) < 0.7, np.argmax(z, axis=0), rng.integers(0, C, shape))
    e = np.exp(z - z.max(axis=0))
    p = (e / e.sum(axis=0)).astype(np.float32 if k != 1 else np.float64)
    np.save("%s/P/c%d.npy" % (t, k), p)
    np.save("%s/G/c%d.npy" % (t, k), lab.astype(np.uint8))
    if k == 0:
        q = p.copy(); q[0, 3, 4] = 1.3; np.save(t + "/bad/above.npy", q)
        q = p.copy(); q[:, 5, 5] *= 0.8; np.save(t + "/bad/sum.npy", q)
        np.save(t + "/bad/grid.npy", p[:, :-1])
PYEOF

run "folders" $S eval --prob "$tmp/P" --gt "$tmp/G" --bins 10 --csv "$tmp/o.csv" --json "$tmp/o.json" --threads 2
run "one file" $S eval --prob "$tmp/P/c0.npy" --gt "$tmp/G/c0.npy" --json "$tmp/one.json"

checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "values differ from the transcriptions"
import csv, json, sys
import numpy as np
t = sys.argv[1]

def clf_curve(y, s):
    o = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[o], y[o]
    idx = np.r_[np.where(np.diff(s))[0], y.size - 1]
    tps = np.cumsum(y, dtype=np.float64)[idx]
    return 1 + idx - tps, tps

def auroc(y, s):
    fps, tps = clf_curve(y, s)
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    fpr, tpr = fps / fps[-1], tps / tps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))

def ap(y, s):
    fps, tps = clf_curve(y, s)
    pr = np.r_[(tps / (tps + fps))[::-1], 1]
    rc = np.r_[(tps / tps[-1])[::-1], 0]
    return float(-np.sum(np.diff(rc) * pr[:-1]))

def ece(conf, hit, B):
    conf = conf.astype(np.float64)
    e, m = 0.0, 0.0
    for b in range(B):
        inb = (conf > b / B) & (conf <= (b + 1) / B)
        if b == 0:
            inb |= conf == 0
        if inb.any():
            g = abs(hit[inb].mean() - conf[inb].mean())
            e += g * inb.mean(); m = max(m, g)
    return e, m

bad = 0; worst = 0.0
def close(what, a, b, tol=1e-12):
    global bad, worst
    d = abs(a - b)
    worst = max(worst, d)
    if not d <= tol:
        print("FAILED", what, a, b); bad += 1

j = json.load(open(t + "/o.json"))
B = 10
vals = {}
for c in j["cases"]:
    p = np.load("%s/P/%s.npy" % (t, c["case"])).astype(np.float32)
    y = np.load("%s/G/%s.npy" % (t, c["case"])).ravel().astype(np.int64)
    C = p.shape[0]
    p = p.reshape(C, -1)
    conf, pred = p.max(axis=0), np.argmax(p, axis=0)
    e, m = ece(conf, (pred == y).astype(float), B)
    close(c["case"] + " ece", c["ece"], e); close(c["case"] + " mce", c["mce"], m)
    close(c["case"] + " accuracy", c["accuracy"], (pred == y).mean())
    p64 = p.astype(np.float64)
    close(c["case"] + " brier", c["brier"], np.mean(np.sum((p64 - np.eye(C)[y].T) ** 2, axis=0)))
    close(c["case"] + " nll", c["nll"], np.mean(-np.log(np.maximum(p64[y, np.arange(y.size)], 1e-15))))
    cw = []
    for k in range(C):
        yk = (y == k).astype(float)
        ek, mk = ece(p[k], yk, B)
        cw.append(ek)
        cl = c["classes"][k]
        close("%s class %d ece" % (c["case"], k), cl["ece"], ek)
        close("%s class %d auroc" % (c["case"], k), cl["auroc"], auroc(yk, p[k]))
        close("%s class %d ap" % (c["case"], k), cl["ap"], ap(yk, p[k]))
        close("%s class %d brier" % (c["case"], k), cl["brier"], np.mean((p64[k] - yk) ** 2))
    close(c["case"] + " classwise_ece", c["classwise_ece"], np.mean(cw))
    for f in ("ece", "brier", "nll"):
        vals.setdefault(f, []).append(c[f])
for f, v in vals.items():
    close("summary mean " + f, j["summary"][f]["mean"], np.mean(v))
    close("summary population std " + f, j["summary"][f]["std"], np.std(v))
rows = list(csv.DictReader(open(t + "/o.csv")))
close("csv ece of c1", float([r for r in rows if r["case"] == "c1" and r["class"] == "all"][0]["ece"]),
      [c for c in j["cases"] if c["case"] == "c1"][0]["ece"], 0)
print("max |diff| eval --prob vs transcriptions %.3g" % worst)
sys.exit(1 if bad else 0)
PYEOF

expect 1 "outside [0, 1]" -- $S eval --prob "$tmp/bad/above.npy" --gt "$tmp/G/c0.npy" --json "$tmp/x.json"
expect 1 "not 1 within 0.0001" -- $S eval --prob "$tmp/bad/sum.npy" --gt "$tmp/G/c0.npy" --json "$tmp/x.json"
expect 1 "probabilities must be (C, spatial...)" -- $S eval --prob "$tmp/bad/grid.npy" --gt "$tmp/G/c0.npy" --json "$tmp/x.json"
expect 2 "--prob is a folder but --gt is not" -- $S eval --prob "$tmp/P" --gt "$tmp/G/c0.npy"
expect 2 "does not apply to --prob" -- $S eval --prob "$tmp/P" --gt "$tmp/G" --metrics dice
expect 2 "--bins expects" -- $S eval --prob "$tmp/P" --gt "$tmp/G" --bins 0
checks=$((checks + 1))
[ ! -e "$tmp/x.json" ] && [ -z "$(ls "$tmp" | grep '\.tmp$')" ] || fail "a refused run left output"
echo "test_eval_prob: $checks checks, $fails failed"
[ $fails -eq 0 ]
