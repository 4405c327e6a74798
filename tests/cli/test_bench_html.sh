#!/usr/bin/env bash
# report.html in a real browser: headless Chromium (Debian's chromium)
# loads the report of a tiny benchmark from disk with the network off; the
# console must stay free of errors, the DOM after load must hold every
# section with its charts and overlay images, every embedded PNG must
# decode to the size the overlay writer gives, and a screenshot must show
# the charts' and the overlays' colours (so the SVG and the images were
# drawn, not only present in the source).
set -u
. "$(dirname "$0")/lib.sh"

CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
  echo "FAILED: no chromium (scripts/deps.sh test installs Debian's chromium)"
  exit 1
fi

cat >"$tmp/p.json" <<'EOF'
{
  "name": "html",
  "seeds": [1],
  "train": {
    "data_opts": {"height": 32, "width": 32, "n_train": 12, "n_val": 4, "n_test": 6},
    "network": {"depth": 2, "base_width": 4},
    "optimizer": {"lr": 0.01},
    "training": {"epochs": 3, "steps_per_epoch": 4, "batch_size": 4}
  },
  "datasets": [
    {"name": "phantom <5%>", "data": "phantom", "data_opts": {"small_fraction": 0.05}, "sweep": true},
    {"name": "phantom 1%", "data": "phantom", "data_opts": {"small_fraction": 0.01}, "sweep": true}
  ],
  "losses": ["ce", "dice+ce", {"name": "dice & ce \"TTA\"", "loss": "dice+ce", "tta": true}],
  "evaluation": {"bootstrap": 100, "overlay_cases": 2}
}
EOF
checks=$((checks + 1))
if ! $S bench --preset "$tmp/p.json" --out "$tmp/b" --quiet >/dev/null 2>"$tmp/err"; then
  fail "benchmark: $(tail -3 "$tmp/err")"
  echo "bench HTML: $checks checks, $fails failed"
  exit 1
fi

# Under the sanitizers the benchmark above is what is being checked (its
# report is written by the same code as in the release pass, byte for byte);
# the browser's rendering is checked once, in the release pass.
if [ "${SL_SANITIZED:-0}" = 1 ]; then
  check "[ -s '$tmp/b/report.html' ]" "no report.html"
  echo "bench HTML: $checks checks, $fails failed (browser checks in the release pass)"
  [ $fails -eq 0 ]
  exit
fi

# Chromium as root needs --no-sandbox; a private profile; no network at all.
chrome() {
  timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/profile" \
    --proxy-server=127.0.0.1:9 --proxy-bypass-list='<-loopback>' --enable-logging=stderr --v=0 "$@"
}
checks=$((checks + 1))
chrome --dump-dom "file://$tmp/b/report.html" >"$tmp/dom.html" 2>"$tmp/chrome.err" || fail "chromium --dump-dom failed: $(tail -3 "$tmp/chrome.err")"
checks=$((checks + 1))
chrome --window-size=1400,9000 --hide-scrollbars --screenshot="$tmp/shot.png" "file://$tmp/b/report.html" >/dev/null 2>>"$tmp/chrome.err" ||
  fail "chromium --screenshot failed"
checks=$((checks + 1))
if grep -E "CONSOLE|Uncaught|net::ERR_" "$tmp/chrome.err" >"$tmp/console.txt"; then
  fail "the browser console reported: $(head -3 "$tmp/console.txt")"
fi

checks=$((checks + 1))
$PY - "$tmp/dom.html" "$tmp/shot.png" "$tmp/b/report.html" <<'PYEOF' || fail "report.html in Chromium"
import base64, re, struct, sys, zlib

dom, shot, src = open(sys.argv[1]).read(), open(sys.argv[2], "rb").read(), open(sys.argv[3]).read()
problems = []

def png_decode(data):
    """(width, height, channels, rows) of an 8-bit non-interlaced PNG (grey, RGB, RGBA)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], "bad CRC"
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and interlace == 0 and ctype in (0, 2, 6), ihdr
    ch = {0: 1, 2: 3, 6: 4}[ctype]
    raw, stride, rows, prev = zlib.decompress(idat), w * ch, [], bytearray(w * ch)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], (prev[i - ch] if i >= ch else 0)
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, ch, rows

# the DOM after load: every section, its charts and images, the escaped names
for sid in ("ranking", "cd", "per-class", "curves", "sweep", "overlays", "runs"):
    m = re.search(r'<section id="%s">(.*?)</section>' % sid, dom, re.S)
    if not m:
        problems.append("section %s missing from the DOM" % sid)
        continue
    body = m.group(1)
    want_svg = {"cd": 1, "per-class": 4, "curves": 4, "sweep": 1}.get(sid, 0)
    if body.count("<svg") != want_svg:
        problems.append("section %s has %d charts, not %d" % (sid, body.count("<svg"), want_svg))
    if sid == "overlays" and body.count("<img") != 2 * 2 * 4:
        problems.append("overlays has %d images, not 16" % body.count("<img"))
    if sid == "ranking" and body.count("<table") != 3:
        problems.append("ranking has %d tables, not 3" % body.count("<table"))
    if sid == "ranking" and body.count("<th>p (Holm)</th>") != 2:
        problems.append("ranking has %d p (Holm) columns, not 2" % body.count("<th>p (Holm)</th>"))
    if sid == "cd":
        # the diagram: one tick and label per entry, at least one group bar, the CD to scale
        for what, pat, want in (("entry ticks", "<circle", 3), ("CD scale bars", 'class="cdbar"', 1)):
            if body.count(pat) != want:
                problems.append("the CD diagram has %d %s, not %d" % (body.count(pat), what, want))
        if body.count('class="cdgroup"') < 1:
            problems.append("the CD diagram has no group bar")
        for name in ("ce (", "dice+ce (", "dice &amp; ce \"TTA\" ("):
            if name not in body:
                problems.append("the CD diagram lacks the label %r" % name)
for text in ("phantom &lt;5%&gt;", "dice &amp; ce \"TTA\"", "Imbalance sweep", "Training curves"):
    if text not in dom:
        problems.append("the DOM lacks %r" % text)
if "<script" in src:
    problems.append("report.html holds a script")

# every embedded PNG decodes, at the overlay writer's size (32 px upscaled by 8)
uris = re.findall(r'src="data:image/png;base64,([^"]+)"', src)
if len(uris) != 16:
    problems.append("%d embedded PNGs, not 16" % len(uris))
for u in uris:
    w, h, ch, _ = png_decode(base64.b64decode(u))
    if (w, h, ch) != (256, 256, 3):
        problems.append("embedded PNG %dx%dx%d" % (w, h, ch))
        break

# the screenshot shows the target contours, predicted contours, bars and lines
w, h, ch, rows = png_decode(shot)
seen = set()
for row in rows:
    for x in range(0, w * ch, ch):
        seen.add(bytes(row[x:x + 3]))
colours = {"target contour (class 1)": (0, 230, 0), "predicted contour (class 1)": (255, 160, 0),
           "Dice bars (class 1)": (0x4e, 0x79, 0xa7), "Dice bars (class 2)": (0xe1, 0x57, 0x59),
           "curve of the second loss": (0xf2, 0x8e, 0x2b), "CD diagram group bar": (0x6a, 0x3d, 0x9a)}
for what, rgb in colours.items():
    if bytes(rgb) not in seen:
        problems.append("the screenshot shows no %s colour %s" % (what, rgb))
print("max |problems| %d (%d embedded PNGs decoded, screenshot %dx%d, %d colours seen)" % (len(problems), len(uris), w, h, len(seen)))
for p in problems:
    print("FAILED:", p)
sys.exit(1 if problems else 0)
PYEOF

echo "bench HTML: $checks checks, $fails failed"
[ "$fails" = 0 ]
