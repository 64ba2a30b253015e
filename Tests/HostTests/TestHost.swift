import Foundation
import Glibc
import Host
import Ledger
import MachineConfig
import POSIX
import Synchronization

/// A host in a temp directory, for the Host library's tests: its runtime and registry
/// directories, a fake /proc and /sys (4 CPUs, 8 GiB, no GPUs) for the ledger's pool, and a
/// fake momin-vmm.
///
/// The fake momin-vmm is a shell script. Run with `--preflight`, it answers what
/// `preflight(status:line:)` set (exit 0 by default). Otherwise it writes its arguments to
/// `args.PID`, then stays up until SIGTERM, which it obeys at once (exit 0): its command line
/// is a VMM's (the script's own path first, then the arguments it was given), which is how the
/// registry knows a running VM.
final class TestHost: @unchecked Sendable {
    let root: String
    var environment: HostEnvironment
    private let said = Said()

    /// What the host said, kept across threads.
    final class Said: Sendable {
        let lines = Mutex<[String]>([])
    }

    init() throws {
        var template = Array("/tmp/momin-host-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp") }
        root = String(cString: made)
        for directory in ["bin", "runtime", "vms", "fake/sys/devices/system/cpu", "fake/proc"] {
            try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
        }
        try "0-3\n".write(toFile: root + "/fake/sys/devices/system/cpu/online", atomically: true, encoding: .utf8)
        try "MemTotal:        8388608 kB\n".write(toFile: root + "/fake/proc/meminfo", atomically: true, encoding: .utf8)
        // Written through a close-on-exec descriptor: a fake VMM another test spawns meanwhile
        // must not inherit it open for writing, or this script's exec fails with ETXTBSY.
        let vmm = root + "/bin/momin-vmm"
        let fd = open(vmm, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o755)
        guard fd >= 0 else { throw SystemError("open", subject: vmm) }
        defer { close(fd) }
        try FileIO.writeAll(fd, Array(Self.script(fakeDirectory: root + "/fake").utf8))
        environment = HostEnvironment(runtimeDirectory: root + "/runtime", registryDirectory: root + "/vms", momin: nil,
                                      vmm: vmm, jailer: root + "/bin/momin-jailer", seccomp: .kill, reserveCPUs: 0, reserveMiB: 256)
        environment.inventoryRoot = root + "/fake"
        let said = self.said
        environment.warn = { text in said.lines.withLock { $0.append(text) } }
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// What the host said on the side (`HostEnvironment.warn`), in order.
    var warnings: [String] { said.lines.withLock { $0 } }

    var registry: VMRegistry { VMRegistry(root: environment.registryDirectory) }

    /// The ledger as its file holds it, without the reaping of dead VMMs a store's read does.
    func ledgerOnDisk() throws -> ResourceLedger {
        let store = try HostResources(environment).store()
        return try ResourceLedger.decode(try FileIO.readFile(store.path, limit: 1 << 20))
    }

    /// What the fake momin-vmm answers to `--preflight` from now on.
    func preflight(status: Int32, line: String) throws {
        try "\(status)\n".write(toFile: root + "/fake/preflight-status", atomically: true, encoding: .utf8)
        try line.write(toFile: root + "/fake/preflight-line", atomically: true, encoding: .utf8)
    }

    /// Waits until the fake momin-vmm with pid `pid` is up (it looks like a VMM and takes
    /// SIGTERM), and returns its arguments; nil if it did not come up in 10 s.
    func waitForVMM(_ pid: pid_t) -> [String]? {
        _ = eventually { vmmArguments(pid) != nil }
        return vmmArguments(pid)
    }

    /// The arguments the fake momin-vmm with pid `pid` was started with.
    func vmmArguments(_ pid: pid_t) -> [String]? {
        guard let text = try? String(contentsOfFile: root + "/fake/args.\(pid)", encoding: .utf8) else { return nil }
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    static func script(fakeDirectory fake: String) -> String {
        """
        #!/bin/bash
        case " $* " in
          *" --preflight "*)
            if [ -f \(fake)/preflight-status ]; then
              cat \(fake)/preflight-line >&2
              exit "$(cat \(fake)/preflight-status)"
            fi
            exit 0 ;;
        esac
        # The VMM's command line first, then its trap, then the arguments it got: once
        # args.PID exists (renamed into place whole: a reader never sees half of it), it looks
        # like a VMM and stops cleanly on SIGTERM.
        # Given a liveness descriptor, it stops (as on SIGTERM) once the other end hangs up.
        exec -a "$0" /bin/bash -c 'trap "kill \\$child 2>/dev/null; exit 0" TERM
          case " $* " in *" --liveness-fd 3 "*) { cat <&3 > /dev/null; kill -TERM $$; } & ;; esac
          printf "%s\\n" "$@" > \(fake)/args.$$.partial && mv \(fake)/args.$$.partial \(fake)/args.$$
          sleep 1000 & child=$!; wait $child' "$0" "$@"
        """
    }
}

/// A machine whose files need not exist: the fake momin-vmm opens nothing.
func testMachine(vcpus: Int = 1, memoryMiB: UInt64 = 256) -> MachineConfiguration {
    MachineConfiguration(kernelPath: "/nonexistent/vmlinuz", initrdPath: "/nonexistent/initrd", vcpus: vcpus, memoryMiB: memoryMiB)
}

/// Waits up to `seconds` for `condition`.
func eventually(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = MonotonicClock.deadline(after: seconds)
    while !condition() {
        if MonotonicClock.nanoseconds() > deadline { return false }
        usleep(10_000)
    }
    return true
}
