#!/usr/bin/env bash
# Installs the Debian packages segloss needs for a purpose (build, test, demo,
# perf), or, when not root, prints one line naming what is missing.
# Usage: scripts/deps.sh build|test|demo|perf
set -euo pipefail
purpose=${1:-build}

build_pkgs="cmake pkg-config gcc make zlib1g-dev libnifti2-dev libnifti-dev libopenblas-dev libpng-dev libcjson-dev libgomp1"
test_pkgs="python3 python3-numpy python3-scipy python3-torch clang libclang-rt-14-dev mricron-data chromium python3-venv python3-pip python3-setuptools python3-wheel"
# scikit-learn: the reference of the log-loss / FROC checks (skipped with a message when absent)
test_pkgs="$test_pkgs python3-sklearn"
demo_pkgs="mricron-data"
perf_pkgs="python3 python3-numpy python3-scipy python3-torch"

case "$purpose" in
  build) want="$build_pkgs" ;;
  test)  want="$build_pkgs $test_pkgs" ;;
  demo)  want="$build_pkgs $demo_pkgs" ;;
  perf)  want="$build_pkgs $perf_pkgs" ;;
  *) echo "deps.sh: unknown purpose '$purpose' (build|test|demo|perf)" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
  echo "segloss: installing Debian packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "segloss: missing Debian packages:$missing (install them with: sudo apt-get install$missing)" >&2
  exit 1
fi
