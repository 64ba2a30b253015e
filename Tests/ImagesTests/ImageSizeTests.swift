@testable import Images
import Testing

@Suite struct ImageSizeTests {
    @Test func theAutomaticSizeIsTheTreeWithItsTablesAndHeadroom() {
        // 100 MiB of blocks in 5000 inodes: 7274 inodes of 256 bytes (1.8 MiB) and 8 MiB of
        // metadata make the minimum 110 MiB; a tenth of the tree and 32 MiB more make 152 MiB.
        let tally = TreeTally(inodes: 5000, blocks: 25600)
        #expect(ImageSize.inodes(for: tally) == 7274)
        #expect(ImageSize.minimum(for: tally) == 110 << 20)
        #expect(ImageSize.automatic(for: tally) == 152 << 20)
        // Whole MiB, and never below the smallest image.
        #expect(ImageSize.automatic(for: TreeTally(inodes: 1, blocks: 1)) == 42 << 20)
        #expect(ImageSize.automatic(for: TreeTally(inodes: 0, blocks: 0)) % (1 << 20) == 0)
        #expect(ImageSize.smallestImage <= ImageSize.automatic(for: TreeTally(inodes: 0, blocks: 0)))
    }

    @Test func sizesGrowWithTheTree() {
        var previous: UInt64 = 0
        for blocks in stride(from: 0, through: 1_000_000, by: 50_000) {
            let size = ImageSize.automatic(for: TreeTally(inodes: blocks / 4, blocks: blocks))
            #expect(size > previous)
            #expect(size >= ImageSize.minimum(for: TreeTally(inodes: blocks / 4, blocks: blocks)))
            previous = size
        }
    }

    @Test func filesAndDirectoriesCountInWholeBlocks() {
        #expect(ImageSize.fileBlocks(size: 0, isSymlink: false) == 0)
        #expect(ImageSize.fileBlocks(size: 1, isSymlink: false) == 1)
        #expect(ImageSize.fileBlocks(size: 4096, isSymlink: false) == 1)
        #expect(ImageSize.fileBlocks(size: 4097, isSymlink: false) == 2)
        #expect(ImageSize.fileBlocks(size: 59, isSymlink: true) == 0)
        #expect(ImageSize.fileBlocks(size: 60, isSymlink: true) == 1)
        #expect(ImageSize.directoryBlocks(nameLengths: []) == 1)
        #expect(ImageSize.directoryBlocks(nameLengths: Array(repeating: 8, count: 100)) == 1)
        // 400 entries of 16 bytes, plus "." and "..": 6424 bytes, 8030 with slack: 2 blocks.
        #expect(ImageSize.directoryBlocks(nameLengths: Array(repeating: 8, count: 400)) == 2)
    }

    @Test func sizeTextParses() throws {
        #expect(try ImageSize.parse("512M") == 512 << 20)
        #expect(try ImageSize.parse("2G") == 2 << 30)
        #expect(try ImageSize.parse("2GiB") == 2 << 30)
        #expect(try ImageSize.parse("64mb") == 64 << 20)
        #expect(try ImageSize.parse("1048576") == 1 << 20)
        #expect(try ImageSize.parse("4097") == 8192)
        #expect(try ImageSize.parse("1T") == 1 << 40)
        for bad in ["", "M", "-1M", "1.5G", "12X", "0x10", "99999999999999999999", "20T", " 1M"] {
            #expect(throws: ImageError.self) { try ImageSize.parse(bad) }
        }
    }

    @Test func sizesAreDescribedShortly() {
        #expect(ImageSize.describe(512 << 10) == "512 KiB")
        #expect(ImageSize.describe(96 << 20) == "96 MiB")
        #expect(ImageSize.describe(1288 << 20) == "1.3 GiB")
    }
}
