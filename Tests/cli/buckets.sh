#!/usr/bin/env bash
# momin bucket against the real binary: a binary value round-trips byte for byte, a query by
# tag, an intact store verifies, a value changed behind the API's back (with sqlite3) is named
# by verify, and a key over the limit is refused.
#
#   Tests/cli/buckets.sh PATH/TO/momin
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 5
momin=$(absolute "${1:?usage: buckets.sh PATH/TO/momin}")
db=$work/store.db

head -c 70000 /dev/urandom > "$work/value.bin"
"$momin" bucket put --db "$db" --namespace cases/1/findings report --tag draft < "$work/value.bin" > /dev/null 2>&1
"$momin" bucket put --db "$db" --namespace cases/1/findings note --tag final --tag draft < /dev/null > /dev/null 2>&1
printf 'ioc 10.0.0.1\n' | "$momin" bucket put --db "$db" --namespace cases/1/findings ioc --tag final > /dev/null 2>&1
"$momin" bucket get --db "$db" --namespace cases/1/findings report > "$work/got.bin" 2> "$work/get.err"
cmp -s "$work/value.bin" "$work/got.bin"
check "bucket: put then get returns the same bytes" $? "$(head -c 300 "$work/get.err")"

out=$("$momin" bucket query --db "$db" --namespace cases/1/findings --tag final 2>&1); status=$?
[ "$status" -eq 0 ] && [ "$(cut -f1,2 <<<"$out" | tr '\t\n' ' ;')" = "1 note;2 ioc;" ]
check "bucket: query by tag" $? "status $status: $out"

out=$("$momin" bucket verify --db "$db" 2>&1); status=$?
[ "$status" -eq 0 ] && grep -q "intact: 1 namespaces, 3 entries, 3 values" <<<"$out"
check "bucket: verify an intact store" $? "status $status: $out"

cp "$db" "$work/tampered.db" && cp "$db.key.pub" "$work/tampered.db.key.pub"
sqlite3 "$work/tampered.db" "DROP TRIGGER blobs_no_update; UPDATE blobs SET data = CAST('ioc 10.0.0.2' || char(10) AS BLOB) WHERE size = 13" \
  || fail "bucket: a tampered value" "sqlite3 failed"
out=$("$momin" bucket verify --db "$work/tampered.db" 2>&1 >/dev/null); status=$?
[ "$status" -eq 1 ] && grep -q "^momin: error: bucket store $work/tampered.db: namespace cases/1/findings entry 2: value modified" <<<"$out"
check "bucket: a tampered value is named by verify" $? "status $status, stderr: $out"

expect_refusal "bucket put: a key over the limit" "key \"kkk.*is 1025 bytes: 1 to 1024 allowed" \
  "$momin" bucket put --db "$db" --namespace cases/1/findings "$(printf 'k%.0s' $(seq 1025))" --file /dev/null
finish
