import Doors
import Glibc
import GuestClient
import POSIX

/// Bulk transfer rates, raw vsock against Doors file transfers, each way.
enum Throughput {
    static let chunk = 256 << 10

    static func raw(_ target: Target, port: UInt32, mib: Int) throws(ProbeError) {
        let total = mib << 20
        // Host → guest: stream to the sink, half-close, and wait for its count: the time ends
        // when the guest has read the last byte.
        let block = (0..<chunk).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let sink = try VsockStream(target, port: port + 1)
        var start = MonotonicClock.nanoseconds()
        var sent = 0
        while sent < total {
            let n = min(block.count, total - sent)
            try sink.send(block, range: 0..<n)
            sent += n
        }
        sink.shutdownWrite()
        let count = littleEndian(try sink.receiveExactly(8))
        let up = MonotonicClock.nanoseconds() - start
        guard count == UInt64(total) else { throw .unexpected("the sink counted \(count) bytes of \(total)") }

        // Guest → host: ask the source for the bytes and read them to its close.
        let source = try VsockStream(target, port: port + 2)
        var buffer = [UInt8](repeating: 0, count: chunk)
        start = MonotonicClock.nanoseconds()
        try source.send(littleEndianBytes(UInt64(total)))
        var received = 0
        while true {
            let n = try source.receive(into: &buffer)
            if n == 0 { break }
            received += n
        }
        let down = MonotonicClock.nanoseconds() - start
        guard received == total else { throw .unexpected("the source sent \(received) bytes of \(total)") }
        report("raw", mib: mib, up: up, down: down)
    }

    /// Where the Doors transfer ends in the guest: a file in its /tmp (what `momin cp` does),
    /// or /dev/null and /dev/zero, which leaves out the guest's own copy into its page cache.
    enum GuestEnd: String {
        case file, devices
    }

    static func doors(_ target: Target, mib: Int, through end: GuestEnd) throws(ProbeError) {
        let total = mib << 20
        // The host side of the copy is a file in memory-backed /tmp where possible, read and
        // written the way `momin cp` does it.
        let file = try temporaryFile(bytes: total)
        defer { close(file) }
        let client = try connectHands(target)
        let (writePath, readPath) = end == .file
            ? ("/tmp/momin-probe-throughput", "/tmp/momin-probe-throughput") : ("/dev/null", "/dev/zero")
        do throws(GuestCallError) {
            var start = MonotonicClock.nanoseconds()
            let written = try client.writeFile(WriteFileRequest(path: writePath), from: file)
            let up = MonotonicClock.nanoseconds() - start
            guard written == UInt64(total) else { throw GuestCallError.unexpected(.ok(count: written)) }

            let sink = open("/dev/null", O_WRONLY | O_CLOEXEC)
            defer { close(sink) }
            start = MonotonicClock.nanoseconds()
            let read = try client.readFile(ReadFileRequest(path: readPath, length: UInt64(total)), to: sink)
            let down = MonotonicClock.nanoseconds() - start
            guard read == UInt64(total) else { throw GuestCallError.unexpected(.ok(count: read)) }
            if end == .file {
                // Give the guest its memory back (its /tmp is RAM).
                _ = try client.exec(ExecRequest(argv: ["/bin/rm", "-f", writePath])) { _, _ in }
            }
            report(end == .file ? "doors" : "doors-devices", mib: mib, up: up, down: down)
        } catch {
            throw .guest(error)
        }
    }

    static func report(_ name: String, mib: Int, up: UInt64, down: UInt64) {
        say("\(name)-host-to-guest-mib-s: \(fixed(Double(mib) / (Double(up) / 1e9), 2))")
        say("\(name)-guest-to-host-mib-s: \(fixed(Double(mib) / (Double(down) / 1e9), 2))")
        say("\(name)-mib: \(mib)")
    }

    /// An unlinked temporary file holding `bytes` bytes, positioned at its start.
    static func temporaryFile(bytes: Int) throws(ProbeError) -> Int32 {
        var template = Array("/tmp/momin-probe.XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw .system("mkstemp /tmp", errno: errno) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        let block = (0..<chunk).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ 5) }
        var written = 0
        while written < bytes {
            let count = min(block.count, bytes - written)
            do { try FileIO.writeAll(fd, block[..<count]) } catch {
                close(fd)
                throw .system("write to a temporary file", errno: error.errno)
            }
            written += count
        }
        lseek(fd, 0, SEEK_SET)
        return fd
    }
}

func littleEndian(_ bytes: [UInt8]) -> UInt64 {
    bytes.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
}

func littleEndianBytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}
