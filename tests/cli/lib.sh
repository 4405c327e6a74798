# Sourced by every tests/cli/test_*.sh (`. "$(dirname "$0")/lib.sh"`): the
# binary under test, Debian's interpreter, the repository's paths, a
# temporary folder removed on exit, the pass/fail counters and the checks
# the scripts share. A script ends with
#   echo "NAME: $checks checks, $fails failed"; [ $fails -eq 0 ]
S=${SEGLOSS:-build/segloss}
PY=/usr/bin/python3
ROOT=${SEGLOSS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${SEGLOSS_BUILD:-$ROOT/build}
FX=$ROOT/tests/cli/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0; checks=0

fail() { fails=$((fails + 1)); echo "FAILED: $*"; }

# check 'SHELL CONDITION' WHAT: the condition (eval'd) must hold.
check() { checks=$((checks + 1)); if ! eval "$1"; then fail "$2"; fi; }

expect() {  # expect CODE NEEDLE -- command...: exit CODE, exactly one stderr line containing NEEDLE
  local code=$1 needle=$2; shift 3
  checks=$((checks + 1))
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" != "$code" ] || [ "$lines" != 1 ] || ! grep -qF -- "$needle" "$tmp/err"; then
    fail "$* -> exit $rc (want $code), stderr ($lines lines): $(head -3 "$tmp/err")"
  fi
}

run() {  # run LABEL command...: must exit 0 with nothing on stderr
  local what=$1; shift
  checks=$((checks + 1))
  if ! "$@" >"$tmp/out" 2>"$tmp/err" || [ -s "$tmp/err" ]; then fail "$what: $* ($(head -3 "$tmp/err"))"; return 1; fi
}
