import Crypto
import Glibc
import POSIX

/// Moves bytes both ways between the guest's connection and the far end until the exchange is
/// over, counting them, hashing what the far end sends, and asking a byte budget before each
/// write. Buffers are fixed (64 KiB a direction): a side that does not read stalls only its
/// own connection, never the host.
struct Pump {
    /// What the guest may send on: all of it (a tunnel), or a request body of this many bytes,
    /// after which nothing more is read from the guest (plain HTTP: one request per connection).
    enum GuestLimit {
        case none
        case body(UInt64)
    }

    struct Outcome {
        var sent: UInt64 = 0
        var received: UInt64 = 0
        var sha256 = SHA256()
        /// The first `capture` bytes each way, when asked.
        var sentContent: [UInt8] = []
        var receivedContent: [UInt8] = []
        /// `closed`, or why it ended early.
        var end = "closed"
        var clean = true
        /// The response body's digest, when asked (`digestBody`).
        var body: ResponseBodyDigest?
    }

    static let bufferSize = 64 << 10

    let guest: Int32
    let upstream: Int32
    let idleTimeout: Double
    /// Of `n` more bytes, how many may move (the session's byte cap); fewer ends the exchange.
    let take: (Int) -> Int
    let limitReason: () -> String
    /// Bytes of each direction to keep for the log (0: none).
    var capture = 0
    /// A recorded session's tape: every byte each way, as it moved (docs/replay.md).
    var tape: (sent: ExchangeWriter, received: ExchangeWriter)?
    /// The method of a plain request whose response body is digested on its own (an apt
    /// mirror's `.deb`); nil: none.
    var digestBody: String?

    /// `pending`: bytes already read from the guest past the request head, sent first.
    func run(pending: [UInt8], guestLimit: GuestLimit) -> Outcome {
        var outcome = Outcome()
        outcome.body = digestBody.map { ResponseBodyDigest(requestMethod: $0) }
        var toUpstream = [UInt8](repeating: 0, count: Self.bufferSize)
        var toGuest = [UInt8](repeating: 0, count: Self.bufferSize)
        var upCount = 0, upOffset = 0, downCount = 0, downOffset = 0
        var guestRemaining: UInt64? = nil
        if case .body(let length) = guestLimit { guestRemaining = length }
        // Bytes past the head go first, no more of them than the body's length.
        var early = pending[...]
        if let remaining = guestRemaining {
            early = early.prefix(Int(min(UInt64(early.count), remaining)))
            guestRemaining = remaining - UInt64(early.count)
        }
        var earlyBuffer = Array(early)
        var guestOpen = guestRemaining.map { $0 > 0 } ?? true
        var upstreamOpen = true
        var upstreamWriteShut = false
        var lastProgress = MonotonicClock.nanoseconds()
        let idle = UInt64(idleTimeout * 1e9)

        func finish(_ reason: String, clean: Bool) -> Outcome {
            outcome.end = reason
            outcome.clean = clean
            return outcome
        }

        while true {
            // Guest → upstream: early bytes, then the buffer.
            if upCount == upOffset, !earlyBuffer.isEmpty {
                upCount = earlyBuffer.count
                upOffset = 0
                toUpstream.replaceSubrange(0..<earlyBuffer.count, with: earlyBuffer)
                earlyBuffer = []
            }
            let upstreamDone = !upstreamOpen && downOffset == downCount
            let guestDone = !guestOpen && upOffset == upCount && earlyBuffer.isEmpty
            if guestDone && !upstreamWriteShut && guestRemaining == nil {
                // The guest finished sending on a tunnel: pass the half-close on.
                shutdown(upstream, Int32(SHUT_WR))
                upstreamWriteShut = true
            }
            if upstreamDone && (guestDone || guestRemaining != nil) { return finish("closed", clean: true) }

            var descriptors: [pollfd] = []
            var guestEvents: Int16 = 0, upstreamEvents: Int16 = 0
            if guestOpen && upOffset == upCount { guestEvents |= Int16(POLLIN) }
            if downOffset < downCount { guestEvents |= Int16(POLLOUT) }
            if upstreamOpen && downOffset == downCount { upstreamEvents |= Int16(POLLIN) }
            if upOffset < upCount { upstreamEvents |= Int16(POLLOUT) }
            // A side with nothing asked of it is left out (fd -1): poll(2) would report its
            // hang-up at once, again and again, while its bytes wait in the other's buffer.
            descriptors.append(pollfd(fd: guestEvents == 0 ? -1 : guest, events: guestEvents, revents: 0))
            descriptors.append(pollfd(fd: upstreamEvents == 0 ? -1 : upstream, events: upstreamEvents, revents: 0))
            let waited = MonotonicClock.nanoseconds() - lastProgress
            if waited >= idle { return finish("idle: nothing moved for \(Int(idleTimeout)) s", clean: false) }
            let ready = poll(&descriptors, 2, Int32(clamping: (idle - waited) / 1_000_000 + 1))
            if ready < 0 {
                if errno == EINTR { continue }
                return finish("error: poll: \(String(cString: strerror(errno)))", clean: false)
            }
            if ready == 0 { continue }
            let guestReady = descriptors[0].revents, upstreamReady = descriptors[1].revents

            if guestReady & Int16(POLLERR | POLLNVAL) != 0 { return finish("error: the guest's connection failed", clean: false) }
            if upstreamReady & Int16(POLLERR | POLLNVAL) != 0 && upstreamReady & Int16(POLLIN) == 0 {
                return finish("error: the far end's connection failed", clean: false)
            }

            // Reads.
            if guestEvents & Int16(POLLIN) != 0, guestReady & Int16(POLLIN | POLLHUP) != 0 {
                var want = Self.bufferSize
                if let remaining = guestRemaining { want = Int(min(UInt64(want), remaining)) }
                let n = toUpstream.withUnsafeMutableBytes { recv(guest, $0.baseAddress, want, Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    upCount = n
                    upOffset = 0
                    if let remaining = guestRemaining {
                        guestRemaining = remaining - UInt64(n)
                        if guestRemaining == 0 { guestOpen = false }
                    }
                    lastProgress = MonotonicClock.nanoseconds()
                } else if n == 0 {
                    guestOpen = false
                    if let remaining = guestRemaining, remaining > 0 {
                        return finish("error: the guest closed after sending \(outcome.sent) bytes of the request", clean: false)
                    }
                } else if errno != EAGAIN && errno != EINTR {
                    return finish("error: reading from the guest: \(String(cString: strerror(errno)))", clean: false)
                }
            }
            if upstreamEvents & Int16(POLLIN) != 0, upstreamReady & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = toGuest.withUnsafeMutableBytes { recv(upstream, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    downCount = n
                    downOffset = 0
                    lastProgress = MonotonicClock.nanoseconds()
                } else if n == 0 {
                    upstreamOpen = false
                    shutdown(guest, Int32(SHUT_WR))
                } else if errno != EAGAIN && errno != EINTR {
                    return finish("error: reading from the far end: \(String(cString: strerror(errno)))", clean: false)
                }
            }

            // Writes, each asking the budget first.
            if upOffset < upCount, upstreamReady & Int16(POLLOUT) != 0 {
                switch write(&toUpstream, from: upOffset, to: upCount, into: upstream) {
                case .wrote(let n):
                    toUpstream.withUnsafeBytes { tape?.sent.append(UnsafeRawBufferPointer(rebasing: $0[upOffset..<(upOffset + n)])) }
                    if outcome.sentContent.count < capture {
                        outcome.sentContent += toUpstream[upOffset..<(upOffset + min(n, capture - outcome.sentContent.count))]
                    }
                    upOffset += n
                    outcome.sent += UInt64(n)
                    lastProgress = MonotonicClock.nanoseconds()
                case .overBudget: return finish(limitReason(), clean: false)
                case .failed(let why): return finish("error: writing to the far end: \(why)", clean: false)
                }
            }
            if downOffset < downCount, guestReady & Int16(POLLOUT) != 0 {
                let start = downOffset
                switch write(&toGuest, from: downOffset, to: downCount, into: guest) {
                case .wrote(let n):
                    toGuest.withUnsafeBytes { buffer in
                        let moved = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + n)])
                        outcome.sha256.update(bufferPointer: moved)
                        outcome.body?.feed(moved)
                        tape?.received.append(moved)
                    }
                    if outcome.receivedContent.count < capture {
                        outcome.receivedContent += toGuest[start..<(start + min(n, capture - outcome.receivedContent.count))]
                    }
                    downOffset += n
                    outcome.received += UInt64(n)
                    lastProgress = MonotonicClock.nanoseconds()
                case .overBudget: return finish(limitReason(), clean: false)
                case .failed(let why): return finish("error: writing to the guest: \(why)", clean: false)
                }
            }
            if upOffset == upCount { upOffset = 0; upCount = 0 }
            if downOffset == downCount { downOffset = 0; downCount = 0 }
        }
    }

    enum Written {
        case wrote(Int)
        case overBudget
        case failed(String)
    }

    /// One non-blocking send of what the budget allows of `buffer[from..<to]`.
    private func write(_ buffer: inout [UInt8], from: Int, to: Int, into fd: Int32) -> Written {
        let allowed = take(to - from)
        guard allowed > 0 else { return .overBudget }
        let n = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + from, allowed, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return .wrote(0) }
            return .failed(String(cString: strerror(errno)))
        }
        // What the budget counted but did not go out is not given back: a short send is rare
        // and the cap is a ceiling, not an account.
        return .wrote(n)
    }
}
