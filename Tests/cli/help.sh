#!/usr/bin/env bash
# --help of any command prints help and boots nothing: `momin --help`, every subcommand and
# nested subcommand that `momin --help` and `momin help SUB` list, the hidden agent-host and
# bench-gateway, momin-vmm, momin-jailer and momin-probe, and the guest's momin-init and hands
# (momin-init run outside a guest, and under the name hands). Each must exit 0 with its usage
# on stdout (momin: "USAGE:"; the others: a line starting "usage:", any case), must not
# go to the nested rig, and must leave nothing behind: it runs with MOMIN_RIG=/bin/false, in an
# empty working directory, with empty runtime directories of its own (MOMIN_RUNTIME_DIR,
# XDG_RUNTIME_DIR) that must stay empty, within 20 s, and no process it started may be left.
#
#   Tests/cli/help.sh MOMIN_DIR MOMIN_INIT
#     MOMIN_DIR   holds momin, momin-vmm, momin-jailer and momin-probe
#     MOMIN_INIT  the guest's momin-init (Guest/.build/release/momin-init)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 37  # one per command and subcommand of momin (a new one raises it), and the binaries beside it
dir=$(absolute "${1:?usage: help.sh MOMIN_DIR MOMIN_INIT}")
init=$(absolute "${2:?usage: help.sh MOMIN_DIR MOMIN_INIT}")
momin=$dir/momin

# sandboxed COMMAND...: runs COMMAND in a fresh box $box ($box/cwd, $box/momin and $box/xdg,
# all empty), stdin empty, at most 20 s; stdout in $box.out, stderr in $box.err, status in $status.
boxes=0
sandboxed() {
  boxes=$((boxes + 1)); box=$work/$boxes
  mkdir -p "$box/cwd" "$box/momin" "$box/xdg"
  (cd "$box/cwd" && MOMIN_RIG=/bin/false MOMIN_RUNTIME_DIR="$box/momin" XDG_RUNTIME_DIR="$box/xdg" \
     timeout 20 "$@" < /dev/null > "$box.out" 2> "$box.err")
  status=$?
}

# left_running: the processes still alive that came from $box (its runtime directory in their
# environment, or the box on their command line) and their descendants, one "PID ARGS" a line.
left_running() {
  ps -eo pid=,ppid=,args= > "$box.ps"
  { grep -lsF "MOMIN_RUNTIME_DIR=$box/" /proc/[0-9]*/environ | cut -d/ -f3
    grep -F "$box/" "$box.ps" | awk '{ print $1 }'; } > "$box.pids"
  awk 'NR == FNR { from[$1] = 1; next }
       { parent[$1] = $2; line[$1] = $0 }
       END { for (p in line) { q = p; while (!(q in from) && (q in parent) && q > 1) q = parent[q]
                               if (q in from) print line[p] } }' "$box.pids" "$box.ps"
}

# expect_help USAGE-REGEX COMMAND ARGS...: `COMMAND ARGS --help` exits 0 with USAGE-REGEX (grep -E)
# on stdout, does not mention the nested rig, leaves the box empty and nothing running.
expect_help() {
  local usage=$1 command=$2 problems=() left; shift 2
  local name="help: ${command##*/}${*:+ $*} --help prints help and boots nothing"
  sandboxed "$command" "$@" --help
  [ "$status" -eq 124 ] && problems+=("still running after 20 s")
  [ "$status" -ne 0 ] && problems+=("status $status")
  grep -qE -- "$usage" "$box.out" || problems+=("no $usage on stdout")
  grep -qi 'nested rig' "$box.err" && problems+=("stderr mentions the nested rig")
  left=$(find "$box" -mindepth 2 | head -n 3 | paste -sd ' ')
  [ -n "$left" ] && problems+=("left in its directories: $left")
  left=$(left_running)
  if [ -n "$left" ]; then
    problems+=("left running: $(awk '{ $2 = ""; print }' <<<"$left" | tr -s ' ' | paste -sd ';')")
    kill -KILL $(awk '{ print $1 }' <<<"$left") 2>/dev/null
  fi
  if [ ${#problems[@]} -eq 0 ]; then pass "$name"
  else fail "$name" "$(printf '%s; ' "${problems[@]}")stderr: $(head -c 200 "$box.err")"; fi
}

# subcommands: the names listed under SUBCOMMANDS: in the help in $box.out.
subcommands() {
  awk '/^SUBCOMMANDS:/ { on = 1; next } on && /^[A-Z]+:/ { on = 0 } on && /^  [a-z]/ { print $1 }' "$box.out"
}

# Every command path, breadth first: the top level's subcommands from `momin --help`, theirs
# from `momin help PATH`.
sandboxed "$momin" --help
top=$(subcommands)
[ -n "$top" ] || fail "help: momin --help lists the subcommands" "status $status, stdout: $(head -c 300 "$box.out")"
queue=($top)
for hidden in agent-host bench-gateway; do grep -qx "$hidden" <<<"$top" || queue+=("$hidden"); done
paths=()
while [ ${#queue[@]} -gt 0 ]; do
  path=${queue[0]}
  queue=("${queue[@]:1}")
  paths+=("$path")
  # shellcheck disable=SC2086
  sandboxed "$momin" help $path
  for sub in $(subcommands); do queue+=("$path $sub"); done
done

expect_help 'USAGE:' "$momin"
for path in "${paths[@]}"; do
  # shellcheck disable=SC2086
  expect_help 'USAGE:' "$momin" $path
done
for program in "$dir/momin-vmm" "$dir/momin-jailer" "$dir/momin-probe" "$init"; do
  expect_help '^[Uu][Ss][Aa][Gg][Ee]:' "$program"
done
# The image's /usr/bin/hands is a link to momin-init, which run by that name is the hands client.
ln -s "$init" "$work/hands"
expect_help '^[Uu][Ss][Aa][Gg][Ee]:' "$work/hands"
finish
