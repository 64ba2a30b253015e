import CZlib
import Crypto
import Glibc
import POSIX

/// An open file, closed when the last reference goes.
final class OpenFile: @unchecked Sendable {
    let fd: Int32
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// The file's size (it is a regular file: callers check).
    func size() throws(ImageError) -> UInt64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .failed("cannot read \(path): \(describeErrno())") }
        return UInt64(info.st_size)
    }
}

/// `length` bytes of a file from `offset`, read with pread(2): one blob inside an archive, or a
/// whole blob file.
struct FileWindow: ByteSource {
    let file: OpenFile
    let offset: UInt64
    let length: UInt64
    private var position: UInt64 = 0

    init(file: OpenFile, offset: UInt64, length: UInt64) {
        self.file = file
        self.offset = offset
        self.length = length
    }

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        let want = Int(min(UInt64(buffer.count), length - position))
        guard want > 0 else { return 0 }
        let count = retryingEINTR { pread(file.fd, buffer.baseAddress, want, off_t(offset + position)) }
        guard count >= 0 else { throw .failed("cannot read \(file.path): \(describeErrno())") }
        guard count > 0 else { throw .badInput("\(file.path) ends \(length - position) bytes before the blob at byte \(offset) does") }
        position += UInt64(count)
        return count
    }
}

/// Counts and hashes (SHA-256) what passes through: a blob's digest is checked against its
/// descriptor once the blob is read to its end (OCI image-spec, descriptor.md "Digests").
struct HashingSource<Inner: ByteSource>: ByteSource {
    var inner: Inner
    private(set) var hasher = SHA256()
    private(set) var count: UInt64 = 0

    init(_ inner: Inner) { self.inner = inner }

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        let n = try inner.read(into: buffer)
        hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        count += UInt64(n)
        return n
    }

    /// `sha256:HEX` of everything read so far.
    var digest: String { "sha256:" + hexBytes(hasher.finalize()) }
}

/// gzip (RFC 1952) through zlib's inflate, one member after another until the input ends
/// (gzip's multi-member form). Corrupt data is bad input, named by `label`.
final class GzipSource<Inner: ByteSource>: ByteSource {
    var inner: Inner
    let label: String
    private var stream = z_stream()
    private let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
    private var inputEnded = false
    private var memberEnded = false
    private var ready = false

    init(_ inner: Inner, label: String) throws(ImageError) {
        self.inner = inner
        self.label = label
        // 15 + 16: the largest window, and a gzip wrapper rather than zlib's.
        let status = inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { throw .failed("zlib's inflateInit2 failed (\(status))") }
        ready = true
    }

    deinit {
        if ready { inflateEnd(&stream) }
        input.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        guard buffer.count > 0 else { return 0 }
        while true {
            if stream.avail_in == 0 && !inputEnded {
                let n = try inner.read(into: input)
                if n == 0 { inputEnded = true }
                stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = UInt32(n)
            }
            if stream.avail_in == 0 && inputEnded {
                guard memberEnded else { throw .badInput("\(label): gzip data ends early (truncated)") }
                return 0
            }
            if memberEnded {
                // Another member follows.
                inflateReset(&stream)
                memberEnded = false
            }
            stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = UInt32(min(buffer.count, Int(UInt32.max)))
            let status = inflate(&stream, Z_NO_FLUSH)
            let produced = buffer.count - Int(stream.avail_out)
            switch status {
            case Z_STREAM_END: memberEnded = true
            case Z_OK, Z_BUF_ERROR: break
            default:
                let why = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                throw .badInput("\(label): corrupt gzip data (\(why))")
            }
            if produced > 0 { return produced }
        }
    }
}
