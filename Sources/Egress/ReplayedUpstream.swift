import Crypto
import Gateway
import Glibc
import HTTPWire
import Merkle
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
        } else if let request = Self.read(fd, length: Int(length), idleTimeout: idleTimeout) {
            switch recorded.answer(tool: GovernedEgress.httpTool, request: request) {
            case .success(let bytes):
                answer = bytes
                taken.withLock {
                    $0 = CallObservation.Exchange(request: MerkleHash(bytes: Array(SHA256.hash(data: request)))!,
                                                  response: MerkleHash(bytes: Array(SHA256.hash(data: bytes)))!)
                }
            case .failure(let miss):
                answer = Self.divergence(miss.description)
            }
        } else {
            answer = Self.divergence("the request did not arrive whole")
        }
        _ = try? FileIO.sendAll(fd, answer, until: MonotonicClock.deadline(after: idleTimeout))
        shutdown(fd, Int32(SHUT_WR))
    }

    /// The request, grown as it arrives (not allocated whole from a length the guest chose);
    /// nil when it stops short.
    private static func read(_ fd: Int32, length: Int, idleTimeout: Double) -> [UInt8]? {
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while request.count < length {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, MonotonicClock.pollTimeout(until: MonotonicClock.deadline(after: idleTimeout)))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return nil }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, length - request.count), 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            request += chunk[0..<n]
        }
        return request
    }

    static func divergence(_ message: String) -> [UInt8] {
        ProxyResponse.make(status: 502, reason: ProxyResponse.reason(502), body: message + "\n")
    }
}
