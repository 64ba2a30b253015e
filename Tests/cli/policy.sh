#!/usr/bin/env bash
# momin policy against the triage example (docs/policies/triage.yaml): check summarises it,
# eval exits 0 on allow and 1 on deny, naming the rule that decided.
#
#   Tests/cli/policy.sh PATH/TO/momin
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 5
momin=$(absolute "${1:?usage: policy.sh PATH/TO/momin}")
triage=$MOMIN_ROOT/docs/policies/triage.yaml

expect_decision "policy check" 0 "agent triage, version 1: 6 exec rules" "$momin" policy check "$triage"
expect_decision "policy eval allows" 0 "^allow tools.exec\[3\]" "$momin" policy eval "$triage" --env LANG=C.UTF-8 --cwd /evidence \
  --exec /usr/bin/grep -i -e secret /evidence/disk/notes.txt
# A path that climbs out with .. is resolved before the rules see it.
expect_decision "policy eval denies" 1 "^deny tools.files.read (line [0-9]*): /etc/shadow is not readable" \
  "$momin" policy eval "$triage" --read /evidence/../etc/shadow
# A document nested 100,000 levels deep (what a guest can send with hands spawn) is refused
# with one line, not a crash of the composer's recursion (issue 12).
printf '%.0s[' $(seq 100000) > "$work/deep.yaml"
expect_refusal "policy check: a YAML document nested 100,000 deep" "deep.yaml:1: nested too deeply" \
  "$momin" policy check "$work/deep.yaml"
printf -- '- %.0s' $(seq 100000) > "$work/dashes.yaml"
expect_refusal "policy check: 100,000 block sequences on one line" "dashes.yaml:1: nested too deeply" \
  "$momin" policy check "$work/dashes.yaml"
finish
