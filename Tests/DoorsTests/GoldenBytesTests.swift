import Testing
import Doors

/// The wire format written out byte by byte, as docs/doors-protocol.md describes it. If one of
/// these fails, the format changed: that needs a new protocol version, not a new golden.
@Suite struct GoldenBytesTests {
    @Test func pingHeaderAndPayload() throws {
        let bytes = try encode(Frame(requestID: 0x0102_0304, .ping(nonce: 0x1122_3344_5566_7788)))
        #expect(
            bytes == [
                0x4D, 0x44,  // magic "MD"
                0x02,  // version
                0x04,  // type: ping
                0x00, 0x00, 0x00, 0x00,  // flags
                0x04, 0x03, 0x02, 0x01,  // request id
                0x08, 0x00, 0x00, 0x00,  // payload length
                0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // nonce
            ])
    }

    @Test func hello() throws {
        let bytes = try encode(Frame(requestID: 0, .hello(Hello(versions: [1], maxPayload: 262_144, software: "mi"))))
        #expect(
            bytes == [
                0x4D, 0x44, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x0C, 0, 0, 0,
                0x01, 0x01,  // one version: 1
                0x00, 0x00, 0x04, 0x00,  // max payload 0x40000
                0x02, 0x00, 0x00, 0x00, 0x6D, 0x69,  // "mi"
            ])
    }

    @Test func exec() throws {
        let request = ExecRequest(argv: ["ls", "/"], env: ["A=b"], cwd: "/tmp", sendsStdin: true, timeoutMilliseconds: 1000)
        let bytes = try encode(Frame(requestID: 7, .exec(request)))
        #expect(
            bytes == [
                0x4D, 0x44, 0x02, 0x10, 0, 0, 0, 0, 0x07, 0, 0, 0, 0x2A, 0, 0, 0,
                0x02, 0, 0, 0,  // argc
                0x02, 0, 0, 0, 0x6C, 0x73,  // "ls"
                0x01, 0, 0, 0, 0x2F,  // "/"
                0x01, 0, 0, 0,  // envc
                0x03, 0, 0, 0, 0x41, 0x3D, 0x62,  // "A=b"
                0x01, 0x04, 0, 0, 0, 0x2F, 0x74, 0x6D, 0x70,  // cwd present, "/tmp"
                0x01,  // sends stdin
                0x01, 0xE8, 0x03, 0, 0,  // timeout present, 1000 ms
                0x00,  // no program: the guest finds argv[0] (version 2)
            ])
    }

    /// Version 2: the judged program, walked without symlinks, after the timeout.
    @Test func execWithProgram() throws {
        let request = ExecRequest(argv: ["ls"], program: "/bin/busybox")
        let bytes = try encode(Frame(requestID: 7, .exec(request)))
        #expect(
            bytes == [
                0x4D, 0x44, 0x02, 0x10, 0, 0, 0, 0, 0x07, 0, 0, 0, 0x22, 0, 0, 0,
                0x01, 0, 0, 0,  // argc
                0x02, 0, 0, 0, 0x6C, 0x73,  // "ls"
                0x00, 0, 0, 0,  // envc
                0x00,  // no cwd
                0x00,  // no stdin
                0x00,  // no timeout
                0x01, 0x0C, 0, 0, 0, 0x2F, 0x62, 0x69, 0x6E, 0x2F, 0x62, 0x75, 0x73, 0x79, 0x62, 0x6F, 0x78,  // "/bin/busybox"
            ])
    }

    @Test func exitAndError() throws {
        let exit = try encode(Frame(requestID: 7, .exit(ExitReport(status: .signaled(signal: 9), timedOut: true))))
        #expect(exit == [0x4D, 0x44, 0x02, 0x16, 0, 0, 0, 0, 0x07, 0, 0, 0, 0x03, 0, 0, 0, 0x01, 0x09, 0x01])

        let error = try encode(Frame(requestID: 0, .error(ErrorReply(code: .unsupportedVersion, errno: 95, message: "v"))))
        #expect(
            error == [
                0x4D, 0x44, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x0C, 0, 0, 0,
                0x0A, 0x00,  // code 10
                0x01, 0x5F, 0, 0, 0,  // errno present, 95
                0x01, 0, 0, 0, 0x76,  // "v"
            ])
    }

    @Test func statResultAndListEntries() throws {
        let stat = FileStat(
            type: .directory, permissions: 0o755, size: 4096, mtimeSeconds: 1_700_000_000, mtimeNanoseconds: 5,
            nlink: 2, uid: 1, gid: 2)
        let bytes = try encode(Frame(requestID: 1, .statResult(stat)))
        #expect(
            Array(bytes[DoorsProtocol.headerSize...]) == [
                0x02,  // directory
                0xED, 0x01, 0, 0,  // 0o755
                0x00, 0x10, 0, 0, 0, 0, 0, 0,  // size 4096
                0x00, 0xF1, 0x53, 0x65, 0, 0, 0, 0,  // 1_700_000_000
                0x05, 0, 0, 0,  // nanoseconds
                0x02, 0, 0, 0, 0, 0, 0, 0,  // nlink
                0x01, 0, 0, 0, 0x02, 0, 0, 0,  // uid, gid
            ])

        let list = try encode(Frame(requestID: 1, .listEntries([DirectoryEntry(name: "é", type: .regular)])))
        #expect(Array(list[DoorsProtocol.headerSize...]) == [0x01, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0xC3, 0xA9])
    }

    @Test func frameTypeNumbersAreFixed() {
        let numbers = FrameType.allCases.map { ($0, $0.rawValue) }
        let expected: [(FrameType, UInt8)] = [
            (.hello, 0x01), (.error, 0x02), (.ok, 0x03), (.ping, 0x04), (.pong, 0x05), (.cancel, 0x06),
            (.exec, 0x10), (.started, 0x11), (.stdinData, 0x12), (.stdinEnd, 0x13), (.stdoutData, 0x14),
            (.stderrData, 0x15), (.exit, 0x16), (.kill, 0x17),
            (.writeFile, 0x20), (.readFile, 0x21), (.fileData, 0x22), (.fileEnd, 0x23), (.stat, 0x24),
            (.statResult, 0x25), (.list, 0x26), (.listEntries, 0x27), (.listEnd, 0x28), (.mkdir, 0x29),
            (.remove, 0x2A), (.resolve, 0x2B), (.resolved, 0x2C),
        ]
        #expect(numbers.count == expected.count)
        for (got, want) in zip(numbers, expected) {
            #expect(got.0 == want.0 && got.1 == want.1)
        }
        let codes = ErrorCode.allCases.map(\.rawValue)
        #expect(codes == Array(1...14))
    }
}
