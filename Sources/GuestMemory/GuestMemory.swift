import Glibc

/// What went wrong accessing guest memory. Guest-supplied addresses reach here, so every
/// access is checked; nothing is trusted.
public enum GuestMemoryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `[address, address+length)` is not inside one RAM region.
    case outOfBounds(address: UInt64, length: UInt64)
    /// The host could not map the RAM (`errno`).
    case mapFailed(size: UInt64, errno: Int32)
    /// Regions overlap, are empty, or are not page-aligned.
    case invalidLayout(String)

    public var description: String {
        switch self {
        case .outOfBounds(let a, let l):
            "guest access of \(l) bytes at 0x\(String(a, radix: 16)) is outside guest RAM"
        case .mapFailed(let size, let e):
            "cannot map \(size >> 20) MiB of guest RAM: \(String(cString: strerror(e)))"
        case .invalidLayout(let why):
            "invalid guest memory layout: \(why)"
        }
    }
}

/// Guest-physical RAM: page-aligned regions backed by anonymous host mappings.
/// Every read and write is bounds-checked and copies; no pointer into guest RAM escapes except
/// through `package` API used to register the regions with KVM.
public final class GuestMemory: @unchecked Sendable {
    public struct Region: @unchecked Sendable {
        public let guestAddress: UInt64
        public let size: UInt64
        package let host: UnsafeMutableRawPointer

        public var end: UInt64 { guestAddress + size }
    }

    public static let pageSize: UInt64 = 4096
    public let regions: [Region]

    /// Maps each `(guestAddress, size)` as zeroed, lazily-allocated private memory.
    public init(layout: [(guestAddress: UInt64, size: UInt64)]) throws(GuestMemoryError) {
        let sorted = layout.sorted { $0.guestAddress < $1.guestAddress }
        guard !sorted.isEmpty else { throw .invalidLayout("no RAM regions") }
        var previousEnd: UInt64 = 0
        for (i, r) in sorted.enumerated() {
            guard r.size > 0 else { throw .invalidLayout("region at 0x\(String(r.guestAddress, radix: 16)) is empty") }
            guard r.guestAddress % Self.pageSize == 0, r.size % Self.pageSize == 0 else {
                throw .invalidLayout("region at 0x\(String(r.guestAddress, radix: 16)) is not page-aligned")
            }
            let (end, overflow) = r.guestAddress.addingReportingOverflow(r.size)
            guard !overflow else { throw .invalidLayout("region at 0x\(String(r.guestAddress, radix: 16)) wraps") }
            guard i == 0 || r.guestAddress >= previousEnd else { throw .invalidLayout("regions overlap") }
            previousEnd = end
        }
        var mapped: [Region] = []
        for r in sorted {
            guard let p = Self.mapAligned(size: r.size, guestAddress: r.guestAddress) else {
                let e = errno
                for m in mapped { munmap(m.host, Int(m.size)) }
                throw .mapFailed(size: r.size, errno: e)
            }
            mapped.append(Region(guestAddress: r.guestAddress, size: r.size, host: p))
        }
        regions = mapped
    }

    /// The huge page size guest RAM is aligned to: x86-64's 2 MiB second-level page.
    public static let hugePageSize: UInt64 = 2 << 20

    /// Maps `size` bytes at a host address congruent to `guestAddress` modulo 2 MiB. The host can
    /// then back the RAM with transparent huge pages, and KVM maps a huge page only where the
    /// guest and host addresses agree in their low 21 bits (so one nested page fault brings in
    /// 2 MiB, not 4 KiB: a boot touches tens of MiB). QEMU aligns its RAM the same way. Maps a
    /// 2 MiB larger span and returns its ends; nil with `errno` set when the host has no room.
    static func mapAligned(size: UInt64, guestAddress: UInt64) -> UnsafeMutableRawPointer? {
        let (span, overflow) = size.addingReportingOverflow(hugePageSize)
        guard !overflow, span <= UInt64(Int.max) else { errno = ENOMEM; return nil }
        guard let base = mmap(nil, Int(span), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              base != MAP_FAILED else { return nil }
        let baseAddress = UInt64(UInt(bitPattern: base))
        let lead = (guestAddress &- baseAddress) & (hugePageSize - 1)
        let start = base + Int(lead)
        if lead > 0 { munmap(base, Int(lead)) }
        let trail = hugePageSize - lead
        if trail > 0 { munmap(start + Int(size), Int(trail)) }
        // A hint, for hosts whose transparent huge pages are "madvise" rather than "always"
        // (Documentation/admin-guide/mm/transhuge.rst); where they are off it fails, and the RAM
        // stays in 4 KiB pages, as correct as before.
        _ = madvise(start, Int(size), MADV_HUGEPAGE)
        return start
    }

    deinit {
        for r in regions { munmap(r.host, Int(r.size)) }
    }

    /// Total RAM in bytes.
    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.size } }

    /// The host address of `[address, address+length)`, which must lie within one region.
    package func hostAddress(_ address: UInt64, length: UInt64) throws(GuestMemoryError) -> UnsafeMutableRawPointer {
        let (end, overflow) = address.addingReportingOverflow(length)
        if !overflow {
            for r in regions where address >= r.guestAddress && end <= r.end {
                return r.host + Int(address - r.guestAddress)
            }
        }
        throw .outOfBounds(address: address, length: length)
    }

    /// Whether `[address, address+length)` is RAM.
    public func contains(_ address: UInt64, length: UInt64) -> Bool {
        (try? hostAddress(address, length: length)) != nil
    }

    public func write(_ bytes: [UInt8], at address: UInt64) throws(GuestMemoryError) {
        guard !bytes.isEmpty else { return }
        let p = try hostAddress(address, length: UInt64(bytes.count))
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// Writes `count` bytes of `bytes` starting at `offset` (avoids slicing big files).
    public func write(_ bytes: [UInt8], from offset: Int, count: Int, at address: UInt64) throws(GuestMemoryError) {
        guard offset >= 0, count >= 0, offset + count <= bytes.count else {
            throw .outOfBounds(address: address, length: UInt64(max(count, 0)))
        }
        guard count > 0 else { return }
        let p = try hostAddress(address, length: UInt64(count))
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress! + offset, byteCount: count) }
    }

    public func read(at address: UInt64, count: Int) throws(GuestMemoryError) -> [UInt8] {
        guard count > 0 else { return [] }
        let p = try hostAddress(address, length: UInt64(count))
        return [UInt8](UnsafeRawBufferPointer(start: p, count: count))
    }

    /// Sets `count` bytes at `address` to zero.
    public func zero(at address: UInt64, count: Int) throws(GuestMemoryError) {
        guard count > 0 else { return }
        let p = try hostAddress(address, length: UInt64(count))
        p.initializeMemory(as: UInt8.self, repeating: 0, count: count)
    }

    /// Little-endian integer store (x86 guests are little-endian).
    public func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(GuestMemoryError) {
        let p = try hostAddress(address, length: UInt64(MemoryLayout<T>.size))
        p.storeBytes(of: value.littleEndian, as: T.self)
    }

    /// Little-endian integer load.
    public func load<T: FixedWidthInteger>(_: T.Type = T.self, at address: UInt64) throws(GuestMemoryError) -> T {
        let p = try hostAddress(address, length: UInt64(MemoryLayout<T>.size))
        return T(littleEndian: p.loadUnaligned(as: T.self))
    }
}
