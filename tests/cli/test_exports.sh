#!/usr/bin/env bash
# libsegloss.so exports its public API and nothing else: every defined
# dynamic symbol is a function declared in a public header (include/segloss/
# *.h, read through the preprocessor), or sl_test_nn_kernel, the one
# deliberate test-only entry (src/nn/test_kernels.c). And the other way:
# every function a public header declares is exported (a declaration with no
# definition, or one left hidden, fails here rather than at a user's link).
set -u
ROOT=${SEGLOSS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SEGLOSS_BUILD:-$ROOT/build}
CC=${CC:-cc}
if [ "${SL_SANITIZED:-0}" = 1 ]; then
  echo "skip: the sanitized library also exports the sanitizer runtime's hooks (checked in the release pass)"
  exit 0
fi
so=$BUILD/libsegloss.so
[ -f "$so" ] || { echo "FAILED: $so not found"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A named "#pragma omp critical(NAME)" makes GCC emit a global lock,
# .gomp_critical_user_NAME, that must stay global to work across modules;
# it is no C name, so it is left out.
nm -D --defined-only "$so" | awk '{print $NF}' | sed 's/@.*//' | grep -v '^\.gomp_critical_user_' |
  sort -u >"$tmp/exported"
# Function declarations: a name followed by "(" in the preprocessed headers
# (function-pointer typedefs read "(*name)(", so they do not match).
for h in "$ROOT"/include/segloss/*.h; do echo "#include \"$h\""; done |
  "$CC" -std=c11 -E -P -I"$ROOT/include" -x c - |
  grep -oE '\bsl_[a-z0-9_]+[[:space:]]*\(' | tr -d '( \t' | sort -u >"$tmp/declared"
echo sl_test_nn_kernel >>"$tmp/declared"
sort -u -o "$tmp/declared" "$tmp/declared"

extra=$(comm -23 "$tmp/exported" "$tmp/declared")
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
fails=0
if [ -n "$extra" ]; then
  echo "FAILED: exported but not declared in a public header:"; echo "$extra" | sed 's/^/  /'; fails=1
fi
if [ -n "$missing" ]; then
  echo "FAILED: declared in a public header but not exported:"; echo "$missing" | sed 's/^/  /'; fails=1
fi
echo "exports: $(wc -l <"$tmp/exported") symbols exported, $(wc -l <"$tmp/declared") public functions (+1 test-only)"
exit $fails
