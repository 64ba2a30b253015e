import CLinux
import Glibc

/// `--rlimit`: each limit set as soft and hard (setrlimit(2), getrlimit(2)). Set while the
/// jailer still holds its capabilities, so a limit above the caller's hard limit works where
/// it holds CAP_SYS_RESOURCE; the program cannot raise a hard limit again.
public enum Limits {
    static func apply(_ limits: [ResourceLimit]) throws(JailFailure) {
        for limit in limits {
            var value = rlimit(rlim_cur: rlim_t(limit.value), rlim_max: rlim_t(limit.value))
            try system("setrlimit \(name(limit.resource)) to \(limit.value)", {
                setrlimit(resource(limit.resource), &value)
            })
        }
    }

    public static func name(_ resource: ResourceLimit.Resource) -> String {
        switch resource {
        case .nofile: "RLIMIT_NOFILE"
        case .fsize: "RLIMIT_FSIZE"
        case .nproc: "RLIMIT_NPROC"
        case .core: "RLIMIT_CORE"
        }
    }

    static func resource(_ resource: ResourceLimit.Resource) -> __rlimit_resource_t {
        switch resource {
        case .nofile: __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        case .fsize: __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
        case .nproc: __rlimit_resource_t(UInt32(CLINUX_RLIMIT_NPROC))
        case .core: __rlimit_resource_t(RLIMIT_CORE.rawValue)
        }
    }
}
