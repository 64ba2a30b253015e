import CLinux
import Glibc
import POSIX

/// What a read moved before it stopped: all of it, or fewer bytes and why (an error, or `nil`
/// at end of file).
public struct BlockTransfer: Equatable, Sendable {
    public var count: Int
    public var error: SystemError?

    public init(count: Int, error: SystemError? = nil) {
        self.count = count
        self.error = error
    }
}

/// Where a virtio-blk disk's bytes live. `DiskFile` is the real one; tests put faults in front
/// of it. Calls come from the device's thread only, one at a time.
public protocol BlockStorage: AnyObject, Sendable {
    /// Bytes, a multiple of 512, fixed for the device's life.
    var size: UInt64 { get }
    /// Whether the descriptor was opened for writing.
    var isWritable: Bool { get }
    /// Fills `buffers`, in order, from consecutive bytes at `offset`: a request's data segments
    /// in one go.
    func read(into buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> BlockTransfer
    /// Writes all of `buffer` at `offset`.
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(SystemError)
    /// Makes what was written stable (fdatasync).
    func flush() throws(SystemError)
    /// Deallocates a range, which then reads as zeros; EOPNOTSUPP where the file system cannot.
    func punchHole(at offset: UInt64, length: UInt64) throws(SystemError)
    /// Zeroes a range keeping it allocated; EOPNOTSUPP where the file system cannot.
    func zeroRange(at offset: UInt64, length: UInt64) throws(SystemError)
}

/// A disk image or block device the VMM opened before its seccomp filters went on; the device
/// only reads and writes the descriptor it is given, and closes it when released. Every call
/// retries EINTR and loops on short transfers.
public final class DiskFile: BlockStorage, @unchecked Sendable {
    public let fd: Int32
    public let size: UInt64
    public let isWritable: Bool

    /// The fallocate(2) modes `punchHole` and `zeroRange` use, for the device thread's filter.
    public static let fallocateModes = [CLINUX_FALLOC_PUNCH_HOLE, CLINUX_FALLOC_ZERO_RANGE]

    /// Takes ownership of `fd`, `size` bytes long, opened read-write when `writable`.
    public init(adopting fd: Int32, size: UInt64, writable: Bool) {
        self.fd = fd
        self.size = size
        isWritable = writable
    }

    deinit { close(fd) }

    /// One preadv(2) for all the segments (a 1 MiB request of 4 KiB pages is one system call,
    /// not 256); a short transfer goes on from where it stopped.
    public func read(into buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> BlockTransfer {
        var vectors = buffers.filter { $0.count > 0 }.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
        let total = vectors.reduce(0) { $0 + $1.iov_len }
        var done = 0
        var first = 0
        while done < total {
            // The device's seg_max (128) is far below IOV_MAX (1024): one call takes them all.
            let n = vectors[first...].withUnsafeBufferPointer { rest in
                retryingEINTR { preadv(fd, rest.baseAddress, Int32(rest.count), off_t(offset) + off_t(done)) }
            }
            if n < 0 { return BlockTransfer(count: done, error: SystemError("preadv")) }
            if n == 0 { return BlockTransfer(count: done) }  // end of file: the file shrank
            done += n
            // Skip what is full, and trim the one it stopped in.
            var left = n
            while first < vectors.count, left >= vectors[first].iov_len {
                left -= vectors[first].iov_len
                first += 1
            }
            if left > 0 {
                vectors[first].iov_base = vectors[first].iov_base! + left
                vectors[first].iov_len -= left
            }
        }
        return BlockTransfer(count: done)
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(SystemError) {
        var done = 0
        while done < buffer.count {
            let n = retryingEINTR { pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done)) }
            if n < 0 { throw SystemError("pwrite") }
            if n == 0 { throw SystemError("pwrite", errno: EIO) }
            done += n
        }
    }

    public func flush() throws(SystemError) {
        if retryingEINTR({ fdatasync(fd) }) != 0 { throw SystemError("fdatasync") }
    }

    public func punchHole(at offset: UInt64, length: UInt64) throws(SystemError) {
        try fallocate(CLINUX_FALLOC_PUNCH_HOLE, offset, length)
    }

    public func zeroRange(at offset: UInt64, length: UInt64) throws(SystemError) {
        try fallocate(CLINUX_FALLOC_ZERO_RANGE, offset, length)
    }

    private func fallocate(_ mode: Int32, _ offset: UInt64, _ length: UInt64) throws(SystemError) {
        guard length > 0 else { return }
        if retryingEINTR({ clinux_fallocate(fd, mode, Int64(offset), Int64(length)) }) != 0 { throw SystemError("fallocate") }
    }
}
