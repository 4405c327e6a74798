#!/usr/bin/env bash
# The examples in the public headers compile: every indented code block of
# a header comment (a block that starts 4 spaces in after " * ", follows an
# empty comment line or one ending in ":", and holds a C statement) is pasted into a function of
# one translation unit, with #line pointing back at the header, and compiled
# against include/ with the library's warnings as errors. Names an example
# takes from its context (buffers, extents) are declared in a prelude.
set -u
. "$(dirname "$0")/lib.sh"
CC=${CC:-cc}

/usr/bin/python3 - "$ROOT" "$tmp/examples.c" <<'PY' || exit 1
import glob, os, re, sys
root, out = sys.argv[1], sys.argv[2]
prelude = r'''
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <segloss/segloss.h>
double my_loss(const float *logits, const int32_t *target, float *dlogits);
'''
# What the examples take from the code around them.
context = r'''
    char msg[512] = "";
    int64_t D = 4, H = 8, W = 8, steps = 2;
    uint8_t *mask = NULL, *pred_data = NULL;
    int16_t *gt_data = NULL;
    float *dist = NULL, *logits = NULL, *grad = NULL, *images = NULL, *calib = NULL;
    float *out = NULL, *dlogits = NULL, *img = NULL;
    int32_t *labels = NULL, *target = NULL, *lab = NULL;
    double loss = 0;
    sl_dataset *ds = NULL;
    sl_dataset_info info = {0};
    sl_unet *net = NULL;
    sl_dims d = {1, 1, 2, {8, 8, 0}};
    (void)msg; (void)D; (void)H; (void)W; (void)steps; (void)mask; (void)pred_data; (void)gt_data;
    (void)dist; (void)logits; (void)grad; (void)images; (void)calib; (void)out; (void)dlogits;
    (void)img; (void)labels; (void)target; (void)lab; (void)loss; (void)ds; (void)info; (void)net; (void)d;
'''
parts, n = [prelude], 0
for h in sorted(glob.glob(os.path.join(root, "include/segloss/*.h"))):
    lines = open(h, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        if re.match(r"^ \*     \S", lines[i]) and i > 0 and (lines[i - 1].rstrip() == " *" or lines[i - 1].endswith(":")):
            j = i
            while j < len(lines) and re.match(r"^ \*     ", lines[j]):
                j += 1
            body = [l[7:] for l in lines[i:j]]
            code = [re.sub(r"//.*", "", l).rstrip() for l in body]
            if any(c.endswith((";", "{", "}")) for c in code):
                n += 1
                rel = os.path.relpath(h, root)
                parts.append("int example_%d(void);\nint example_%d(void)\n{%s    {\n#line %d \"%s\"\n%s\n    }\n    return 0;\n}\n"
                             % (n, n, context, i + 1, rel, "\n".join(body)))
                print("example %d: %s:%d (%d lines)" % (n, rel, i + 1, j - i))
            i = j
        else:
            i += 1
open(out, "w").write("\n".join(parts))
if n < 11:
    print("FAILED: found %d examples, expected at least 11 (did the block rule change?)" % n)
    sys.exit(1)
PY

if "$CC" -std=c11 -fsyntax-only -Wall -Wextra -Werror -Wno-unused-variable -Wno-unused-but-set-variable \
     -Wno-shadow -I"$ROOT/include" "$tmp/examples.c" 2>"$tmp/err"; then
  echo "header examples: all compile"
else
  cat "$tmp/err"
  echo "FAILED: a header example does not compile (errors above, at the header's line)"
  exit 1
fi
