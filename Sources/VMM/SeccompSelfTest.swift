import CLinux
import Glibc
import KVM
import MachineConfig
import POSIX
import Seccomp

/// `momin-vmm --seccomp-check CLASS CALL [--seccomp MODE]`: installs CLASS's real filter on a
/// fresh thread, which then makes one syscall from a fixed menu. If the thread survives, this
/// prints "... survived ..." and exits 0; if the filter forbids the call, the process dies of
/// SIGSYS (a shell sees 159), or in trap mode prints the trap line and exits 159. Hidden: for
/// Tests/cli/seccomp.sh, which proves each class's list with the filters momin-vmm really uses.
public enum SeccompSelfTest {
    /// The menu: each makes one syscall (the name says which and with what).
    public static let calls = ["getpid", "openat", "socket-inet", "socket-unix", "getrandom", "ioctl-kvm-run", "ioctl-tcgets", "execve"]

    /// Runs the check if `arguments` ask for one; nil if they do not.
    public static func runIfAsked(_ arguments: [String]) -> Int32? {
        guard arguments.first == "--seccomp-check" else { return nil }
        let usage = "usage: momin-vmm --seccomp-check \(SeccompThreadClass.allCases.map(\.rawValue).joined(separator: "|")) "
            + "\(calls.joined(separator: "|")) [--seccomp kill|trap|log]"
        var mode = SeccompMode.kill
        if arguments.count == 5, arguments[3] == "--seccomp", let m = SeccompMode(rawValue: arguments[4]), m != .off {
            mode = m
        } else if arguments.count != 3 {
            return refuse(usage)
        }
        guard let threadClass = SeccompThreadClass(rawValue: arguments[1]) else { return refuse("unknown thread class \(arguments[1]); \(usage)") }
        let call = arguments[2]
        guard calls.contains(call) else { return refuse("unknown call \(call); \(usage)") }

        let filter: ThreadFilter?
        do { filter = try Confinement(mode: mode).prepare(threadClass) } catch {
            VMMProcess.report("momin-vmm: error: \(error)")
            return 1
        }
        if mode == .trap { SeccompTrap.installHandler(prefix: "momin-vmm: seccomp: thread ") }
        // Made before the filter: a harmless descriptor for the ioctls, execve's argument vector.
        let event: EventFD
        do { event = try EventFD() } catch { return refuse("eventfd: \(error)") }
        let harmless = event.pollDescriptor
        let outcome = Outcome()
        do {
            let thread = try POSIXThread.vmm("seccomp-check") {
                do throws(SeccompError) { try filter?.install() } catch {
                    outcome.set(-1, 0, "cannot install: \(error)")
                    return
                }
                let result = perform(call, fd: harmless)
                outcome.set(result, result < 0 ? errno : 0, nil)
            }
            thread.join()
            withExtendedLifetime(event) {}
        } catch {
            VMMProcess.report("momin-vmm: error: \(error)")
            return 1
        }
        if let failure = outcome.failure {
            VMMProcess.report("momin-vmm: error: seccomp-check: \(failure)")
            return 1
        }
        VMMProcess.report("momin-vmm: seccomp-check: thread \(threadClass.rawValue) survived \(call) "
                          + "(returned \(outcome.result), errno \(outcome.errno))")
        return 0
    }

    private static func perform(_ call: String, fd: Int32) -> Int {
        switch call {
        case "getpid": return Int(getpid())
        case "openat": return Int(open("/etc/passwd", O_RDONLY | O_CLOEXEC))
        case "socket-inet": return Int(socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        case "socket-unix": return Int(socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        case "getrandom":
            var bytes = [UInt8](repeating: 0, count: 16)
            return bytes.withUnsafeMutableBytes { clinux_getrandom($0.baseAddress, UInt($0.count)) }
        // On an eventfd both fail with ENOTTY; only the filter decides whether the thread lives.
        case "ioctl-kvm-run": return Int(ioctl(fd, UInt(KVMRequests.vcpuThread[0])))
        case "ioctl-tcgets": return Int(ioctl(fd, UInt(TCGETS)))
        case "execve":
            var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
            return Int(execv("/bin/true", &argv))
        default: return -1
        }
    }

    private static func refuse(_ message: String) -> Int32 {
        VMMProcess.report("momin-vmm: error: \(message)")
        return 2
    }

    /// What the checking thread saw, handed to the main thread (read after the join).
    private final class Outcome: @unchecked Sendable {
        private(set) var result = 0
        private(set) var errno: Int32 = 0
        private(set) var failure: String?
        func set(_ result: Int, _ errno: Int32, _ failure: String?) {
            self.result = result
            self.errno = errno
            self.failure = failure
        }
    }
}
