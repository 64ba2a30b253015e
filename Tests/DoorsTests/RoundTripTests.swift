import TestRandom
import Testing
import Doors

/// One hand-written example of every message, checked through encode → decode.
let samples: [Frame] = [
    Frame(requestID: 0, .hello(Hello(software: "momin 0.1"))),
    Frame(requestID: 0, .hello(Hello(versions: [1, 2, 7], maxPayload: 65_536, software: ""))),
    Frame(requestID: 0, .error(ErrorReply(code: .malformedFrame, message: "bad magic"))),
    Frame(requestID: 9, .error(ErrorReply(code: .notFound, errno: 2, message: "/nope: No such file or directory"))),
    Frame(requestID: 9, .error(ErrorReply(code: .internal, errno: 0))),
    Frame(requestID: 3, .ok(count: 0)),
    Frame(requestID: 3, .ok(count: .max)),
    Frame(requestID: 4, .ping(nonce: 0xDEAD_BEEF)),
    Frame(requestID: 4, .pong(nonce: 0xDEAD_BEEF)),
    Frame(requestID: 5, .cancel),
    Frame(requestID: 6, .exec(ExecRequest(argv: ["true"]))),
    Frame(
        requestID: 6,
        .exec(
            ExecRequest(
                argv: ["/bin/sh", "-c", "echo héllo 🚪", ""], env: ["PATH=/usr/bin:/bin", "EMPTY=", "X==y"],
                cwd: "/home/agent/プロジェクト", sendsStdin: true, timeoutMilliseconds: 30_000))),
    Frame(requestID: 6, .started(pid: 1)),
    Frame(requestID: 6, .started(pid: .max)),
    Frame(requestID: 6, .stdinData([0, 1, 2, 0xFF])),
    Frame(requestID: 6, .stdinEnd),
    Frame(requestID: 6, .stdoutData(Array("out\n".utf8))),
    Frame(requestID: 6, .stderrData(Array("err\n".utf8))),
    Frame(requestID: 6, .exit(ExitReport(status: .exited(code: 0)))),
    Frame(requestID: 6, .exit(ExitReport(status: .exited(code: 255)))),
    Frame(requestID: 6, .exit(ExitReport(status: .signaled(signal: 9), timedOut: true))),
    Frame(requestID: 6, .kill(signal: 15)),
    Frame(requestID: 7, .writeFile(WriteFileRequest(path: "/tmp/ünïcödé/файл.txt"))),
    Frame(requestID: 7, .writeFile(WriteFileRequest(path: "/x", permissions: 0o7777, options: [.create, .exclusive, .append]))),
    Frame(requestID: 7, .writeFile(WriteFileRequest(path: "/x", permissions: 0, options: []))),
    Frame(requestID: 8, .readFile(ReadFileRequest(path: "/etc/hostname"))),
    Frame(requestID: 8, .readFile(ReadFileRequest(path: "/big", offset: 1 << 40, length: 0))),
    Frame(requestID: 8, .fileData([])),
    Frame(requestID: 8, .fileData([UInt8](repeating: 7, count: 1000))),
    Frame(requestID: 8, .fileEnd),
    Frame(requestID: 10, .stat(StatRequest(path: "/", followSymlinks: true))),
    Frame(
        requestID: 10,
        .statResult(
            FileStat(
                type: .symlink, permissions: 0o777, size: 11, mtimeSeconds: -1, mtimeNanoseconds: 999_999_999,
                nlink: 1, uid: 1000, gid: 1000))),
    Frame(requestID: 11, .list(path: "/home/agent")),
    Frame(requestID: 11, .listEntries([])),
    Frame(
        requestID: 11,
        .listEntries([
            DirectoryEntry(name: "a.txt", type: .regular), DirectoryEntry(name: "子目录", type: .directory),
            DirectoryEntry(name: "...", type: .other), DirectoryEntry(name: ".hidden", type: .symlink),
        ])),
    Frame(requestID: 11, .listEnd),
    Frame(requestID: 12, .mkdir(MkdirRequest(path: "/a/b/c", permissions: 0o700, parents: true))),
    Frame(requestID: 13, .remove(RemoveRequest(path: "/a", recursive: true))),
    Frame(requestID: 14, .resolve(path: "/evidence/../etc//passwd")),
    Frame(requestID: 14, .resolved(path: "/etc/passwd")),
]

@Suite struct RoundTripTests {
    @Test(arguments: samples)
    func sampleRoundTrips(frame: Frame) throws {
        let bytes = try encode(frame)
        #expect(bytes.count >= DoorsProtocol.headerSize)
        #expect(try decodeAll(bytes) == [frame])
    }

    @Test func samplesCoverEveryFrameType() {
        let covered = Set(samples.map(\.type))
        #expect(covered == Set(FrameType.allCases))
    }

    @Test func headerFieldsMatchTheFrame() throws {
        for frame in samples {
            let bytes = try encode(frame)
            #expect(bytes[3] == frame.type.rawValue)
            #expect(Array(bytes[8..<12]) == le(frame.requestID))
            #expect(Array(bytes[12..<16]) == le(UInt32(bytes.count - DoorsProtocol.headerSize)))
        }
    }

    @Test(arguments: [FrameType.stdinData, .stdoutData, .stderrData, .fileData])
    func dataFramesAtEmptyAndMaximumSize(type: FrameType) throws {
        var generator = MessageGenerator(rng: SeededGenerator(seed: 99))
        let full = (0..<DoorsProtocol.maxPayload).map { _ in UInt8(truncatingIfNeeded: generator.rng.next()) }
        for payload in [[], full] {
            let message: DoorsMessage =
                switch type {
                case .stdinData: .stdinData(payload)
                case .stdoutData: .stdoutData(payload)
                case .stderrData: .stderrData(payload)
                default: .fileData(payload)
                }
            let frame = Frame(requestID: 42, message)
            let bytes = try encode(frame)
            #expect(bytes.count == DoorsProtocol.headerSize + payload.count)
            #expect(Array(bytes[DoorsProtocol.headerSize...]) == payload)
            #expect(try decodeAll(bytes) == [frame])
        }
    }

    @Test func everyErrorCodeAndFileTypeRoundTrips() throws {
        for code in ErrorCode.allCases {
            let frame = Frame(requestID: 2, .error(ErrorReply(code: code, errno: -5, message: "ошибка")))
            #expect(try decodeAll(encode(frame)) == [frame])
        }
        for type in FileType.allCases {
            let frame = Frame(requestID: 2, .listEntries([DirectoryEntry(name: "x", type: type)]))
            #expect(try decodeAll(encode(frame)) == [frame])
        }
    }

    @Test func pathsAtTheirBoundRoundTrip() throws {
        // 4096 bytes exactly, made of 3-byte characters after the slash.
        let longest = "/" + String(repeating: "日", count: 1365)
        #expect(longest.utf8.count == DoorsLimits.maxPathLength)
        let frame = Frame(requestID: 1, .stat(StatRequest(path: longest)))
        #expect(try decodeAll(encode(frame)) == [frame])
    }

    @Test func encodingIntoABufferAppendsFrames() throws {
        var buffer: [UInt8] = [0xEE]
        let encoder = FrameEncoder()
        for frame in samples { try encoder.encode(frame, into: &buffer) }
        #expect(buffer[0] == 0xEE)
        #expect(try decodeAll(Array(buffer.dropFirst())) == samples)
    }

    @Test func aFailedEncodeLeavesTheBufferAlone() throws {
        var buffer: [UInt8] = []
        let encoder = FrameEncoder()
        try encoder.encode(samples[0], into: &buffer)
        let before = buffer
        #expect(throws: DoorsError.self) {
            try encoder.encode(Frame(requestID: 1, .stat(StatRequest(path: "relative"))), into: &buffer)
        }
        #expect(buffer == before)
    }

    @Test func linuxErrnoMapsToCodes() {
        #expect(ErrorCode(linuxErrno: 2) == .notFound)
        #expect(ErrorCode(linuxErrno: 13) == .permissionDenied)
        #expect(ErrorCode(linuxErrno: 17) == .exists)
        #expect(ErrorCode(linuxErrno: 20) == .notADirectory)
        #expect(ErrorCode(linuxErrno: 21) == .isADirectory)
        #expect(ErrorCode(linuxErrno: 39) == .notEmpty)
        #expect(ErrorCode(linuxErrno: 9999) == .internal)
        #expect(ErrorReply(linuxErrno: 2, message: "m") == ErrorReply(code: .notFound, errno: 2, message: "m"))
    }
}
