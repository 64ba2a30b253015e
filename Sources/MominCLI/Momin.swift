import ArgumentParser
import Glibc
import VMM

/// `momin`: the MominAI command line.
@main
struct Momin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "momin",
        abstract: "MominAI: one hardware-isolated microVM per agent.",
        subcommands: [Boot.self, Run.self, Start.self, Exec.self, Copy.self, PS.self, Stop.self, AgentHostCommand.self, PolicyCommand.self, AuditCommand.self,
                      BucketCommand.self, Replay.self, GatewayBench.self])

    /// Bad input exits 2 with one line; the guest failing exits 1.
    static let usageExitCode: Int32 = 2

    static func main() {
        ProcessClock.markStart()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as CLIError {
            fail(error.message, code: error.code)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version
            // Argument errors exit 2 like every other bad input, not ArgumentParser's 64.
            fail(fullMessage(for: error), code: code == .validationFailure ? usageExitCode : code.rawValue)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        let text = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
        writeStandardError("momin: error: \(text.split(separator: "\n").first ?? "")\n")
        Glibc.exit(code)
    }
}

/// An error the CLI reports in one line with an exit status.
struct CLIError: Error {
    let message: String
    let code: Int32
    static func usage(_ message: String) -> CLIError { CLIError(message: message, code: Momin.usageExitCode) }
    static func guest(_ message: String) -> CLIError { CLIError(message: message, code: 1) }
}

func writeStandardError(_ text: String) {
    FileDescriptorOutput(fd: 2).write(Array(text.utf8))
}
