#!/usr/bin/env bash
# `cmake --install` gives a usable package: installed into a temporary
# prefix, a small consumer program builds and runs against it three ways:
# CMake's find_package(segloss) with segloss::segloss (shared) and
# segloss::segloss_static, and pkg-config (shared; static with --static).
set -u
CC=${CC:-cc}
if [ "${SL_SANITIZED:-0}" = 1 ]; then
  echo "skip: the sanitized libraries need the sanitizer runtime in every consumer (checked in the release pass)"
  exit 0
fi
. "$(dirname "$0")/lib.sh"
step() {  # step WHAT command...: must succeed; its output is shown on failure
  local what=$1; shift
  checks=$((checks + 1))
  if ! "$@" >"$tmp/log" 2>&1; then fail "$what: $(tail -5 "$tmp/log")"; return 1; fi
}

prefix=$tmp/prefix
step "cmake --install" cmake --install "$BUILD" --prefix "$prefix" || { echo "$checks checks, $fails failed"; exit 1; }
libdir=$(dirname "$(find "$prefix" -name libsegloss.a | head -1)")

mkdir -p "$tmp/src"
cat >"$tmp/src/consumer.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <segloss/segloss.h>
/* Uses the library for real: a Dice loss on a 1x1x2x2 input. */
int main(void)
{
    sl_loss *loss;
    char msg[256];
    if (sl_loss_create("dice", &loss, msg, sizeof msg) != SL_OK) { puts(msg); return 1; }
    float logits[4] = {5, -5, 5, -5};
    int32_t labels[4] = {1, 0, 1, 0};
    sl_dims dims = {.n = 1, .c = 1, .spatial_ndim = 2, .spatial = {2, 2}};
    sl_target tgt = {.kind = SL_TARGET_LABELS, .labels = labels};
    double value = -1;
    sl_status st = sl_loss_forward(loss, logits, &dims, &tgt, NULL, &value, NULL, msg, sizeof msg);
    sl_loss_free(loss);
    if (st != SL_OK) { puts(msg); return 1; }
    printf("segloss %s dice %.4f\n", sl_version(), value);
    return strcmp(sl_version(), SL_VERSION_STRING) != 0 || !(value >= 0 && value < 0.01);
}
C
cat >"$tmp/src/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(segloss 0.1 REQUIRED)
add_executable(consumer_shared consumer.c)
target_link_libraries(consumer_shared PRIVATE segloss::segloss)
add_executable(consumer_static consumer.c)
target_link_libraries(consumer_static PRIVATE segloss::segloss_static)
C

if step "find_package configure" cmake -S "$tmp/src" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release &&
   step "find_package build" cmake --build "$tmp/cm"; then
  step "find_package shared runs" "$tmp/cm/consumer_shared"
  step "find_package static runs" "$tmp/cm/consumer_static"
  # The shared consumer uses the installed library, not the build tree's.
  checks=$((checks + 1))
  ldd "$tmp/cm/consumer_shared" | grep -q "$prefix" || fail "consumer_shared does not load the installed library: $(ldd "$tmp/cm/consumer_shared" | grep segloss)"
fi

export PKG_CONFIG_PATH=$libdir/pkgconfig
if step "pkg-config shared" sh -c "$CC -std=c11 '$tmp/src/consumer.c' -o '$tmp/pc_shared' \$(pkg-config --cflags --libs segloss)"; then
  step "pkg-config shared runs" env LD_LIBRARY_PATH="$libdir" "$tmp/pc_shared"
fi
if step "pkg-config static" sh -c "$CC -std=c11 '$tmp/src/consumer.c' -o '$tmp/pc_static' \$(pkg-config --cflags segloss) '$libdir/libsegloss.a' \$(pkg-config --static --libs segloss | sed 's/-lsegloss//')"; then
  step "pkg-config static runs" "$tmp/pc_static"
fi
# Nothing of nifti_clib is linked (segloss parses NIfTI itself).
checks=$((checks + 1))
if readelf -d "$libdir/libsegloss.so" | grep -qiE 'nifti|znz'; then fail "libsegloss.so needs a nifti_clib library"; fi

echo "install: $checks checks, $fails failed"
[ $fails -eq 0 ]
