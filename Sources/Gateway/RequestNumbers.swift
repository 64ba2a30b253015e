import Audit
import Glibc
import POSIX
import Synchronization

/// Request ids for the calls that go to one log: each call gets the next, from 1, so that a
/// result names its request unambiguously.
///
/// In one process (`RequestNumbers()`) the count lives in memory. A log that several processes
/// append to (a long-lived VM's: its agent host and each `momin exec` and `momin cp`; or a log
/// reused by later runs) shares its count through a file beside it (`shared(withLog:)`): each
/// id is taken under flock(2), so no two processes hand out the same one.
public final class RequestNumbers: Sendable {
    private let last = Atomic<UInt64>(0)
    private let counter: String?
    private let logPath: String?

    /// Numbers from 1, counted in this process.
    public init() {
        counter = nil
        logPath = nil
    }

    private init(counter: String, logPath: String) {
        self.counter = counter
        self.logPath = logPath
    }

    /// Numbers shared by every process that appends to the log at `path`, through the file
    /// `path.ids` (made when first needed, starting after the greatest id the log holds).
    public static func shared(withLog path: String) -> RequestNumbers {
        RequestNumbers(counter: path + ".ids", logPath: path)
    }

    public func next() throws(GatewayError) -> UInt64 {
        guard let counter, let logPath else { return last.wrappingAdd(1, ordering: .relaxed).newValue }
        let fd = open(counter, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .limitState("request ids: cannot open \(counter): \(describeErrno())") }
        defer { close(fd) }  // closing drops the lock
        guard retryingEINTR({ flock(fd, LOCK_EX) }) == 0 else {
            throw .limitState("request ids: cannot lock \(counter): \(describeErrno())")
        }
        let text: String
        do { text = try Self.contents(fd) } catch { throw .limitState("request ids: cannot read \(counter): \(error)") }
        let previous: UInt64
        if text.isEmpty {
            // A new counter carries on from the log, so ids already in it are not handed out again.
            previous = try Self.greatestRequestID(inLog: logPath)
        } else {
            guard text.hasPrefix("momin-request-ids 1\nlast "), text.hasSuffix("\n"),
                  let value = UInt64(text.dropFirst("momin-request-ids 1\nlast ".count).dropLast()) else {
                throw .limitState("request ids: \(counter) is damaged (expected \"momin-request-ids 1\" and \"last N\"); "
                                  + "remove it to count again from the log")
            }
            previous = value
        }
        guard previous < UInt64.max else { throw .limitState("request ids: \(counter) has used every id") }
        let id = previous + 1
        let line = Array("momin-request-ids 1\nlast \(id)\n".utf8)
        let written = line.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == line.count, ftruncate(fd, off_t(line.count)) == 0 else {
            throw .limitState("request ids: cannot write \(counter): \(describeErrno())")
        }
        return id
    }

    /// The file's text: at most 46 bytes when whole; anything longer is read as damage.
    private static func contents(_ fd: Int32) throws(SystemError) -> String {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        let n = try FileIO.preadFully(fd, into: buffer, at: 0)
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// The greatest request id in the log at `path`; 0 when it holds none or does not exist.
    static func greatestRequestID(inLog path: String) throws(GatewayError) -> UInt64 {
        guard access(path, F_OK) == 0 else { return 0 }
        let records: [AuditRecord]
        do { records = try AuditReader.records(path: path) } catch { throw .audit(error) }
        return records.reduce(0) { greatest, record in
            switch record.event {
            case .toolRequest(let request): max(greatest, request.requestID)
            case .decision(let decision): max(greatest, decision.requestID)
            case .resultDigest(let result): max(greatest, result.requestID)
            case .connectionEnd(let end): max(greatest, end.requestID)
            case .brainCall(let call): max(greatest, call.requestID)
            case .lifecycle: greatest
            }
        }
    }
}
