/// What one jail is to be: the program to exec, the unprivileged ids it runs as, and the only
/// host paths and devices it may see. `JailArguments.parse` builds it from the command line;
/// `validate(against:)` checks it against the file system; `Jailer.run` carries it out.
public struct JailPlan: Equatable, Sendable {
    /// The jail's name: its hostname (UTS namespace) and the name in messages.
    public var id: String
    /// The host directory the jail's root is mounted on (a fresh tmpfs; the host side stays empty).
    public var root: String
    public var uid: UInt32
    public var gid: UInt32
    public var binds: [Bind] = []
    /// Device nodes (under /dev) recreated inside the jail, owned by uid:gid, mode 0660.
    public var devices: [String] = []
    public var network: Network = .new
    public var limits: [ResourceLimit] = []
    /// A cgroup v2 directory the jailer moves itself into before anything else, so the program
    /// and every thread it starts are bounded by it (momin makes it, with the VM's limits).
    public var cgroup: String?
    /// The program's whole environment, KEY=VALUE each; nothing is inherited.
    public var environment: [String] = []
    /// A descriptor the jailer is handed whose other end its launcher holds open for as long as
    /// it lives (a pipe): when it hangs up, the launcher has died, however it died, and the
    /// jailer passes SIGTERM to the program as if the launcher had sent it. The one descriptor
    /// above 2 the jailer keeps; the program never gets it.
    public var livenessFD: Int32?
    /// Descriptors the program inherits as they are (a VM's disk files, opened by the launcher
    /// in their mode): kept open through the jailer, at the same numbers. The supervisor
    /// closes its copies once the program is started.
    public var passedFDs: [Int32] = []
    /// An absolute path inside the jail; execve(2) gets it with no PATH search.
    public var program: String
    /// argv[1...] of the program (argv[0] is `program`).
    public var arguments: [String] = []

    public init(id: String, root: String, uid: UInt32, gid: UInt32, program: String) {
        self.id = id
        self.root = root
        self.uid = uid
        self.gid = gid
        self.program = program
    }

    public enum Network: String, Equatable, Sendable {
        /// A network namespace of its own: only a loopback device, down.
        case new
        /// The host's network namespace (pathname Unix sockets work either way).
        case host
    }
}

/// `--bind SRC[:DST[:ro|rw]]`: a host path made visible at DST inside the jail (non-recursive,
/// nosuid, nodev), read-only unless `rw`.
public struct Bind: Equatable, Sendable {
    public var source: String
    public var destination: String
    public var writable: Bool
    /// The text as given, for messages.
    public var spec: String

    public init(source: String, destination: String, writable: Bool = false, spec: String? = nil) {
        self.source = source
        self.destination = destination
        self.writable = writable
        self.spec = spec ?? "\(source):\(destination):\(writable ? "rw" : "ro")"
    }
}

/// One `--rlimit` entry, set as both the soft and the hard limit (setrlimit(2)).
public struct ResourceLimit: Equatable, Sendable {
    public enum Resource: String, CaseIterable, Equatable, Sendable {
        /// RLIMIT_NOFILE: one more than the highest file descriptor the program may open.
        case nofile
        /// RLIMIT_FSIZE: the largest file, in bytes, the program may write.
        case fsize
        /// RLIMIT_NPROC: processes (threads included) of the jail's uid.
        case nproc
        /// RLIMIT_CORE: the largest core file; 0 for none (a crash leaves no guest memory on disk).
        case core
    }

    public var resource: Resource
    public var value: UInt64

    public init(_ resource: Resource, _ value: UInt64) {
        self.resource = resource
        self.value = value
    }
}
