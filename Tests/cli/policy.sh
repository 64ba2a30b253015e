#!/usr/bin/env bash
# momin policy against the triage example (docs/policies/triage.yaml): check summarises it,
# eval exits 0 on allow and 1 on deny, naming the rule that decided.
#
#   Tests/cli/policy.sh PATH/TO/momin
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 12
momin=$(absolute "${1:?usage: policy.sh PATH/TO/momin}")
triage=$MOMIN_ROOT/docs/policies/triage.yaml

expect_decision "policy check" 0 "agent triage, version 1: 6 exec rules" "$momin" policy check "$triage"
expect_decision "policy eval allows" 0 "^allow tools.exec\[3\]" "$momin" policy eval "$triage" --env LANG=C.UTF-8 --cwd /evidence \
  --exec /usr/bin/grep -i -e secret /evidence/disk/notes.txt
# A path that climbs out with .. is resolved before the rules see it.
expect_decision "policy eval denies" 1 "^deny tools.files.read (line [0-9]*): /etc/shadow is not readable" \
  "$momin" policy eval "$triage" --read /evidence/../etc/shadow
# Egress and Brain calls (docs/egress.md), against the web research example; --resolved stands
# in for the host's resolver, so nothing here looks a name up.
web=$MOMIN_ROOT/docs/policies/agent-web.yaml
expect_decision "policy eval allows a tunnel, naming the address to connect to" 0 "^allow network.egress\[0\] (line [0-9]*): connect to 151.101.0.223$" \
  "$momin" policy eval "$web" --connect pypi.org:443 --resolved 151.101.0.223
expect_decision "policy eval denies a plain request by its path" 1 '^deny network.egress\[4\] (line [0-9]*): path "/admin" on docs.example.com is not allowed' \
  "$momin" policy eval "$web" --http http://docs.example.com/admin --resolved 93.184.216.34
expect_decision "policy eval denies an allowed name that resolves to a private address" 1 \
  "^deny network.egress\[0\] (line [0-9]*): pypi.org resolves to 10.0.0.5, a private address, which no rule names" \
  "$momin" policy eval "$web" --connect pypi.org:443 --resolved 10.0.0.5
expect_decision "policy eval denies a Brain call for a model the policy does not list" 1 '^deny brain.models (line [0-9]*): model "gpt-4o" is not among brain.models' \
  "$momin" policy eval "$web" --brain gpt-4o
# A document nested 100,000 levels deep (what a guest can send with hands spawn) is refused
# with one line, not a crash of the composer's recursion (issue 12).
# Package installs (docs/policy.md, "packages"): each package an install would bring in, by
# name and, for pip, the version the host resolved.
cat > "$work/packages.yaml" <<'POLICY'
version: 1
agent: installer
packages:
  pip:
    index: https://pypi.org/simple
    allow:
      - {name: pefile, versions: ">=2023.2.7,<2025"}
  apt:
    mirrors: [http://deb.debian.org/debian]
    allow: [binwalk]
POLICY
expect_decision "policy check counts package rules" 0 "; packages pip 1 rule, apt 1 rule$" "$momin" policy check "$work/packages.yaml"
expect_decision "policy eval allows a pip package at an allowed version" 0 '^allow packages.pip.allow\[0\] (line 7)$' \
  "$momin" policy eval "$work/packages.yaml" --install pip:PEfile==2024.8.26
expect_decision "policy eval denies a version outside the rule's" 1 \
  '^deny packages.pip.allow\[0\] (line 7): pefile 2022.5.30 is not among the versions allowed (>=2023.2.7,<2025)$' \
  "$momin" policy eval "$work/packages.yaml" --install pip:pefile==2022.5.30
printf '%.0s[' $(seq 100000) > "$work/deep.yaml"
expect_refusal "policy check: a YAML document nested 100,000 deep" "deep.yaml:1: nested too deeply" \
  "$momin" policy check "$work/deep.yaml"
printf -- '- %.0s' $(seq 100000) > "$work/dashes.yaml"
expect_refusal "policy check: 100,000 block sequences on one line" "dashes.yaml:1: nested too deeply" \
  "$momin" policy check "$work/dashes.yaml"
finish
