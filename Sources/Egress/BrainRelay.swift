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

/// Settings of the Brain relay; the defaults are what momin uses.
public struct BrainConfiguration: Sendable {
    /// How long the agent has to send a request's whole body.
    public var bodyDeadline: Double = 60
    public var connectTimeout: Double = 10
    /// How long the provider may go without a byte: a large model's first token can take minutes.
    public var idleTimeout: Double = 600
    /// The largest whole (not streamed) response the relay takes from the provider.
    public var maximumResponseBytes = 16 << 20
    /// Chunks with output a stream may carry past its call's completion cap before it is cut:
    /// a chunk is about one token, and a tool call's first chunk carries none.
    public var streamSlack = 16
    /// Whose certificates the provider's must chain to (tests and private providers give a file).
    public var trust: TLSTrust = .system

    public init() {}
}

/// The Brain (docs/brain.md): the agent's model calls, made by the host. The agent's
/// OpenAI-compatible request (`POST /v1/chat/completions`, at `http://brain.momin/v1`) is read
/// whole and bounded, its model and token cap judged by the policy's `brain` section and the
/// session's counters, logged, given a completion cap when it named none (and, streaming,
/// `stream_options.include_usage`), and sent to the provider the policy names with the host's
/// key. The answer goes back as it arrives; its tokens are counted, a stream that runs past its
/// cap is cut with an error event, and the call's end is logged with digests of both bodies.
/// Nothing the agent sends chooses where the call goes or what credential it carries.
public final class BrainRelay: Sendable {
    public let governed: GovernedBrain
    let credential: BrainCredential?
    let resolver: any HostResolver
    public let configuration: BrainConfiguration
    /// A recorded session's tape (docs/replay.md): recording keeps each call's request as
    /// forwarded and the provider's answer as it came; a replay answers from them.
    public let tape: SessionTape?

    public init(governed: GovernedBrain, credential: BrainCredential?, resolver: any HostResolver = SystemResolver(),
                configuration: BrainConfiguration = BrainConfiguration(), tape: SessionTape? = nil) {
        self.governed = governed
        self.credential = credential
        self.resolver = resolver
        self.configuration = configuration
        self.tape = tape
    }

    /// The one path served, as the agent names it (its base URL is `http://brain.momin/v1`).
    public static let chatPath = "/v1/chat/completions"

    /// Serves one request whose head was read; `pending` holds what followed the head.
    public func serve(_ guest: Int32, head: RequestHead, pathAndQuery: String, pending: [UInt8]) {
        guard pathAndQuery == Self.chatPath else {
            return refuse(guest, 404, "momin: the Brain serves POST \(Self.chatPath) only, not \(Self.clip(pathAndQuery))", type: "not_found")
        }
        guard head.method == "POST" else {
            return refuse(guest, 405, "momin: \(Self.chatPath) takes POST, not \(head.method)", type: "invalid_request_error")
        }
        guard head.value(of: "Transfer-Encoding") == nil, let lengthText = head.value(of: "Content-Length"), let length = Int(lengthText) else {
            return refuse(guest, 411, "momin: a Brain request needs a Content-Length (no chunked bodies)", type: "invalid_request_error")
        }
        guard length <= ChatRequest.maximumBodyBytes else {
            return refuse(guest, 413, "momin: the request body is \(length) bytes, at most \(ChatRequest.maximumBodyBytes)", type: "invalid_request_error")
        }
        guard let body = readBody(guest, length: length, pending: pending) else {
            return refuse(guest, 408, "momin: the request body did not arrive within \(Int(configuration.bodyDeadline)) s", type: "invalid_request_error")
        }
        let request: ChatRequest
        switch ChatRequest.parse(body[...]) {
        case .success(let parsed): request = parsed
        case .failure(let error): return refuse(guest, error.status, "momin: \(error)", type: "invalid_request_error")
        }
        let started = MonotonicClock.nanoseconds()
        let bodyDigest = MerkleHash(bytes: Array(SHA256.hash(data: body)))!
        let admission: GovernedBrain.Admission
        do {
            admission = try governed.admit(model: request.model, maxTokens: request.maxTokens, stream: request.stream, bodySHA256: bodyDigest)
        } catch {
            switch error {
            case .denied(let decision):
                let limit = decision.rule.id.hasPrefix("limits.") || decision.rule.id == "brain.max_requests"
                    || decision.rule.id == "brain.max_tokens_per_session"
                return refuse(guest, limit ? 429 : 403, "momin: \(decision)", type: limit ? "momin_limit" : "momin_denied", decision: "\(decision)")
            default:
                return refuse(guest, 503, "momin: the call could not be recorded: \(error)", type: "momin_unavailable")
            }
        }
        let forwarded = request.rewritten(body[...], maxTokensWhenAbsent: admission.addCap ? admission.completionCap : nil)
        var call = Call(admission: admission, forwarded: forwarded, started: started)
        call.run(self, guest: guest)
        let record = call.record(keepContent: admission.logContent)
        try? governed.end(admission, record, status: Int64(call.status), received: call.delivered, sha256: record.responseSHA256,
                          exchange: call.taped?.exchange(forwarded: forwarded))
    }

    /// The provider's side of one call: connected (and taped, in a recorded session), or in a
    /// replay the recorded answer to this very request, with nothing sent anywhere.
    func open(_ url: BaseURL, forwarded: [UInt8]) -> Result<any ProviderStream & TapedAnswer, BrainFailure> {
        switch tape {
        case .replaying(let recorded)?:
            switch recorded.answer(tool: GovernedBrain.tool, request: forwarded) {
            case .success(let found): return .success(ReplayedStream(found.bytes, exchange: found.exchange))
            case .failure(let miss): return .failure(BrainFailure(miss.description))
            }
        case .recording(let store)?:
            return connect(url).map { TapedStream($0, store: store) }
        case nil:
            return connect(url).map { TapedStream($0, store: nil) }
        }
    }

    /// The body: `pending` first, then the rest from the agent, by the body deadline; nil if it
    /// did not all come (kept as it arrives, never allocated whole from the claimed length).
    private func readBody(_ guest: Int32, length: Int, pending: [UInt8]) -> [UInt8]? {
        let early = Array(pending.prefix(length))
        let deadline = MonotonicClock.deadline(after: configuration.bodyDeadline)
        return FileIO.readExactly(guest, count: length - early.count, until: deadline).map { early + $0 }
    }

    /// An answer the relay makes itself, as an OpenAI error object so that clients show it, with
    /// `x-should-retry: false` (a refusal does not change on a retry; OpenAI's SDKs honour it).
    func refuse(_ guest: Int32, _ status: Int, _ message: String, type: String, decision: String? = nil) {
        var fields = [HeaderField(name: "x-should-retry", value: "false")]
        if let decision { fields.append(HeaderField(name: "X-Momin-Decision", value: EgressRelay.headerSafe(decision))) }
        let body = "{\"error\":{\"message\":\(quoted(message)),\"type\":\(quoted(type)),\"code\":null}}\n"
        let bytes = ProxyResponse.make(status: status, reason: ProxyResponse.reason(status), fields: fields, body: body,
                                       contentType: "application/json")
        _ = try? FileIO.sendAll(guest, bytes, until: MonotonicClock.deadline(after: 5))
    }

    /// At most 200 characters of agent-sent text, for a message.
    static func clip(_ text: String) -> String { text.count > 200 ? String(text.prefix(200)) + "..." : text }

    /// The provider's connection (`ProviderConnection.open`).
    func connect(_ url: BaseURL) -> Result<any ProviderStream, BrainFailure> {
        ProviderConnection.open(url, resolver: resolver, trust: configuration.trust, timeout: configuration.connectTimeout)
    }
}

/// A connection the host makes for itself to a URL's origin (a model provider, a package
/// index): the name resolved by the host (an address is itself), the first address that answers
/// within `timeout`, TLS for https with the chain and the host name checked.
enum ProviderConnection {
    static func open(_ url: BaseURL, resolver: any HostResolver, trust: TLSTrust, timeout: Double) -> Result<any ProviderStream, BrainFailure> {
        let addresses: [IPAddress]
        let hostName: String
        switch url.host {
        case .address(let address):
            addresses = [address]
            hostName = address.description
        case .name(let name):
            hostName = name
            switch resolver.addresses(of: name) {
            case .success(let found): addresses = found
            case .failure(let problem): return .failure(BrainFailure("resolving \(name): \(problem)"))
            }
        }
        switch Upstream.connect(to: addresses, port: url.port, timeout: timeout) {
        case .failure(let problem):
            return .failure(BrainFailure("connect: \(problem)"))
        case .success(let connected):
            guard url.scheme == .https else { return .success(PlainStream(fd: connected.fd)) }
            switch TLSStream.open(fd: connected.fd, serverName: hostName, trust: trust, deadline: MonotonicClock.deadline(after: timeout)) {
            case .success(let stream): return .success(stream)
            case .failure(let failure):
                close(connected.fd)
                return .failure(failure)
            }
        }
    }
}

/// What went wrong between the relay and the provider, for the call's end and the agent.
public struct BrainFailure: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
