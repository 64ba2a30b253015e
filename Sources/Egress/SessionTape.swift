import Crypto
import Gateway
import Glibc
import Merkle
import Policy
import POSIX
import Synchronization

/// A recorded session's exchanges with the world outside the host (docs/replay.md): the model
/// calls' and plain HTTP requests' bytes, as the relays sent them out and got them back.
/// Recording keeps them in an `ExchangeStore`; a replay answers from them and nothing leaves
/// the host.
public enum SessionTape: Sendable {
    /// `momin run --record`.
    case recording(ExchangeStore)
    /// `momin replay`.
    case replaying(RecordedExchanges)
}

/// Exchange bytes by their SHA-256, one file each in a directory beside the record
/// (`RECORD.exchanges/`). Written through a temporary file and renamed into place, so a name
/// always holds the bytes it names. Bounded: one direction of one exchange, and the session.
public final class ExchangeStore: Sendable {
    public let directory: String
    /// The most one direction of one exchange may take; a larger one is not kept (its call
    /// cannot be replayed, and the record says so).
    public static let exchangeLimit = 64 << 20
    /// The most a session's exchanges may take in all.
    public static let sessionLimit: UInt64 = 4 << 30
    private let used = Mutex<UInt64>(0)
    private let partials = Mutex<UInt64>(0)

    /// The store of the record at `recordPath`.
    public static func directory(forRecord recordPath: String) -> String { recordPath + ".exchanges" }

    /// Opens the store; with `create`, making its directory (owner-only) when there is none
    /// (a recording), else the directory must be there (a replay writes nothing beside a record).
    public init(directory: String, create: Bool = true) throws(SystemError) {
        if create, mkdir(directory, 0o700) != 0 && errno != EEXIST { throw SystemError("mkdir", subject: directory) }
        var info = stat()
        guard stat(directory, &info) == 0 else { throw SystemError("stat", subject: directory) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw SystemError("open the exchange store", errno: ENOTDIR, subject: directory) }
        self.directory = directory
    }

    public func path(of digest: MerkleHash) -> String { "\(directory)/\(digest.hex)" }

    /// A writer for one direction of one exchange; nil when the session's room is spent or the
    /// temporary file cannot be made.
    public func writer() -> ExchangeWriter? {
        guard used.withLock({ $0 < Self.sessionLimit }) else { return nil }
        let number = partials.withLock { n -> UInt64 in
            n += 1
            return n
        }
        let temporary = "\(directory)/.partial-\(getpid())-\(number)"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return nil }
        return ExchangeWriter(store: self, fd: fd, temporary: temporary)
    }

    /// Keeps `bytes` whole; their digest, or nil when they cannot be kept.
    public func keep(_ bytes: [UInt8]) -> MerkleHash? {
        guard let writer = writer() else { return nil }
        bytes.withUnsafeBytes { writer.append($0) }
        return writer.finish()
    }

    /// The bytes kept under `digest`, checked against it.
    public func read(_ digest: MerkleHash) -> Result<[UInt8], SystemError> {
        let bytes: [UInt8]
        do { bytes = try FileIO.readFile(path(of: digest), limit: Self.exchangeLimit) } catch { return .failure(error) }
        guard MerkleHash(bytes: Array(SHA256.hash(data: bytes)))! == digest else {
            // Changed since it was recorded: not the bytes its name is the digest of.
            return .failure(SystemError("check the digest of", errno: EIO, subject: path(of: digest)))
        }
        return .success(bytes)
    }

    /// Counts `count` more bytes against the session's room; false once it is spent.
    fileprivate func charge(_ count: Int) -> Bool {
        used.withLock { total in
            total += UInt64(count)
            return total <= Self.sessionLimit
        }
    }
}

/// One direction of one exchange on its way into the store: appended to a temporary file as it
/// goes (a stream is never held whole in memory), named by its digest when finished. Past the
/// exchange limit it is given up, and nothing is kept. Used by one thread.
public final class ExchangeWriter {
    let store: ExchangeStore
    private var fd: Int32
    private let temporary: String
    private var hasher = SHA256()
    private var count = 0
    private var failed = false

    fileprivate init(store: ExchangeStore, fd: Int32, temporary: String) {
        self.store = store
        self.fd = fd
        self.temporary = temporary
    }

    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard !failed, fd >= 0, !bytes.isEmpty else { return }
        count += bytes.count
        guard count <= ExchangeStore.exchangeLimit, store.charge(bytes.count),
              (try? FileIO.writeAll(fd, bytes.bindMemory(to: UInt8.self))) != nil else {
            return abandon()
        }
        hasher.update(bufferPointer: bytes)
    }

    public func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// The digest the bytes are kept under; nil when they could not all be kept.
    public func finish() -> MerkleHash? {
        guard !failed, fd >= 0 else { return nil }
        let digest = MerkleHash(bytes: Array(hasher.finalize()))!
        let synced = fsync(fd) == 0
        close(fd)
        fd = -1
        guard synced, rename(temporary, store.path(of: digest)) == 0 else {
            unlink(temporary)
            failed = true
            return nil
        }
        return digest
    }

    /// Drops what was written.
    public func abandon() {
        failed = true
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
        unlink(temporary)
    }

    deinit { if fd >= 0 { abandon() } }
}

/// A recording's exchanges, as a replay takes them back: for each call that sent `request`
/// through `tool`, the next unused recorded exchange with the same tool and request digest (an
/// agent that asks the same thing twice gets the two answers in the order they came). A request
/// that has none diverged from the recording: its bytes are kept (the first 16) for the report.
public final class RecordedExchanges: Sendable {
    /// nil for a record whose calls kept no exchange (none left the host, or a version 1 record).
    public let store: ExchangeStore?
    private let state: Mutex<State>
    /// Names as the recording resolved them: a replay resolves nothing.
    public let resolver: RecordedResolver

    struct Entry {
        let tool: String
        let exchange: CallObservation.Exchange
        var used = false
    }

    struct State {
        var entries: [Entry]
        /// Requests that had no recorded answer, in the order they came (the first 16).
        var diverged: [(tool: String, request: [UInt8])] = []
    }

    public init(store: ExchangeStore?, calls: [CallObservation]) {
        self.store = store
        let entries = calls.compactMap { call in call.exchange.map { Entry(tool: call.tool, exchange: $0) } }
        state = Mutex(State(entries: entries))
        resolver = RecordedResolver(calls: calls)
    }

    /// Why a request could not be answered from the recording.
    public struct Miss: Error, CustomStringConvertible {
        public let description: String
    }

    /// The recorded answer to `request` sent through `tool`, with the exchange it was kept as.
    public func answer(tool: String, request: [UInt8]) -> Result<(bytes: [UInt8], exchange: CallObservation.Exchange), Miss> {
        let digest = MerkleHash(bytes: Array(SHA256.hash(data: request)))!
        let found: CallObservation.Exchange? = state.withLock { state in
            guard let index = state.entries.firstIndex(where: { !$0.used && $0.tool == tool && $0.exchange.request == digest }) else {
                if state.diverged.count < 16 { state.diverged.append((tool, request)) }
                return nil
            }
            state.entries[index].used = true
            return state.entries[index].exchange
        }
        guard let found, let store else {
            return .failure(Miss(description: "momin replay: this \(tool) request (sha256 \(digest.hex.prefix(16))…) is not in the recording: the agent diverged from it"))
        }
        switch store.read(found.response) {
        case .success(let bytes): return .success((bytes, found))
        case .failure(let error): return .failure(Miss(description: "momin replay: the recorded answer cannot be read: \(error)"))
        }
    }

    /// The first request through `tool` that had no recorded answer.
    public func firstDiverged(tool: String) -> [UInt8]? { state.withLock { $0.diverged.first { $0.tool == tool }?.request } }
}

/// A resolver that answers with what the recorded session's egress calls were resolved to (the
/// `resolved=` of their logged arguments): a replay asks no DNS server, and judges each name
/// with the addresses it was judged with then. A name the recording never resolved has none.
public struct RecordedResolver: HostResolver {
    let names: [String: [IPAddress]]

    public init(calls: [CallObservation]) {
        var names: [String: [IPAddress]] = [:]
        for call in calls where call.tool == GovernedEgress.httpTool || call.tool == GovernedEgress.connectTool {
            guard let (host, resolved) = GovernedEgress.judgedHost(arguments: call.arguments),
                  case .success(.name(let name)) = HostName.normalize(host), !resolved.isEmpty, names[name] == nil else { continue }
            names[name] = resolved
        }
        self.names = names
    }

    public func addresses(of name: String) -> Result<[IPAddress], ResolveFailure> {
        guard let found = names[name] else { return .failure(ResolveFailure("not resolved in the recording (a replay resolves nothing)")) }
        return .success(found)
    }
}
