#!/usr/bin/env bash
# Bad input to momin boot, start, replay and policy check fails with one line naming the
# problem and exit status 2, before anything boots.
#
#   Tests/cli/refusals.sh PATH/TO/momin
#
# Uses the guest kernel at $MOMIN_CACHE/guest/vmlinuz (Scripts/setup); as root with /dev/kvm,
# also checks an unprivileged user's refusal (nobody, 65534).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Two checks hold only where they can: on a PVM-only host, and as root with /dev/kvm. The plan
# counts them where they run, so a check that drops out elsewhere is not a smaller pass count.
pvm_only=0; host_has_hw_virt || pvm_only=1
as_root=0; [ "$(id -u)" -eq 0 ] && [ -c /dev/kvm ] && as_root=1
plan $((31 + pvm_only + as_root))
momin=$(absolute "${1:?usage: refusals.sh PATH/TO/momin}")
kernel=$MOMIN_CACHE/guest/vmlinuz

truncate -s 300M "$work/big.initrd"
expect_refusal "missing kernel" "cannot read kernel /nonexistent/vmlinuz: No such file" \
  "$momin" boot --kernel /nonexistent/vmlinuz
expect_refusal "unreadable kernel (a directory)" "not a regular file" "$momin" boot --kernel /tmp
expect_refusal "not a bzImage (an ELF)" "not a bzImage: .*no 0xAA55" "$momin" boot --kernel /bin/sh
printf 'not a kernel\n' > "$work/short"
expect_refusal "not a bzImage (too short)" "too short for a setup header" "$momin" boot --kernel "$work/short"
expect_refusal "missing initrd" "cannot read initrd" "$momin" boot --kernel "$kernel" --initrd /nonexistent/initrd
expect_refusal "initrd too large for memory" "initrd (300 MiB) does not fit" \
  "$momin" boot --kernel "$kernel" --initrd "$work/big.initrd" --memory 256
expect_refusal "--memory too small" "memory 32 MiB is too small" "$momin" boot --kernel "$kernel" --memory 32
expect_refusal "--vcpus 0" "vcpus 0 is out of range" "$momin" boot --kernel "$kernel" --vcpus 0
expect_refusal "--vcpus above the limit" "vcpus 255 is out of range" "$momin" boot --kernel "$kernel" --vcpus 255
expect_refusal "no KVM device" "cannot open /nonexistent/kvm: ENOENT" \
  "$momin" boot --kernel "$kernel" --kvm-device /nonexistent/kvm
expect_refusal "unknown option" "Unknown option '--bogus'" "$momin" boot --bogus
printf 'momin-record 1\nbogus 1\n' > "$work/bad.rec"
expect_refusal "malformed session record" "bad.rec: line 2: unknown line 'bogus'" "$momin" replay "$work/bad.rec"
expect_refusal "--entropy-seed not 64 hex digits" "entropy-seed 12ab is not 64 hexadecimal digits" \
  "$momin" boot --kernel "$kernel" --entropy-seed 12ab
truncate -s 4096 "$work/disk.img"
expect_refusal "--disk with a bad name" "--disk $work/disk.img,name=../x: name '../x' is not 1 to 20" \
  "$momin" run --kernel "$kernel" --disk "$work/disk.img,name=../x" -- /bin/true
expect_refusal "--disk of a missing file" "--disk $work/nonexistent.img: No such file or directory" \
  "$momin" run --kernel "$kernel" --disk "$work/nonexistent.img" -- /bin/true
truncate -s 1000 "$work/odd.img"
expect_refusal "--disk of a file that is not whole sectors" "is 1000 bytes; a disk is a whole number of 512-byte sectors" \
  "$momin" run --kernel "$kernel" --disk "$work/odd.img" -- /bin/true
expect_refusal "--scratch on momin run, whose VM has no name to keep one under" \
  "--scratch 16M: momin run has no named VM to keep a scratch disk for; use momin start NAME --scratch SIZE" \
  "$momin" run --kernel "$kernel" --scratch 16M -- /bin/true
expect_refusal "momin exec --cwd that is not absolute" "--cwd evidence: the working directory must be an absolute path" \
  "$momin" exec nosuchvm --cwd evidence -- /bin/true
expect_refusal "--record with a writable --disk" "--record with a writable --disk $work/disk.img: a replay cannot have what the run wrote to it" \
  "$momin" run --kernel "$kernel" --record "$work/r.rec" --disk "$work/disk.img:rw" -- /bin/true
expect_refusal "--record with --interactive" "--record with --interactive: standard input is not recorded" \
  "$momin" run --kernel "$kernel" --record "$work/r.rec" -i -- /bin/true
# A record whose root image is no longer the recorded file (the kernel is): refused by digest.
printf 'an image\n' > "$work/image.ext4"
{ printf 'momin-record 2\nseed %s\nvcpus 1\nmemory 256\ncmdline quiet\n' "$(printf '%064d' 0)"
  printf 'kernel %s %s\n' "$(sha256sum "$kernel" | cut -d' ' -f1)" "$kernel"
  printf 'image %s %s\n' "$(printf '%064d' 0)" "$work/image.ext4"; } > "$work/changed.rec"
expect_refusal "replay of a record whose image changed" "$work/image.ext4 is not the file the session was recorded with (SHA-256 differs)" \
  "$momin" replay "$work/changed.rec"
# A model call's answer kept in an exchange store that is not beside the record: refused, and
# nothing is written there.
{ printf 'momin-record 2\nseed %s\nvcpus 1\nmemory 256\ncmdline quiet\n' "$(printf '%064d' 0)"
  printf 'kernel %s %s\n' "$(sha256sum "$kernel" | cut -d' ' -f1)" "$kernel"
  printf 'call brain allow brain 200 2 %s 01 %s:%s\n' "$(printf '%064d' 0)" "$(printf '%064d' 1)" "$(printf '%064d' 2)"; } > "$work/lost.rec"
expect_refusal "replay of a record whose exchange store is missing" "lost.rec: call 1's exchange is in $work/lost.rec.exchanges, which is missing" \
  "$momin" replay "$work/lost.rec"
expect_refusal "--overlay without --image" "--overlay 64m: there is no --image to lay it over" \
  "$momin" run --kernel "$kernel" --overlay 64m -- /bin/true
expect_refusal "--overlay that is not a size" "--overlay 1g,mode=4777: expected a size such as 256m, 1g or 50%" \
  "$momin" run --kernel "$kernel" --image "$work/disk.img" --overlay 1g,mode=4777 -- /bin/true
expect_refusal "--image of a missing file" "--image $work/nonexistent.ext4: No such file or directory" \
  "$momin" run --kernel "$kernel" --image "$work/nonexistent.ext4" -- /bin/true
expect_refusal "--image naming no image in the store" "--image no-such-image: no image named no-such-image in .*(a file's path needs a /" \
  env MOMIN_CACHE="$work/cache" "$momin" run --kernel "$kernel" --image no-such-image -- /bin/true
# momin serve over TCP: never without tokens, only on an address, and never on a token file
# that others can read (it is refused before anything listens).
expect_refusal "momin serve --tcp without --tokens" "--tcp needs --tokens FILE: over TCP, callers are known only by their tokens" \
  "$momin" serve --tcp 8700
printf 'ci sha256:%s\n' "$(printf '%064d' 0)" > "$work/tokens" && chmod 644 "$work/tokens"
expect_refusal "momin serve --tcp on a name, not an address" "--tcp localhost:8700: localhost is not an IPv4 or IPv6 address" \
  "$momin" serve --tcp localhost:8700 --tokens "$work/tokens"
expect_refusal "momin serve --tokens that others can read" "--tokens $work/tokens: mode 644 lets others at it; chmod 600 it" \
  env MOMIN_RUNTIME_DIR="$work/serve-vms" "$momin" serve --socket "$work/api.sock" --tcp 0 --tokens "$work/tokens"
if [ $pvm_only -eq 1 ]; then
  expect_refusal "--no-rig on a PVM-only host" "cannot boot stock kernels" "$momin" boot --kernel "$kernel" --no-rig
fi

# No permission: an unprivileged user cannot open /dev/kvm (mode 0600 root).
if [ $as_root -eq 1 ]; then
  install -m 0755 "$momin" "$work/momin" && install -m 0755 "$(dirname "$momin")/momin-vmm" "$work/momin-vmm"
  cp "$kernel" "$work/vmlinuz" && chmod 0755 "$work" && chmod 0644 "$work/vmlinuz"
  expect_refusal "no permission on /dev/kvm" "cannot open /dev/kvm: EACCES" \
    setpriv --reuid=65534 --regid=65534 --clear-groups env MOMIN_IN_RIG=1 "$work/momin" boot --kernel "$work/vmlinuz"
fi

# A malformed policy is bad input naming FILE:LINE: FIELD, for policy check and for momin start.
printf 'version: 1\nagent: t\nlimits:\n  cycels: 10\n' > "$work/typo.yaml"
expect_refusal "malformed policy" "typo.yaml:4: limits.cycels: unknown key" "$momin" policy check "$work/typo.yaml"
expect_refusal "momin start with a malformed policy" "typo.yaml:4: limits.cycels: unknown key" \
  env MOMIN_RUNTIME_DIR="$work/vms" "$momin" start governed --kernel "$kernel" --policy "$work/typo.yaml"
finish
