import Gateway
import Merkle
import Testing

@Suite struct SessionRecordTests {
    static let hash = MerkleHash(hex: String(repeating: "ab", count: 32))!

    static let record = SessionRecord(
        seed: (0..<32).map { UInt8($0) }, vcpus: 2, memoryMiB: 512,
        commandLine: "console=ttyS0 reboot=k pci=off quiet momin.doors=1024",
        kernel: .init(path: "/cache/guest/vmlinuz", sha256: hash), initrd: .init(path: "/cache/guest/initrd with space.cpio", sha256: hash),
        policy: nil,
        calls: [
            CallObservation(arguments: [1, 2, 3], allowed: true, rule: "tools.exec[0]", status: 0, byteCount: 6, digest: hash),
            CallObservation(arguments: [4], allowed: false, rule: "tools.exec"),
        ])

    @Test func textRoundTrips() throws {
        let text = Self.record.text
        #expect(text.hasPrefix("momin-record 1\nseed 000102"))
        #expect(text.contains("\ncall deny tools.exec - 0 - 04\n"))
        #expect(try SessionRecord.parse(text) == Self.record)
    }

    @Test(arguments: [
        ("momin-record 2\n", 1, "not a MominAI session record"),
        ("momin-record 1\nseed 00\n", 2, "seed must be 64 hex digits"),
        ("momin-record 1\nvcpus zero\n", 2, "vcpus must be a positive number"),
        ("momin-record 1\nkernel abc /k\n", 2, "kernel needs a SHA-256 and a path"),
        ("momin-record 1\nbogus 1\n", 2, "unknown line 'bogus'"),
        ("momin-record 1\ncall allow r 0 1 -\n", 2, "call needs 6 fields, not 5"),
        ("momin-record 1\ncall maybe r 0 1 - 00\n", 2, "call verdict must be allow or deny"),
        ("momin-record 1\ncall allow r x 1 - 00\n", 2, "call status or size is not a number"),
        ("momin-record 1\ncall allow r 0 1 - zz\n", 2, "call request is not hex"),
    ])
    func malformedLinesAreNamed(text: String, line: Int, message: String) {
        do {
            _ = try SessionRecord.parse(text)
            Issue.record("parsed \(text.debugDescription)")
        } catch {
            #expect(error.line == line)
            #expect(error.message.hasPrefix(message), "got \(error)")
        }
    }

    @Test func aRecordWithoutItsMachineIsRefused() {
        let text = "momin-record 1\nseed " + String(repeating: "00", count: 32) + "\n"
        #expect(throws: SessionRecord.ParseError.self) { try SessionRecord.parse(text) }
    }
}
