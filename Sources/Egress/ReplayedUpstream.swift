import Gateway
import Glibc
import HTTPWire
import POSIX
import Synchronization

/// A replay's far end for one plain HTTP request (docs/replay.md): one end of a socket pair,
/// whose other end a thread serves. The thread reads the request as the relay forwards it and
/// writes back the answer recorded for those exact bytes, or a 502 naming the divergence, and
/// closes. The relay pumps bytes to it as it would to a server, so a replay goes through the
/// same code as the recording.
final class ReplayedUpstream: Sendable {
    private let taken = Mutex<CallObservation.Exchange?>(nil)

    /// The exchange served, once the far end has closed; nil when the request was not in the
    /// recording.
    func exchange() -> CallObservation.Exchange? { taken.withLock { $0 } }

    static func start(expecting length: UInt64, from recorded: RecordedExchanges,
                      idleTimeout: Double) -> Result<(fd: Int32, upstream: ReplayedUpstream), ResolveFailure> {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            return .failure(ResolveFailure("socketpair: \(describeErrno())"))
        }
        let upstream = ReplayedUpstream()
        let far = pair[1]
        do {
            try POSIXThread.detach(name: "replay-http") {
                upstream.serve(far, length: length, recorded: recorded, idleTimeout: idleTimeout)
            }
        } catch {
            close(pair[0])
            close(pair[1])
            return .failure(ResolveFailure("a replay thread: \(error)"))
        }
        return .success((pair[0], upstream))
    }

    private func serve(_ fd: Int32, length: UInt64, recorded: RecordedExchanges, idleTimeout: Double) {
        defer { close(fd) }
        let answer: [UInt8]
        if length > UInt64(ExchangeStore.exchangeLimit) {
            answer = Self.divergence("the request is \(length) bytes, more than a recording keeps")
        } else if let request = FileIO.readExactly(fd, count: Int(length), until: MonotonicClock.deadline(after: idleTimeout)) {
            switch recorded.answer(tool: GovernedEgress.httpTool, request: request) {
            case .success(let found):
                answer = found.bytes
                taken.withLock { $0 = found.exchange }
            case .failure(let miss):
                answer = Self.divergence(miss.description)
            }
        } else {
            answer = Self.divergence("the request did not arrive whole")
        }
        _ = try? FileIO.sendAll(fd, answer, until: MonotonicClock.deadline(after: idleTimeout))
        shutdown(fd, Int32(SHUT_WR))
    }

    static func divergence(_ message: String) -> [UInt8] {
        ProxyResponse.make(status: 502, reason: ProxyResponse.reason(502), body: message + "\n")
    }
}
