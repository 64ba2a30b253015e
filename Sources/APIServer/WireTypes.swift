import Doors
/// The JSON bodies of the API, as Sources/APIServer/openapi.json names them (the schemas under
/// components/schemas; APIServerTests checks the two agree). Keys are snake_case.

/// `POST /v1/sandboxes`: what `momin start` takes, by the names its options have.
public struct CreateSandbox: Codable, Sendable, Equatable {
    public var name: String?
    /// A root image from `momin image ls` (name or digest); a path only from the server's owner.
    public var image: String?
    public var vcpus: Int?
    public var memoryMiB: Int?
    /// The VM's lifetime in seconds (0: none); it also stops after `idleTimeoutSeconds` without a call.
    public var timeoutSeconds: Double?
    public var idleTimeoutSeconds: Double?
    public var kernel: String?
    public var initrd: String?
    public var cmdline: String?
    /// `--disk` specifications (docs/disks.md); host paths, so the owner's only.
    public var disks: [String]?
    public var overlay: String?
    public var scratch: String?
    public var entropySeed: String?
    public var policy: String?
    public var audit: String?
    public var auditKey: String?
    public var witness: String?
    public var buckets: String?

    enum CodingKeys: String, CodingKey {
        case name, image, vcpus, kernel, initrd, cmdline, disks, overlay, scratch, policy, audit, witness, buckets
        case memoryMiB = "memory_mib", timeoutSeconds = "timeout_seconds", idleTimeoutSeconds = "idle_timeout_seconds"
        case entropySeed = "entropy_seed", auditKey = "audit_key"
    }

    public init() {}
}

/// One sandbox, as `GET /v1/sandboxes/{name}` and the list show it.
public struct SandboxInfo: Codable, Sendable, Equatable {
    public var name: String
    /// `running`, `starting` or `stale` (a dead VMM's leftovers, cleaned as they were seen).
    public var state: String
    public var pid: Int32?
    public var vcpus: Int?
    public var memoryMiB: Int?
    /// The VM that started it, for a sub-agent.
    public var parent: String?
    /// Its sub-agents, each after its own.
    public var children: [String]
    /// Whether this server created it (and stops it when idle), with the idle limit.
    public var managed: Bool
    public var idleTimeoutSeconds: Double?
    public var createdBy: String?

    enum CodingKeys: String, CodingKey {
        case name, state, pid, vcpus, parent, children, managed
        case memoryMiB = "memory_mib", idleTimeoutSeconds = "idle_timeout_seconds", createdBy = "created_by"
    }

    public init(name: String, state: String, pid: Int32?, vcpus: Int?, memoryMiB: Int?, parent: String?, children: [String],
                managed: Bool, idleTimeoutSeconds: Double?, createdBy: String?) {
        self.name = name
        self.state = state
        self.pid = pid
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.parent = parent
        self.children = children
        self.managed = managed
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.createdBy = createdBy
    }
}

/// `POST /v1/sandboxes/{name}/commands`.
public struct RunCommand: Codable, Sendable, Equatable {
    /// The program and its arguments; argv[0] is looked up in PATH when it has no /.
    public var argv: [String]
    public var cwd: String?
    /// "NAME=VALUE" entries added to the default environment (PATH, HOME), replacing a name given twice.
    public var env: [String]?
    /// Standard input, base64; /dev/null when absent.
    public var stdin: String?
    public var timeoutSeconds: Double?
    /// Start it and answer at once with a handle (202), instead of streaming its output.
    public var background: Bool?

    enum CodingKeys: String, CodingKey {
        case argv, cwd, env, stdin, background
        case timeoutSeconds = "timeout_seconds"
    }

    public init(argv: [String]) { self.argv = argv }
}

/// One line of a command's stream (`application/x-ndjson`): output as it comes, then exactly one
/// `exit` or `error` line, which ends the stream.
public struct CommandEvent: Codable, Sendable, Equatable {
    /// `stdout`, `stderr`, `exit` or `error`.
    public var type: String
    /// Output bytes, base64 (`stdout`, `stderr`).
    public var data: String?
    /// The exit code (`exit`, when the program exited).
    public var exitCode: Int?
    /// The signal that ended it (`exit`, when one did).
    public var signal: Int?
    /// Whether the command's timeout killed it (`exit`).
    public var timedOut: Bool?
    /// What went wrong (`error`): the same problem a whole response would carry.
    public var problem: Problem?

    enum CodingKeys: String, CodingKey {
        case type, data, signal, problem
        case exitCode = "exit_code", timedOut = "timed_out"
    }

    public init(type: String) { self.type = type }
}

/// `PUT /v1/sandboxes/{name}/files`: what was written.
public struct WrittenFile: Codable, Sendable, Equatable {
    public var path: String
    public var bytes: UInt64

    public init(path: String, bytes: UInt64) {
        self.path = path
        self.bytes = bytes
    }
}

/// A background command: `POST .../commands` with `"background": true` answers one (202), and
/// `GET` and `DELETE .../commands/{id}` answer it as it is then.
public struct BackgroundCommand: Codable, Sendable, Equatable {
    public var id: String
    public var argv: [String]
    /// `running` or `done`.
    public var state: String
    /// Whether a kill was asked for (DELETE); the command is done once the guest has ended it.
    public var killRequested: Bool = false
    /// When done: as an `exit` line of a streamed command, or the problem that ended it.
    public var exitCode: Int?
    public var signal: Int?
    public var timedOut: Bool?
    public var problem: Problem?
    /// The newest output kept (at most 256 KiB of each stream), base64; only for one command's GET
    /// and DELETE, not in the list.
    public var stdout: String?
    public var stderr: String?
    /// Output older than what is kept, both streams together.
    public var droppedBytes: UInt64?

    enum CodingKeys: String, CodingKey {
        case id, argv, state, signal, problem, stdout, stderr
        case killRequested = "kill_requested", exitCode = "exit_code", timedOut = "timed_out", droppedBytes = "dropped_bytes"
    }

    public init(id: String, argv: [String], state: String) {
        self.id = id
        self.argv = argv
        self.state = state
    }
}

/// `GET /v1/sandboxes/{name}/commands`: its background commands, oldest first.
public struct BackgroundCommandList: Codable, Sendable, Equatable {
    public var commands: [BackgroundCommand]

    public init(commands: [BackgroundCommand]) { self.commands = commands }
}

/// `GET /v1/sandboxes/{name}/files/stat`: one guest path as stat(2), or lstat(2), saw it.
public struct FileInfo: Codable, Sendable, Equatable {
    public var path: String
    /// `file`, `directory`, `symlink` or `other` (a device, FIFO or socket).
    public var type: String
    public var size: UInt64
    /// The permission bits, st_mode & 0o7777.
    public var mode: UInt32
    /// The modification time, in seconds since the epoch (with its fraction).
    public var modifiedSeconds: Double
    public var uid: UInt32
    public var gid: UInt32

    enum CodingKeys: String, CodingKey {
        case path, type, size, mode, modifiedSeconds = "modified_seconds", uid, gid
    }

    public init(path: String, _ stat: FileStat) {
        self.path = path
        type = FileInfo.name(stat.type)
        size = stat.size
        mode = stat.permissions
        modifiedSeconds = Double(stat.mtimeSeconds) + Double(stat.mtimeNanoseconds) / 1e9
        uid = stat.uid
        gid = stat.gid
    }

    static func name(_ type: FileType) -> String {
        switch type {
        case .regular: "file"
        case .directory: "directory"
        case .symlink: "symlink"
        case .other: "other"
        }
    }
}

/// `GET /v1/sandboxes/{name}/files/list`: a guest directory's entries, as the guest listed them.
public struct DirectoryListing: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        /// As `FileInfo.type`.
        public var type: String
    }

    public var path: String
    public var entries: [Entry]

    public init(path: String, _ entries: [DirectoryEntry]) {
        self.path = path
        self.entries = entries.map { Entry(name: $0.name, type: FileInfo.name($0.type)) }
    }
}

/// `GET /v1/sandboxes` and `DELETE`'s answers carry these.
public struct SandboxList: Codable, Sendable, Equatable {
    public var sandboxes: [SandboxInfo]

    public init(sandboxes: [SandboxInfo]) { self.sandboxes = sandboxes }
}
