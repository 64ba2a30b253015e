import CGuestSys
import Doors
import Glibc
import POSIX

/// A failed system call while a server (the Doors server, the hands relay) sets up, as its
/// caller sees it.
public struct SetupError: Error, CustomStringConvertible {
    public let description: String
    public let errno: Int32

    init(_ error: SystemError) {
        description = error.description
        errno = error.errno
    }
}

extension SystemError {
    /// The Error payload for the host: the code follows from the errno.
    var reply: ErrorReply {
        ErrorReply(linuxErrno: errno, message: boundedMessage(description))
    }
}

/// Cuts `text` to fit an Error frame's message.
func boundedMessage(_ text: String) -> String {
    truncated(text, toBytes: DoorsLimits.maxMessageLength)
}

/// `text` itself when it has at most `limit` UTF-8 bytes, else its longest prefix of whole
/// characters that fits with "..." after it.
func truncated(_ text: String, toBytes limit: Int) -> String {
    guard text.utf8.count > limit else { return text }
    var result = ""
    var size = 0
    for character in text {
        let length = character.utf8.count
        guard size + length <= limit - 3 else { break }
        result.append(character)
        size += length
    }
    return result + "..."
}

/// An open file descriptor this code owns: closed exactly once, when `close()` is called or
/// when the last reference goes away.
final class Descriptor {
    private(set) var raw: Int32

    init(_ raw: Int32) {
        precondition(raw >= 0, "a Descriptor needs an open file descriptor")
        self.raw = raw
    }

    var isOpen: Bool { raw >= 0 }

    /// Closes the descriptor. close(2) is not retried on EINTR: on Linux the descriptor is gone
    /// either way, and retrying could close one another thread has just opened.
    func close() {
        guard raw >= 0 else { return }
        _ = Glibc.close(raw)
        raw = -1
    }

    deinit { close() }

    /// Closes the descriptor and reports what close(2) says (EINTR counts as closed).
    func closeReportingErrors() throws(SystemError) {
        guard raw >= 0 else { return }
        let result = Glibc.close(raw)
        let error = errno
        raw = -1
        guard result == 0 || error == EINTR else { throw SystemError("close", errno: error) }
    }

    /// Sets O_NONBLOCK.
    func setNonBlocking() throws(SystemError) {
        let flags = fcntl(raw, F_GETFL)
        guard flags >= 0 else { throw SystemError("fcntl(F_GETFL)") }
        guard fcntl(raw, F_SETFL, flags | O_NONBLOCK) == 0 else { throw SystemError("fcntl(F_SETFL)") }
    }

    /// One read(2) into `buffer`, up to `count` bytes. Returns the byte count (0 at end of
    /// file), or nil when a non-blocking descriptor has nothing now (EAGAIN).
    func read(into buffer: inout [UInt8], count: Int) throws(SystemError) -> Int? {
        let wanted = min(count, buffer.count)
        let fd = raw
        let n = buffer.withUnsafeMutableBytes { bytes in
            retryingEINTR { Glibc.read(fd, bytes.baseAddress, wanted) }
        }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            throw SystemError("read")
        }
        return n
    }

    /// One write(2) of as much of `bytes` as the descriptor takes now. Returns the count, or 0
    /// when a non-blocking descriptor is full (EAGAIN).
    func writeSome(_ bytes: UnsafeRawBufferPointer) throws(SystemError) -> Int {
        guard bytes.count > 0 else { return 0 }
        let fd = raw
        let n = retryingEINTR { Glibc.write(fd, bytes.baseAddress, bytes.count) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
            throw SystemError("write")
        }
        return n
    }

    /// Writes all of `bytes` to a blocking descriptor (a regular file).
    func writeAll(_ bytes: [UInt8]) throws(SystemError) {
        try FileIO.writeAll(raw, bytes)
    }
}

/// A pipe whose two ends close on exec.
func makePipe() throws(SystemError) -> (read: Descriptor, write: Descriptor) {
    var fds: [Int32] = [-1, -1]
    guard guest_pipe_cloexec(&fds) == 0 else { throw SystemError("pipe2") }
    return (Descriptor(fds[0]), Descriptor(fds[1]))
}

/// Makes a C string array (NULL-terminated) for the duration of `body`.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) throws(SystemError) -> R) throws(SystemError) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = []
    pointers.reserveCapacity(strings.count + 1)
    defer { for pointer in pointers { free(pointer) } }
    for string in strings {
        guard let copy = strdup(string) else { throw SystemError("strdup", errno: ENOMEM) }
        pointers.append(copy)
    }
    pointers.append(nil)
    return try pointers.withUnsafeBufferPointer { buffer throws(SystemError) in
        try body(buffer.baseAddress!)
    }
}
