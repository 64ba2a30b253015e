/// `momin-vmm --seccomp MODE`: what a thread's filter does with a syscall not on its list.
public enum SeccompMode: String, CaseIterable, Equatable, Sendable {
    /// The process dies of SIGSYS (the default).
    case kill
    /// The thread gets SIGSYS; `SeccompTrap` names the class and syscall, then exits 159.
    case trap
    /// Allowed, and logged by the kernel (audit log or dmesg): finds every missing syscall in one run.
    case log
    /// No filters at all (a loud warning on stderr).
    case off

    /// The filters' default action; nil when off.
    public var action: SyscallFilter.Action? {
        switch self {
        case .kill: .killProcess
        case .trap: .trap
        case .log: .log
        case .off: nil
        }
    }
}
