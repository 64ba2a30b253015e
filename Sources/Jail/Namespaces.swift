import CLinux
import Glibc

/// The namespaces the jail lives in (namespaces(7)), made with unshare(2) by the jailer before
/// it forks: mount, IPC, UTS, PID, and network unless `--netns host`. A new PID namespace
/// applies to children only, so the forked child is PID 1 in it and execs the program.
public enum Namespaces {
    public static func flags(network: JailPlan.Network) -> Int32 {
        var flags = CLINUX_CLONE_NEWNS | CLINUX_CLONE_NEWPID | CLINUX_CLONE_NEWIPC | CLINUX_CLONE_NEWUTS
        if network == .new { flags |= CLINUX_CLONE_NEWNET }
        return flags
    }

    /// The names as messages give them: "mount, pid, ipc, uts, net".
    public static func names(network: JailPlan.Network) -> String {
        "mount, pid, ipc, uts" + (network == .new ? ", net" : "")
    }

    static func unshare(network: JailPlan.Network) throws(JailFailure) {
        try system("unshare namespaces (\(names(network: network)))", { clinux_unshare(flags(network: network)) })
    }

    /// sethostname(2) in the jail's own UTS namespace.
    static func setHostname(_ name: String) throws(JailFailure) {
        try system("sethostname \(name)", { sethostname(name, name.utf8.count) })
    }
}
