import ArgumentParser
import Doors
import Gateway
import Host

/// `momin exec NAME -- CMD`: runs a command in a running VM.
struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command in a running microVM and exit with its status.")

    @Argument(help: "The VM's name.") var name: String
    @Option(help: "Kill the command after this many seconds (0: no limit).") var timeout: Double = 0
    @Option(help: ArgumentHelp("The command's working directory in the VM, an absolute path (judged by the policy's cwd rules).",
                               valueName: "dir"))
    var cwd: String = "/"
    @Flag(name: .shortAndLong, help: "Send our standard input to the command's (otherwise it reads /dev/null).")
    var interactive = false
    // Only what follows `--` is the guest's: `momin exec NAME --help` is ours.
    @Argument(parsing: .postTerminator, help: "The command, after --.") var command: [String] = []

    func run() throws {
        let argv = command
        guard !argv.isEmpty, !argv[0].isEmpty else { throw CLIError.usage("no command given: momin exec NAME -- CMD [ARGS...]") }
        guard cwd.hasPrefix("/") else { throw CLIError.usage("--cwd \(cwd): the working directory must be an absolute path") }
        let host = hostEnvironment()
        let gateway = try VMControl(registry: try VMRegistry.open(host), environment: host).governedGateway(name)
        let request = ExecRequest(argv: argv, env: Run.defaultEnvironment, cwd: cwd,
                                  timeoutMilliseconds: timeout > 0 ? UInt32(min(timeout * 1000, Double(UInt32.max))) : nil)
        let report: ExitReport
        do {
            report = try gateway.exec(request, input: interactive ? .descriptor(0) : .none) { isStdout, bytes in
                emit(bytes, to: isStdout ? 1 : 2)
            }
        } catch {
            throw gatewayFailure(error, vm: name, what: argv[0])
        }
        exitWith(report.status)
    }
}

/// How a gateway error ends a `momin exec` or `momin cp`: 77 for a denial (the call never
/// reached the guest), 127 and 126 for a program not found or not runnable there, 125 for a
/// failed VM or log.
func gatewayFailure(_ error: GatewayError, vm name: String, what: String) -> CLIError {
    switch error {
    case .denied: CLIError("\(what): \(error)", .denied)
    case .guest(.remote(let reply)) where reply.code == .notFound: CLIError("\(what): not found in VM \(name)", .notFound)
    case .guest(.remote(let reply)) where reply.code == .permissionDenied:
        CLIError("\(what): permission denied in VM \(name)", .cannotRun)
    default: CLIError("VM \(name): \(error)", .vmFailed)
    }
}
