import Glibc
@testable import Images
import Testing

@Suite struct ProgramTests {
    @Test func programsAreFoundOnThePathThenInTheSbinDirectories() {
        #expect(Program.locate("sh", searchPath: "/nonexistent") != nil)
        #expect(Program.locate("momin-no-such-program", searchPath: "/usr/bin:/bin") == nil)
        #expect(Program.locate("mke2fs", searchPath: "/nonexistent").map { $0.hasSuffix("/mke2fs") } ?? true)
    }

    @Test func aRunKeepsStatusOutputAndLinesWithExactlyTheEnvironmentGiven() throws {
        var lines: [String] = []
        let result = try Program.run(["/bin/sh", "-c", "echo out; echo \"$MOMIN_X-${HOME:-unset}\"; echo err >&2; printf tail; exit 3"],
                                     environment: ["MOMIN_X=x"], onLine: { lines.append($0) })
        #expect(result.status >> 8 == 3)
        #expect(result.statusText == "exited 3")
        #expect(!result.succeeded)
        #expect(String(decoding: result.output, as: UTF8.self) == "out\nx-unset\ntail")
        #expect(result.errorLines == ["err"])
        #expect(Set(lines) == ["out", "x-unset", "err", "tail"])
        #expect(result.forwardedSignal == nil)
    }

    @Test func outputPastTheLimitIsCutAndSaidSo() throws {
        let result = try Program.run(["/bin/sh", "-c", "head -c 100000 /dev/zero"], environment: [], outputLimit: 1000)
        #expect(result.succeeded)
        #expect(result.output.count == 1000)
        #expect(result.outputTruncated)
    }

    @Test func aPendingSignalIsPassedOn() throws {
        let result = try Program.run(["/bin/sh", "-c", "sleep 30"], environment: [], pendingSignal: { SIGTERM })
        #expect(result.forwardedSignal == SIGTERM)
        #expect(result.statusText == "killed by signal \(SIGTERM)")
    }

    @Test func aProgramThatCannotStartIsNamed() {
        #expect(throws: ImageError.failed("cannot run /nonexistent/momin: No such file or directory")) {
            try Program.run(["/nonexistent/momin"], environment: [])
        }
    }
}
