#!/usr/bin/env bash
# Proves momin-vmm's per-thread seccomp filters with the filters it really installs: for each
# thread class, an allowed syscall survives and forbidden ones (or allowed ones with a
# forbidden argument) kill the process with SIGSYS, which bash shows as status 159 (128 + 31).
# Where /dev/kvm can run the hand-made guests (this PVM host, or any real KVM), it also runs a
# guest that activates virtio-rng and virtio-vsock from its vCPU under the real filters: the
# vCPU hands the work to the device thread, so its own filter allows none of it; and a guest
# that drives a writable virtio-blk disk (pread64, pwrite64, fdatasync, fallocate on the
# device thread).
#
#   Tests/cli/seccomp.sh MOMIN_VMM_PATH
#
# One line per check on stdout: "PASS seccomp: NAME" or "FAIL seccomp: NAME: details" (a check
# this host cannot run, for want of /dev/kvm or python3, is a FAIL). Exits 1 if anything failed.
prefix=seccomp
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 34
vmm=$(absolute "${1:?usage: seccomp.sh MOMIN_VMM_PATH}")
ulimit -c 0   # SIGSYS dumps core by default; nothing to keep here

# vmm_check NAME WANT_STATUS PATTERN ARGS...: runs momin-vmm ARGS, wants the status and PATTERN in stderr.
vmm_check() {
  local name=$1 want=$2 pattern=$3 out status; shift 3
  out=$(cd "$work" && "$vmm" "$@" 2>&1 >/dev/null); status=$?
  if [ "$status" -eq "$want" ] && grep -q -- "$pattern" <<<"$out"; then pass "$name"
  else fail "$name" "status $status (want $want), stderr: $(head -c 300 <<<"$out")"; fi
}
survives() { vmm_check "$1 thread survives $2" 0 "thread $1 survived $2" --seccomp-check "$1" "$2"; }
dies() { vmm_check "$1 thread is killed for $2" 159 "" --seccomp-check "$1" "$2"; }
# The call does not run: it fails with ENOENT (2), whatever exists (/etc/passwd does).
refused() { vmm_check "$1 thread's $2 fails with ENOENT without running" 0 "thread $1 survived $2 (returned -1, errno 2)" \
  --seccomp-check "$1" "$2"; }

for class in main devices vcpu; do
  survives "$class" getpid
  refused "$class" openat
  dies "$class" execve
  dies "$class" socket-inet          # devices, vcpu: socket allowed, but only for AF_UNIX
  dies "$class" ioctl-tcgets         # vcpu: ioctl allowed, but only KVM_RUN
done
survives devices socket-unix
dies vcpu socket-unix              # device activation and reset run on the device thread
dies main socket-unix
survives devices getrandom
dies vcpu getrandom
dies main getrandom
survives vcpu ioctl-kvm-run
dies devices ioctl-kvm-run
dies main ioctl-kvm-run

# Trap mode names the class and the syscall number (execve is 59, socket 41 on x86-64).
vmm_check "trap mode names the vcpu class and socket" 159 "^momin-vmm: seccomp: thread vcpu made forbidden syscall 41$" \
  --seccomp-check vcpu socket-inet --seccomp trap
vmm_check "trap mode names the devices class and execve" 159 "^momin-vmm: seccomp: thread devices made forbidden syscall 59$" \
  --seccomp-check devices execve --seccomp trap

# A malformed profile stops start-up before anything else (here, before the kernel is read).
out=$("$vmm" --kernel /nonexistent/vmlinuz --seccomp-check-malformed 2>&1 >/dev/null); status=$?
if [ "$status" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] \
   && grep -q '^momin-vmm: error: seccomp: unknown syscall name "momin_no_such_syscall" (in the main thread profile)$' <<<"$out"; then
  pass "a malformed filter stops start-up with its error"
else
  fail "a malformed filter stops start-up with its error" "status $status, stderr: $out"
fi
vmm_check "a bad --seccomp mode is refused" 2 "seccomp bogus is not one of kill, trap, log, off" --kernel /k --seccomp bogus
vmm_check "--seccomp off warns" 2 "WARNING: seccomp is OFF" --kernel /nonexistent/vmlinuz --seccomp off

# Real vCPU, device and main threads under their filters, with hand-made guests.
# Nothing is skipped quietly (docs/testing.md): without /dev/kvm these count as one failure.
if ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
  fail "guests under the real filters" "no usable /dev/kvm"
  finish
fi
make_kernel=$MOMIN_ROOT/Tests/rig/make-test-kernel
le32() { printf '%02x %02x %02x %02x' $(( $1 & 255 )) $(( ($1 >> 8) & 255 )) $(( ($1 >> 16) & 255 )) $(( ($1 >> 24) & 255 )); }
mem() { echo "c7 04 25 $(le32 "$1") $(le32 "$2")"; }          # mov dword [abs32], imm32
rbx() { echo "48 bb $(le32 "$1") 00 00 00 00"; }              # mov rbx, imm64 (below 4 GiB)
reg() { echo "c7 83 $(le32 "$1") $(le32 "$2")"; }             # mov dword [rbx+disp32], imm32
queue() { # queue INDEX BASE: a one-entry split queue at BASE (virtio-mmio registers via rbx)
  echo "$(reg 0x30 "$1") $(reg 0x38 8) $(reg 0x80 "$2") $(reg 0x84 0) $(reg 0x90 $(( $2 + 0x100 ))) $(reg 0x94 0)"
  echo "$(reg 0xa0 $(( $2 + 0x200 ))) $(reg 0xa4 0) $(reg 0x44 1)"
}
used_once() { echo "66 8b 04 25 $(le32 "$1") 66 83 f8 01 75 f2"; }  # spin until the used ring's idx at $1 is 1
negotiate() { echo "$(reg 0x70 1) $(reg 0x70 3) $(reg 0x24 1) $(reg 0x20 1) $(reg 0x70 11)"; }  # VERSION_1, FEATURES_OK
activation_guest() {
  local r=$((0x300000)) q=$((0x310000)) h=$((0x320000))
  # virtio-rng: one 16-byte device-writable buffer queued before DRIVER_OK.
  mem $r $((r + 0x1000)); mem $((r + 4)) 0; mem $((r + 8)) 16; mem $((r + 12)) 2
  mem $((r + 0x100)) $((1 << 16)); mem $((r + 0x104)) 0
  # virtio-vsock TX: a REQUEST from CID 3 port 1234 to host port 52, queued before DRIVER_OK.
  mem $q $h; mem $((q + 4)) 0; mem $((q + 8)) 44; mem $((q + 12)) 0
  mem $((q + 0x100)) $((1 << 16)); mem $((q + 0x104)) 0
  mem $h 3; mem $((h + 4)) 0; mem $((h + 8)) 2; mem $((h + 12)) 0; mem $((h + 16)) 1234; mem $((h + 20)) 52
  mem $((h + 24)) 0; mem $((h + 28)) $(( (1 << 16) | 1 )); mem $((h + 32)) 0; mem $((h + 36)) 65536; mem $((h + 40)) 0
  rbx 0xd0000000; negotiate; queue 0 $r; reg 0x70 15       # virtio-rng DRIVER_OK: served on the device thread
  used_once $((r + 0x202))                                  # ... once the device has used the buffer
  rbx 0xd0001000; negotiate; queue 1 $q; reg 0x70 15       # virtio-vsock DRIVER_OK: connects on the device thread
  used_once $((q + 0x202))
  reg 0x70 0                                                # virtio-vsock reset: closes on the device thread
  echo "b9 00 00 01 00 ff c9 75 fc"                         # a while (mov ecx, 1 << 16; dec; jnz) for the reset
  echo "66 ba f8 03 b0 6f ee b0 6b ee b0 0a ee"             # "ok\n" on COM1
  echo "66 ba 00 06 b0 34 ee f4 eb fd"                      # ACPI S5
}
used_count() { echo "66 8b 04 25 $(le32 "$1") 66 83 f8 $(printf '%02x' "$2") 75 f2"; }  # spin until the u16 at $1 is $2
blk_guest() {
  # virtio-blk at 0xd0001000 (after virtio-rng), one queue of 32 at q: table, avail +0x200, used +0x300.
  local q=$((0x400000)) h=$((0x410000)) s=$((0x411000)) t=$((0x412000)) d0=$((0x420000)) d1=$((0x421000)) n=0
  desc() { # desc ADDRESS LENGTH FLAGS NEXT: descriptor n (§2.7.5), then n + 1
    mem $((q + 16 * n)) "$1"; mem $((q + 16 * n + 8)) "$2"; mem $((q + 16 * n + 12)) $(( $3 | ($4 << 16) )); n=$((n + 1))
  }
  request() { # request TYPE SECTOR [DATA LENGTH FLAGS]: header, optional data, status (§5.2.6)
    local header=$((h + 0x20 * n))
    mem $header "$1"; mem $((header + 8)) "$2"
    desc $header 16 1 $((n + 1))
    if [ $# -gt 2 ]; then desc "$3" "$4" $(( $5 | 1 )) $((n + 1)); fi
    desc $((s + 0x10 * n)) 1 2 0
  }
  request 1 1 $d0 512 0       # 0: OUT sector 1 from zeros (pwrite64, then fdatasync: FLUSH not negotiated)
  request 0 0 $d1 512 2       # 3: IN sector 0 (pread64)
  mem $t 2; mem $((t + 8)) 2; request 11 0 $t 16 0                     # 6: DISCARD sectors 2-3 (fallocate)
  mem $((t + 16)) 4; mem $((t + 24)) 1; request 13 0 $((t + 16)) 16 0  # 9: WRITE_ZEROES sector 4 (fallocate)
  request 4 0                 # 12: FLUSH (fdatasync)
  request 1 6 $d1 512 0       # 14: OUT sector 6 from what the IN read
  rbx 0xd0001000
  echo "$(reg 0x70 1) $(reg 0x70 3) $(reg 0x24 1) $(reg 0x20 1) $(reg 0x24 0) $(reg 0x20 $(( (1 << 13) | (1 << 14) ))) $(reg 0x70 11)"
  echo "$(reg 0x30 0) $(reg 0x38 32) $(reg 0x80 $q) $(reg 0x90 $((q + 0x200))) $(reg 0xa0 $((q + 0x300))) $(reg 0x44 1)"
  mem $((q + 0x204)) $((3 << 16)); mem $((q + 0x208)) $(( 6 | (9 << 16) )); mem $((q + 0x20c)) 12
  mem $((q + 0x200)) $((5 << 16))                           # avail idx 5: the first five, before DRIVER_OK
  reg 0x70 15                                               # DRIVER_OK: activation serves them on the device thread
  used_count $((q + 0x302)) 5
  mem $((q + 0x20c)) $(( 12 | (14 << 16) )); mem $((q + 0x200)) $((6 << 16)); reg 0x50 0  # the sixth, by ioeventfd
  used_count $((q + 0x302)) 6
  echo "66 ba f8 03 b0 6f ee b0 6b ee b0 0a ee"             # "ok\n" on COM1
  echo "66 ba 00 06 b0 34 ee f4 eb fd"                      # ACPI S5
}
# shellcheck disable=SC2046
"$make_kernel" "$work/activate" $(activation_guest)
# shellcheck disable=SC2046
"$make_kernel" "$work/blk" $(blk_guest)
"$make_kernel" "$work/timer-then-s5" 66 ba 40 04 b0 7b ee 66 ba 00 06 b0 34 ee f4 eb fd
"$make_kernel" "$work/spin" eb fe

for mode in kill trap; do
  out=$("$vmm" --kernel "$work/timer-then-s5" --timeout 30 --report-memory --seccomp $mode 2>&1); status=$?
  if [ "$status" -eq 0 ] && grep -q "^boot-complete" <<<"$out" && grep -q "^vmm-rss-excluding-guest-kib: [0-9]" <<<"$out"; then
    pass "boot timer, --report-memory and S5 under the filters ($mode)"
  else fail "boot timer, --report-memory and S5 under the filters ($mode)" "status $status: $(tail -n 3 <<<"$out")"; fi
done

# The virtio-blk guest on an 8-sector disk whose sector k holds the byte k + 1.
for k in 1 2 3 4 5 6 7 8; do head -c 512 /dev/zero | tr '\0' "\\$(printf '%03o' $k)"; done > "$work/disk.img"
out=$("$vmm" --kernel "$work/blk" --timeout 30 --disk "$work/disk.img,rw,serial=seccomp" --seccomp trap 2>&1); status=$?
sectors=$(for k in 0 1 2 3 4 5 6 7; do od -An -tu1 -v -j $((k * 512)) -N 512 "$work/disk.img" | tr -s ' \n' '\n' | sed '/^$/d' | sort -u | tr '\n' ' '; echo -n '/'; done)
if [ "$status" -eq 0 ] && grep -q "^ok$" <<<"$out" && [ "$sectors" = "1 /0 /0 /0 /0 /6 /1 /8 /" ]; then
  pass "virtio-blk reads, writes, flushes, discards and zeroes (pread64, pwrite64, fdatasync, fallocate) under the devices filter"
else fail "virtio-blk I/O under the devices filter" "status $status, sectors $sectors: $(tail -n 3 <<<"$out")"; fi

# The activation guest: a host process listens at PATH_52 for the guest-initiated connection.
if command -v python3 >/dev/null 2>&1; then
  sock=$work/v.sock
  python3 - "$sock" > "$work/listener.out" 2>&1 <<'PY' &
import socket, sys
l = socket.socket(socket.AF_UNIX); l.bind(sys.argv[1] + "_52"); l.listen(1); l.settimeout(30)
c, _ = l.accept(); print("connected")
PY
  listener=$!
  for _ in $(seq 50); do [ -S "${sock}_52" ] && break; sleep 0.1; done
  out=$("$vmm" --kernel "$work/activate" --timeout 30 --vsock-socket "$sock" --seccomp trap 2>&1); status=$?
  wait $listener
  if [ "$status" -eq 0 ] && grep -q "^ok$" <<<"$out" && grep -q connected "$work/listener.out"; then
    pass "virtio activation and reset written by a vCPU (getrandom, socket, connect, close) run under the devices filter, none under the vcpu filter"
  else fail "virtio activation and reset written by a vCPU run under the devices filter" "status $status: $(tail -n 3 <<<"$out") / $(cat "$work/listener.out")"; fi

  # A host process at the vsock listener: accept, fcntl, recv, close on the device thread;
  # SIGUSR1's state dump on the signal watcher; SIGTERM and teardown on the main thread.
  "$vmm" --kernel "$work/spin" --timeout 30 --vsock-socket "$sock" --seccomp trap > /dev/null 2> "$work/spin.err" &
  pid=$!
  for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
  python3 - "$sock" <<'PY'
import socket, sys, time
for line in (b"CONNECT 52\n", b"garbage\n"):  # no guest driver: both end with the VMM closing them
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    try: s.sendall(line)
    except OSError: pass
    time.sleep(0.3)
PY
  kill -USR1 $pid; sleep 0.3; kill -TERM $pid
  wait $pid; status=$?
  if [ "$status" -eq 0 ] && grep -q "state on SIGUSR1" "$work/spin.err" && ! grep -q "forbidden syscall" "$work/spin.err"; then
    pass "vsock host connections, SIGUSR1 and SIGTERM under the devices and main filters"
  else fail "vsock host connections, SIGUSR1 and SIGTERM under the devices and main filters" "status $status: $(tail -n 3 "$work/spin.err")"; fi
else
  fail "vsock checks" "python3 is needed for the host side of vsock"
fi
finish
