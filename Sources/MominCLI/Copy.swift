import ArgumentParser
import Doors
import Gateway
import Glibc
import Host
import POSIX

/// `momin cp`: copies a file between the host and a running VM (NAME:PATH names the guest side).
struct Copy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp", abstract: "Copy a file into or out of a running microVM: momin cp SRC NAME:/PATH, or momin cp NAME:/PATH DST.")

    @Argument(help: "Source: a host path, or NAME:/guest/path.") var source: String
    @Argument(help: "Destination: a host path, or NAME:/guest/path.") var destination: String

    static func split(_ spec: String) -> (name: String, path: String)? {
        guard let colon = spec.firstIndex(of: ":"), spec.first != "/", spec.first != "." else { return nil }
        return (String(spec[..<colon]), String(spec[spec.index(after: colon)...]))
    }

    func run() throws {
        let host = hostEnvironment()
        let control = VMControl(registry: try VMRegistry.open(host), environment: host)
        switch (Self.split(source), Self.split(destination)) {
        case (nil, let guest?):
            let fd = open(source, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CLIError.usage("cannot read \(source): \(describeErrno())") }
            defer { close(fd) }
            let gateway = try control.governedGateway(guest.name)
            do { _ = try gateway.writeFile(WriteFileRequest(path: guest.path), from: fd) } catch {
                throw copyFailure(error, vm: guest.name, what: destination)
            }
        case (let guest?, nil):
            let gateway = try control.governedGateway(guest.name)
            let fd = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw CLIError.usage("cannot write \(destination): \(describeErrno())") }
            defer { close(fd) }
            var failed: Int32?
            do {
                _ = try gateway.readFile(ReadFileRequest(path: guest.path)) { bytes in
                    guard failed == nil else { return }
                    do throws(SystemError) { try FileIO.writeAll(fd, bytes) } catch { failed = error.errno }
                }
            } catch {
                throw copyFailure(error, vm: guest.name, what: source)
            }
            if let failed { throw CLIError("cannot write \(destination): \(describeErrno(failed))", .failure) }
        default:
            throw CLIError.usage("exactly one of SRC and DST must name a VM, as NAME:/path")
        }
    }

    /// A denial exits 77, a failed VM or log 125, and a guest-side failure (no such file) 1.
    func copyFailure(_ error: GatewayError, vm name: String, what: String) -> CLIError {
        switch error {
        case .guest(.remote): CLIError("\(what): \(error)", .failure)
        default: gatewayFailure(error, vm: name, what: what)
        }
    }
}
