// hands: what an agent inside its VM runs to call host tools (docs/hands.md). One call per run:
// the arguments become a hands call frame, momin-init relays it over vsock to the host, and the
// reply becomes stdout and the exit status. Usage errors exit 64 with the usage; a failed call
// prints its message and exits with its code's status; momin-init out of reach is exit 70.
import Doors
import Glibc
import HandsClient

/// Writes all of `bytes`; false when the descriptor fails.
func write(_ bytes: [UInt8], to fd: Int32) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let start = offset
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + start, $0.count - start) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return false }
        offset += n
    }
    return true
}

func fail(_ error: HandsClientError) -> Never {
    let usage = error.showsUsage ? HandsArguments.usage + "\n" : ""
    _ = write(Array("hands: \(error.message)\n\(usage)".utf8), to: STDERR_FILENO)
    exit(error.exitStatus)
}

let command: HandsCommand
do throws(HandsClientError) {
    command = try HandsArguments.parse(Array(CommandLine.arguments.dropFirst()), input: HandsConnection.systemInput)
} catch {
    fail(error)
}

switch command {
case .help:
    _ = write(Array((HandsArguments.usage + "\n").utf8), to: STDOUT_FILENO)
    exit(0)
case .call(let call, let output):
    let path = HandsConnection.socketPath(environment: getenv("HANDS_SOCKET").map { String(cString: $0) })
    let reply: HandsReply
    do throws(HandsClientError) {
        reply = try HandsConnection.call(call, socketPath: path)
    } catch {
        fail(error)
    }
    let outcome = HandsOutcome.of(reply, output: output)
    guard write(outcome.standardOutput, to: STDOUT_FILENO) else {
        fail(.inputFailed("writing standard output: \(String(cString: strerror(errno)))"))
    }
    if let line = outcome.errorLine {
        _ = write(Array("hands: \(line)\n".utf8), to: STDERR_FILENO)
    }
    exit(outcome.exitStatus)
}
