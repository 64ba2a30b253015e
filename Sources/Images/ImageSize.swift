/// What a root tree needs of an ext4 file system: counted by `ImageTree.tally`, sized here (pure).
public struct TreeTally: Equatable, Sendable {
    /// Distinct inodes (hard links counted once), the root included.
    public var inodes: Int
    /// 4 KiB blocks: file data, long symlinks, directory entries.
    public var blocks: Int

    public init(inodes: Int, blocks: Int) {
        self.inodes = inodes
        self.blocks = blocks
    }

    public var bytes: UInt64 { UInt64(blocks) * UInt64(ImageSize.blockSize) }
}

/// How big an image is made and with how many inodes (`mke2fs -N`).
public enum ImageSize {
    public static let blockSize = 4096
    public static let inodeSize = 256
    static let mebibyte: UInt64 = 1 << 20
    /// No image is smaller than this.
    public static let smallestImage: UInt64 = 16 << 20

    /// A quarter more inodes than the tree has, and 1024 more, for what an overlay of the image
    /// never needs but a writable copy might.
    public static func inodes(for tally: TreeTally) -> Int { tally.inodes + tally.inodes / 4 + 1024 }

    /// The least an image of the tree can be: its blocks, the inode tables, and 8 MiB for the
    /// superblocks, group descriptors, bitmaps and extent blocks.
    public static func minimum(for tally: TreeTally) -> UInt64 {
        roundUp(tally.bytes + UInt64(inodes(for: tally) * inodeSize) + 8 * mebibyte, to: mebibyte)
    }

    /// The size chosen when none is asked for: the minimum with a tenth of the tree and 32 MiB
    /// more, whole MiB. The file is sparse: the headroom costs no disk.
    public static func automatic(for tally: TreeTally) -> UInt64 {
        max(smallestImage, roundUp(minimum(for: tally) + tally.bytes / 10 + 32 * mebibyte, to: mebibyte))
    }

    /// The blocks a directory's entries take: ext4's 8-byte entry header plus the name padded to
    /// 4 bytes, "." and ".." included, a quarter more for slack and the hash tree's index blocks.
    public static func directoryBlocks(nameLengths: [Int]) -> Int {
        let bytes = 24 + nameLengths.reduce(0) { $0 + 8 + ($1 + 3) / 4 * 4 }
        let padded = bytes + bytes / 4
        return max(1, (padded + blockSize - 1) / blockSize)
    }

    /// The blocks a file of `size` bytes takes (symlinks under 60 bytes live in the inode).
    public static func fileBlocks(size: Int, isSymlink: Bool) -> Int {
        if isSymlink && size < 60 { return 0 }
        return (size + blockSize - 1) / blockSize
    }

    /// `--size`: a number of bytes, or one with K, M, G or T (powers of 1024, an optional
    /// trailing B or iB, any case). The result is whole 4 KiB blocks.
    public static func parse(_ text: String, option: String = "--size") throws(ImageError) -> UInt64 {
        var digits = Substring(text.uppercased())
        var unit: UInt64 = 1
        for suffix in ["IB", "B"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
            digits = digits.dropLast(suffix.count)
            break
        }
        if let last = digits.last, let power = ["K": 1, "M": 2, "G": 3, "T": 4][String(last)] {
            unit = 1 << (10 * UInt64(power))
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt64(digits) else {
            throw .badInput("\(option) \(text) is not a size: bytes, or a number with K, M, G or T (512M, 2G)")
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: unit)
        guard !overflow, bytes <= 16 << 40 else { throw .badInput("\(option) \(text) is over 16 TiB") }
        return roundUp(bytes, to: UInt64(blockSize))
    }

    static func roundUp(_ value: UInt64, to unit: UInt64) -> UInt64 { (value + unit - 1) / unit * unit }

    /// "1.2 GiB", "96 MiB", "512 KiB".
    public static func describe(_ bytes: UInt64) -> String {
        if bytes >= 1 << 30 { return oneDecimal(Double(bytes) / Double(1 << 30)) + " GiB" }
        if bytes >= 1 << 20 { return String(bytes >> 20) + " MiB" }
        return String(bytes >> 10) + " KiB"
    }

    static func oneDecimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
