#!/usr/bin/env bash
# momin image against the real binary, mmdebstrap and Debian's archive (docs/images.md): a
# small image (minbase and hello) is built into a private store, checked with e2fsck and
# debugfs, found again by its inputs, rebuilt byte for byte, named twice and removed by the
# rules; an unknown package is refused and leaves nothing behind; a truncated manifest is
# refused. Slow (two mmdebstrap runs, 30 to 85 s each here) and needs the network (Debian's
# archive, as Scripts/setup does) and root; part of Scripts/test's cli tier.
#
#   Tests/cli/images.sh PATH/TO/momin
prefix=images
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 14
momin=$(absolute "${1:?usage: images.sh PATH/TO/momin}")
export MOMIN_CACHE=$work/cache
store=$MOMIN_CACHE/images
small=(--name tiny --no-default-packages --packages hello)

if [ "$(id -u)" -ne 0 ]; then fail "setup" "must run as root (mmdebstrap --mode=root)"; finish; fi
command -v mmdebstrap >/dev/null || { fail "setup" "mmdebstrap is missing (apt-get install mmdebstrap)"; finish; }

# The first build: one line naming the image and its path, the file's SHA-256 its name.
start=$SECONDS
out=$("$momin" image build debian "${small[@]}" 2>"$work/build.err"); status=$?
first_seconds=$((SECONDS - start))
image=${out##*: }
digest=$(sed -n 's/^built image tiny sha256:\([0-9a-f]\{64\}\) .*/\1/p' <<<"$out")
[ "$status" -eq 0 ] && [ -n "$digest" ] && [ "$image" = "$store/sha256/$digest.ext4" ] && [ -f "$image" ] \
  && [ "$(sha256sum < "$image" | cut -d' ' -f1)" = "$digest" ]
check "build: a small image is kept under its SHA-256" $? "status $status, out: $out, err: $(tail -c 300 "$work/build.err")"

out=$(e2fsck -fn "$image" 2>&1); status=$?
check "build: e2fsck -fn finds the image clean" "$status" "$(tail -c 300 <<<"$out")"

version=$(debugfs -R 'cat /etc/debian_version' "$image" 2>/dev/null)
[[ $version =~ ^12\.[0-9]+$ ]]
check "build: /etc/debian_version in the image is bookworm's" $? "got '$version'"

# Change and creation times are the fixed one (0x6483bd00, 2023-06-10); apt's lists are empty.
stats=$(debugfs -R 'stat /usr/bin/hello' "$image" 2>/dev/null)
lists=$(debugfs -R 'ls -p /var/lib/apt/lists' "$image" 2>/dev/null | cut -d/ -f6 | grep -vxE '\.|\.\.|partial|' | paste -sd ' ')
[ "$(grep -cE '^ *(ctime|crtime): 0x6483bd00:00000000 ' <<<"$stats")" -eq 2 ] \
  && [ -z "$(debugfs -R 'stat /etc/machine-id' "$image" 2>/dev/null)" ] && [ -z "$lists" ]
check "build: times fixed to 2023-06-10, no machine-id, no apt lists" $? "$(grep time <<<"$stats" | tr '\n' ';') lists: $lists"

manifest=$("$momin" image inspect tiny 2>&1); status=$?
[ "$status" -eq 0 ] && grep -q "\"digest\" : \"sha256:$digest\"" <<<"$manifest" \
  && grep -qE '"name" : "hello",' <<<"$manifest" && grep -q '"suite" : "bookworm"' <<<"$manifest" \
  && python3 -c 'import json,sys; m = json.load(sys.stdin); assert len(m["packages"]) > 50 and all(p["version"] for p in m["packages"])' <<<"$manifest"
check "inspect: the manifest lists every package with its version" $? "status $status: $(head -c 300 <<<"$manifest")"

# The same inputs again: reused at once.
start=$SECONDS
out=$("$momin" image build debian "${small[@]}" 2>&1); status=$?
[ "$status" -eq 0 ] && [[ $out == "reusing image tiny sha256:$digest (built "*"): $image" ]] && [ $((SECONDS - start)) -lt 10 ]
check "build: the same inputs reuse the image" $? "status $status: $out"

# --rebuild runs mmdebstrap and mke2fs again from scratch: the same bytes.
cp "$image" "$work/first.ext4"
start=$SECONDS
out=$("$momin" image build debian "${small[@]}" --rebuild 2>"$work/rebuild.err"); status=$?
rebuild_seconds=$((SECONDS - start))
[ "$status" -eq 0 ] && [[ $out == "built image tiny sha256:$digest "* ]] && cmp -s "$work/first.ext4" "$image"
check "build --rebuild: byte-identical to the first build" $? \
  "status $status: $out; $(cmp "$work/first.ext4" "$image" 2>&1) $(tail -c 300 "$work/rebuild.err")"

# A second name for the same inputs shares the image.
"$momin" image build debian --name tiny2 --no-default-packages --packages hello >/dev/null 2>&1
out=$("$momin" image ls 2>&1); status=$?
[ "$status" -eq 0 ] && [ "$(awk 'NR > 1 { print $1, $2 }' <<<"$out" | paste -sd ' ')" = "tiny ${digest:0:12} tiny2 ${digest:0:12}" ] \
  && head -n 1 <<<"$out" | grep -qE '^NAME +DIGEST +SIZE +PACKAGES +BUILT$'
check "ls: two names for one image" $? "status $status: $out"

expect_refusal "rm: a named digest is refused without --force" "image ${digest:0:12} is named tiny, tiny2: remove the names" \
  "$momin" image rm "${digest:0:12}"

out=$("$momin" image rm tiny 2>&1); status=$?
[ "$status" -eq 0 ] && [ "$out" = "removed the name tiny; image sha256:$digest stays, named tiny2" ] && [ -f "$image" ]
check "rm: a name goes, the image another name holds stays" $? "status $status: $out"

# A truncated manifest is refused, naming the file.
manifest_path=$store/sha256/$digest.json
cp "$manifest_path" "$work/manifest.json" && head -c 100 "$work/manifest.json" > "$manifest_path"
out=$("$momin" image inspect tiny2 2>&1 >/dev/null); status=$?
[ "$status" -eq 1 ] && [ "$out" = "momin: error: image manifest $manifest_path is damaged: not valid JSON (truncated or corrupt)" ]
check "inspect: a truncated manifest is refused" $? "status $status: $out"
cp "$work/manifest.json" "$manifest_path"

out=$("$momin" image rm tiny2 2>&1); status=$?
[ "$status" -eq 0 ] && [ "$out" = "removed image sha256:$digest (named tiny2)" ] && [ ! -e "$image" ] && [ ! -e "$manifest_path" ]
check "rm: the last name takes the image and its manifest" $? "status $status: $out"

# An unknown package: bad input naming it, and nothing left in the store.
out=$("$momin" image build debian --name broken --no-default-packages --packages hello,momin-no-such-package 2>&1 >/dev/null); status=$?
[ "$status" -eq 2 ] && grep -q "Debian bookworm has no package momin-no-such-package" <<<"$out"
check "build: an unknown package is bad input naming it" $? "status $status: $out"
left=$(find "$store/sha256" "$store/tmp" -mindepth 1 2>/dev/null | head -n 3)
[ -z "$left" ] && ! grep -q broken "$store/names.json"
check "build: a failed build leaves nothing in the store" $? "left: $left"
echo "images: the first build took ${first_seconds} s, the rebuild ${rebuild_seconds} s" >&2
finish
