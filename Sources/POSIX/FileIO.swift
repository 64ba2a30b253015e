import Glibc

/// Whole reads and writes on a blocking descriptor, each through the EINTR funnel.
public enum FileIO {
    /// Reads to end of file; a file longer than `limit` bytes fails with EFBIG before more than
    /// `limit` + one chunk is held.
    public static func readAll(_ fd: Int32, limit: Int) throws(SystemError) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in retryingEINTR { read(fd, raw.baseAddress, raw.count) } }
            if count < 0 { throw SystemError("read") }
            if count == 0 { return out }
            out.append(contentsOf: buffer[..<count])
            if out.count > limit { throw SystemError("read", errno: EFBIG) }
        }
    }

    /// The whole file at `path`, refused past `limit` bytes.
    public static func readFile(_ path: String, limit: Int) throws(SystemError) -> [UInt8] {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError("open", subject: path) }
        defer { close(fd) }
        do { return try readAll(fd, limit: limit) } catch { throw SystemError(error.call, errno: error.errno, subject: path) }
    }

    /// write(2) until all of `bytes` is written. A descriptor that takes nothing (a write of 0)
    /// fails with EIO rather than spinning.
    public static func writeAll(_ fd: Int32, _ bytes: some Collection<UInt8>) throws(SystemError) {
        let contiguous = ContiguousArray(bytes)
        var offset = 0
        while offset < contiguous.count {
            let count = contiguous.withUnsafeBytes { all in
                retryingEINTR { write(fd, all.baseAddress! + offset, all.count - offset) }
            }
            if count < 0 { throw SystemError("write") }
            if count == 0 { throw SystemError("write", errno: EIO) }
            offset += count
        }
    }

    /// send(2) with MSG_NOSIGNAL until all of `bytes` is sent: a peer that has gone is an error
    /// to handle, not a SIGPIPE that kills the process.
    public static func sendAll(_ socket: Int32, _ bytes: some Collection<UInt8>) throws(SystemError) {
        let contiguous = ContiguousArray(bytes)
        var offset = 0
        while offset < contiguous.count {
            let count = contiguous.withUnsafeBytes { all in
                retryingEINTR { send(socket, all.baseAddress! + offset, all.count - offset, Int32(MSG_NOSIGNAL)) }
            }
            if count < 0 { throw SystemError("send") }
            if count == 0 { throw SystemError("send", errno: EPIPE) }
            offset += count
        }
    }

    /// `sendAll`, finished by `deadline` (monotonic nanoseconds) however slowly the peer reads:
    /// each send waits in poll(2) for what is left of the deadline, and then fails ETIMEDOUT.
    public static func sendAll(_ socket: Int32, _ bytes: some Collection<UInt8>, until deadline: UInt64) throws(SystemError) {
        let contiguous = ContiguousArray(bytes)
        var offset = 0
        while offset < contiguous.count {
            try wait(socket, for: Int16(POLLOUT), until: deadline, "send")
            let count = contiguous.withUnsafeBytes { all in
                retryingEINTR { send(socket, all.baseAddress! + offset, all.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { continue }
            if count < 0 { throw SystemError("send") }
            if count == 0 { throw SystemError("send", errno: EPIPE) }
            offset += count
        }
    }

    /// Closes a connected socket so that what was written reaches the peer: a close with unread
    /// bytes would reset the connection and could lose the answer, so the write side is shut
    /// first and what the peer still sends is read and dropped (at most 1 MiB, for 1 s).
    public static func closeSocketGracefully(_ fd: Int32) {
        shutdown(fd, Int32(SHUT_WR))
        let deadline = MonotonicClock.deadline(after: 1)
        var drained = 0
        var sink = [UInt8](repeating: 0, count: 16 << 10)
        while drained < 1 << 20 {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, MonotonicClock.pollTimeout(until: deadline)) > 0 else { break }
            let n = sink.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else { break }
            drained += n
        }
        close(fd)
    }

    /// Exactly `count` bytes from `fd`, all of them by `deadline` (monotonic nanoseconds): a peer
    /// that sends a byte now and then cannot stretch the wait. Nil at end of file, on an error,
    /// or once the deadline passes. The bytes are kept as they arrive, 64 KiB at a time, never
    /// allocated whole from `count`: a peer that claims a large length and sends little costs
    /// what it sent (many connections each claiming 8 MiB must not cost gigabytes).
    public static func readExactly(_ fd: Int32, count: Int, until deadline: UInt64) -> [UInt8]? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(count, 64 << 10))
        while bytes.count < count {
            do throws(SystemError) { try wait(fd, for: Int16(POLLIN), until: deadline, "read") } catch { return nil }
            let wanted = min(chunk.count, count - bytes.count)
            let n = chunk.withUnsafeMutableBytes { raw in retryingEINTR { recv(fd, raw.baseAddress!, wanted, Int32(MSG_DONTWAIT)) } }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { continue }
            if n <= 0 { return nil }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    /// poll(2) for `events` on `fd` until `deadline`; ETIMEDOUT once it has passed.
    private static func wait(_ fd: Int32, for events: Int16, until deadline: UInt64, _ call: String) throws(SystemError) {
        while true {
            let left = MonotonicClock.pollTimeout(until: deadline)
            guard left > 0 else { throw SystemError(call, errno: ETIMEDOUT) }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, left)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw SystemError("poll") }
        }
    }

    /// pread(2) at `offset` until `buffer` is full or the file ends; the byte count read.
    public static func preadFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let count = retryingEINTR { pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done)) }
            if count < 0 { throw SystemError("pread") }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// The names in a directory, without "." and "..", sorted; a failed readdir(3) is an error,
    /// not a shorter list.
    public static func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let directory = opendir(path) else { throw SystemError("opendir", subject: path) }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw SystemError("readdir", subject: path) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// fsync of the directory that holds `path`, so that a new name survives power loss.
    public static func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? "."
        let fd = retryingEINTR { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}
