import Glibc

/// The classes of threads in momin-vmm, each with its own filter (docs/seccomp.md).
public enum SeccompThreadClass: String, CaseIterable, Equatable, Sendable {
    /// Set-up, then waiting for the stop, tearing down and exiting; also the signal watcher.
    case main
    /// The device event loop: ioeventfds, irqfds, vsock's Unix sockets, virtio-rng, virtio-blk's
    /// disk I/O, and virtio devices' activation and reset.
    case devices
    /// One per vCPU: KVM_RUN and the exits it handles (port I/O, MMIO register accesses).
    case vcpu
}

/// A disk descriptor as the device thread's filter sees it (`SeccompProfile.deviceLoop(disks:fallocateModes:)`).
public struct DiskDescriptor: Equatable, Sendable {
    public var fd: Int32
    public var writable: Bool

    public init(fd: Int32, writable: Bool) {
        self.fd = fd
        self.writable = writable
    }
}

/// What one thread class may call: data, one line of reason per syscall. `filter(_:)` turns a
/// profile into a `SyscallFilter`. The lists are as small as the code on each thread allows;
/// docs/seccomp.md says which parts a real boot has confirmed.
public struct SeccompProfile: Equatable, Sendable {
    public let threadClass: SeccompThreadClass
    public var rules: [SyscallRule]

    public init(_ threadClass: SeccompThreadClass, rules: [SyscallRule]) {
        self.threadClass = threadClass
        self.rules = rules
    }

    public func filter(_ action: SyscallFilter.Action) -> SyscallFilter {
        SyscallFilter(defaultAction: action, rules: rules)
    }

    /// Every syscall the profile lets run, once each, in order.
    public var syscalls: [String] {
        var seen = Set<String>()
        return rules.filter(\.allows).map(\.syscall).filter { seen.insert($0).inserted }
    }

    // MARK: - The profiles

    /// The main thread after it has started the others: waits on the stop controller, kicks
    /// and joins the vCPU and device threads, closes the VM's descriptors, removes the vsock
    /// socket file, reports on stderr and exits. The signal watcher thread runs under it too.
    public static let main = SeccompProfile(.main, rules: runtime + [
        SyscallRule("close", reason: "closing the VM's descriptors and vsock sockets at shutdown"),
        SyscallRule("unlink", reason: "removing the vsock listener's socket file at shutdown"),
        SyscallRule("rt_sigtimedwait", reason: "the signal watcher's sigwait for SIGTERM/SIGINT/SIGHUP/SIGUSR1"),
    ])

    /// The device event loop: poll over eventfds and vsock's Unix sockets, with timers; and a
    /// virtio device's activation (a status write of DRIVER_OK, handed over by the vCPU that
    /// made it) serving requests already queued, and its reset closing vsock's host sockets.
    public static let deviceLoop = SeccompProfile(.devices, rules: runtime + [
        SyscallRule("poll", reason: "the event loop's wait (glibc's poll(2) on x86-64)"),
        SyscallRule("read", reason: "draining ioeventfds and the loop's wake eventfd"),
        SyscallRule("getrandom", reason: "virtio-rng: arc4random_buf keys itself from getrandom(2)"),
    ] + vsockSockets + [
        SyscallRule("accept", reason: "vsock: a host process connecting to the listener (glibc 2.36: accept, not accept4)"),
        SyscallRule("fcntl", .argument(1, oneOf: [UInt64(F_GETFL), UInt64(F_SETFL), UInt64(F_SETFD)]),
                    reason: "vsock: making an accepted socket non-blocking and close-on-exec"),
    ])

    /// The device loop when the machine has disks: virtio-blk's I/O runs on this thread, on
    /// the descriptors the VMM opened before its filters went on. Reads on every disk; writes,
    /// fdatasync and fallocate (in `fallocateModes` only) on the writable ones. No other
    /// descriptor can be read or written with these calls.
    public static func deviceLoop(disks: [DiskDescriptor], fallocateModes: [Int32]) -> SeccompProfile {
        var profile = deviceLoop
        let all = disks.map { UInt64($0.fd) }
        let writable = disks.filter(\.writable).map { UInt64($0.fd) }
        if !all.isEmpty {
            profile.rules.append(SyscallRule("preadv", .argument(0, oneOf: all), reason: "virtio-blk: reading a disk (IN), all of a request's segments at once"))
        }
        if !writable.isEmpty {
            profile.rules += [
                SyscallRule("pwrite64", .argument(0, oneOf: writable),
                            reason: "virtio-blk: writing a writable disk (OUT; WRITE_ZEROES where fallocate cannot)"),
                SyscallRule("fdatasync", .argument(0, oneOf: writable),
                            reason: "virtio-blk: FLUSH, and every write when the driver did not negotiate FLUSH"),
                SyscallRule("fallocate", .argument(0, oneOf: writable), .argument(1, oneOf: fallocateModes.map { UInt64(UInt32(bitPattern: $0)) }),
                            reason: "virtio-blk: DISCARD and WRITE_ZEROES (punch hole or zero range, keeping the size)"),
            ]
        }
        return profile
    }

    /// A vCPU thread. `kvmRequests` are the ioctl requests its loop makes on its vCPU fd
    /// (KVM_RUN; the VMM passes them from the KVM module, which alone includes <linux/kvm.h>).
    /// `readsOwnMemoryUse` adds what `--report-memory` needs: at boot-complete the vCPU that
    /// saw it reads /proc/self/smaps (read-only opens; the path cannot be checked by seccomp).
    public static func vcpu(kvmRequests: [UInt64], readsOwnMemoryUse: Bool = false) -> SeccompProfile {
        var rules = (readsOwnMemoryUse ? runtimeCalls : runtime) + [
            SyscallRule("ioctl", .argument(1, oneOf: kvmRequests), reason: "KVM_RUN on its own vCPU fd, nothing else"),
            // No device work: a status write that activates or resets a virtio device hands it
            // to the device thread (VirtioMMIOTransport's deviceWork), so no socket, connect,
            // close or getrandom here.
        ]
        if readsOwnMemoryUse {
            rules += [
                SyscallRule("openat", .argument(2, equals: UInt64(O_RDONLY)),
                            reason: "--report-memory: fopen(\"/proc/self/smaps\", \"r\") at boot-complete"),
                SyscallRule("newfstatat", reason: "--report-memory: stdio sizing its buffer"),
                SyscallRule("fstat", reason: "--report-memory: stdio sizing its buffer (older glibc)"),
                SyscallRule("read", reason: "--report-memory: reading /proc/self/smaps"),
                SyscallRule("lseek", reason: "--report-memory: stdio on fclose"),
                SyscallRule("close", reason: "--report-memory: fclose of /proc/self/smaps"),
            ]
        }
        return SeccompProfile(.vcpu, rules: rules)
    }

    // MARK: - Shared parts

    /// What every thread needs from the Swift runtime, glibc and the way threads stop, and the
    /// file probes glibc makes on its own, which fail without running.
    public static let runtime: [SyscallRule] = runtimeCalls + [
        // glibc reads system facts through __open_nocancel (/sys/devices/system/cpu/online and
        // the like); seen on the device thread under load in the rig. Nothing of the kind is in
        // the jail, so it would fail anyway: it fails here without opening anything.
        SyscallRule("openat", failingWith: ENOENT, reason: "glibc probing /sys and /proc for system facts: ENOENT, as in the jail"),
    ]

    static let runtimeCalls: [SyscallRule] = [
        SyscallRule("futex", reason: "mutexes, condition variables, pthread_join, swift_once"),
        SyscallRule("mmap", .argument(2, masked: UInt64(PROT_EXEC), equals: 0),
                    reason: "malloc's arenas and large blocks; never executable"),
        SyscallRule("mprotect", .argument(2, masked: UInt64(PROT_EXEC), equals: 0),
                    reason: "malloc growing a thread arena; never executable"),
        SyscallRule("munmap", reason: "free() of large blocks; kvm_run and guest RAM at teardown"),
        SyscallRule("mremap", reason: "realloc() of large blocks"),
        SyscallRule("madvise", reason: "malloc trimming; glibc discarding a finished thread's stack"),
        SyscallRule("brk", reason: "malloc's main arena"),
        SyscallRule("write", reason: "stderr reports and fatal-error text, the serial console on stdout, eventfd signals"),
        SyscallRule("rt_sigprocmask", reason: "glibc masks signals in pthread_kill, thread exit and abort"),
        SyscallRule("rt_sigreturn", reason: "returning from the vCPU kick handler (SIGUSR2)"),
        SyscallRule("restart_syscall", reason: "the kernel resuming a timed wait after a signal"),
        SyscallRule("sched_yield", reason: "spin-then-yield locks in the Swift runtime"),
        SyscallRule("clock_gettime", reason: "CLOCK_MONOTONIC deadlines when the vDSO is not used"),
        SyscallRule("getpid", reason: "pthread_kill's tgkill (kicking a vCPU), abort()"),
        SyscallRule("gettid", reason: "glibc and the Swift runtime asking for the thread id"),
        SyscallRule("tgkill", reason: "pthread_kill: kicking a vCPU out of KVM_RUN; abort() raising SIGABRT"),
        SyscallRule("exit", reason: "a thread returning"),
        SyscallRule("exit_group", reason: "the process exiting (exit, _exit, the trap handler)"),
    ]

    /// vsock's host side (Firecracker's Unix-socket convention): guest-initiated connections
    /// to `PATH_PORT`, and traffic on every connection.
    static let vsockSockets: [SyscallRule] = [
        SyscallRule("socket", .argument(0, equals: UInt64(AF_UNIX)), reason: "vsock: a Unix socket for a guest-initiated connection"),
        SyscallRule("connect", reason: "vsock: connecting to PATH_PORT for the guest"),
        SyscallRule("recvfrom", reason: "vsock: recv(2) from a host socket"),
        SyscallRule("sendto", reason: "vsock: send(2) with MSG_NOSIGNAL to a host socket"),
        SyscallRule("shutdown", reason: "vsock: the guest shut down its sending side"),
        SyscallRule("close", reason: "vsock: a connection ending"),
    ]
}
