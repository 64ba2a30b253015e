import CLinux
import Glibc

/// The jailer's parent half. It stays outside the new PID namespace, forwards SIGTERM, SIGINT,
/// SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the jailed program (momin-vmm logs its devices' state
/// on SIGUSR1; a signal the jailer did not forward would end it, and the program with it), and, when the program ends, ends the same way:
/// the same exit status, or death by the same signal.
///
/// The program is PID 1 of its namespace, so the kernel delivers it only the signals it
/// handles or blocks (pid_namespaces(7)); SIGKILL from here always works.
enum Supervisor {
    static let forwarded: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    /// Blocks the forwarded signals and SIGCHLD before fork, so none arrives unseen: the
    /// parent takes them with sigwaitinfo(2). SIGCHLD gets its default action back, in case the
    /// caller ignored it (then children would be reaped by the kernel and the status lost).
    static func blockSignals() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = nil
        sigemptyset(&action.sa_mask)
        sigaction(SIGCHLD, &action, nil)
        var set = watched()
        sigprocmask(SIG_BLOCK, &set, nil)
    }

    /// For the child, right before execve: every signal back to its default action (an
    /// ignored one survives execve otherwise) and nothing blocked.
    static func resetSignals() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = nil
        sigemptyset(&action.sa_mask)
        for signal in 1..<Int32(NSIG) where signal != SIGKILL && signal != SIGSTOP {
            sigaction(signal, &action, nil)
        }
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
    }

    static func watched() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in forwarded + [SIGCHLD, SIGIO] { sigaddset(&set, s) }
        return set
    }

    /// Waits for `child`, forwarding signals, then exits as it did. When `launcher` (the
    /// liveness pipe) hangs up, the launcher is gone: the child gets SIGTERM, once, as the
    /// launcher would have sent it.
    static func wait(for child: pid_t, launcher: Int32? = nil) -> Never {
        var set = watched()
        var launcher = launcher
        while true {
            let signal = sigwaitinfo(&set, nil)
            if signal < 0 { continue }
            if signal == SIGIO {
                if let fd = launcher, clinux_has_hung_up(fd) == 1 {
                    Diagnostics.report("the launcher is gone (its liveness pipe hung up): stopping the program")
                    kill(child, SIGTERM)
                    close(fd)
                    launcher = nil
                }
                continue
            }
            if signal != SIGCHLD {
                kill(child, signal)
                continue
            }
            var status: Int32 = 0
            var reaped = waitpid(child, &status, WNOHANG)
            while reaped < 0 && errno == EINTR { reaped = waitpid(child, &status, WNOHANG) }
            if reaped == child { passOn(status) }
            if reaped < 0 {
                Diagnostics.report("waitpid \(child): \(String(cString: strerror(errno)))")
                exit(JailerStatus.setupFailed)
            }
        }
    }

    /// The wait(2) status, decoded without the W* macros Swift cannot import.
    enum Outcome: Equatable {
        case exited(Int32)
        case killed(Int32)
    }

    static func outcome(_ status: Int32) -> Outcome {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .killed(signal)
    }

    static func passOn(_ status: Int32) -> Never {
        switch outcome(status) {
        case .exited(let code): exit(code)
        case .killed(let signal):
            // Die of the same signal, without a core file of our own.
            var none = rlimit(rlim_cur: 0, rlim_max: 0)
            setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &none)
            var action = sigaction()
            action.__sigaction_handler.sa_handler = nil
            sigemptyset(&action.sa_mask)
            sigaction(signal, &action, nil)
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, signal)
            sigprocmask(SIG_UNBLOCK, &set, nil)
            kill(getpid(), signal)
            exit(128 + signal)
        }
    }
}
