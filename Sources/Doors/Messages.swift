/// One frame as the application sees it: the request it belongs to and what it says.
/// Request id 0 is the connection itself (Hello, and Error frames about the stream).
public struct Frame: Hashable, Sendable {
    public var requestID: UInt32
    public var message: DoorsMessage

    public init(requestID: UInt32, _ message: DoorsMessage) {
        self.requestID = requestID
        self.message = message
    }

    public var type: FrameType { message.type }
}

/// Every message of protocol version 1. Who sends what, and what ends a request, is in
/// docs/doors-protocol.md.
public enum DoorsMessage: Hashable, Sendable {
    // Connection
    case hello(Hello)
    case error(ErrorReply)
    /// The success answer to writeFile (bytes written), mkdir and remove (0).
    case ok(count: UInt64)
    case ping(nonce: UInt64)
    case pong(nonce: UInt64)
    /// The requester gives up on the request with this frame's id.
    case cancel

    // Exec
    case exec(ExecRequest)
    case started(pid: Int32)
    case stdinData([UInt8])
    case stdinEnd
    case stdoutData([UInt8])
    case stderrData([UInt8])
    case exit(ExitReport)
    case kill(signal: UInt8)

    // Files
    case writeFile(WriteFileRequest)
    case readFile(ReadFileRequest)
    case fileData([UInt8])
    case fileEnd
    case stat(StatRequest)
    case statResult(FileStat)
    case list(path: String)
    case listEntries([DirectoryEntry])
    case listEnd
    case mkdir(MkdirRequest)
    case remove(RemoveRequest)
    /// The canonical path the guest's kernel reaches for `path`: every symlink followed, `.`,
    /// `..` and repeated slashes gone (realpath(3)); what a policy judges a path by.
    case resolve(path: String)
    case resolved(path: String)

    public var type: FrameType {
        switch self {
        case .hello: .hello
        case .error: .error
        case .ok: .ok
        case .ping: .ping
        case .pong: .pong
        case .cancel: .cancel
        case .exec: .exec
        case .started: .started
        case .stdinData: .stdinData
        case .stdinEnd: .stdinEnd
        case .stdoutData: .stdoutData
        case .stderrData: .stderrData
        case .exit: .exit
        case .kill: .kill
        case .writeFile: .writeFile
        case .readFile: .readFile
        case .fileData: .fileData
        case .fileEnd: .fileEnd
        case .stat: .stat
        case .statResult: .statResult
        case .list: .list
        case .listEntries: .listEntries
        case .listEnd: .listEnd
        case .mkdir: .mkdir
        case .remove: .remove
        case .resolve: .resolve
        case .resolved: .resolved
        }
    }
}

/// The first frame each side sends: the versions it speaks and the largest payload it accepts.
public struct Hello: Hashable, Sendable {
    /// Protocol versions this side speaks, each 1 or higher; 1 to `DoorsLimits.maxVersions` of them.
    public var versions: [UInt8]
    /// The largest payload this side accepts; at least `DoorsProtocol.minimumMaxPayload`.
    public var maxPayload: UInt32
    /// Free text naming the software, for logs ("momin-init 0.1"); may be empty.
    public var software: String

    public init(
        versions: [UInt8] = DoorsProtocol.supportedVersions,
        maxPayload: UInt32 = UInt32(DoorsProtocol.maxPayload),
        software: String = ""
    ) {
        self.versions = versions
        self.maxPayload = maxPayload
        self.software = software
    }
}

/// Why a request, or the connection (request id 0), failed.
public enum ErrorCode: UInt16, CaseIterable, Hashable, Sendable {
    case notFound = 1
    case permissionDenied = 2
    case exists = 3
    case notADirectory = 4
    case isADirectory = 5
    case notEmpty = 6
    case invalidRequest = 7
    case malformedFrame = 8
    case tooLarge = 9
    case unsupportedVersion = 10
    case busy = 11
    case cancelled = 12
    case io = 13
    case `internal` = 14

    /// The code for a Linux errno value, as the guest reports it.
    public init(linuxErrno: Int32) {
        self =
            switch linuxErrno {
            case 2: .notFound  // ENOENT
            case 1, 13, 30: .permissionDenied  // EPERM, EACCES, EROFS
            case 17: .exists  // EEXIST
            case 20, 40: .notADirectory  // ENOTDIR, ELOOP
            case 21: .isADirectory  // EISDIR
            case 39: .notEmpty  // ENOTEMPTY
            case 22, 9: .invalidRequest  // EINVAL, EBADF
            case 7, 27, 36: .tooLarge  // E2BIG, EFBIG, ENAMETOOLONG
            case 11, 16, 26: .busy  // EAGAIN, EBUSY, ETXTBSY
            case 125: .cancelled  // ECANCELED
            case 5, 28, 122: .io  // EIO, ENOSPC, EDQUOT
            default: .internal
            }
    }
}

/// The payload of an Error frame.
public struct ErrorReply: Hashable, Sendable {
    public var code: ErrorCode
    /// The Linux errno behind the failure, when there is one.
    public var errno: Int32?
    /// Human-readable detail; at most `DoorsLimits.maxMessageLength` bytes.
    public var message: String

    public init(code: ErrorCode, errno: Int32? = nil, message: String = "") {
        self.code = code
        self.errno = errno
        self.message = message
    }

    /// An error for a failed syscall: the code follows from the errno.
    public init(linuxErrno: Int32, message: String) {
        self.init(code: ErrorCode(linuxErrno: linuxErrno), errno: linuxErrno, message: message)
    }
}

/// Run a program in the guest.
public struct ExecRequest: Hashable, Sendable {
    /// The arguments, argv[0] included as the program sees it; at least one entry, and argv[0]
    /// not empty. Without `program`, argv[0] also names the file (looked up in PATH when it has
    /// no "/").
    public var argv: [String]
    /// "KEY=VALUE" entries: the whole environment of the program.
    public var env: [String]
    /// Absolute working directory, walked without following symlinks (docs/doors-protocol.md,
    /// "Paths"); the guest's default (/) when nil.
    public var cwd: String?
    /// Whether StdinData/StdinEnd frames will follow; when false stdin is /dev/null.
    public var sendsStdin: Bool
    /// Kill the process (SIGKILL) after this many milliseconds; at least 1.
    public var timeoutMilliseconds: UInt32?
    /// The file to execute, absolute and walked without following symlinks: the program as the
    /// policy judged it, resolved. Nil when nothing judged it (an ungoverned call): the guest
    /// then finds the file from argv[0] as execvp would.
    public var program: String?

    public init(
        argv: [String],
        env: [String] = [],
        cwd: String? = nil,
        sendsStdin: Bool = false,
        timeoutMilliseconds: UInt32? = nil,
        program: String? = nil
    ) {
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.sendsStdin = sendsStdin
        self.timeoutMilliseconds = timeoutMilliseconds
        self.program = program
    }
}

/// How a process ended.
public enum Termination: Hashable, Sendable {
    /// It called exit with this status.
    case exited(code: UInt8)
    /// A signal (1 to `DoorsLimits.maxSignal`) terminated it.
    case signaled(signal: UInt8)
}

/// The last frame of an exec request.
public struct ExitReport: Hashable, Sendable {
    public var status: Termination
    /// Whether the guest killed the process because its timeout ran out.
    public var timedOut: Bool

    public init(status: Termination, timedOut: Bool = false) {
        self.status = status
        self.timedOut = timedOut
    }
}

/// How writeFile opens its file.
public struct WriteOptions: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// O_CREAT
    public static let create = WriteOptions(rawValue: 1 << 0)
    /// O_TRUNC
    public static let truncate = WriteOptions(rawValue: 1 << 1)
    /// O_EXCL: fail with `exists` when the file is there.
    public static let exclusive = WriteOptions(rawValue: 1 << 2)
    /// O_APPEND
    public static let append = WriteOptions(rawValue: 1 << 3)

    static let all: WriteOptions = [.create, .truncate, .exclusive, .append]
}

/// Write a file from the FileData frames that follow the request.
public struct WriteFileRequest: Hashable, Sendable {
    public var path: String
    /// Permission bits for a created file (before the umask).
    public var permissions: UInt32
    public var options: WriteOptions

    public init(path: String, permissions: UInt32 = 0o644, options: WriteOptions = [.create, .truncate]) {
        self.path = path
        self.permissions = permissions
        self.options = options
    }
}

/// Read a file, or a range of it, as FileData frames.
public struct ReadFileRequest: Hashable, Sendable {
    public var path: String
    public var offset: UInt64
    /// At most this many bytes; to the end of the file when nil.
    public var length: UInt64?

    public init(path: String, offset: UInt64 = 0, length: UInt64? = nil) {
        self.path = path
        self.offset = offset
        self.length = length
    }
}

public struct StatRequest: Hashable, Sendable {
    public var path: String
    /// stat(2) when true, lstat(2) when false.
    public var followSymlinks: Bool

    public init(path: String, followSymlinks: Bool = false) {
        self.path = path
        self.followSymlinks = followSymlinks
    }
}

public enum FileType: UInt8, CaseIterable, Hashable, Sendable {
    case regular = 1
    case directory = 2
    case symlink = 3
    /// A device, FIFO or socket.
    case other = 4
}

/// The answer to a stat request.
public struct FileStat: Hashable, Sendable {
    public var type: FileType
    /// st_mode & 0o7777
    public var permissions: UInt32
    public var size: UInt64
    public var mtimeSeconds: Int64
    /// Below 1_000_000_000.
    public var mtimeNanoseconds: UInt32
    public var nlink: UInt64
    public var uid: UInt32
    public var gid: UInt32

    public init(
        type: FileType,
        permissions: UInt32,
        size: UInt64,
        mtimeSeconds: Int64,
        mtimeNanoseconds: UInt32 = 0,
        nlink: UInt64 = 1,
        uid: UInt32 = 0,
        gid: UInt32 = 0
    ) {
        self.type = type
        self.permissions = permissions
        self.size = size
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
        self.nlink = nlink
        self.uid = uid
        self.gid = gid
    }
}

/// One name in a directory listing: never empty, ".", ".." or containing "/" or NUL.
public struct DirectoryEntry: Hashable, Sendable {
    public var name: String
    public var type: FileType

    public init(name: String, type: FileType) {
        self.name = name
        self.type = type
    }

    /// Splits `entries` into batches that each fit one ListEntries frame of at most `maxPayload`
    /// bytes and `DoorsLimits.maxListBatch` entries. Entries whose names break the rules still
    /// land in a batch; the encoder rejects them.
    public static func batches(_ entries: [DirectoryEntry], maxPayload: Int = DoorsProtocol.maxPayload) -> [[DirectoryEntry]] {
        var batches: [[DirectoryEntry]] = []
        var current: [DirectoryEntry] = []
        var size = 4  // the count
        for entry in entries {
            let entrySize = 1 + 4 + entry.name.utf8.count
            if !current.isEmpty && (size + entrySize > maxPayload || current.count == DoorsLimits.maxListBatch) {
                batches.append(current)
                current = []
                size = 4
            }
            current.append(entry)
            size += entrySize
        }
        if !current.isEmpty { batches.append(current) }
        return batches
    }
}

public struct MkdirRequest: Hashable, Sendable {
    public var path: String
    public var permissions: UInt32
    /// Create missing parents, and succeed when the directory exists (mkdir -p).
    public var parents: Bool

    public init(path: String, permissions: UInt32 = 0o755, parents: Bool = false) {
        self.path = path
        self.permissions = permissions
        self.parents = parents
    }
}

public struct RemoveRequest: Hashable, Sendable {
    public var path: String
    /// Remove a directory and everything under it (rm -r); without it a directory must be empty.
    public var recursive: Bool

    public init(path: String, recursive: Bool = false) {
        self.path = path
        self.recursive = recursive
    }
}
