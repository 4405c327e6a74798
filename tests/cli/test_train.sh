#!/usr/bin/env bash
# segloss train / segloss predict from the outside, on tiny settings:
# phantom, colin and a nifti:DIR folder end to end; the files of a run;
# predict on .npy (2-D, 3-D), NIfTI (geometry copied) and PNG, with and
# without flip TTA; a run killed with SIGKILL and resumed ends with the same
# model.bin bytes as an uninterrupted one (and so does --stop-after and
# Ctrl-C); every bad input gives one stderr line, the right exit code and
# no output that looks complete.
set -u
. "$(dirname "$0")/lib.sh"

TINY="--size 32,32 --depth 2 --base-channels 4 --epochs 3 --steps-per-epoch 4 --batch 4 --n-train 12 --n-val 4 --n-test 4 --threads 1 --lr 0.01"

# ---- phantom end to end, with per-epoch lines on a non-terminal stderr
checks=$((checks + 1))
if $S train --out "$tmp/ph" $TINY --loss dice+ce >"$tmp/out" 2>"$tmp/err"; then
  [ "$(grep -c '^epoch [123]/3 loss' "$tmp/err")" = 3 ] || fail "per-epoch progress lines: $(cat "$tmp/err")"
  grep -q "val dice large" "$tmp/err" || fail "no validation Dice in the progress lines"
  grep -q "^  core .*dice" "$tmp/out" || fail "no test summary on stdout: $(cat "$tmp/out")"
else
  fail "phantom training: $(cat "$tmp/err")"
fi
for f in config.json log.csv model.bin metrics.json; do check "[ -s '$tmp/ph/$f' ]" "phantom run lacks $f"; done
check "[ ! -e '$tmp/ph/checkpoint.bin' ]" "checkpoint.bin left in a complete run"
checks=$((checks + 1))
$PY - "$tmp/ph" <<'PYEOF' || fail "run files"
import json, sys, csv, math
d = sys.argv[1]
cfg = json.load(open(d + "/config.json"))
assert cfg["data"] == "phantom" and cfg["loss"] == "dice+ce", cfg
assert cfg["network"]["depth"] == 2 and cfg["network"]["base_width"] == 4
assert cfg["optimizer"]["kind"] == "adam" and cfg["optimizer"]["lr"] == 0.01
assert cfg["training"]["epochs"] == 3 and cfg["training"]["steps_per_epoch"] == 4
assert cfg["data_opts"]["height"] == 32 and cfg["data_opts"]["ratio"] == "100:10:1"
assert cfg["dataset"]["class_names"] == ["background", "large", "core"]
pp = cfg["predict"]["preprocessing"]
assert pp["norm"] == "zscore" and pp["scope"] == "slice" and pp["size"] == [32, 32], pp
rows = list(csv.DictReader(open(d + "/log.csv")))
assert len(rows) == 3 and [r["epoch"] for r in rows] == ["0", "1", "2"], rows
for k in ("lr", "loss", "term_dice", "term_ce", "val_dice_large", "val_dice_core", "seconds"):
    assert k in rows[0], k
m = json.load(open(d + "/metrics.json"))
assert [t["class"] for t in m["test"]] == [1, 2]
for t in m["test"]:
    for k in ("dice", "hd95", "nsd", "recall", "precision"):
        assert 0 <= t[k] and (k == "hd95" or t[k] <= 1), (k, t[k])
    assert t["n_cases"] == 4
print("max run files: ok")
PYEOF

# ---- on a terminal: a progress bar redrawn per step (needs util-linux's script for a pty)
if command -v script >/dev/null 2>&1; then
  checks=$((checks + 1))
  script -q -c "$S train --out '$tmp/tty' $TINY" /dev/null >"$tmp/tty.out" 2>&1 </dev/null
  grep -q "step 4/4 loss" "$tmp/tty.out" && grep -q "\[####################\]" "$tmp/tty.out" &&
    grep -q "step 2/4 loss [0-9.]* lr [0-9.e+-]* | val dice large" "$tmp/tty.out" && grep -q "ETA" "$tmp/tty.out" ||
    fail "no progress bar on a terminal: $(head -c 400 "$tmp/tty.out" | tr '\r' '|')"
fi

# ---- predict: .npy 2-D / 3-D, PNG, TTA on and off
$PY - "$tmp" <<'PYEOF'
import numpy as np, sys
r = np.random.default_rng(0)
np.save(sys.argv[1] + "/i2.npy", r.normal(size=(30, 37)).astype(np.float32))   # not a multiple of 2
np.save(sys.argv[1] + "/i3.npy", r.normal(size=(3, 32, 32)).astype(np.float64))
PYEOF
M=$tmp/ph/model.bin
run "predict 2-D npy" $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/o2.npy" --threads 1
run "predict 2-D npy tta" $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/o2t.npy" --tta flip --threads 1
run "predict 3-D npy" $S predict --model "$M" --input "$tmp/i3.npy" --out "$tmp/o3.npy" --tta none
run "predict 3-D npy -> nifti" $S predict --model "$M" --input "$tmp/i3.npy" --out "$tmp/o3.nii.gz"
run "predict npy -> png" $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/o2.png"
run "predict png -> png, tta" $S predict --model "$M" --input "$tmp/o2.png" --out "$tmp/o2b.png" --tta flip
run "predict with --config" $S predict --model "$M" --config "$tmp/ph/config.json" --input "$tmp/i2.npy" --out "$tmp/o2c.npy"
run "predict again" $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/o2again.npy" --threads 2 --batch 1
run "predict int8" $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/o2q.npy" --int8 --threads 1
run "predict int8 again" $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/o2q2.npy" --int8 --threads 2 --batch 1
run "predict int8 --calib" $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/o2qc.npy" --int8 --calib "$tmp/i3.npy"
checks=$((checks + 1))
$PY - "$tmp" <<'PYEOF' || fail "predict outputs"
import numpy as np, sys, zlib, struct
t = sys.argv[1]
o2, o2t, o3 = np.load(t + "/o2.npy"), np.load(t + "/o2t.npy"), np.load(t + "/o3.npy")
assert o2.shape == (30, 37) and o2.dtype == np.uint8 and o2.max() <= 2, (o2.shape, o2.dtype)
assert o2t.shape == (30, 37) and o2t.max() <= 2
assert o3.shape == (3, 32, 32) and o3.dtype == np.uint8
assert (np.load(t + "/o2again.npy") == o2).all(), "threads/batch change the prediction"
assert (np.load(t + "/o2c.npy") == o2).all()
# the PNG holds the same labels (8-bit grey)
raw = open(t + "/o2.png", "rb").read()
assert raw[:8] == b"\x89PNG\r\n\x1a\n"
w, h, depth, ctype = struct.unpack(">IIBB", raw[16:26])
assert (w, h, depth, ctype) == (37, 30, 8, 0), (w, h, depth, ctype)
pos, idat = 8, b""
while pos < len(raw):
    n, = struct.unpack(">I", raw[pos:pos + 4]); kind = raw[pos + 4:pos + 8]
    if kind == b"IDAT": idat += raw[pos + 8:pos + 8 + n]
    pos += 12 + n
rows = zlib.decompress(idat)
img = np.zeros((h, w), np.int32); prev = np.zeros(w, np.int32)
for y in range(h):
    f, line = rows[y * (w + 1)], np.frombuffer(rows[y * (w + 1) + 1:(y + 1) * (w + 1)], np.uint8).astype(np.int32)
    cur = np.zeros(w, np.int32)
    for x in range(w):
        a = cur[x - 1] if x else 0; b = prev[x]; c = prev[x - 1] if x else 0
        if f == 0: p = 0
        elif f == 1: p = a
        elif f == 2: p = b
        elif f == 3: p = (a + b) // 2
        else:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[x] = (line[x] + p) & 255
    img[y] = cur; prev = cur
assert (img == o2).all(), "PNG labels differ from the .npy"
print("max predict outputs: ok, tta changed %d of %d pixels" % ((o2 != o2t).sum(), o2.size))
# INT8: deterministic, close to the float labels, and the calibration image matters
q, q2, qc = np.load(t + "/o2q.npy"), np.load(t + "/o2q2.npy"), np.load(t + "/o2qc.npy")
assert q.shape == o2.shape and q.dtype == np.uint8 and (q == q2).all(), "int8: threads/batch change the prediction"
agree, agree_c = (q == o2).mean(), (qc == o2).mean()
print("max predict int8: labels agree with float on %.4f of pixels (%.4f with --calib)" % (agree, agree_c))
assert agree >= 0.9 and agree_c >= 0.85, (agree, agree_c)
PYEOF

# ---- nifti:DIR end to end (NIfTI fixtures as cases), predict copies the geometry
mkdir -p "$tmp/nd/images" "$tmp/nd/labels"
cp "$FX/eval/gt/case1.nii.gz" "$tmp/nd/images/a.nii.gz"; cp "$FX/eval/gt/case1.nii.gz" "$tmp/nd/labels/a.nii.gz"
cp "$FX/eval/gt/case2.nii.gz" "$tmp/nd/images/b.nii.gz"; cp "$FX/eval/gt/case2.nii.gz" "$tmp/nd/labels/b.nii.gz"
cp "$FX/eval/pred/case1.nii.gz" "$tmp/nd/images/c.nii.gz"; cp "$FX/eval/gt/case1.nii.gz" "$tmp/nd/labels/c.nii.gz"
run "nifti:DIR training" $S train --data "nifti:$tmp/nd" --out "$tmp/ndrun" --depth 2 --base-channels 4 --epochs 2 \
  --steps-per-epoch 3 --batch 2 --threads 1 --quiet --data-opt norm=percentile,norm_nonzero=1 --fg-fraction 0
run "predict nifti" $S predict --model "$tmp/ndrun/model.bin" --input "$FX/eval/pred/case1.nii.gz" --out "$tmp/nd_pred.nii.gz" --tta flip
checks=$((checks + 1))
$PY - "$FX/eval/pred/case1.nii.gz" "$tmp/nd_pred.nii.gz" "$tmp/ndrun/config.json" <<'PYEOF' || fail "NIfTI geometry not copied"
import gzip, struct, sys, json
a, b = gzip.open(sys.argv[1]).read(), gzip.open(sys.argv[2]).read()
dim = lambda h: struct.unpack("<8h", h[40:56])
assert dim(a) == dim(b), (dim(a), dim(b))
pix = lambda h: struct.unpack("<8f", h[76:108])[1:4]
assert pix(a) == pix(b), (pix(a), pix(b))
codes = lambda h: struct.unpack("<hh", h[252:256])
assert codes(a) == codes(b), (codes(a), codes(b))
geo = lambda h: struct.unpack("<6f", h[256:280]) + struct.unpack("<12f", h[280:328])
assert max(abs(x - y) for x, y in zip(geo(a), geo(b))) < 1e-6
assert struct.unpack("<h", b[70:72])[0] == 2  # uint8 labels
pp = json.load(open(sys.argv[3]))["predict"]["preprocessing"]
assert pp["norm"] == "percentile" and pp["mask"] == "nonzero" and pp["scope"] == "volume", pp
print("max nifti geometry: identical")
PYEOF

# ---- colin (real MRI from mricron-data), when installed: tiny run, predict the whole volume
if [ -f /usr/share/mricron/templates/ch2bet.nii.gz ] && [ -f /usr/share/mricron/templates/aal.nii.gz ]; then
  run "colin training" $S train --data colin --out "$tmp/colin" --size 96,96 --depth 2 --base-channels 4 --epochs 1 \
    --steps-per-epoch 4 --batch 2 --threads 1 --quiet --augment none
  run "colin predict volume" $S predict --model "$tmp/colin/model.bin" --input /usr/share/mricron/templates/ch2bet.nii.gz \
    --out "$tmp/colin_pred.nii"
  checks=$((checks + 1))
  $PY - "$tmp/colin_pred.nii" "$tmp/colin/config.json" <<'PYEOF' || fail "colin prediction"
import struct, sys, json
h = open(sys.argv[1], "rb").read()
assert struct.unpack("<8h", h[40:56])[:4] == (3, 181, 217, 181), struct.unpack("<8h", h[40:56])
c = json.load(open(sys.argv[2]))
pp = c["predict"]["preprocessing"]
assert pp["mask"] == "positive" and pp["axis"] == "z" and pp["size"] == [96, 96], pp
assert c["dataset"]["class_names"] == ["background", "deep_grey", "hippocampus_amygdala"]
print("max colin: ok")
PYEOF
fi

# ---- resume: SIGKILL mid-run, --stop-after, Ctrl-C; each ends with the uninterrupted model's bytes
MID="--size 40,40 --depth 2 --base-channels 4 --epochs 5 --steps-per-epoch 8 --batch 4 --n-train 12 --n-val 4 --n-test 4 --threads 1 --quiet --loss 0:ce;2:dice+ce"
run "uninterrupted" $S train --out "$tmp/full" $MID
$S train --out "$tmp/killed" $MID >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ -e "$tmp/killed/checkpoint.bin" ] && break; sleep 0.02; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
checks=$((checks + 1))
if [ -e "$tmp/killed/metrics.json" ]; then
  echo "note: the run finished before the kill; the kill check is void this time"
else
  [ ! -e "$tmp/killed/model.bin" ] || fail "a killed run left model.bin"
fi
expect 1 "unfinished run" -- $S train --out "$tmp/killed" $MID
if [ ! -e "$tmp/killed/metrics.json" ]; then
  run "resume after SIGKILL" $S train --out "$tmp/killed" --resume --quiet
  check "cmp -s '$tmp/full/model.bin' '$tmp/killed/model.bin'" "model after SIGKILL + resume differs from the uninterrupted one"
fi
checks=$((checks + 1))
out=$($S train --out "$tmp/stopped" $MID --stop-after 2 2>&1) || fail "--stop-after: $out"
echo "$out" | grep -q "stopped after epoch 2 of 5" || fail "--stop-after message: $out"
check "[ -e '$tmp/stopped/checkpoint.bin' ] && [ ! -e '$tmp/stopped/model.bin' ]" "--stop-after leaves a checkpoint only"
expect 1 "another configuration" -- $S train --out "$tmp/stopped" --resume --lr 0.1
run "resume after --stop-after (with the options repeated)" $S train --out "$tmp/stopped" $MID --resume --threads 2
check "cmp -s '$tmp/full/model.bin' '$tmp/stopped/model.bin'" "model after --stop-after + resume differs"
check "[ \"\$(cut -d, -f1-8 '$tmp/full/log.csv')\" = \"\$(cut -d, -f1-8 '$tmp/stopped/log.csv')\" ]" "log.csv after resume differs"
$S train --out "$tmp/int" $MID >/dev/null 2>"$tmp/int.err" &
pid=$!
for _ in $(seq 1 600); do [ -e "$tmp/int/checkpoint.bin" ] && break; sleep 0.02; done
kill -INT $pid 2>/dev/null; wait $pid; rc=$?
checks=$((checks + 1))
if [ -e "$tmp/int/metrics.json" ]; then
  echo "note: the run finished before Ctrl-C; the interrupt check is void this time"
else
  { [ $rc = 1 ] && grep -q "interrupted after epoch" "$tmp/int.err"; } || fail "Ctrl-C: exit $rc, $(cat "$tmp/int.err")"
  run "resume after Ctrl-C" $S train --out "$tmp/int" --resume --quiet
  check "cmp -s '$tmp/full/model.bin' '$tmp/int/model.bin'" "model after Ctrl-C + resume differs"
fi

# ---- other options: deep supervision, ramp, sgd/poly, batch norm, strided, patch, augment
run "options" $S train --out "$tmp/opts" $TINY --quiet --deep-supervision --depth 3 --loss gdice+boundary --ramp=start=0.1,step=0.1 \
  --optimizer sgd --lr 0.01 --momentum 0.9 --schedule poly --norm batch --down strided --patch 16,16 --augment default,elastic \
  --fg-fraction 0.5 --weight-decay 1e-4 --clip-norm 5 --max-channels 6 --seed 3 --ratio 100:20:5:2 --data-seed 2
checks=$((checks + 1))
$PY - "$tmp/opts/config.json" <<'PYEOF' || fail "options not recorded"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["loss"] == "gdice+boundary | ramp(start=0.1,step=0.1)", c["loss"]
n, o, t = c["network"], c["optimizer"], c["training"]
assert n["deep_supervision"] is True and n["norm"] == "batch" and n["down"] == "strided" and n["max_width"] == 6
assert o["kind"] == "sgd" and o["lr_schedule"] == "poly" and o["momentum"] == 0.9 and o["weight_decay"] == 1e-4 and o["clip_norm"] == 5
assert t["patch"] == [16, 16] and t["augment"] == "default,elastic" and t["fg_fraction"] == 0.5 and t["seed"] == 3
assert c["data_opts"]["ratio"] == "100:20:5:2" and c["data_opts"]["seed"] == 2
print("max options: recorded")
PYEOF
run "small fraction, adamw, constant" $S train --out "$tmp/opts2" $TINY --quiet --small-fraction 0.02 --optimizer adamw --schedule constant --augment none

# ---- bad inputs: one line, exit code, nothing that looks complete
expect 2 "unknown option '--nope'" -- $S train --out "$tmp/bad1" --nope
expect 2 "--out DIR is required" -- $S train --loss dice
expect 2 "unknown loss 'dcie'" -- $S train --out "$tmp/bad2" --loss dcie
expect 2 "--epochs expects" -- $S train --out "$tmp/bad3" --epochs 0
expect 2 "--optimizer expects" -- $S train --out "$tmp/bad3" --optimizer rmsprop
expect 2 "multiple of 2^(depth-1)" -- $S train --out "$tmp/bad3" --patch 30,30 --depth 3
expect 2 "already has a ramp" -- $S train --out "$tmp/bad3" --loss "dice+boundary | ramp" --ramp
expect 2 "data option" -- $S train --out "$tmp/bad3" --data-opt noise=-1
check "[ ! -e '$tmp/bad1' ] && [ ! -e '$tmp/bad2' ] && [ ! -e '$tmp/bad3' ]" "a refused run left a folder"
expect 1 "mricron-data" -- $S train --data colin --out "$tmp/nocolin" --data-opt colin_dir=$tmp/no_mricron --threads 1
check "[ ! -e '$tmp/nocolin' ]" "a run that could not open its data left a folder"
mkdir -p "$tmp/bad_nd/images" "$tmp/bad_nd/labels"
cp "$FX/edt/mask.nii.gz" "$tmp/bad_nd/images/a.nii.gz"; cp "$FX/eval/gt/case4.nii.gz" "$tmp/bad_nd/labels/a.nii.gz"
expect 1 "grids differ" -- $S train --data "nifti:$tmp/bad_nd" --out "$tmp/badgrid" --threads 1
check "[ ! -e '$tmp/badgrid' ]" "mismatched grids left a folder"
touch "$tmp/afile"
expect 1 "cannot create folder" -- $S train --out "$tmp/afile/run" $TINY
expect 1 "already holds a complete run" -- $S train --out "$tmp/ph" $TINY
expect 1 "nothing to resume" -- $S train --out "$tmp/ph" --resume
expect 1 "no run to resume" -- $S train --out "$tmp/empty_dir_run" --resume
run "--force replaces" $S train --out "$tmp/ph" $TINY --quiet --force --epochs 1
if [ "$(id -u)" != 0 ]; then
  mkdir "$tmp/ro"; chmod 555 "$tmp/ro"
  expect 1 "cannot write" -- $S train --out "$tmp/ro" $TINY
fi

# predict
head -c 100 "$M" >"$tmp/trunc.bin"; cp "$tmp/ph/config.json" "$tmp/config.json"
expect 1 "trunc.bin" -- $S predict --model "$tmp/trunc.bin" --input "$tmp/i2.npy" --out "$tmp/never1.npy"
printf 'garbage' >"$tmp/garbage.bin"
expect 1 "garbage.bin" -- $S predict --model "$tmp/garbage.bin" --input "$tmp/i2.npy" --out "$tmp/never2.npy"
expect 1 "missing.bin" -- $S predict --model "$tmp/missing.bin" --input "$tmp/i2.npy" --out "$tmp/never3.npy"
mkdir -p "$tmp/noconf"; cp "$M" "$tmp/noconf/model.bin"
expect 1 "config.json" -- $S predict --model "$tmp/noconf/model.bin" --input "$tmp/i2.npy" --out "$tmp/never4.npy"
expect 1 "classes" -- $S predict --model "$tmp/ph/model.bin" --config "$tmp/opts/config.json" --input "$tmp/i2.npy" --out "$tmp/never5.npy"
expect 1 "no_such.npy" -- $S predict --model "$M" --input "$tmp/no_such.npy" --out "$tmp/never6.npy"
expect 1 "cannot write" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/afile/x.npy"
expect 2 "unknown image format" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/never7.txt"
expect 2 "--tta expects" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/never8.npy" --tta rotate
expect 2 "unknown option" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/never9.npy" --fast
expect 2 "are required" -- $S predict --model "$M" --input "$tmp/i2.npy"
expect 2 "PNG output needs a 2-D input" -- $S predict --model "$M" --input "$tmp/i3.npy" --out "$tmp/never10.png"
expect 2 "--calib is for --int8" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/never13.npy" --calib "$tmp/i3.npy"
expect 2 "unknown image format" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/never14.npy" --int8 --calib "$tmp/c.txt"
expect 1 "no_such_calib.npy" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/never15.npy" --int8 --calib "$tmp/no_such_calib.npy"
$PY -c "import numpy as np; np.save('$tmp/i4.npy', np.zeros((2, 2, 8, 8), np.float32)); np.save('$tmp/inan.npy', np.full((8, 8), np.nan, np.float32))"
expect 1 "4 axes" -- $S predict --model "$M" --input "$tmp/i4.npy" --out "$tmp/never11.npy"
expect 1 "non-finite" -- $S predict --model "$M" --input "$tmp/inan.npy" --out "$tmp/never12.npy"
expect 1 "non-finite" -- $S predict --model "$M" --input "$tmp/i2.npy" --out "$tmp/never16.npy" --int8 --calib "$tmp/inan.npy"
check "[ -z \"\$(ls '$tmp' | grep -E 'never|\\.tmp')\" ]" "a failed predict left a file: $(ls "$tmp" | grep -E 'never|\.tmp' | tr '\n' ' ')"

echo "test_train.sh: $checks checks, $fails failed"
[ $fails -eq 0 ]
