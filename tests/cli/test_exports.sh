#!/usr/bin/env bash
# libsegloss.so exports its public API and nothing else: every defined
# dynamic symbol is a function declared in a public header (include/segloss/
# *.h, as GCC lists them), or sl_test_nn_kernel, the one
# deliberate test-only entry (src/nn/test_kernels.c). And the other way:
# every function a public header declares is exported (a declaration with no
# definition, or one left hidden, fails here rather than at a user's link).
set -u
. "$(dirname "$0")/lib.sh"
if [ "${SL_SANITIZED:-0}" = 1 ]; then
  echo "skip: the sanitized library also exports the sanitizer runtime's hooks (checked in the release pass)"
  exit 0
fi
so=$BUILD/libsegloss.so
[ -f "$so" ] || { echo "FAILED: $so not found"; exit 1; }
# (A named "#pragma omp critical(NAME)" in the library shows up here as
# .gomp_critical_user_NAME, a global lock GCC exports: use an unnamed one.)
nm -D --defined-only "$so" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$tmp/exported"
# Function declarations, as GCC lists them (-aux-info: one line per function
# with its file; "extern" ones only, so a static inline helper in a header
# is not taken for API).
for h in "$ROOT"/include/segloss/*.h; do echo "#include \"$h\""; done >"$tmp/all.c"
gcc -std=c11 -fsyntax-only -I"$ROOT/include" -aux-info "$tmp/aux" "$tmp/all.c" || { echo "FAILED: the public headers do not compile"; exit 1; }
grep -F "$ROOT/include/segloss/" "$tmp/aux" | grep ' extern ' | sed -E 's/^\/\*[^*]*\*\/ extern //; s/ \(.*$//; s/^.*[ *]//' |
  sort -u >"$tmp/declared"
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
echo "exports: $(wc -l <"$tmp/exported") symbols exported; the headers declare $(($(wc -l <"$tmp/declared") - 1)) functions, + sl_test_nn_kernel"
exit $fails
