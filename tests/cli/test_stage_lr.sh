#!/usr/bin/env bash
# Per-stage learning rates ('@lr=' in a loss schedule) and OneCycle's
# pct_start (--pct-start): the lr of every step (one step per epoch, so
# log.csv's lr column is each step's) against torch.optim.lr_scheduler's
# OneCycleLR times the stage's rate (the schedule is not restarted at a
# stage), and exactly the stage rates with --schedule constant; pct_start
# moves the peak step; config.json records pct_start only when given; a run
# stopped inside a stage and resumed ends with the uninterrupted model.bin;
# bad values are one line and exit 2.
set -u
. "$(dirname "$0")/lib.sh"

BASE="--data phantom --size 32,32 --n-train 8 --n-val 2 --n-test 2 --depth 2 --base-channels 4 --batch 2 --epochs 12 --steps-per-epoch 1 --augment none --threads 2 --quiet"
STAGED="0:ce @lr=0.02; 4:dice+ce @lr=0.002; 8:dice+ce"
run "constant, staged" $S train --out "$tmp/c" $BASE --schedule constant --loss "$STAGED" --lr 0.005
run "onecycle, staged, pct 0.25" $S train --out "$tmp/o25" $BASE --loss "$STAGED" --lr 0.005 --pct-start 0.25
run "onecycle, pct 0.75" $S train --out "$tmp/o75" $BASE --pct-start 0.75
run "onecycle, default pct" $S train --out "$tmp/o30" $BASE
$PY - "$tmp" <<'PYEOF' || fail "lr per step"
import csv, json, sys
import torch
t = sys.argv[1]
def lrs(name):
    return [float(r["lr"]) for r in csv.DictReader(open("%s/%s/log.csv" % (t, name)))]
def onecycle(pct, n=12):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0)
    s = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=n, pct_start=pct)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return out
stage = [0.02] * 4 + [0.002] * 4 + [0.005] * 4  # the last stage has no @lr: --lr
ok = True
def cmp(name, got, want):
    global ok
    d = max(abs(a - b) / b for a, b in zip(got, want))
    print("%s: max relative lr difference %.3g (tolerance 1e-8: log.csv has 9 digits)" % (name, d))
    ok &= len(got) == len(want) and d < 1e-8
cmp("constant, staged", lrs("c"), stage)
cmp("onecycle pct 0.25, staged", lrs("o25"), [f * s for f, s in zip(onecycle(0.25), stage)])
cmp("onecycle pct 0.75", lrs("o75"), [f * 0.003 for f in onecycle(0.75)])
cmp("onecycle default", lrs("o30"), [f * 0.003 for f in onecycle(0.3)])
peak = {n: max(range(12), key=lambda i: lrs(n)[i]) for n in ("o75", "o30")}
tpeak = {p: max(range(12), key=lambda i: onecycle(p)[i]) for p in (0.75, 0.3)}
print("peak step: pct 0.75 -> %d (torch %d), 0.3 -> %d (torch %d)" % (peak["o75"], tpeak[0.75], peak["o30"], tpeak[0.3]))
ok &= peak["o75"] == tpeak[0.75] and peak["o30"] == tpeak[0.3] and peak["o75"] > peak["o30"]
c25, c30 = (json.load(open("%s/%s/config.json" % (t, n)))["optimizer"] for n in ("o25", "o30"))
ok &= c25.get("pct_start") == 0.25 and "pct_start" not in c30
sys.exit(0 if ok else 1)
PYEOF

# ---- resume inside a stage: the same model
run "uninterrupted" $S train --out "$tmp/full" $BASE --epochs 6 --loss "0:ce @lr=0.02; 3:dice+ce @lr=0.002" --pct-start 0.5
run "stopped" $S train --out "$tmp/part" $BASE --epochs 6 --loss "0:ce @lr=0.02; 3:dice+ce @lr=0.002" --pct-start 0.5 --stop-after 4
run "resumed" $S train --out "$tmp/part" --resume --quiet
check "cmp -s '$tmp/full/model.bin' '$tmp/part/model.bin'" "stage lr: resumed model.bin differs from the uninterrupted one"

# ---- bad values
for v in 0 1 1.5 -0.2 abc; do
  expect 2 "--pct-start expects" -- $S train --out "$tmp/x" $BASE --pct-start "$v"
done
expect 2 "@lr needs a finite number > 0" -- $S train --out "$tmp/x" $BASE --loss "0:ce @lr=0; 2:dice"
expect 2 "after '@' expected 'lr=NUMBER'" -- $S train --out "$tmp/x" $BASE --loss "0:ce @rate=1"
check "[ ! -e '$tmp/x' ]" "a refused run left its folder"

echo "test_stage_lr: $checks checks, $fails failed"
[ $fails -eq 0 ]
