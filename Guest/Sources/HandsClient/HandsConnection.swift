import CGuestSys
import Doors
import Glibc
import POSIX

/// The `hands` client's side of one call: a connection to momin-init's local socket, one call
/// frame out, one reply frame back (docs/hands.md).
public enum HandsConnection {
    /// Where momin-init listens (GuestDoors' `HandsRelay.socketPath`).
    public static let defaultSocketPath = "/run/momin/hands.sock"

    /// `$HANDS_SOCKET` when it is set and not empty, else the default.
    public static func socketPath(environment value: String?) -> String {
        guard let value, !value.isEmpty else { return defaultSocketPath }
        return value
    }

    /// Sends `call` to the socket at `path` and reads its one reply. No timeout: the host
    /// decides how long a door receive or a wait may take.
    public static func call(_ call: HandsCall, socketPath path: String) throws(HandsClientError) -> HandsReply {
        let fd = guest_unix_connect(path)
        guard fd >= 0 else { throw .unreachable("cannot reach momin-init at \(path): \(describeErrno(errno))") }
        defer { close(fd) }
        // A send the relay cut short (it answers some calls without reading them all: a refusal,
        // a bad header) still leaves its reply to read.
        let sendError = sendAll(fd, HandsCallCodec.encode(call))

        var header = [UInt8](repeating: 0, count: HandsCallProtocol.headerSize)
        try receive(fd, into: &header, what: "header", sendError: sendError)
        let announced: (kind: HandsCallKind, length: Int)
        do throws(HandsCallError) {
            announced = try HandsCallCodec.payloadLength(header: header)
        } catch {
            throw .unreachable("momin-init sent a bad reply: \(error)")
        }
        let (kind, length) = announced
        var payload = [UInt8](repeating: 0, count: length)
        try receive(fd, into: &payload, what: "payload", sendError: sendError)
        do throws(HandsCallError) {
            return try HandsCallCodec.decodeReply(kind: kind, payload: payload)
        } catch {
            throw .unreachable("momin-init sent a bad reply: \(error)")
        }
    }

    /// An `ok` reply's fields and data; a `failed` one is thrown as its message (after
    /// `what: `, when given) and its code's exit status.
    static func ok(_ call: HandsCall, socketPath path: String, what: String? = nil) throws(HandsClientError) -> ([String], [UInt8]) {
        switch try self.call(call, socketPath: path) {
        case .ok(let fields, let data):
            return (fields, data)
        case .failed(let failure, let message):
            throw HandsClientError(message: what.map { "\($0): \(message)" } ?? message, exitStatus: failure.exitStatus, showsUsage: false)
        }
    }

    /// Standard input and files, as the system has them.
    public static var systemInput: HandsInput {
        HandsInput(
            standardInput: { (limit) throws(HandsClientError) in
                do throws(ReadError) {
                    return try readAll(STDIN_FILENO, limit: limit)
                } catch {
                    throw .inputFailed("reading standard input: \(describeErrno(error.errno))")
                }
            },
            file: { (path, limit) throws(HandsClientError) in
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw .noInput("cannot read \(path): \(describeErrno(errno))") }
                defer { close(fd) }
                do throws(ReadError) {
                    return try readAll(fd, limit: limit)
                } catch {
                    throw .noInput("cannot read \(path): \(describeErrno(error.errno))")
                }
            })
    }

    // MARK: - I/O

    struct ReadError: Error {
        var errno: Int32
    }

    /// Up to `limit` bytes: until end of file or the limit.
    static func readAll(_ fd: Int32, limit: Int) throws(ReadError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count < limit {
            let wanted = min(chunk.count, limit - bytes.count)
            let n = chunk.withUnsafeMutableBytes { raw in retryingEINTR { read(fd, raw.baseAddress, wanted) } }
            guard n >= 0 else { throw ReadError(errno: errno) }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    /// Writes all of `bytes`; the errno that stopped it, or nil.
    private static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
        do { try FileIO.sendAll(fd, bytes) } catch { return error.errno }
        return nil
    }

    /// Fills `buffer` from the socket, or says why not.
    private static func receive(_ fd: Int32, into buffer: inout [UInt8], what: String, sendError: Int32?) throws(HandsClientError) {
        var filled = 0
        while filled < buffer.count {
            let start = filled
            let n = buffer.withUnsafeMutableBytes { raw in retryingEINTR { recv(fd, raw.baseAddress! + start, raw.count - start, 0) } }
            if n > 0 {
                filled += n
                continue
            }
            let error = n < 0 ? errno : 0
            if filled == 0 && what == "header" {
                if let sendError { throw .unreachable("momin-init closed the connection while the call was sent: \(describeErrno(sendError))") }
                throw .unreachable("momin-init closed the connection without a reply" + (error == 0 ? "" : ": \(describeErrno(error))"))
            }
            throw .unreachable("momin-init's reply ends after \(filled) of its \(buffer.count) \(what) bytes"
                + (error == 0 ? "" : ": \(describeErrno(error))"))
        }
    }
}
