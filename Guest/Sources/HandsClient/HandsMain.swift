// What the `hands` command does, whether it runs as its own program or as momin-init reached
// through the /usr/bin/hands link (one static binary in the image instead of two).
import Doors
import Glibc
import POSIX

public enum HandsMain {
    /// Writes all of `bytes`; false when the descriptor fails.
    static func write(_ bytes: [UInt8], to fd: Int32) -> Bool {
        (try? FileIO.writeAll(fd, bytes)) != nil
    }

    static func fail(_ error: HandsClientError) -> Never {
        let usage = error.showsUsage ? HandsArguments.usage + "\n" : ""
        _ = write(Array("hands: \(error.message)\n\(usage)".utf8), to: STDERR_FILENO)
        exit(error.exitStatus)
    }

    /// `$HANDS_SOCKET`, else momin-init's socket.
    static func socketPath() -> String {
        HandsConnection.socketPath(environment: getenv("HANDS_SOCKET").map { String(cString: $0) })
    }

    /// Runs one `hands` command (the arguments after the program name) and exits.
    public static func run(_ arguments: [String]) -> Never {
        let command: HandsCommand
        do throws(HandsClientError) {
            command = try HandsArguments.parse(arguments, input: HandsConnection.systemInput)
        } catch {
            fail(error)
        }

        switch command {
        case .help:
            _ = write(Array((HandsArguments.usage + "\n").utf8), to: STDOUT_FILENO)
            exit(0)
        case .call(let call, let output):
            let reply: HandsReply
            do throws(HandsClientError) {
                reply = try HandsConnection.call(call, socketPath: socketPath())
            } catch {
                fail(error)
            }
            let outcome = HandsOutcome.of(reply, output: output)
            guard write(outcome.standardOutput, to: STDOUT_FILENO) else {
                fail(.inputFailed("writing standard output: \(String(cString: strerror(errno)))"))
            }
            if !outcome.standardError.isEmpty { _ = write(outcome.standardError, to: STDERR_FILENO) }
            if let line = outcome.errorLine {
                _ = write(Array("hands: \(line)\n".utf8), to: STDERR_FILENO)
            }
            exit(outcome.exitStatus)
        case .install(_, let requirements, let python):
            let install = PipInstall(
                socketPath: socketPath(), python: python,
                temporaryRoot: PipInstall.temporaryRoot(environment: getenv("TMPDIR").map { String(cString: $0) }),
                say: { _ = write(Array("hands: \($0)\n".utf8), to: STDERR_FILENO) })
            exit(install.run(requirements: requirements))
        case .installApt(let packages):
            let install = AptInstall(
                socketPath: socketPath(), proxy: AptInstall.proxy(environment: getenv("http_proxy").map { String(cString: $0) }),
                say: { _ = write(Array("hands: \($0)\n".utf8), to: STDERR_FILENO) })
            exit(install.run(packages: packages))
        }
    }
}
