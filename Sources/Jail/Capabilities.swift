import CCapNG
import CLinux
import Glibc

/// capabilities(7), through libcap-ng. The order is the point: the bounding set can only be
/// emptied while CAP_SETPCAP is effective, and setresuid(2) away from root clears the permitted
/// and effective sets. capng_change_id(3) does it in the one safe order: keep CAP_SETUID,
/// CAP_SETGID and CAP_SETPCAP (PR_SET_KEEPCAPS), clear the bounding set, setresgid,
/// setgroups(0), setresuid, then drop the three it kept.
public enum Capabilities {
    /// Starts libcap-ng's state while the host's /proc is still mounted, so it reads the
    /// kernel's cap_last_cap rather than the one it was built with. Every set is cleared.
    static func prepare() {
        capng_clear(CAPNG_SELECT_BOTH)
    }

    /// Becomes uid:gid with no supplementary groups and no capabilities in any of the five
    /// sets (effective, permitted, inheritable, bounding, ambient).
    static func dropAll(becoming uid: UInt32, gid: UInt32) throws(JailFailure) {
        capng_clear(CAPNG_SELECT_BOTH)
        errno = 0
        let rc = capng_change_id(Int32(bitPattern: uid), Int32(bitPattern: gid),
                                 capng_flags_t(CAPNG_DROP_SUPP_GRP.rawValue | CAPNG_CLEAR_BOUNDING.rawValue))
        if rc != 0 {
            let code = errno
            let step = "capng_change_id to \(uid):\(gid): " + changeIDStep(rc)
            throw code != 0 ? JailFailure(step: step, errno: code) : JailFailure(step: step, detail: "failed (\(rc))")
        }
        // Ambient capabilities went with the uid change; clear them anyway, then every set that
        // capset(2) sees, inheritable included.
        try system("clear the ambient capabilities", { clinux_clear_ambient_capabilities() })
        capng_clear(CAPNG_SELECT_BOTH)
        try system("drop the remaining capabilities (capng_apply)", { capng_apply(CAPNG_SELECT_CAPS) == 0 ? 0 : -1 })
    }

    /// The step of capng_change_id(3) that its return value names.
    static func changeIDStep(_ rc: Int32) -> String {
        switch rc {
        case -1: "libcap-ng was not initialised"
        case -2: "prctl(PR_SET_KEEPCAPS, 1)"
        case -3: "keep CAP_SETUID, CAP_SETGID and CAP_SETPCAP across the uid change"
        case -4: "setresgid"
        case -5: "setgroups(0)"
        case -6: "setresuid"
        case -7: "prctl(PR_SET_KEEPCAPS, 0)"
        case -8: "clear the bounding set (needs CAP_SETPCAP)"
        case -9: "drop the kept capabilities"
        default: "unexpected failure"
        }
    }
}

/// PR_SET_NO_NEW_PRIVS (prctl(2), kernel Documentation/userspace-api/no_new_privs.rst): no later
/// execve(2) can grant privileges (setuid and setgid bits, file capabilities), and seccomp
/// filters can be installed without CAP_SYS_ADMIN.
public enum NoNewPrivileges {
    static func set() throws(JailFailure) {
        try system("set no_new_privs (PR_SET_NO_NEW_PRIVS)", { clinux_set_no_new_privs() })
    }
}
