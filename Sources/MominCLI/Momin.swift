import ArgumentParser
import Doors
import Glibc
import Host
import Images
import POSIX

/// `momin`: the MominAI command line. Each subcommand is a thin layer over the Host library
/// (and the libraries below it), which `momin serve` and `momin mcp` share.
@main
struct Momin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "momin",
        abstract: "MominAI: one hardware-isolated microVM per agent.",
        subcommands: [Boot.self, Run.self, Start.self, Exec.self, Copy.self, PS.self, Stop.self, Serve.self, MCPCommand.self, AgentHostCommand.self, PolicyCommand.self, AuditCommand.self,
                      BucketCommand.self, ImageCommand.self, Replay.self, GatewayBench.self])

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as CLIError {
            fail(error.message, status: error.status.rawValue)
        } catch let error as HostError {
            fail(error.message, status: ExitStatus(error.kind).rawValue)
        } catch let error as ImageError {
            fail(error.message, status: (error.kind == .badInput ? ExitStatus.usage : ExitStatus.failure).rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version
            // Argument errors exit 2 like every other bad input, not ArgumentParser's 64.
            fail(fullMessage(for: error), status: code == .validationFailure ? ExitStatus.usage.rawValue : code.rawValue)
        }
    }

    static func fail(_ message: String, status: Int32) -> Never {
        let text = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
        writeStandardError("momin: error: \(text.split(separator: "\n").first ?? "")\n")
        Glibc.exit(status)
    }
}

/// What `momin` exits with, besides a guest command's own status (which `run` and `exec` pass on).
enum ExitStatus: Int32 {
    case success = 0
    /// A check found damage (audit, bucket verify), a guest-side failure, a failed host file.
    case failure = 1
    /// Bad input, with one line naming what was wrong.
    case usage = 2
    /// The host has no room for the VM now (sysexits' EX_TEMPFAIL: try again later).
    case noRoom = 75
    /// The policy denied the call; it never reached the guest (sysexits' EX_NOPERM).
    case denied = 77
    /// The VM, its VMM or the Doors connection failed.
    case vmFailed = 125
    /// The command was found in the guest but could not be run.
    case cannotRun = 126
    /// The command was not found in the guest.
    case notFound = 127

    init(_ kind: HostError.Kind) {
        switch kind {
        case .badInput: self = .usage
        case .noRoom: self = .noRoom
        case .vmFailed: self = .vmFailed
        case .failed: self = .failure
        }
    }
}

/// An error the CLI reports in one line with an exit status.
struct CLIError: Error {
    let message: String
    let status: ExitStatus

    init(_ message: String, _ status: ExitStatus) {
        self.message = message
        self.status = status
    }

    static func usage(_ message: String) -> CLIError { CLIError(message, .usage) }
}

func writeStandardError(_ text: String) {
    try? FileIO.writeAll(2, Array(text.utf8))
}

/// Writes all of `bytes` to `fd` (stdout by default); a closed stream is not an error here.
func emit(_ bytes: [UInt8], to fd: Int32 = 1) {
    try? FileIO.writeAll(fd, bytes)
}

/// Exits with a finished command's status: its own code, or 128+N for signal N.
func exitWith(_ termination: Termination) -> Never {
    switch termination {
    case .exited(let code): Glibc.exit(Int32(code))
    case .signaled(let signal): Glibc.exit(128 + Int32(signal))
    }
}

/// This host, as the environment of this process describes it (`HostEnvironment`).
func hostEnvironment() -> HostEnvironment {
    HostEnvironment.fromProcess(warnings: { writeStandardError("momin: \($0)\n") })
}
