import Gateway
import Merkle
import Testing

@Suite struct SessionRecordTests {
    static let hash = MerkleHash(hex: String(repeating: "ab", count: 32))!
    static let other = MerkleHash(hex: String(repeating: "cd", count: 32))!

    static let record: SessionRecord = {
        var record = SessionRecord(
            seed: (0..<32).map { UInt8($0) }, vcpus: 2, memoryMiB: 512,
            commandLine: "console=ttyS0 reboot=k pci=off quiet momin.doors=1024",
            kernel: .init(path: "/cache/guest/vmlinuz", sha256: hash), initrd: .init(path: "/cache/guest/initrd with space.cpio", sha256: hash),
            policy: nil,
            calls: [
                CallObservation(tool: "brain", arguments: [9], allowed: true, rule: "brain", status: 200, byteCount: 40, digest: other,
                                exchange: .init(request: hash, response: other)),
                CallObservation(tool: "door-send", arguments: [5], allowed: false, rule: "triage.a: tools.doors"),
                CallObservation(arguments: [1, 2, 3], allowed: true, rule: "tools.exec[0]", status: 0, byteCount: 6, digest: hash),
                CallObservation(arguments: [4], allowed: false, rule: "tools.exec"),
            ])
        record.image = .init(path: "/images/debian.ext4", sha256: other)
        record.overlay = "25%"
        record.disks = [.init(path: "/srv/cases/evidence, 1.img:ro,name=case1,bps=1000", sha256: hash)]
        record.buckets = true
        record.bucketTimes = [1_765_000_000_000_000_001, 1_765_000_000_000_000_002]
        return record
    }()

    @Test func textRoundTrips() throws {
        let text = Self.record.text
        #expect(text.hasPrefix("momin-record 2\nseed 000102"))
        #expect(text.contains("\nimage \(Self.other.hex) /images/debian.ext4\noverlay 25%\n"))
        #expect(text.contains("\ndisk \(Self.hash.hex) /srv/cases/evidence, 1.img:ro,name=case1,bps=1000\nbuckets\n"
                              + "bucket-time 1765000000000000001\nbucket-time 1765000000000000002\n"))
        #expect(text.contains("\ncall brain allow brain 200 40 \(Self.other.hex) 09 \(Self.hash.hex):\(Self.other.hex)\n"))
        // A rule with a space (a peer's refusal) stays one field.
        #expect(text.contains("\ncall door-send deny triage.a:%20tools.doors - 0 - 05 -\n"))
        #expect(text.contains("\ncall exec deny tools.exec - 0 - 04 -\n"))
        #expect(try SessionRecord.parse(text) == Self.record)
    }

    /// Records made before version 2 still replay: their calls are the run's own execs.
    @Test func aVersion1RecordIsRead() throws {
        let text = "momin-record 1\nseed " + String(repeating: "00", count: 32) + "\nvcpus 1\nmemory 256\ncmdline quiet\n"
            + "kernel \(Self.hash.hex) /k\ncall allow no-policy 0 5 \(Self.hash.hex) 0102\n"
        let record = try SessionRecord.parse(text)
        #expect(record.calls == [CallObservation(tool: "exec", arguments: [1, 2], allowed: true, rule: "no-policy", status: 0, byteCount: 5,
                                                 digest: Self.hash)])
        #expect(record.image == nil && record.disks.isEmpty && !record.buckets)
    }

    @Test(arguments: [
        ("momin-record 3\n", 1, "not a MominAI session record"),
        ("momin-record 2\nseed 00\n", 2, "seed must be 64 hex digits"),
        ("momin-record 2\nvcpus zero\n", 2, "vcpus must be a positive number"),
        ("momin-record 2\nvcpus 1\nvcpus 2\n", 3, "a second vcpus line"),
        ("momin-record 2\nkernel abc /k\n", 2, "kernel needs a SHA-256 and a path"),
        ("momin-record 2\ndisk \(hash.hex) relative.img\n", 2, "disk path must be absolute"),
        ("momin-record 2\nbuckets yes\n", 2, "buckets takes nothing after it"),
        ("momin-record 2\nbucket-time -1\n", 2, "bucket-time must be a number of nanoseconds"),
        ("momin-record 1\nimage \(hash.hex) /i\n", 2, "unknown line 'image'"),
        ("momin-record 2\nbogus 1\n", 2, "unknown line 'bogus'"),
        ("momin-record 2\ncall exec allow r 0 1 - 00\n", 2, "call needs 8 fields, not 7"),
        ("momin-record 1\ncall allow r 0 1 -\n", 2, "call needs 6 fields, not 5"),
        ("momin-record 2\ncall exec maybe r 0 1 - 00 -\n", 2, "call verdict must be allow or deny"),
        ("momin-record 2\ncall exec allow r x 1 - 00 -\n", 2, "call status or size is not a number"),
        ("momin-record 2\ncall exec allow r 0 1 - zz -\n", 2, "call request is not hex"),
        ("momin-record 2\ncall brain allow r 0 1 - 00 \(hash.hex)\n", 2, "call exchange must be two SHA-256s"),
        ("momin-record 2\ncall exec allow a%2 0 1 - 00 -\n", 2, "call rule has a bad %-escape"),
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
        let text = "momin-record 2\nseed " + String(repeating: "00", count: 32) + "\n"
        #expect(throws: SessionRecord.ParseError.self) { try SessionRecord.parse(text) }
    }
}
