/// `momin-vmm --seccomp MODE`: what a thread's filter does with a syscall not on its list
/// (the filters themselves are the Seccomp target's; VMM maps a mode to their action).
public enum SeccompMode: String, CaseIterable, Equatable, Sendable {
    /// The process dies of SIGSYS (the default).
    case kill
    /// The thread gets SIGSYS; `SeccompTrap` names the class and syscall, then exits 159.
    case trap
    /// Allowed, and logged by the kernel (audit log or dmesg): finds every missing syscall in one run.
    case log
    /// No filters at all (a loud warning on stderr).
    case off
}
