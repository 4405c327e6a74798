#!/usr/bin/env bash
# Outputs and inputs at the file-system level (issue 12, items 1, 3, 6, 7):
# a character device, a FIFO or `-` is streamed to and never replaced, a
# symlink's target is written and the link kept, an existing file keeps its
# permission bits, no temporary name is predictable (a planted symlink at
# the old FILE.tmp name is left alone), a killed run's temporary files are
# cleaned by the next write, a FIFO input without a writer is refused at
# once, and small files declaring huge images (gzip and PNG bombs) are
# refused with one line before anything is allocated.
#
# Every check here fails on the code before these fixes (run it with
# SEGLOSS=path/to/old/segloss to see). Tests that need root (mknod) say so
# and are skipped otherwise.
set -u
. "$(dirname "$0")/lib.sh"
S=$(cd "$(dirname "$S")" && pwd)/$(basename "$S")  # the tests cd into $tmp
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT

# Every run is bounded in time and memory: the old code can hang on a FIFO
# or allocate gigabytes for a bomb.
# (No address-space limit under ASan: its shadow memory needs terabytes of
# address space.)
vlimit() { [ "${SL_SANITIZED:-0}" = 1 ] || ulimit -v "$1"; }
lim() { ( vlimit 2000000; timeout 20 "$@" ); }

expect() {  # expect CODE NEEDLE -- command...: exit CODE, one stderr line holding NEEDLE
  local code=$1 needle=$2; shift 3
  checks=$((checks + 1))
  lim "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" != "$code" ] || [ "$lines" != 1 ] || ! grep -qF -- "$needle" "$tmp/err"; then
    fail "$* -> exit $rc (want $code), stderr ($lines lines): $(head -3 "$tmp/err")"
  fi
}

ok() {  # ok LABEL command...: exit 0, nothing on stderr
  local what=$1; shift
  checks=$((checks + 1))
  if ! lim "$@" >"$tmp/out" 2>"$tmp/err" || [ -s "$tmp/err" ]; then fail "$what: $* ($(head -2 "$tmp/err"))"; return 1; fi
}

cd "$tmp" || exit 1
M=$FX/edt/mask2d.npy
# inputs for `segloss loss` and the reference outputs, written to plain files
$PY - <<'PYEOF'
import numpy as np
rng = np.random.default_rng(3)
np.save("x.npy", rng.standard_normal((1, 3, 6, 7)).astype(np.float32))
np.save("y.npy", rng.integers(0, 3, (1, 6, 7)).astype(np.int64))
PYEOF
LOSS="$S loss dice --input x.npy --target y.npy"
ok "reference grad" $LOSS --grad ref_grad.npy
ok "reference edt" $S edt "$M" ref_edt.npy
ok "reference nifti" $S edt "$FX/edt/mask.nii.gz" ref_edt.nii.gz

# ---- 1. character devices: streamed, never replaced -------------------------
if [ "$(id -u)" = 0 ] && mknod "$tmp/null" c 1 3 2>/dev/null; then
  # as root a rename over the node would succeed: a private copy of
  # /dev/null shows it without risking the machine's
  ok "grad to a null device" $LOSS --grad "$tmp/null"
  check '[ -c "$tmp/null" ]' "the null device node was replaced by a regular file"
  ln -s "$tmp/null" "$tmp/null.nii.gz"  # edt picks the format by extension
  ok "edt to a null device (nifti, through a link)" $S edt "$FX/edt/mask.nii.gz" "$tmp/null.nii.gz"
  check '[ -c "$tmp/null" ] && [ -L "$tmp/null.nii.gz" ]' "the null device node or its link was replaced (nifti writer)"
else
  echo "skip: device-node tests need root and mknod (as root a rename would replace /dev/null)"
fi
if [ "$(id -u)" != 0 ]; then
  # not root: a rename over /dev/null cannot succeed, so the old code fails
  ok "grad to /dev/null" $LOSS --grad /dev/null
fi
check '[ -c /dev/null ]' "/dev/null is not a character device any more"

# ---- FIFO with a reader: the bytes arrive through it ------------------------
mkfifo "$tmp/fifo.npy"
timeout 20 cat "$tmp/fifo.npy" >"$tmp/from_fifo" &
pids="$pids $!"
ok "grad into a FIFO" $LOSS --grad "$tmp/fifo.npy"
wait $! 2>/dev/null
check '[ -p "$tmp/fifo.npy" ]' "the FIFO was replaced by a regular file"
check 'cmp -s "$tmp/from_fifo" ref_grad.npy' "the FIFO's reader did not get the gradient file"

# ---- `-`: standard output ---------------------------------------------------
ok "grad to stdout" $LOSS --grad -
check '[ ! -e "$tmp/-" ]' "'--grad -' created a file named '-'"
check "$PY -c 'import sys; sys.exit(open(\"ref_grad.npy\",\"rb\").read() not in open(\"$tmp/out\",\"rb\").read())'" \
  "'--grad -' did not stream the gradient file to stdout"
# /dev/stdout through a pipe. A private link with the same target stands in
# for /dev/stdout: as root the old code renamed its temporary file over the
# link, and doing that to /dev/stdout breaks it for the whole machine.
ln -s /proc/self/fd/1 "$tmp/stdout.npy"
checks=$((checks + 1))
lim $LOSS --grad "$tmp/stdout.npy" 2>"$tmp/err" | cat >"$tmp/piped"
$PY -c 'import sys; sys.exit(open("ref_grad.npy","rb").read() not in open(sys.argv[1],"rb").read())' "$tmp/piped" ||
  fail "--grad to a /dev/stdout-like link into a pipe: $(head -2 "$tmp/err")"
check '[ -L "$tmp/stdout.npy" ]' "the /dev/stdout-like link was replaced by a file"

# ---- symlinks: the target is written, the link stays -------------------------
mkdir real
cp ref_edt.npy real/target.npy && echo junk >real/target.npy
ln -s real/target.npy link.npy
ok "edt through a symlink" $S edt "$M" link.npy
check '[ -L link.npy ]' "the symlink was replaced by a regular file"
check 'cmp -s real/target.npy ref_edt.npy' "the symlink's target was not written"
ln -s real/new.nii.gz dangling.nii.gz
ok "edt through a dangling symlink" $S edt "$FX/edt/mask.nii.gz" dangling.nii.gz
check '[ -L dangling.nii.gz ] && [ -s real/new.nii.gz ]' "a dangling symlink's target was not created"

# ---- permission bits of a replaced file are kept -----------------------------
for f in keep.npy keep.nii.gz keep_g.npy; do echo old >"$f"; chmod 0640 "$f"; done
ok "edt over a 0640 .npy" $S edt "$M" keep.npy
ok "edt over a 0640 .nii.gz" $S edt "$FX/edt/mask.nii.gz" keep.nii.gz
ok "grad over a 0640 .npy" $LOSS --grad keep_g.npy
for f in keep.npy keep.nii.gz keep_g.npy; do
  check '[ "$(stat -c %a "$f")" = 640 ]' "$f: mode $(stat -c %a "$f"), want 640"
done
check 'cmp -s keep.npy ref_edt.npy' "keep.npy was not replaced by the new contents"

# ---- no predictable temporary names ------------------------------------------
# Another user who can write the folder plants symlinks at the names the old
# writers used (FILE.tmp for .npy, FILE.<pid>.tmp for NIfTI); the file they
# point to must stay untouched.
echo precious >victim
ln -s "$tmp/victim" out.npy.tmp
ok "edt next to a planted FILE.tmp symlink" $S edt "$M" out.npy
check '[ "$(cat victim)" = precious ]' "a planted symlink at out.npy.tmp made the run overwrite another file"
check 'cmp -s out.npy ref_edt.npy' "out.npy is not the distance map"
# and no temporary file is left behind
check '[ -z "$(ls -A | grep -E "sltmp|\.tmp\.|[0-9]\.tmp$" | grep -v "^out.npy.tmp$")" ]' \
  "temporary files left: $(ls -A | grep -E 'sltmp|\.tmp' | tr '\n' ' ')"

# ---- a killed run's leftovers are cleaned by the next write into the folder --
dead=$(sh -c 'echo $$')  # a pid that has exited
mkdir left
echo junk >"left/.out.npy.sltmp-$dead-Ab3xYz"
echo junk >"left/.model.bin.sltmp-$dead-Qw9erT"
echo mine >"left/.unrelated.sltmp-notapid"
ok "edt into a folder with leftovers" $S edt "$M" left/out.npy
check '[ ! -e "left/.out.npy.sltmp-$dead-Ab3xYz" ] && [ ! -e "left/.model.bin.sltmp-$dead-Qw9erT" ]' \
  "a killed run's temporary files were not removed: $(ls -A left | tr '\n' ' ')"
check '[ -e left/.unrelated.sltmp-notapid ]' "a file that is not a temporary of ours was removed"

# ---- a write error leaves the old file and no temporary ------------------------
if [ "$(id -u)" != 0 ]; then
  mkdir ro && cp ref_edt.npy ro/o.npy && chmod 0555 ro
  expect 1 "ro/o.npy" -- $S edt "$FX/edt/mask.nii.gz" ro/o.npy
  check 'cmp -s ro/o.npy ref_edt.npy && [ -z "$(ls -A ro | grep -v "^o.npy$")" ]' "a failed write damaged ro/"
  chmod 0755 ro
fi

# ---- 6. a FIFO input without a writer does not block ---------------------------
mkfifo in_fifo.npy in_fifo.nii.gz in_fifo.png
expect 1 "not a regular file" -- $S edt in_fifo.npy o1.npy
expect 1 "not a regular file" -- $S edt in_fifo.nii.gz o2.npy
expect 1 "in_fifo.png" -- $S edt in_fifo.png o3.npy
expect 1 "not a regular file" -- $LOSS --input in_fifo.npy

# ---- 7. bounded memory: small files declaring huge images ----------------------
$PY - <<'PYEOF'
import struct, zlib, gzip, io
import numpy as np
# a NIfTI-1 .nii.gz of 2048 x 2048 x 128 uint8 zeros = 2^29 voxels (512 MiB)
# in about half a megabyte
dims = (2048, 2048, 128)
h = bytearray(348)
struct.pack_into("<i", h, 0, 348)
struct.pack_into("<8h", h, 40, 3, *dims, 1, 1, 1, 1)
struct.pack_into("<hh", h, 70, 2, 8)            # datatype uint8, bitpix 8
struct.pack_into("<8f", h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
struct.pack_into("<f", h, 108, 352.0)           # vox_offset
struct.pack_into("<f", h, 112, 1.0)             # scl_slope
h[344:348] = b"n+1\0"
co = zlib.compressobj(9, zlib.DEFLATED, 31)
parts = [co.compress(bytes(h) + b"\0" * 4)]
zero = b"\0" * (1 << 24)
for _ in range(dims[0] * dims[1] * dims[2] // len(zero)):
    parts.append(co.compress(zero))
parts.append(co.flush())
open("bomb.nii.gz", "wb").write(b"".join(parts))
# a PNG of 20000 x 20000 grey pixels (4e8 voxels) in about 400 KB
W = H = 20000
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
co = zlib.compressobj(9)
row = b"\0" * (W + 1)
idat = b"".join(co.compress(row) for _ in range(H)) + co.flush()
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 0)) + \
      chunk(b"IDAT", idat) + chunk(b"IEND", b"")
open("bomb.png", "wb").write(png)
np.save("small.npy", np.zeros((40, 40), np.uint8))
PYEOF
check '[ "$(stat -c %s bomb.nii.gz)" -lt 1100000 ] && [ "$(stat -c %s bomb.png)" -lt 1000000 ]' "the bombs are not small files"
expect 1 "exceed the limit" -- $S edt bomb.nii.gz o.npy
expect 1 "exceed the limit" -- $S edt bomb.png o.npy
# the limit can be lowered and raised, by the environment or the option
expect 1 "1600 voxels exceed the limit of 1000" -- env SEGLOSS_MAX_VOXELS=1000 $S edt small.npy o.npy
expect 1 "1600 voxels exceed the limit of 1024" -- $S --max-voxels 1k edt small.npy o.npy
expect 1 "1600 voxels exceed the limit of 512" -- $S edt small.npy o.npy --max-voxels=2^9
ok "a limit above the image" env SEGLOSS_MAX_VOXELS=1600 $S edt small.npy o.npy
ok "--max-voxels overrides the environment" env SEGLOSS_MAX_VOXELS=10 $S --max-voxels 2000 edt small.npy o.npy
expect 1 "SEGLOSS_MAX_VOXELS" -- env SEGLOSS_MAX_VOXELS=lots $S edt small.npy o.npy
expect 2 "--max-voxels" -- $S --max-voxels 0 edt small.npy o.npy
# a raised limit lets the NIfTI bomb's header through, where its size is
# then honoured (it is all zeros: the distance map of an empty mask)
checks=$((checks + 1))
( vlimit 4000000; SEGLOSS_MAX_VOXELS=100 timeout 20 "$S" edt bomb.nii.gz o.npy ) 2>"$tmp/err" >/dev/null
grep -q "536870912 voxels exceed the limit of 100" "$tmp/err" || fail "the bomb's voxel count is not named: $(cat "$tmp/err")"

# ---- PNG label maps (what `segloss predict --out x.png` writes) are images to eval and edt
$PY - <<'PYEOF'
import struct, zlib
import numpy as np
def png(path, a):
    h, w = a.shape
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\0" + a[y].astype(np.uint8).tobytes() for y in range(h))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
                           chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
g = np.zeros((20, 30), np.uint8); g[5:15, 5:15] = 1; g[2:4, 20:24] = 2
p = g.copy(); p[5:15, 5:10] = 0
png("gt.png", g); png("pred.png", p); np.save("gt.npy", g); np.save("pred.npy", p)
PYEOF
ok "eval reads PNG label maps" $S eval --pred pred.png --gt gt.png --csv png.csv
ok "eval of the same maps as .npy" $S eval --pred pred.npy --gt gt.npy --csv npy.csv
# the first column names the case (gt.png / gt.npy); every metric must agree
check '[ -s png.csv ] && [ "$(cut -d, -f2- png.csv)" = "$(cut -d, -f2- npy.csv)" ]' \
  "eval of PNG and .npy copies of the same maps differ: $(diff png.csv npy.csv | head -3)"
ok "edt reads a PNG mask" $S edt gt.png gt_edt.npy

echo "cli outputs: $checks checks, $fails failed"
[ $fails -eq 0 ]
