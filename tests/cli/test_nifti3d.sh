#!/usr/bin/env bash
# segloss train --data nifti:DIR --patch D,H,W: 3-D training on the user's
# own volumes with their voxel spacing. A tiny data set (5 volumes of
# 16x24x24 voxels at 3x1x1 mm, an ellipsoid to find) written here with
# numpy: config.json records the spacing and the anisotropic plan (no
# pooling of the 3 mm axis into stage 1, 1x3x3 kernels there), --anisotropic
# off keeps the isotropic net; metrics.json's HD95 is in mm: it equals
# `segloss eval`'s HD95 of the same prediction with the files' spacing, and
# the empty-side substitute is the volume diagonal in mm,
# sqrt(48^2 + 24^2 + 24^2); the spacing reaches the distance losses (first
# step: the boundary term differs from a 1 mm copy of the data, the Dice
# term does not); segloss predict on a volume writes a NIfTI with the
# input's affine; without --patch the same folder trains on 2-D slices
# (units pixels). Bad input: mixed spacings, volumes of two sizes, a D,H,W
# patch on 2-D data: one stderr line, nothing written.
set -u
. "$(dirname "$0")/lib.sh"

# ---- the data: NIfTI-1 written by hand (348-byte header, sform = qform-free affine)
$PY - "$tmp" <<'PYEOF'
import gzip, os, struct, sys
import numpy as np
root = sys.argv[1]

def write_nii(path, a, spacing_zyx, origin=(-11.5, 7.0, 20.25)):
    a = np.ascontiguousarray(a)
    dt = {np.dtype("float32"): (16, 32), np.dtype("uint8"): (2, 8)}[a.dtype]
    h = bytearray(352)
    struct.pack_into("<i", h, 0, 348)
    dim = [a.ndim] + list(a.shape[::-1]) + [1] * (7 - a.ndim)
    struct.pack_into("<8h", h, 40, *dim)
    struct.pack_into("<hh", h, 70, dt[0], dt[1])
    dz, dy, dx = spacing_zyx
    struct.pack_into("<8f", h, 76, 1.0, dx, dy, dz, 1, 1, 1, 1)
    struct.pack_into("<f", h, 108, 352.0)
    struct.pack_into("<f", h, 112, 1.0)
    struct.pack_into("<B", h, 123, 2)  # xyzt_units: mm
    struct.pack_into("<hh", h, 252, 0, 1)  # qform_code 0, sform_code 1
    struct.pack_into("<12f", h, 280, dx, 0, 0, origin[0], 0, dy, 0, origin[1], 0, 0, dz, origin[2])
    h[344:348] = b"n+1\0"
    with gzip.open(path, "wb") as f:
        f.write(bytes(h) + a.tobytes())

def case(rng):
    D, H, W = 16, 24, 24
    z, y, x = np.meshgrid(np.arange(D) * 3.0, np.arange(H) * 1.0, np.arange(W) * 1.0, indexing="ij")
    c = rng.uniform([18, 8, 8], [30, 16, 16])
    lab = (((z - c[0]) / 10.0) ** 2 + ((y - c[1]) / 6.0) ** 2 + ((x - c[2]) / 6.0) ** 2 <= 1).astype(np.uint8)
    img = (2.0 * lab + 0.4 * rng.standard_normal((D, H, W))).astype(np.float32)
    return img, lab

for name, sp in (("d", (3.0, 1.0, 1.0)), ("iso", (1.0, 1.0, 1.0))):
    rng = np.random.default_rng(7)
    for sub in ("images", "labels"):
        os.makedirs(os.path.join(root, name, sub))
    for k in range(5):
        img, lab = case(rng)
        write_nii(os.path.join(root, name, "images", "case%d_0000.nii.gz" % k), img, sp)
        write_nii(os.path.join(root, name, "labels", "case%d.nii.gz" % k), lab, sp)
PYEOF
D=$tmp/d
COMMON="--patch 16,16,16 --depth 3 --base-channels 4 --batch 2 --threads 2 --augment none --quiet --lr 0.01"

# ---- 3-D run: spacing, plan, metrics in mm
# the patch covers the whole volume: one window, so the trainer's test prediction (logits
# aggregated) and segloss predict's (probabilities aggregated) are the same labels
run "nifti 3-D run" $S train --data "nifti:$D" --out "$tmp/r" $COMMON --patch 16,24,24 --epochs 2 --steps-per-epoch 3 --loss dice+ce
run "nifti 3-D run, --anisotropic off" $S train --data "nifti:$D" --out "$tmp/r_off" $COMMON --epochs 1 --steps-per-epoch 1 --anisotropic off
mkdir -p "$tmp/p"
for k in 0 1 2 3 4; do
  run "predict case$k" $S predict --model "$tmp/r/model.bin" --input "$D/images/case${k}_0000.nii.gz" --out "$tmp/p/case$k.nii.gz"
done
run "eval in mm" $S eval --pred "$tmp/p" --gt "$D/labels" --labels 1 --metrics dice,hd95 --json "$tmp/e_mm.json"
run "eval in voxels" $S eval --pred "$tmp/p" --gt "$D/labels" --labels 1 --metrics dice,hd95 --spacing 1,1,1 --json "$tmp/e_px.json"
$PY - "$tmp" "$D" <<'PYEOF' || fail "nifti 3-D run: see above"
import gzip, json, math, struct, sys
t, d = sys.argv[1], sys.argv[2]
cfg = json.load(open(t + "/r/config.json"))
off = json.load(open(t + "/r_off/config.json"))
m = json.load(open(t + "/r/metrics.json"))
ds = cfg["dataset"]
ok = True
def want(cond, what):
    global ok
    if not cond:
        print("FAILED:", what)
        ok = False
want(ds["spacing"] == [3, 1, 1] and ds["sample_size"] == [16, 24, 24] and ds["patch"] == [16, 24, 24], "spacing/sizes %s" % ds)
# nnU-Net's rule at (3, 1, 1) mm: stage 1 pools H and W only (the 3 mm axis is coarser than 2 x 1 mm),
# stage 0's kernels skip it; at (3, 2, 2) mm every axis pools and convolves
want(ds["plan"] == {"kind": "anisotropic", "pool": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
                    "kernel": [[1, 3, 3], [3, 3, 3], [3, 3, 3]]}, "plan %s" % ds["plan"])
want(off["dataset"]["plan"]["kind"] == "isotropic" and off["network"]["anisotropic"] is False, "--anisotropic off: %s" % off["dataset"]["plan"])
want("anisotropic" not in cfg["network"], "network.anisotropic written for the default")
want(cfg["data_opts"].get("volumes") is None, "data_opts.volumes written (the patch implies it)")
conv = m["conventions"]
diag = math.sqrt(48 ** 2 + 24 ** 2 + 24 ** 2)
print("empty_distance %.6f, volume diagonal in mm %.6f (in voxels it would be %.6f)" % (conv["empty_distance"], diag, math.sqrt(16**2 + 24**2 + 24**2)))
want(abs(conv["empty_distance"] - diag) < 1e-9, "empty_distance")
want(conv["units"].startswith("mm (the volumes' voxel spacing 3x1x1 mm"), "units %r" % conv["units"])
# the trainer's test case is one of the five: its Dice and HD95 are those `segloss eval` gives for it in mm
emm = {r["case"]: r for r in json.load(open(t + "/e_mm.json"))["cases"]}
epx = {r["case"]: r for r in json.load(open(t + "/e_px.json"))["cases"]}
tr = m["test"][0]
best = min(emm, key=lambda c: abs(emm[c]["dice"] - tr["dice"]) + abs(emm[c]["hd95"] - tr["hd95"]))
dd, dh = abs(emm[best]["dice"] - tr["dice"]), abs(emm[best]["hd95"] - tr["hd95"])
print("test case %s: trainer dice %.6f hd95 %.4f mm; eval dice %.6f hd95 %.4f mm (max diff %.3g, tolerance 1e-6); in voxels eval says %.4f"
      % (best, tr["dice"], tr["hd95"], emm[best]["dice"], emm[best]["hd95"], max(dd, dh), epx[best]["hd95"]))
want(dd < 1e-6 and dh < 1e-6, "trainer metrics differ from segloss eval's in mm")
want(tr["n_cases"] == 1, "one test case")
# predict keeps the input's geometry (dims, pixdim, sform)
a = gzip.open(d + "/images/case0_0000.nii.gz").read()
b = gzip.open(t + "/p/case0.nii.gz").read()
geo = lambda h: struct.unpack("<8h", h[40:56])[:4] + struct.unpack("<8f", h[76:108])[1:4] + struct.unpack("<12f", h[280:328])
print("max geometry difference input vs prediction: %.3g" % max(abs(x - y) for x, y in zip(geo(a), geo(b))))
want(geo(a) == geo(b), "prediction geometry %s vs %s" % (geo(b), geo(a)))
sys.exit(0 if ok else 1)
PYEOF

# ---- the spacing reaches the distance losses: first step, boundary term in mm vs in voxels
ONE="$COMMON --epochs 1 --steps-per-epoch 1 --loss dice+boundary --anisotropic off"
run "boundary, 3 mm" $S train --data "nifti:$D" --out "$tmp/b3" $ONE
run "boundary, 1 mm" $S train --data "nifti:$tmp/iso" --out "$tmp/b1" $ONE
$PY - "$tmp" <<'PYEOF' || fail "spacing in the losses"
import csv, sys
t = sys.argv[1]
r3, r1 = (list(csv.DictReader(open(t + "/%s/log.csv" % n)))[0] for n in ("b3", "b1"))
keys = [k for k in r3 if k.startswith("term_")]
print("first step, 3x1x1 mm vs 1 mm: " + ", ".join("%s %s vs %s" % (k, r3[k], r1[k]) for k in keys))
bk, dk = "term_boundary", "term_dice"
sys.exit(0 if r3[dk] == r1[dk] and abs(float(r3[bk]) - float(r1[bk])) > 1e-6 else 1)
PYEOF

# ---- without --patch: 2-D slices as before
run "nifti 2-D slices" $S train --data "nifti:$D" --out "$tmp/r2" --depth 3 --base-channels 4 --batch 2 --threads 2 --augment none --quiet --epochs 1 --steps-per-epoch 1
check "$PY -c \"import json; c = json.load(open('$tmp/r2/config.json')); m = json.load(open('$tmp/r2/metrics.json')); assert len(c['dataset']['patch']) == 2 and 'spacing' not in c['dataset'] and m['conventions']['units'].startswith('pixels')\"" "2-D nifti run"

# ---- bad input: one line, nothing written
cp -r "$D" "$tmp/mixed"
$PY - "$tmp/mixed/images/case3_0000.nii.gz" "$tmp/mixed/labels/case3.nii.gz" <<'PYEOF'
import gzip, struct, sys
for p in sys.argv[1:]:
    b = bytearray(gzip.open(p).read())
    struct.pack_into("<f", b, 76 + 12, 2.0)  # pixdim[3] (z): 3 -> 2 mm
    gzip.open(p, "wb").write(bytes(b))
PYEOF
expect 1 "mixed voxel spacings" -- $S train --data "nifti:$tmp/mixed" --out "$tmp/x1" $COMMON --epochs 1 --steps-per-epoch 1
check "[ ! -e '$tmp/x1' ]" "a refused run left its folder"
cp -r "$D" "$tmp/sizes"
$PY -c "
import gzip, struct
p = '$tmp/sizes/images/case2_0000.nii.gz'
b = bytearray(gzip.open(p).read()); struct.pack_into('<h', b, 46, 8)  # dim[3] (z): 16 -> 8 slices
gzip.open(p, 'wb').write(bytes(b[:352 + 8 * 24 * 24 * 4]))
p = '$tmp/sizes/labels/case2.nii.gz'
b = bytearray(gzip.open(p).read()); struct.pack_into('<h', b, 46, 8)
gzip.open(p, 'wb').write(bytes(b[:352 + 8 * 24 * 24]))"
expect 1 "volumes differ in size" -- $S train --data "nifti:$tmp/sizes" --out "$tmp/x2" $COMMON --epochs 1 --steps-per-epoch 1
expect 1 "needs a volume source" -- $S train --data phantom --size 32,32 --out "$tmp/x3" --patch 16,16,16 --depth 3 --epochs 1 --steps-per-epoch 1 --quiet
expect 2 "--anisotropic expects" -- $S train --data "nifti:$D" --out "$tmp/x4" --anisotropic maybe
check "[ ! -e '$tmp/x2' ] && [ ! -e '$tmp/x3' ] && [ ! -e '$tmp/x4' ]" "a refused run left its folder"

echo "test_nifti3d: $checks checks, $fails failed"
[ $fails -eq 0 ]
