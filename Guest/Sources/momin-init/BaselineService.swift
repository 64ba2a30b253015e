import CGuestSys
import Glibc
import POSIX

/// Raw vsock services for benchmarks (`momin.baseline=PORT` on the kernel command line): what
/// the transport costs without Doors framing, measured against the same guest. Off unless
/// asked for. Three listeners, each connection on its own thread:
///
///     PORT      echo    every byte read is written back, until EOF
///     PORT + 1  sink    reads until EOF, then writes the byte count (u64, little-endian), closes
///     PORT + 2  source  reads a count N (u64, little-endian), writes N bytes, closes
///
/// Nothing here may take PID 1 down: a failing call prints one line and ends its own thread.
/// Socket writes use MSG_NOSIGNAL, so a host that went away is EPIPE, never a signal.
enum BaselineService {
    static let parameter = "momin.baseline"

    enum Role: UInt32 {
        case echo = 0, sink = 1, source = 2
        var name: String {
            switch self {
            case .echo: "echo"
            case .sink: "sink"
            case .source: "source"
            }
        }
    }

    /// The first port the command line asks for: nil without the parameter; the last mention
    /// wins. A value that leaves no room for three ports below VMADDR_PORT_ANY (0xFFFFFFFF) is
    /// a problem to report, and then nothing is started.
    static func port(commandLine words: [String]) -> (port: UInt32?, problem: String?)? {
        var result: (port: UInt32?, problem: String?)?
        for word in words where word == parameter || word.hasPrefix(parameter + "=") {
            let value = word.dropFirst(parameter.count + 1)
            if let number = UInt32(value), number <= UInt32.max - 3 {
                result = (number, nil)
            } else {
                result = (nil, "\(word): needs a vsock port (0 to \(UInt32.max - 3)); raw baseline not started")
            }
        }
        return result
    }

    /// Starts the listeners the command line asks for, each with its accept thread. True when
    /// at least one listens.
    static func startIfAsked(commandLine: [String]) -> Bool {
        guard let (port, problem) = port(commandLine: commandLine) else { return false }
        if let problem { Console.error(problem) }
        guard let port else { return false }
        var listening = false
        for role in [Role.echo, .sink, .source] {
            let vsockPort = port + role.rawValue
            let listener = guest_vsock_listen(vsockPort, 16)
            guard listener >= 0 else {
                Console.error("baseline: listen on vsock port \(vsockPort) (\(role.name)): \(errnoDetail(errno))")
                continue
            }
            if startThread({ acceptForever(listener: listener, role: role) }) {
                listening = true
            } else {
                close(listener)
            }
        }
        if listening { Console.error("baseline: raw echo, sink and source on vsock ports \(port)-\(port + 2)") }
        return listening
    }

    private static func acceptForever(listener: Int32, role: Role) {
        while true {
            let fd = guest_accept_cloexec(listener)
            if fd >= 0 {
                if !startThread({ serve(fd, role: role) }) { close(fd) }
                continue
            }
            let error = errno
            if error == EINTR || error == ECONNABORTED { continue }
            Console.error("baseline: accept (\(role.name)): \(errnoDetail(error))")
            usleep(100_000)
        }
    }

    private static func serve(_ fd: Int32, role: Role) {
        defer { close(fd) }
        let problem: String?
        switch role {
        case .echo: problem = echo(fd)
        case .sink: problem = sink(fd)
        case .source: problem = source(fd)
        }
        if let problem { Console.error("baseline \(role.name): \(problem)") }
    }

    /// Writes back every chunk as it arrives.
    private static func echo(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            switch receive(fd, into: &buffer) {
            case .failure(let message): return message
            case .success(0): return nil
            case .success(let n):
                if let message = sendAll(fd, buffer, count: n) { return message }
            }
        }
    }

    private static func sink(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256 << 10)
        var total: UInt64 = 0
        while true {
            switch receive(fd, into: &buffer) {
            case .failure(let message): return message
            case .success(0): return sendAll(fd, littleEndianBytes(total), count: 8)
            case .success(let n): total += UInt64(n)
            }
        }
    }

    private static func source(_ fd: Int32) -> String? {
        var request = [UInt8](repeating: 0, count: 8)
        var filled = 0
        while filled < 8 {
            var rest = [UInt8](repeating: 0, count: 8 - filled)
            switch receive(fd, into: &rest) {
            case .failure(let message): return message
            case .success(0): return "the peer closed after \(filled) of the 8 count bytes"
            case .success(let n):
                request.replaceSubrange(filled..<(filled + n), with: rest[0..<n])
                filled += n
            }
        }
        var remaining = request.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        // A byte pattern that is not all zeros, so a host that checks content sees a change.
        let chunk = (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        while remaining > 0 {
            let n = Int(min(remaining, UInt64(chunk.count)))
            if let message = sendAll(fd, chunk, count: n) { return message }
            remaining -= UInt64(n)
        }
        return nil
    }

    private enum Received {
        case success(Int)
        case failure(String)
    }

    private static func receive(_ fd: Int32, into buffer: inout [UInt8]) -> Received {
        let n = buffer.withUnsafeMutableBytes { raw in retryingEINTR { recv(fd, raw.baseAddress, raw.count, 0) } }
        if n >= 0 { return .success(n) }
        return .failure("recv: \(errnoDetail(errno))")
    }

    /// Sends the first `count` bytes of `bytes`; a message when the socket fails.
    private static func sendAll(_ fd: Int32, _ bytes: [UInt8], count: Int) -> String? {
        do { try FileIO.sendAll(fd, bytes[..<count]) } catch { return "send: \(errnoDetail(error.errno))" }
        return nil
    }

    private static func littleEndianBytes(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    /// Runs `body` on a new detached thread (256 KiB of stack; the buffers are on the heap).
    /// False, with the error printed, when no thread could be made.
    private static func startThread(_ body: @escaping @Sendable () -> Void) -> Bool {
        do { try POSIXThread.detach(name: "baseline", stackSize: 256 << 10, body) } catch {
            Console.error("baseline: \(error.call): \(errnoDetail(error.errno))")
            return false
        }
        return true
    }
}
