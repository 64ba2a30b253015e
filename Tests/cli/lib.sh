# shellcheck shell=bash
# Shared by the check files in Tests/cli/. Source it, don't run it:
#
#   prefix=jailer   # optional, default cli
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   plan N          # the number of checks the file runs
#   ... checks ...
#   finish
#
# Each check prints one line on stdout, "PASS $prefix: NAME" or "FAIL $prefix: NAME: details";
# finish prints the file's counts on stderr and exits non-zero if any check failed. A file
# that runs another number of checks than its plan, or ends before finish (an exit, a crash),
# gets one more FAIL line saying so: a check that silently drops out is a failure, not a
# smaller pass count. $work is a private directory, removed on exit. Also brings
# Scripts/lib/common.sh (MOMIN_ROOT, MOMIN_CACHE, host_has_hw_virt).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../Scripts/lib/common.sh"
prefix=${prefix:-cli}
passed=0 failed=0 planned="" finished=""
work=$(mktemp -d "${TMPDIR:-/tmp}/momin-$prefix.XXXXXX") || exit 1

plan() { # plan N: how many checks this file runs
  planned=$1
}
# One FAIL line when the checks that ran are not the plan's number.
check_plan() {
  local ran=$((passed + failed))
  if [ -z "$planned" ]; then
    fail "plan" "the file declares no plan (plan N)"
  elif [ "$ran" -ne "$planned" ]; then
    fail "plan" "ran $ran of its $planned checks${1:+ ($1)}"
  fi
}
on_exit() {
  local status=$?
  if [ -z "$finished" ]; then
    check_plan "it ended with status $status before finish"
    status=1
  fi
  rm -rf "$work"
  exit "$status"
}
trap on_exit EXIT

pass() { # pass NAME
  passed=$((passed + 1)); echo "PASS $prefix: $1"
}
fail() { # fail NAME DETAILS: one line, at most 600 characters
  local line="FAIL $prefix: $1: $2"
  failed=$((failed + 1)); line=${line//$'\n'/ }; echo "${line:0:600}"
}
check() { # check NAME STATUS DETAILS: passes when STATUS is 0
  if [ "$2" -eq 0 ]; then pass "$1"; else fail "$1" "$3"; fi
}

# expect_refusal NAME PATTERN ARGS...: bad input exits 2 with exactly one stderr line matching PATTERN.
expect_refusal() {
  local name=$1 pattern=$2 out status; shift 2
  out=$("$@" 2>&1 >/dev/null); status=$?
  if [ "$status" -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && grep -q -- "$pattern" <<<"$out"; then
    pass "$name"
  else
    fail "$name" "status $status, stderr: $out"
  fi
}

# expect_decision NAME STATUS PATTERN ARGS...: exits STATUS with PATTERN in stdout or stderr.
expect_decision() {
  local name=$1 want=$2 pattern=$3 out status; shift 3
  out=$("$@" 2>&1); status=$?
  if [ "$status" -eq "$want" ] && grep -q -- "$pattern" <<<"$out"; then
    pass "$name"
  else
    fail "$name" "status $status, output: $out"
  fi
}

# absolute PATH: PATH made absolute against the current directory.
absolute() {
  case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac
}

finish() {
  finished=1
  check_plan
  echo "$(basename "$0" .sh): $passed passed, $failed failed" >&2
  [ "$failed" -eq 0 ]
  exit
}
