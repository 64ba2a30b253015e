import Audit
import BrainWire
import Crypto
import Gateway
import Glibc
import HTTPWire
import Merkle
import Policy
import POSIX
import TLS

extension BrainRelay {
    /// One admitted model call, from connecting to the provider to the agent's last byte.
    struct Call {
        let admission: GovernedBrain.Admission
        let forwarded: [UInt8]
        let started: UInt64
        /// The provider's status; 0 until its response head arrived.
        var status = 0
        var usage: TokenUsage?
        /// Chunks with output of a stream that reported no usage, or a whole response's cap.
        var estimated = 0
        /// The response body as the agent received it: count, digest, the first bytes kept.
        var delivered: UInt64 = 0
        var hasher = SHA256()
        var kept: [UInt8] = []
        var end = ""
        /// The provider's side, kept for the tape once the call is over.
        var taped: (any TapedAnswer)?

        init(admission: GovernedBrain.Admission, forwarded: [UInt8], started: UInt64) {
            self.admission = admission
            self.forwarded = forwarded
            self.started = started
        }

        mutating func run(_ relay: BrainRelay, guest: Int32) {
            guard let url = relay.governed.baseURL else {
                end = "error: the policy names no provider"
                return relay.refuse(guest, 503, "momin: the policy names no model provider", type: "momin_unavailable")
            }
            let stream: any ProviderStream & TapedAnswer
            switch relay.open(url, forwarded: forwarded) {
            case .failure(let failure):
                end = "error: \(failure)"
                return relay.refuse(guest, 502, "momin: cannot reach the model provider \(url): \(failure)", type: "momin_unavailable")
            case .success(let connected):
                stream = connected
                taped = connected
            }
            defer { stream.close() }
            let idle = relay.configuration.idleTimeout
            var request = "POST \(Self.providerPath(url)) HTTP/1.1\r\nHost: \(url.authority)\r\nContent-Type: application/json\r\n"
            // identity: a body the relay reads must not come compressed (RFC 9110 §12.5.3: without
            // Accept-Encoding, any coding would be acceptable).
            request += "Accept: \(admission.stream ? "text/event-stream" : "application/json")\r\nAccept-Encoding: identity\r\n"
            request += "User-Agent: momin-brain\r\n"
            request += "Content-Length: \(forwarded.count)\r\nConnection: close\r\n"
            let bytes = Array(request.utf8) + (relay.credential?.authorizationField ?? []) + [0x0D, 0x0A] + forwarded
            do { try stream.send(bytes, deadline: MonotonicClock.deadline(after: idle)) } catch {
                end = "error: sending the request: \(error)"
                return relay.refuse(guest, 502, "momin: the model provider: \(error)", type: "momin_unavailable")
            }
            let head: ResponseHead
            var reader: BodyReader
            switch Self.readHead(stream, idle: idle) {
            case .failure(let failure):
                end = "error: \(failure)"
                return relay.refuse(guest, 502, "momin: the model provider's response: \(failure)", type: "momin_unavailable")
            case .success(let (parsed, leftover)):
                head = parsed
                reader = BodyReader(framing: parsed.framing, pending: leftover)
            }
            status = head.status
            if let coding = head.value(of: "Content-Encoding"), !HeaderField.equalIgnoringASCIICase(coding, "identity") {
                end = "error: the provider's response has Content-Encoding \(EgressRelay.headerSafe(coding))"
                return relay.refuse(guest, 502, "momin: the model provider sent a \(EgressRelay.headerSafe(coding))-coded answer though asked for identity",
                                    type: "momin_provider_error")
            }
            let eventStream = head.status == 200 && (head.value(of: "Content-Type") ?? "").lowercased().hasPrefix("text/event-stream")
            if eventStream {
                relayStream(relay, guest: guest, stream: stream, reader: &reader)
            } else {
                relayWhole(relay, guest: guest, stream: stream, reader: &reader, head: head)
            }
        }

        /// `…/chat/completions` under the base URL's path.
        static func providerPath(_ url: BaseURL) -> String {
            (url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path) + "/chat/completions"
        }

        /// The response head, read within `idle` of each piece (bounded by the parser), and what
        /// followed it; `requestMethod` is the request's (a HEAD response has no body), `peer`
        /// who answers, for the message.
        static func readHead(_ stream: any ProviderStream, idle: Double, requestMethod: String = "POST",
                             peer: String = "the provider") -> Result<(ResponseHead, [UInt8]), BrainFailure> {
            var buffer: [UInt8] = []
            while true {
                let piece: [UInt8]
                do { piece = try stream.receive(max: 16 << 10, deadline: MonotonicClock.deadline(after: idle)) } catch {
                    return .failure(error)
                }
                guard !piece.isEmpty else { return .failure(BrainFailure("\(peer) closed the connection before its response head")) }
                buffer += piece
                switch ResponseHeadParser.headLength(buffer) {
                case .failure(let error): return .failure(BrainFailure("\(error)"))
                case .success(nil): continue
                case .success(let end?):
                    switch ResponseHeadParser.parse(buffer[0..<end], requestMethod: requestMethod) {
                    case .failure(let error): return .failure(BrainFailure("\(error)"))
                    case .success(let head): return .success((head, Array(buffer[end...])))
                    }
                }
            }
        }

        /// A streamed answer (text/event-stream), event by event: each is read for usage and
        /// output before it is passed on, re-encoded as `data:` lines (HTML §9.2.6).
        mutating func relayStream(_ relay: BrainRelay, guest: Int32, stream: any ProviderStream, reader: inout BodyReader) {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
            guard sendToAgent(guest, Array(head.utf8), body: false) else { end = "agent hung up"; return }
            var scanner = EventStreamScanner()
            while true {
                let piece: [UInt8]?
                do { piece = try reader.next(stream, deadline: MonotonicClock.deadline(after: relay.configuration.idleTimeout)) } catch {
                    return cut(guest, "error: the provider's stream: \(error)", message: "momin: the model provider's stream failed: \(error)")
                }
                guard let piece else {
                    if case .failure(let error) = scanner.finish() {
                        return cut(guest, "error: the provider's stream: \(error)", message: "momin: the model provider's stream: \(error)")
                    }
                    end = usage == nil ? "complete (no usage reported)" : "complete"
                    return
                }
                let events: [ServerSentEvent]
                switch scanner.feed(piece[...]) {
                case .success(let found): events = found
                case .failure(let error):
                    return cut(guest, "error: the provider's stream: \(error)", message: "momin: the model provider's stream: \(error)")
                }
                for event in events {
                    if !ChatResponseView.isDone(event.data[...]) {
                        switch ChatResponseView.read(event.data[...]) {
                        case .success(let view):
                            if let reported = view.usage { usage = reported }
                            if view.hasContent { estimated += 1 }
                        case .failure(let error):
                            return cut(guest, "error: the provider's stream: \(error)", message: "momin: the model provider's stream: \(error)")
                        }
                        if let cap = admission.completionCap, usage == nil, estimated > cap + relay.configuration.streamSlack {
                            return cut(guest, "limit: more than the \(cap) completion tokens the call was given",
                                       message: "momin: the stream went past the \(cap) completion tokens this call was given", type: "momin_limit")
                        }
                    }
                    guard sendToAgent(guest, Self.encode(event), body: true) else { end = "agent hung up"; return }
                }
            }
        }

        /// Ends a stream with an error event (what OpenAI's clients raise) and `reason` as the end.
        mutating func cut(_ guest: Int32, _ reason: String, message: String, type: String = "momin_provider_error") {
            end = reason
            let data = "{\"error\":{\"message\":\(quoted(message)),\"type\":\(quoted(type)),\"code\":null}}"
            _ = sendToAgent(guest, Self.encode(ServerSentEvent(data: Array(data.utf8))), body: true)
        }

        /// A whole answer: read (bounded), its usage read when it succeeded, passed on with its
        /// status and length.
        mutating func relayWhole(_ relay: BrainRelay, guest: Int32, stream: any ProviderStream, reader: inout BodyReader, head: ResponseHead) {
            var body: [UInt8] = []
            while true {
                let piece: [UInt8]?
                do { piece = try reader.next(stream, deadline: MonotonicClock.deadline(after: relay.configuration.idleTimeout)) } catch {
                    end = "error: the provider's response: \(error)"
                    return relay.refuse(guest, 502, "momin: the model provider's response: \(error)", type: "momin_provider_error")
                }
                guard let piece else { break }
                body += piece
                if body.count > relay.configuration.maximumResponseBytes {
                    end = "error: the provider's response is over \(relay.configuration.maximumResponseBytes) bytes"
                    return relay.refuse(guest, 502, "momin: the model provider's response is over \(relay.configuration.maximumResponseBytes) bytes",
                                        type: "momin_provider_error")
                }
            }
            end = head.status == 200 ? "complete" : "provider status \(head.status)"
            if head.status == 200 {
                switch ChatResponseView.read(body[...]) {
                case .success(let view): usage = view.usage
                case .failure(let error): end = "complete (the response was not understood: \(error))"
                }
                // Not reported: the cap the provider was held to is what the session is charged.
                if usage == nil { estimated = admission.completionCap ?? 0 }
            }
            let contentType = EgressRelay.headerSafe(head.value(of: "Content-Type") ?? "application/json")
            let reason = EgressRelay.headerSafe(head.reason.isEmpty ? ProxyResponse.reason(head.status) : head.reason)
            let fields = "HTTP/1.1 \(head.status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            guard sendToAgent(guest, Array(fields.utf8), body: false), sendToAgent(guest, body, body: true) else {
                end = "agent hung up"
                return
            }
        }

        /// Writes to the agent (30 s for each write); body bytes are counted, hashed and kept.
        mutating func sendToAgent(_ guest: Int32, _ bytes: [UInt8], body: Bool) -> Bool {
            do { try FileIO.sendAll(guest, bytes, until: MonotonicClock.deadline(after: 30)) } catch { return false }
            if body {
                delivered += UInt64(bytes.count)
                hasher.update(data: bytes)
                if kept.count < Audit.BrainCall.contentKept { kept += bytes.prefix(Audit.BrainCall.contentKept - kept.count) }
            }
            return true
        }

        /// One event as `event:` and `data:` lines and a blank line.
        static func encode(_ event: ServerSentEvent) -> [UInt8] {
            var out: [UInt8] = []
            if let name = event.event { out += Array("event: \(name)\n".utf8) }
            for line in event.data.split(separator: 0x0A, omittingEmptySubsequences: false) {
                out += Array("data: ".utf8) + line + [0x0A]
            }
            return out + [0x0A]
        }

        /// The log's record of the call.
        func record(keepContent: Bool) -> Audit.BrainCall {
            var prompt: UInt64 = 0
            var completion: UInt64 = 0
            var source = Audit.BrainCall.Usage.none
            if let usage {
                prompt = UInt64(max(0, usage.prompt))
                completion = UInt64(max(0, usage.completion))
                source = .reported
            } else if estimated > 0 {
                completion = UInt64(estimated)
                source = .estimated
            }
            return Audit.BrainCall(
                requestID: admission.id, model: admission.model, status: UInt64(status), promptTokens: prompt, completionTokens: completion,
                usage: source, requestSHA256: MerkleHash(bytes: Array(SHA256.hash(data: forwarded)))!,
                responseSHA256: MerkleHash(bytes: Array(hasher.finalize()))!, bytesSent: UInt64(forwarded.count), bytesReceived: delivered,
                durationMilliseconds: (MonotonicClock.nanoseconds() - started) / 1_000_000, end: end,
                requestContent: keepContent ? Array(forwarded.prefix(Audit.BrainCall.contentKept)) : [],
                responseContent: keepContent ? kept : [])
        }
    }

    /// A response body as its framing delimits it (RFC 9112 §6.3), piece by piece.
    struct BodyReader {
        let framing: BodyFraming
        var pending: [UInt8]
        var left: UInt64 = 0
        var decoder = ChunkedDecoder()
        var done = false

        init(framing: BodyFraming, pending: [UInt8]) {
            self.framing = framing
            self.pending = pending
            if case .length(let length) = framing { left = length }
            done = framing == .none || framing == .length(0)
        }

        /// The next piece of the body, nil after its end.
        mutating func next(_ stream: any ProviderStream, deadline: UInt64) throws(BrainFailure) -> [UInt8]? {
            while !done {
                var piece = pending
                pending = []
                if piece.isEmpty { piece = try stream.receive(max: 64 << 10, deadline: deadline) }
                switch framing {
                case .none:
                    return nil  // done from the start
                case .length:
                    guard !piece.isEmpty else { throw BrainFailure("the provider closed the connection \(left) bytes before the body's end") }
                    let taken = Array(piece.prefix(Int(clamping: left)))
                    left -= UInt64(taken.count)
                    done = left == 0
                    return taken
                case .untilClose:
                    guard !piece.isEmpty else {
                        // A body ended by the close is complete only if the close was the
                        // provider's (RFC 9112 §9.8): a cut TLS stream is an error, not an end.
                        guard stream.endedCleanly else { throw BrainFailure("the provider's connection ended without TLS close_notify: the body may be cut short") }
                        done = true
                        return nil
                    }
                    return piece
                case .chunked:
                    guard !piece.isEmpty else { throw BrainFailure("the provider closed the connection inside its chunked body") }
                    switch decoder.feed(piece[...]) {
                    case .failure(let error): throw BrainFailure("\(error)")
                    case .success(let decoded):
                        if decoder.isFinished { done = true }
                        if !decoded.isEmpty { return decoded }
                    }
                }
            }
            return nil
        }
    }
}

/// What a recorded session keeps of a model call (docs/replay.md).
protocol TapedAnswer: AnyObject {
    /// Once the call is over: the request as forwarded and the provider's answer as it came, by
    /// their digests in the exchange store; nil when nothing was taped (no recording, or an
    /// answer too large to keep).
    func exchange(forwarded: [UInt8]) -> CallObservation.Exchange?
}

/// A connection to the provider whose answer, in a recorded session, goes into the exchange
/// store as it is read.
final class TapedStream: ProviderStream, TapedAnswer {
    let inner: any ProviderStream
    let store: ExchangeStore?
    let writer: ExchangeWriter?

    init(_ inner: any ProviderStream, store: ExchangeStore?) {
        self.inner = inner
        self.store = store
        writer = store?.writer()
    }

    var endedCleanly: Bool { inner.endedCleanly }
    func send(_ bytes: [UInt8], deadline: UInt64) throws(BrainFailure) { try inner.send(bytes, deadline: deadline) }

    func receive(max: Int, deadline: UInt64) throws(BrainFailure) -> [UInt8] {
        let piece = try inner.receive(max: max, deadline: deadline)
        writer?.append(piece)
        return piece
    }

    func close() { inner.close() }

    func exchange(forwarded: [UInt8]) -> CallObservation.Exchange? {
        guard let store, let response = writer?.finish(), let request = store.keep(forwarded) else { return nil }
        return CallObservation.Exchange(request: request, response: response)
    }
}

/// A replay's provider: the recorded answer, read back in pieces as the provider's were; what
/// the relay sends is dropped (it matched the recording, or there would be no answer).
final class ReplayedStream: ProviderStream, TapedAnswer {
    private let answer: [UInt8]
    private var offset = 0
    private let recorded: CallObservation.Exchange

    init(_ answer: [UInt8], exchange: CallObservation.Exchange) {
        self.answer = answer
        recorded = exchange
    }

    var endedCleanly: Bool { true }
    func send(_ bytes: [UInt8], deadline: UInt64) throws(BrainFailure) {}

    func receive(max: Int, deadline: UInt64) throws(BrainFailure) -> [UInt8] {
        let end = min(answer.count, offset + max)
        defer { offset = end }
        return Array(answer[offset..<end])
    }

    func close() {}
    func exchange(forwarded: [UInt8]) -> CallObservation.Exchange? { recorded }
}

/// The relay's connection to the provider: plain TCP, or TLS over it.
protocol ProviderStream: AnyObject {
    func send(_ bytes: [UInt8], deadline: UInt64) throws(BrainFailure)
    /// Up to `max` bytes by `deadline`; empty once the provider has ended the stream.
    func receive(max: Int, deadline: UInt64) throws(BrainFailure) -> [UInt8]
    /// Whether the end of the stream was the provider's own (for TLS, its close_notify, not a
    /// bare TCP end an attacker could cause: RFC 8446 §6.1).
    var endedCleanly: Bool { get }
    func close()
}

final class PlainStream: ProviderStream {
    let fd: Int32
    private var closed = false

    init(fd: Int32) { self.fd = fd }

    var endedCleanly: Bool { true }

    func send(_ bytes: [UInt8], deadline: UInt64) throws(BrainFailure) {
        do { try FileIO.sendAll(fd, bytes, until: deadline) } catch { throw BrainFailure("\(error)") }
    }

    func receive(max: Int, deadline: UInt64) throws(BrainFailure) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, MonotonicClock.pollTimeout(until: deadline))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { throw BrainFailure(ready == 0 ? "the provider sent nothing for too long" : "poll: \(describeErrno())") }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n >= 0 else { throw BrainFailure("receiving: \(describeErrno())") }
            return Array(buffer[0..<n])
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    deinit { close() }
}

/// TLS over the provider's TCP connection (docs/tls.md): the chain and the host name checked.
final class TLSStream: ProviderStream {
    private var client: TLSClient
    private var closed = false

    private init(client: consuming TLSClient) { self.client = client }

    static func open(fd: Int32, serverName: String, trust: TLSTrust, deadline: UInt64) -> Result<TLSStream, BrainFailure> {
        do {
            var client = try TLSClient(socket: fd, serverName: serverName, context: try TLSContext.shared(for: trust))
            try client.handshake(deadline: deadline)
            return .success(TLSStream(client: client))
        } catch {
            return .failure(BrainFailure("\(error)"))
        }
    }

    var endedCleanly: Bool { client.closeNotifyReceived }

    func send(_ bytes: [UInt8], deadline: UInt64) throws(BrainFailure) {
        do { try client.write(bytes, deadline: deadline) } catch { throw BrainFailure("\(error)") }
    }

    func receive(max: Int, deadline: UInt64) throws(BrainFailure) -> [UInt8] {
        do { return try client.read(upTo: max, deadline: deadline) } catch { throw BrainFailure("\(error)") }
    }

    func close() {
        guard !closed else { return }
        closed = true
        client.shutdown()
        Glibc.close(client.fd)
    }

    deinit { close() }
}
