import Testing
import Doors

/// Every way a whole frame's payload can be wrong, fed to the decoder as hand-built bytes, and
/// the same rules seen from the encoder.
@Suite struct PayloadErrorTests {
    private let path = str("/p")

    @Test func truncatedPayloads() {
        #expect(problem(.ping, [1, 2, 3]) == .truncated(.nonce))
        #expect(problem(.ok, []) == .truncated(.count))
        #expect(problem(.started, [1, 0]) == .truncated(.pid))
        #expect(problem(.stat, le(UInt32(10)) + Array("/abc".utf8)) == .truncated(.path))
        #expect(problem(.stat, path) == .truncated(.followSymlinks))
        #expect(problem(.exit, [0]) == .truncated(.exitCode))
        #expect(problem(.error, [1]) == .truncated(.errorCode))
        #expect(problem(.error, [1, 0, 1, 2]) == .truncated(.errno))
        #expect(problem(.hello, [3, 1]) == .truncated(.versions))
        // A count that promises more entries than bytes remain is caught before any allocation.
        #expect(problem(.exec, le(UInt32(1000))) == .truncated(.argv))
        #expect(problem(.listEntries, le(UInt32(2)) + [1] + str("a")) == .truncated(.entries))
        #expect(problem(.readFile, path + le(UInt64(0)) + [1, 9]) == .truncated(.length))
    }

    @Test func trailingBytes() {
        #expect(problem(.ping, le(UInt64(1)) + [0]) == .trailingBytes(count: 1))
        #expect(problem(.cancel, [0, 0]) == .trailingBytes(count: 2))
        #expect(problem(.fileEnd, [9]) == .trailingBytes(count: 1))
        #expect(problem(.remove, path + [0, 0, 0]) == .trailingBytes(count: 2))
    }

    @Test func invalidUTF8() {
        #expect(problem(.list, str(bytes: [0x2F, 0xC3])) == .invalidUTF8(.path))
        #expect(problem(.list, str(bytes: [0x2F, 0xFF, 0x41])) == .invalidUTF8(.path))
        #expect(problem(.list, str(bytes: [0x2F, 0xED, 0xA0, 0x80])) == .invalidUTF8(.path))  // a surrogate
        #expect(problem(.error, [1, 0, 0] + str(bytes: [0x80])) == .invalidUTF8(.message))
        #expect(problem(.exec, le(UInt32(1)) + str(bytes: [0xC0, 0xAF])) == .invalidUTF8(.argv))
        #expect(problem(.listEntries, le(UInt32(1)) + [1] + str(bytes: [0xF8])) == .invalidUTF8(.entryName))
    }

    @Test func unknownEnumValues() {
        #expect(problem(.error, le(UInt16(0)) + [0] + str("")) == .unknownValue(.errorCode, 0))
        #expect(problem(.error, le(UInt16(15)) + [0] + str("")) == .unknownValue(.errorCode, 15))
        #expect(problem(.error, le(UInt16(1)) + [2] + str("")) == .unknownValue(.errno, 2))
        #expect(problem(.exit, [2, 0, 0]) == .unknownValue(.exitKind, 2))
        #expect(problem(.exit, [0, 0, 2]) == .unknownValue(.timedOut, 2))
        #expect(problem(.stat, path + [2]) == .unknownValue(.followSymlinks, 2))
        #expect(problem(.mkdir, path + le(UInt32(0o755)) + [0xFF]) == .unknownValue(.parents, 255))
        #expect(problem(.remove, path + [3]) == .unknownValue(.recursive, 3))
        #expect(problem(.writeFile, path + le(UInt32(0o644)) + [0x10]) == .unknownValue(.writeOptions, 16))
        #expect(problem(.readFile, path + le(UInt64(0)) + [7]) == .unknownValue(.length, 7))
        #expect(problem(.statResult, [0] + [UInt8](repeating: 0, count: 40)) == .unknownValue(.fileType, 0))
        #expect(problem(.listEntries, le(UInt32(1)) + [5] + str("a")) == .unknownValue(.fileType, 5))
        let exec = le(UInt32(1)) + str("ls") + le(UInt32(0))
        #expect(problem(.exec, exec + [2]) == .unknownValue(.cwd, 2))
        #expect(problem(.exec, exec + [0, 5]) == .unknownValue(.sendsStdin, 5))
        #expect(problem(.exec, exec + [0, 0, 9]) == .unknownValue(.timeout, 9))
    }

    @Test func valuesOutOfRange() {
        #expect(problem(.started, le(Int32(0))) == .outOfRange(.pid, 0))
        #expect(problem(.started, le(Int32(-4))) == .outOfRange(.pid, -4))
        #expect(problem(.kill, [0]) == .outOfRange(.signal, 0))
        #expect(problem(.kill, [65]) == .outOfRange(.signal, 65))
        #expect(problem(.exit, [1, 0, 0]) == .outOfRange(.signal, 0))
        #expect(problem(.mkdir, path + le(UInt32(0o10000)) + [0]) == .outOfRange(.permissions, 0o10000))
        #expect(problem(.hello, [1, 0] + le(UInt32(65_536)) + str("")) == .outOfRange(.versions, 0))
        #expect(problem(.hello, [1, 1] + le(UInt32(65_535)) + str("")) == .outOfRange(.maxPayload, 65_535))
        let exec = le(UInt32(1)) + str("ls") + le(UInt32(0)) + [0, 0]
        #expect(problem(.exec, exec + [1] + le(UInt32(0))) == .outOfRange(.timeout, 0))
        var stat = [UInt8(1)] + le(UInt32(0o644)) + le(UInt64(1)) + le(Int64(0))
        stat += le(UInt32(1_000_000_000)) + le(UInt64(1)) + le(UInt32(0)) + le(UInt32(0))
        #expect(problem(.statResult, stat) == .outOfRange(.mtimeNanoseconds, 1_000_000_000))
    }

    @Test func emptyNULRelativeAndMalformed() {
        #expect(problem(.exec, le(UInt32(0)) + le(UInt32(0)) + [0, 0, 0]) == .empty(.argv))
        #expect(problem(.exec, le(UInt32(1)) + str("") + le(UInt32(0)) + [0, 0, 0]) == .empty(.argv))
        #expect(problem(.exec, le(UInt32(1)) + str("l\0s") + le(UInt32(0)) + [0, 0, 0]) == .containsNUL(.argv))
        let argv = le(UInt32(1)) + str("ls")
        #expect(problem(.exec, argv + le(UInt32(1)) + str("NOEQUALS") + [0, 0, 0]) == .malformed(.env))
        #expect(problem(.exec, argv + le(UInt32(1)) + str("=v") + [0, 0, 0]) == .malformed(.env))
        #expect(problem(.exec, argv + le(UInt32(1)) + str("A=\0") + [0, 0, 0]) == .containsNUL(.env))
        #expect(problem(.exec, argv + le(UInt32(0)) + [1] + str("tmp") + [0, 0]) == .notAbsolute(.cwd))
        #expect(problem(.list, str("")) == .notAbsolute(.path))
        #expect(problem(.list, str("etc")) == .notAbsolute(.path))
        #expect(problem(.list, str("/et\0c")) == .containsNUL(.path))
        #expect(problem(.hello, [0] + le(UInt32(65_536)) + str("")) == .empty(.versions))
        for name in [".", "..", "a/b", "/"] {
            #expect(problem(.listEntries, le(UInt32(1)) + [1] + str(name)) == .malformed(.entryName))
        }
        #expect(problem(.listEntries, le(UInt32(1)) + [1] + str("")) == .empty(.entryName))
        #expect(problem(.listEntries, le(UInt32(1)) + [1] + str("a\0")) == .containsNUL(.entryName))
    }

    @Test func requestIDRules() {
        #expect(problem(.hello, [1, 1] + le(UInt32(65_536)) + str(""), requestID: 5) == .requestIDMustBeZero(5))
        #expect(problem(.ping, le(UInt64(1)), requestID: 0) == .requestIDMustBeNonzero)
        #expect(problem(.stdoutData, [1, 2], requestID: 0) == .requestIDMustBeNonzero)
        #expect(encodeProblem(.hello(Hello()), requestID: 1) == .requestIDMustBeZero(1))
        #expect(encodeProblem(.cancel, requestID: 0) == .requestIDMustBeNonzero)
        #expect(encodeProblem(.error(ErrorReply(code: .busy)), requestID: 0) == nil)
    }

    /// The encoder refuses what the decoder would refuse, so a bad frame never leaves this side.
    @Test func theEncoderRunsTheSameChecks() {
        #expect(encodeProblem(.exec(ExecRequest(argv: []))) == .empty(.argv))
        #expect(encodeProblem(.exec(ExecRequest(argv: [""]))) == .empty(.argv))
        #expect(encodeProblem(.exec(ExecRequest(argv: ["a\0"]))) == .containsNUL(.argv))
        #expect(encodeProblem(.exec(ExecRequest(argv: ["a"], env: ["A"]))) == .malformed(.env))
        #expect(encodeProblem(.exec(ExecRequest(argv: ["a"], cwd: "rel"))) == .notAbsolute(.cwd))
        #expect(encodeProblem(.exec(ExecRequest(argv: ["a"], timeoutMilliseconds: 0))) == .outOfRange(.timeout, 0))
        #expect(encodeProblem(.started(pid: 0)) == .outOfRange(.pid, 0))
        #expect(encodeProblem(.kill(signal: 0)) == .outOfRange(.signal, 0))
        #expect(encodeProblem(.exit(ExitReport(status: .signaled(signal: 65)))) == .outOfRange(.signal, 65))
        #expect(encodeProblem(.writeFile(WriteFileRequest(path: "/a", options: WriteOptions(rawValue: 0x30))))
            == .unknownValue(.writeOptions, 0x30))
        #expect(encodeProblem(.mkdir(MkdirRequest(path: "/a", permissions: 0o17777))) == .outOfRange(.permissions, 0o17777))
        #expect(encodeProblem(.readFile(ReadFileRequest(path: ""))) == .notAbsolute(.path))
        #expect(encodeProblem(.listEntries([DirectoryEntry(name: "..", type: .directory)])) == .malformed(.entryName))
        #expect(encodeProblem(.hello(Hello(versions: []))) == .empty(.versions))
        #expect(encodeProblem(.hello(Hello(maxPayload: 1))) == .outOfRange(.maxPayload, 1))
        let stat = FileStat(type: .regular, permissions: 0, size: 0, mtimeSeconds: 0, mtimeNanoseconds: 1_000_000_000)
        #expect(encodeProblem(.statResult(stat)) == .outOfRange(.mtimeNanoseconds, 1_000_000_000))
    }

    @Test func errorsNameWhatWasWrong() {
        let error = DoorsError.invalidFrame(.exec, requestID: 3, .countOverBound(.argv, count: 5000, bound: 4096))
        #expect(error.description == "exec frame for request 3: argv has 5000 entries, bound is 4096")
        #expect(error.reply == Frame(requestID: 3, .error(ErrorReply(code: .tooLarge, message: error.description))))
        let utf8 = DoorsError.invalidFrame(.list, requestID: 2, .invalidUTF8(.path))
        #expect(utf8.reply.message == .error(ErrorReply(code: .invalidRequest, message: "list frame for request 2: path is not valid UTF-8")))
    }
}
