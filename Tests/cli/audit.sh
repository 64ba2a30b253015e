#!/usr/bin/env bash
# The audit log against the real binary (docs/audit.md).
#
#   Tests/cli/audit.sh PATH/TO/momin
#
# Crash safety: a writer of 10,000 entries is killed with SIGKILL at a random point, five
# times, resuming the same log each time; after each kill the log must verify and hold every
# index the writer had reported committed (it prints each one after its commit), losing at
# most the entry in flight. Then tampering (with sqlite3): each edit must make verify exit 1
# naming the right entry or head. Then verify's and the writer's refusals of bad input.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 38
momin=$(absolute "${1:?usage: audit.sh PATH/TO/momin}")
db=$work/crash.db

committed=0                                                   # entries the log must hold
for round in 1 2 3 4 5; do
  out=$work/written.$round
  : > "$out"
  "$momin" audit write-test --db "$db" --count 10000 --sign-every 500 > "$out" 2> "$work/writer.$round" &
  writer=$!
  target=$(( (RANDOM * 32768 + RANDOM) % 9990 + 1 ))          # committed lines before the kill
  while kill -0 "$writer" 2>/dev/null && [ "$(wc -l < "$out")" -lt "$target" ]; do sleep 0.001; done
  kill -9 "$writer" 2>/dev/null
  wait "$writer" 2>/dev/null; writer_status=$?
  first=$(head -n 1 "$out") last=$(tail -n 1 "$out")
  report=$("$momin" audit verify --db "$db" 2>&1); status=$?
  entries=$(sed -n 's/^audit log .*: intact: \([0-9]*\) entries.*/\1/p' <<<"$report")
  name="audit: kill -9 of the writer after ~$target commits (round $round)"
  if [ "$writer_status" -ne 137 ]; then
    fail "$name" "the writer was not killed (status $writer_status): $(head -c 300 "$work/writer.$round")"
  elif [ "$status" -ne 0 ] || [ -z "$entries" ]; then
    fail "$name" "verify exited $status: $report"
  elif [ "$first" != "$committed" ]; then
    fail "$name" "the writer resumed at index $first, not $committed"
  elif [ "$entries" -lt $((last + 1)) ] || [ "$entries" -gt $((last + 2)) ]; then
    fail "$name" "the writer reported index $last committed, the log holds $entries entries"
  else
    pass "$name"
  fi
  committed=${entries:-$committed}
done

"$momin" audit write-test --db "$db" --count 100 --sign-every 500 > "$work/written.last" 2>&1
report=$("$momin" audit verify --db "$db" --strict 2>&1); status=$?
[ "$status" -eq 0 ] && grep -q "intact: $((committed + 100)) entries" <<<"$report" && ! grep -q unsigned <<<"$report"
check "audit: a writer that finishes leaves every entry signed (verify --strict)" $? "status $status: $report"

expect_tamper() { # NAME PATTERN SQL: edits a copy of the log, then verify must exit 1 with PATTERN
  local name=$1 pattern=$2 sql=$3 copy=$work/tampered.db out status
  cp "$db" "$copy" && cp "$db.key.pub" "$copy.key.pub"
  sqlite3 "$copy" "DROP TRIGGER entries_append_only; DROP TRIGGER entries_no_update; DROP TRIGGER entries_no_delete;
                   DROP TRIGGER heads_no_update; DROP TRIGGER heads_no_delete; $sql" || { fail "$name" "sqlite3 failed"; return; }
  out=$("$momin" audit verify --db "$copy" 2>&1 >/dev/null); status=$?
  [ "$status" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && grep -q -- "^momin: error: audit log $copy: $pattern" <<<"$out"
  check "$name" $? "status $status, stderr: $out"
}
expect_tamper "audit: a modified row" "entry 1234: modified" \
  'UPDATE entries SET data = CAST(substr(data, 1, 20) || x'"'"'ff'"'"' || substr(data, 22) AS BLOB) WHERE "index" = 1234'
expect_tamper "audit: a deleted row" "entry 4321: deleted" 'DELETE FROM entries WHERE "index" = 4321'
expect_tamper "audit: an inserted row" "entry 2000: inserted" \
  'UPDATE entries SET "index" = "index" + 1000000 WHERE "index" >= 2000;
   UPDATE entries SET "index" = "index" - 999999 WHERE "index" >= 1000000;
   INSERT INTO entries SELECT 2000, time, kind, data, leaf_hash FROM entries WHERE "index" = 100'
expect_tamper "audit: two rows swapped" "entry 3000: reordered" \
  'UPDATE entries SET "index" = 1000000 WHERE "index" = 3000; UPDATE entries SET "index" = 3000 WHERE "index" = 3001;
   UPDATE entries SET "index" = 3001 WHERE "index" = 1000000'
expect_tamper "audit: a forged head" "head 3 (tree size [0-9]*): forged head" \
  'UPDATE heads SET root_hash = randomblob(32) WHERE seq = 3'

# A head kept apart from the log (momin audit head), then the one attack the triggers and the
# log's own heads cannot show: triggers dropped, the tail and the heads that signed it deleted.
fingerprint=$(printf "$(sed 's/../\\x&/g' "$db.key.pub" | tr -d '\n')" | sha256sum | cut -c1-64)
"$momin" audit head --db "$db" > "$work/head.json" 2> "$work/head.err"; status=$?
size=$((committed + 100))
[ "$status" -eq 0 ] && [ "$(wc -l < "$work/head.json")" -eq 1 ] &&
  grep -Eq '^\{"log_id":"[0-9a-f]{32}","sequence":[0-9]+,"tree_size":'"$size"',"root":"[0-9a-f]{64}","time":[0-9]+,"signature":"[0-9a-f]{128}","key_fingerprint":"'"$fingerprint"'"\}$' "$work/head.json"
check "audit head: the latest signed head as one line of JSON, with the key's SHA-256 fingerprint" $? \
  "status $status: $(head -c 400 "$work/head.json") $(head -c 200 "$work/head.err")"
"$momin" audit write-test --db "$db" --count 40 --sign-every 500 > /dev/null 2>&1
report=$("$momin" audit verify --db "$db" --head "$work/head.json" 2>&1); status=$?
[ "$status" -eq 0 ] && grep -q "intact: $((size + 40)) entries.*extends the head in $work/head.json (tree size $size)" <<<"$report" &&
  grep -q "from $db.key.pub beside the log (not pinned)$" <<<"$report"
check "audit verify --head: a log that grew still extends the kept head; no pin is said" $? "status $status: $report"
report=$("$momin" audit verify --db "$db" --pubkey "$db.key.pub" 2>&1); status=$?
[ "$status" -eq 0 ] && grep -q "from $db.key.pub (pinned)$" <<<"$report"
check "audit verify --pubkey: the key is pinned" $? "status $status: $report"
report=$("$momin" audit verify --db "$db" --key-fingerprint "$fingerprint" 2>&1); status=$?
[ "$status" -eq 0 ] && grep -q "beside the log (pinned by fingerprint)$" <<<"$report"
check "audit verify --key-fingerprint: the key beside the log has the pinned fingerprint" $? "status $status: $report"
wrong=$(printf '%064d' 7)
expect_decision "audit verify --key-fingerprint: another key's fingerprint fails naming both" 1 \
  "the key in $db.key.pub has fingerprint $fingerprint, not the pinned $wrong" \
  "$momin" audit verify --db "$db" --key-fingerprint "$wrong"
expect_decision "audit head --key-fingerprint: another key's fingerprint fails" 1 "not the pinned $wrong" \
  "$momin" audit head --db "$db" --key-fingerprint "$wrong"
expect_refusal "audit verify --key-fingerprint: not 64 hex digits" "key-fingerprint 12ab is not 64 hex digits" \
  "$momin" audit verify --db "$db" --key-fingerprint 12ab
cut=$work/cut.db keep=$((size - 7))
cp "$db" "$cut" && cp "$db.key.pub" "$cut.key.pub"
sqlite3 "$cut" "DROP TRIGGER entries_no_delete; DROP TRIGGER heads_no_delete;
                DELETE FROM entries WHERE \"index\" >= $keep; DELETE FROM heads WHERE tree_size > $keep" || fail "audit: cut" "sqlite3 failed"
report=$("$momin" audit verify --db "$cut" 2>&1); status=$?
[ "$status" -eq 0 ] && grep -q "intact: $keep entries" <<<"$report"
check "audit verify: a log cut back with its heads still verifies on its own (the attack)" $? "status $status: $report"
expect_decision "audit verify --head: the cut is caught naming the gap (triggers dropped, heads deleted)" 1 \
  "^momin: error: audit log $cut: entry $keep: deleted: the log holds $keep entries, the head in $work/head.json signed $size: entries $keep..$((size - 1)) were cut$" \
  "$momin" audit verify --db "$cut" --head "$work/head.json"
"$momin" audit write-test --db "$work/other.db" --key "$db.key" --count 5 > /dev/null 2>&1
"$momin" audit head --db "$work/other.db" --pubkey "$db.key.pub" > "$work/other.json"
expect_decision "audit verify --head: a head of another log under the same key is refused naming both logs" 1 \
  "another log: the head in $work/other.json is of log [0-9a-f]\{32\}, this log is [0-9a-f]\{32\}" \
  "$momin" audit verify --db "$db" --head "$work/other.json"
printf '{"log_id": "nope"}\n' > "$work/bad.json"
expect_refusal "audit verify --head: a file that is not a head" "head file $work/bad.json: its last line is not a signed head" \
  "$momin" audit verify --db "$db" --head "$work/bad.json"
"$momin" audit write-test --db "$work/empty.db" --count 0 > /dev/null 2>&1
expect_decision "audit head: a log with no signed head" 1 "audit log $work/empty.db has no signed head yet" \
  "$momin" audit head --db "$work/empty.db"

# A witness file: every head the writer signs, appended as its JSON line.
"$momin" audit write-test --db "$work/w.db" --count 1200 --sign-every 500 --witness "$work/w.heads" > /dev/null 2>&1
heads=$(sqlite3 "$work/w.db" "SELECT count(*) FROM heads")
[ "$(wc -l < "$work/w.heads")" -eq "$heads" ] && [ "$heads" -gt 3 ] &&
  [ "$(tail -n 1 "$work/w.heads")" = "$("$momin" audit head --db "$work/w.db")" ]
check "audit write-test --witness: one line per signed head ($heads), the last one momin audit head's" $? \
  "$(wc -l < "$work/w.heads") lines for $heads heads"
expect_decision "audit verify --head WITNESS: the log extends its witness's last head" 0 "extends the head in $work/w.heads (tree size 1200)" \
  "$momin" audit verify --db "$work/w.db" --head "$work/w.heads" --pubkey "$work/w.db.key.pub"
sqlite3 "$work/w.db" "DROP TRIGGER entries_no_delete; DROP TRIGGER heads_no_delete;
                      DELETE FROM entries WHERE \"index\" >= 1000; DELETE FROM heads WHERE tree_size > 1000"
expect_decision "audit verify --head WITNESS: a cut log fails against its witness" 1 "entries 1000..1199 were cut" \
  "$momin" audit verify --db "$work/w.db" --head "$work/w.heads" --pubkey "$work/w.db.key.pub"
expect_refusal "momin run --witness without --audit" "witness $work/w.heads needs --audit" \
  "$momin" run --witness "$work/w.heads" -- true

# Three runs refused before boot, each logged with its reason (no KVM needed: the policy
# refusals come before any VM, and the ledger's comes before momin-vmm would start; the fake
# momin-vmm only answers --preflight).
refused=$work/refused.db
printf 'version: 1\nagent: t\nlimits:\n  cycels: 10\n' > "$work/typo.yaml"
printf 'version: 1\nagent: capped\nresources:\n  vcpus: 1\n' > "$work/capped.yaml"
printf '#!/bin/sh\nexit 0\n' > "$work/fake-vmm" && chmod +x "$work/fake-vmm" && mkdir -p "$work/xdg"
memory=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
expect_refusal "momin run: a policy that does not load" "typo.yaml:4: limits.cycels: unknown key" \
  "$momin" run --policy "$work/typo.yaml" --audit "$refused" -- true
expect_refusal "momin run: more vCPUs than the policy allows" "vcpus 2 is over the policy's cap of 1" \
  "$momin" run --policy "$work/capped.yaml" --vcpus 2 --audit "$refused" -- true
expect_decision "momin run: no room in the ledger (exit 75)" 75 "no room for VM nothing-fits on this host" \
  env MOMIN_VMM="$work/fake-vmm" MOMIN_IN_RIG=1 MOMIN_RUNTIME_DIR="$work/vms" XDG_RUNTIME_DIR="$work/xdg" \
  MOMIN_RESERVE_MIB=$((memory - 1)) "$momin" run --name nothing-fits --kernel /bin/sh --audit "$refused" -- true
shown=$("$momin" audit show --db "$refused" 2>&1)
[ "$(grep -c ' run-refused ' <<<"$shown")" -eq 3 ] &&
  grep -q '^0 run-refused run-[0-9]* .*typo.yaml:4: limits.cycels: unknown key' <<<"$shown" &&
  grep -q '^1 policy-load .*capped.yaml sha256 ' <<<"$shown" &&
  grep -q "^2 run-refused capped-[0-9]* --vcpus 2 is over the policy's cap of 1 (resources.vcpus)$" <<<"$shown" &&
  grep -q '^3 run-refused nothing-fits no room for VM nothing-fits on this host: .* asks for 256 MiB, 1 MiB is free' <<<"$shown"
check "audit: three refused runs leave three run-refused entries with their reasons" $? "$shown"
report=$("$momin" audit verify --db "$refused" --strict 2>&1); status=$?
[ "$status" -eq 0 ] && grep -q "intact: 4 entries, 3 signed heads (last at tree size 4)" <<<"$report"
check "audit: each refusal is signed as it is logged (verify --strict)" $? "status $status: $report"
expect_refusal "momin start: a policy that does not load" "typo.yaml:4: limits.cycels: unknown key" \
  env MOMIN_RUNTIME_DIR="$work/vms" "$momin" start governed --kernel /bin/sh --policy "$work/typo.yaml" --audit "$work/started.db"
shown=$("$momin" audit show --db "$work/started.db" 2>&1)
grep -q '^0 run-refused governed .*typo.yaml:4: limits.cycels: unknown key' <<<"$shown"
check "audit: a refused momin start is logged too" $? "$shown"

expect_refusal "audit verify: missing log" "audit log /nonexistent/audit.db: No such file" \
  "$momin" audit verify --db /nonexistent/audit.db
expect_refusal "audit verify: missing public key" "audit public key /nonexistent/key.pub: cannot open" \
  "$momin" audit verify --db "$db" --pubkey /nonexistent/key.pub
expect_refusal "audit verify: not an audit log" "is not a MominAI audit log" \
  "$momin" audit verify --db /bin/sh --pubkey "$db.key.pub"
cp "$db.key" "$work/loose.key" && chmod 0644 "$work/loose.key"
expect_refusal "audit: a signing key others can read" "audit key $work/loose.key has mode 0644" \
  "$momin" audit write-test --db "$work/loose.db" --count 1 --key "$work/loose.key"
finish
