import Glibc

/// Why a filter could not be built or installed. Each case reads as the message a user sees;
/// failures of libseccomp calls name the call and the errno text.
public enum SeccompError: Error, Equatable, Sendable, CustomStringConvertible {
    /// libseccomp knows no syscall by this name.
    case unknownSyscall(String)
    /// libseccomp knows the name, but it is not a syscall on this architecture (e.g. `socketcall`
    /// on x86-64): a rule for it would allow nothing, so it is a mistake in the list.
    case notOnThisArchitecture(String)
    /// seccomp sees six syscall arguments, 0 to 5.
    case argumentIndex(syscall: String, index: Int)
    /// A `oneOf` condition with no values would never match.
    case emptyValueSet(syscall: String, argument: Int)
    /// Two conditions on the same argument of one rule (libseccomp cannot express it).
    case repeatedArgument(syscall: String, argument: Int)
    /// A libseccomp call failed: `step` names it (and the syscall, for a rule), `errno` says why.
    case libseccomp(step: String, errno: Int32)

    public var description: String {
        switch self {
        case .unknownSyscall(let name): "seccomp: unknown syscall name \"\(name)\""
        case .notOnThisArchitecture(let name): "seccomp: \"\(name)\" is not a syscall on this architecture"
        case .argumentIndex(let name, let index): "seccomp: rule for \(name) tests argument \(index); arguments are 0 to 5"
        case .emptyValueSet(let name, let argument): "seccomp: rule for \(name) allows argument \(argument) to be one of no values"
        case .repeatedArgument(let name, let argument): "seccomp: rule for \(name) tests argument \(argument) twice"
        case .libseccomp(let step, let e): "seccomp: \(step) failed: \(String(cString: strerror(e))) (errno \(e))"
        }
    }
}
