#!/usr/bin/env bash
# Host checks of momin-jailer against the real kernel (docs/jailer.md): one line per check,
# "PASS jailer: NAME" or "FAIL jailer: NAME: details"; exits non-zero if any failed.
#
#   Tests/cli/jailer.sh PATH/TO/momin-jailer
#
# Needs root (namespaces, mounts, mknod, setresuid). The jailed program is a statically linked
# busybox, bound alone into the jail: Debian's busybox-static installs one at /bin/busybox
# (MOMIN_BUSYBOX overrides). Uses uid:gid 61234 (MOMIN_JAIL_ID overrides), which should own
# nothing on the host.
prefix=jailer
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 29
jailer=${1:?usage: jailer.sh PATH/TO/momin-jailer}
busybox=${MOMIN_BUSYBOX:-/bin/busybox}
id=${MOMIN_JAIL_ID:-61234}

if [ "$(id -u)" -ne 0 ]; then fail "setup" "must run as root"; finish; fi
if [ ! -x "$jailer" ]; then fail "setup" "$jailer is not executable"; finish; fi
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  fail "setup" "$busybox is missing or not static (apt-get install busybox-static)"; finish
fi
chmod 0755 "$work"
root=$work/root
mkdir "$root"

# jail [JAILER-OPTIONS...] -- PROGRAM ARGS: the jailer with a fixed id, root, uid, gid and the
# busybox bind; stdout in $out, stderr in $err, exit status in $status.
jail() {
  out=$("$jailer" --id jailtest --root "$root" --uid "$id" --gid "$id" --bind "$busybox:/bin/busybox" "$@" 2>"$work/err")
  status=$? err=$(cat "$work/err")
}
bb() { jail -- /bin/busybox "$@"; }

# What the jailed process is: ids, capabilities, no_new_privs.
bb cat /proc/self/status
caps=$(grep -E '^Cap(Eff|Prm|Bnd|Amb|Inh):' <<<"$out" | awk '$2 != "0000000000000000"')
check "runs as uid and gid $id" $([ "$(grep -E '^(Uid|Gid):' <<<"$out" | awk '{print $2$3$4$5}' | sort -u)" = "$id$id$id$id" ] && echo 0 || echo 1) \
  "status $status, $(grep -E '^(Uid|Gid|Groups):' <<<"$out" | tr '\t\n' ' ;') $err"
check "no supplementary groups" $(grep -qE '^Groups:\s*$' <<<"$out"; echo $?) "$(grep '^Groups' <<<"$out")"
check "every capability set empty (CapInh, CapPrm, CapEff, CapBnd, CapAmb)" \
  $([ "$(grep -cE '^Cap(Eff|Prm|Bnd|Amb|Inh):' <<<"$out")" -eq 5 ] && [ -z "$caps" ] && echo 0 || echo 1) "status $status: $caps $err"
check "no_new_privs is set" $(grep -qE '^NoNewPrivs:\s*1$' <<<"$out"; echo $?) "$(grep NoNewPrivs <<<"$out") $err"

# What the jail holds: only the bound binary and its own /proc.
bb ls -A /
check "/ holds only what was bound (bin, proc)" $([ "$(tr '\n' ' ' <<<"$out")" = "bin proc " ] && echo 0 || echo 1) \
  "status $status, ls -A /: $(tr '\n' ' ' <<<"$out") $err"
bb ls -A /bin
check "/bin holds only busybox" $([ "$out" = busybox ] && echo 0 || echo 1) "ls -A /bin: $(tr '\n' ' ' <<<"$out") $err"
bb sh -c 'echo $$; /bin/busybox ls /proc | /bin/busybox grep -E "^[0-9]+$" | /bin/busybox wc -l'
check "it is PID 1 of its own PID namespace" $([ "$(head -n1 <<<"$out")" = 1 ] && echo 0 || echo 1) "status $status, \$\$ = $(head -n1 <<<"$out") $err"
bb hostname
check "hostname is the id" $([ "$out" = jailtest ] && echo 0 || echo 1) "status $status, hostname: $out $err"
bb cat /proc/self/net/dev
check "a network namespace of its own (only lo)" \
  $([ "$(tail -n +3 <<<"$out" | awk -F: '{gsub(/ /, "", $1); print $1}' | tr '\n' ' ')" = "lo " ] && echo 0 || echo 1) \
  "status $status: $(tr '\n' ' ' <<<"$out") $err"

# What it inherits: no fds beyond 0-2, no environment but --env.
out=$(FOO=bar "$jailer" --id jailtest --root "$root" --uid "$id" --gid "$id" --bind "$busybox:/bin/busybox" \
      -- /bin/busybox ls /proc/self/fd 7<"$busybox" 2>&1); status=$?
check "an fd the caller opened (7) is not open inside" \
  $([ "$status" -eq 0 ] && [ "$(tr '\n' ' ' <<<"$out")" = "0 1 2 3 " ] && echo 0 || echo 1) \
  "status $status, open fds (3 is ls's own): $(tr '\n' ' ' <<<"$out")"
out=$(FOO=bar "$jailer" --id jailtest --root "$root" --uid "$id" --gid "$id" --bind "$busybox:/bin/busybox" \
      -- /bin/busybox cat /proc/self/environ 2>&1 | tr '\0' '\n'); status=$?
check "the environment is empty" $([ "$status" -eq 0 ] && [ -z "$out" ] && echo 0 || echo 1) "status $status, environ: $out"
out=$(FOO=bar "$jailer" --id jailtest --root "$root" --uid "$id" --gid "$id" --bind "$busybox:/bin/busybox" \
      --env A=1 --env B=two -- /bin/busybox cat /proc/self/environ 2>&1 | tr '\0' ' '); status=$?
check "--env is all the program gets" $([ "$status" -eq 0 ] && [ "$out" = "A=1 B=two " ] && echo 0 || echo 1) \
  "status $status, environ: $out"

# Limits.
jail --rlimit nofile=64,fsize=1048576,nproc=50,core=0 -- /bin/busybox cat /proc/self/limits
check "--rlimit shows in /proc/self/limits (nofile, fsize, nproc, core)" \
  $(grep -qE '^Max open files +64 +64 ' <<<"$out" && grep -qE '^Max file size +1048576 +1048576 ' <<<"$out" \
    && grep -qE '^Max processes +50 +50 ' <<<"$out" && grep -qE '^Max core file size +0 +0 ' <<<"$out"; echo $?) \
  "status $status: $(grep -E 'open files|file size|processes|core' <<<"$out" | tr -s ' ' | tr '\n' ';') $err"

# Binds: read-only by default, rw when asked, a missing source refused before anything runs.
mkdir "$work/data" && chown "$id:$id" "$work/data"
jail --bind "$work/data:/data" -- /bin/busybox sh -c 'echo x > /data/f'
check "a write to a read-only bind fails" $([ "$status" -ne 0 ] && [ ! -e "$work/data/f" ] \
  && grep -q "Read-only file system" <<<"$err" && echo 0 || echo 1) "status $status: $err"
jail --bind "$work/data:/data:rw" -- /bin/busybox sh -c 'echo x > /data/f'
check "a write to an rw bind lands on the host" $([ "$status" -eq 0 ] && [ "$(cat "$work/data/f" 2>/dev/null)" = x ] \
  && echo 0 || echo 1) "status $status: $err"
jail --bind /nonexistent/src:/src -- /bin/busybox true
check "a missing --bind source fails before exec, status 125" $([ "$status" -eq 125 ] && \
  [ "$err" = "momin-jailer: --bind /nonexistent/src:/src: source /nonexistent/src does not exist" ] && echo 0 || echo 1) \
  "status $status: $err"
out=$("$jailer" --id jailtest --root "$root" --uid 0 --gid "$id" -- /bin/busybox true 2>&1); status=$?
check "uid 0 is refused, status 125" $([ "$status" -eq 125 ] && \
  [ "$out" = "momin-jailer: --uid 0 is refused: the jailed program must not run as root" ] && echo 0 || echo 1) "status $status: $out"
jail -- /bin/nope
check "a program missing inside the jail: status 127, named" $([ "$status" -eq 127 ] && \
  [ "$err" = "momin-jailer: exec /bin/nope: No such file or directory" ] && echo 0 || echo 1) "status $status: $err"

# A step that fails is named, with errno's text, and nothing runs: the jailer without
# CAP_SYS_ADMIN cannot unshare; without CAP_SYS_RESOURCE it cannot raise a hard limit.
if command -v capsh >/dev/null; then
  out=$(capsh --drop=cap_sys_admin -- -c "exec '$jailer' --id jailtest --root '$root' --uid $id --gid $id \
        --bind '$busybox:/bin/busybox' -- /bin/busybox echo ran" 2>&1); status=$?
  check "without CAP_SYS_ADMIN: unshare fails, named, status 125" $([ "$status" -eq 125 ] && \
    [ "$out" = "momin-jailer: unshare namespaces (mount, pid, ipc, uts, net): Operation not permitted" ] && echo 0 || echo 1) \
    "status $status: $out"
  over=$(( $(ulimit -Hn) + 1 ))
  out=$(capsh --drop=cap_sys_resource -- -c "exec '$jailer' --id jailtest --root '$root' --uid $id --gid $id \
        --bind '$busybox:/bin/busybox' --rlimit nofile=$over -- /bin/busybox echo ran" 2>&1); status=$?
  check "a hard limit above the caller's, without CAP_SYS_RESOURCE: setrlimit fails, named, status 125" \
    $([ "$status" -eq 125 ] && [ "$out" = "momin-jailer: setrlimit RLIMIT_NOFILE to $over: Operation not permitted" ] \
      && echo 0 || echo 1) "status $status: $out"
else
  fail "failing steps are named" "capsh not found (Debian: libcap2-bin)"
fi

# A device node: recreated with the host's major:minor, owned by the jail's ids, mode 0660.
device=/dev/null
[ -c /dev/kvm ] && device=/dev/kvm
jail --device "$device" -- /bin/busybox ls -ln "$device"
read -r major minor < <(stat -c '%t %T' "$device")
want_rdev="$((16#$major)), $((16#$minor))"
check "--device $device: a node with the host's numbers, $id:$id, crw-rw----" \
  $(awk -v id="$id" -v rdev="$want_rdev" '$1 == "crw-rw----" && $3 == id && $4 == id && ($5" "$6) == rdev { ok = 1 } END { exit !ok }' \
    <<<"$out"; echo $?) "status $status: $out (want $want_rdev) $err"

# Exit status and signals pass through.
bb sh -c 'exit 3'
check "the program's exit status (3) passes through" $([ "$status" -eq 3 ] && echo 0 || echo 1) "status $status: $err"
children() { cat "/proc/$1/task/$1/children" 2>/dev/null; }
wait_child() { # wait_child PID: prints the jailer's child (the jailed program) once it runs busybox
  local c i
  for i in $(seq 100); do
    c=$(children "$1" | awk '{print $1}')
    if [ -n "$c" ] && [ "$(readlink "/proc/$c/exe" 2>/dev/null)" = /bin/busybox ]; then echo "$c"; return; fi
    sleep 0.05
  done
}
"$jailer" --id jailtest --root "$root" --uid "$id" --gid "$id" --bind "$busybox:/bin/busybox" -- /bin/busybox sleep 30 &
pid=$!; child=$(wait_child "$pid")
[ -n "$child" ] && kill -KILL "$child"
{ wait "$pid"; status=$?; } 2>/dev/null
check "a death by signal (SIGKILL) passes through as 137" $([ -n "$child" ] && [ "$status" -eq 137 ] && echo 0 || echo 1) \
  "child '$child', status $status"
"$jailer" --id jailtest --root "$root" --uid "$id" --gid "$id" --bind "$busybox:/bin/busybox" \
  -- /bin/busybox sh -c 'trap "exit 7" TERM; while :; do /bin/busybox sleep 0.05; done' &
pid=$!; child=$(wait_child "$pid"); sleep 0.3
kill -TERM "$pid"
wait "$pid"; status=$?
check "SIGTERM to the jailer reaches the program (its trap exits 7)" $([ "$status" -eq 7 ] && echo 0 || echo 1) "status $status"
{
  "$jailer" --id jailtest --root "$root" --uid "$id" --gid "$id" --bind "$busybox:/bin/busybox" -- /bin/busybox sleep 30 &
  pid=$!; child=$(wait_child "$pid")
  kill -KILL "$pid"; wait "$pid"
} 2>/dev/null
for i in $(seq 40); do [ -n "$child" ] && [ -e "/proc/$child" ] && sleep 0.05; done
check "the program dies with a killed jailer (parent-death signal)" $([ -n "$child" ] && [ ! -e "/proc/$child" ] && echo 0 || echo 1) \
  "child '$child' still there: $(cat "/proc/$child/comm" 2>/dev/null)"

# The launcher's liveness descriptor (--liveness-fd): the jailer keeps it (the one fd above 2),
# the program does not get it, and when the launcher is gone (here the writer of a FIFO,
# killed) the jailer passes SIGTERM to the program, whose trap exits 7 (issue 12: a momin run
# killed with SIGKILL left its VMM running).
mkfifo "$work/live"
sleep 600 > "$work/live" & holder=$!
"$jailer" --id jailtest --root "$root" --uid "$id" --gid "$id" --bind "$busybox:/bin/busybox" --liveness-fd 3 \
  -- /bin/busybox sh -c 'ls /proc/self/fd > /tmp/fds 2>&1; trap "exit 7" TERM; while :; do /bin/busybox sleep 0.05; done' \
  3< "$work/live" 2> "$work/live.err" &
pid=$!; child=$(wait_child "$pid"); sleep 0.3
jailer_fds=$(ls "/proc/$pid/fd" 2>/dev/null | tr '\n' ' ')
child_fds=$(ls "/proc/$child/fd" 2>/dev/null | tr '\n' ' ')
kill -KILL "$holder"; wait "$holder" 2>/dev/null
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
wait "$pid"; status=$?
check "a jailer whose launcher is gone (its liveness pipe hung up) stops the program with SIGTERM (trap exits 7)" \
  $([ "$status" -eq 7 ] && grep -q "the launcher is gone" "$work/live.err" && echo 0 || echo 1) \
  "status $status: $(cat "$work/live.err")"
check "the jailer keeps the liveness fd (3) and the program does not get it" \
  $(grep -qw 3 <<<"$jailer_fds" && [ -n "$child" ] && [ "$child_fds" = "0 1 2 " ] && echo 0 || echo 1) \
  "jailer fds: $jailer_fds; program fds: $child_fds"

# Nothing stays behind on the host.
left=$(findmnt -rn -o TARGET | grep -F "$work" || true)
check "no jail mounts are left on the host" $([ -z "$left" ] && echo 0 || echo 1) "$left"
check "the jail's root directory is still empty on the host" $([ -z "$(ls -A "$root")" ] && echo 0 || echo 1) "$(ls -A "$root")"

finish
