import Audit
import Doors
import Gateway
import Glibc
import HTTPWire
import Merkle
import Policy
import POSIX

/// Which of the guest's egress listeners a connection came through (`EgressProtocol`).
public enum EgressEntry: Sendable {
    /// The HTTP proxy: CONNECT for TLS, absolute-form for plain HTTP.
    case proxy
    /// `http://brain.momin/`: the Brain endpoint.
    case brain
}

/// Settings of the host's egress relay; the defaults are what momin uses.
public struct EgressConfiguration: Sendable {
    /// How long the guest has to send its whole request head.
    public var headDeadline: Double = 30
    /// How long one address may take to accept a connection.
    public var connectTimeout: Double = 10
    /// A connection on which nothing moves for this long is closed.
    public var idleTimeout: Double = 300
    /// Connections served at once for one VM; past it the guest is answered 503 at once.
    public var maxConnections = EgressProtocol.maxGuestConnections

    public init() {}
}

/// The host's end of an agent's network access (docs/egress.md). For each connection the guest
/// relays, it reads the HTTP request at the front of the stream, asks the policy (the host
/// resolves names itself, and only names the policy allows), logs request and decision, connects
/// to an address the policy judged, and moves the bytes, counted against the session's limits;
/// then it logs how the connection ended. What the guest sends is data: nothing in it is trusted
/// beyond what the parser checked.
public final class EgressRelay: Sendable {
    public let governed: GovernedEgress
    let resolver: any HostResolver
    public let configuration: EgressConfiguration
    /// Where requests to `brain.momin` go; nil: they are answered 503.
    public let brain: BrainRelay?
    /// A recorded session's tape (docs/replay.md): plain HTTP exchanges are kept, or in a
    /// replay answered from the recording; TLS tunnels are refused either way.
    public let tape: SessionTape?

    public init(governed: GovernedEgress, resolver: any HostResolver = SystemResolver(), configuration: EgressConfiguration = EgressConfiguration(),
                brain: BrainRelay? = nil, tape: SessionTape? = nil) {
        self.governed = governed
        self.resolver = resolver
        self.configuration = configuration
        self.brain = brain
        self.tape = tape
    }

    /// The host's refusal of a TLS tunnel in a recorded session or its replay.
    static let recordedTLSRefusal = Policy.Decision.refused(
        RuleRef("record", line: nil), because: "TLS egress is refused while a session is recorded or replayed: a tunnel's bytes cannot be replayed")

    /// Serves one guest connection on the calling thread and closes it.
    public func serve(_ guest: Int32, entry: EgressEntry) {
        defer { FileIO.closeSocketGracefully(guest) }
        let deadline = MonotonicClock.deadline(after: configuration.headDeadline)
        var buffer: [UInt8] = []
        var headEnd: Int?
        var chunk = [UInt8](repeating: 0, count: 4096)
        while headEnd == nil {
            var entry = pollfd(fd: guest, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, MonotonicClock.pollTimeout(until: deadline))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else {
                if ready == 0 { respond(guest, 408, "the request head did not arrive within \(Int(configuration.headDeadline)) s") }
                return
            }
            let n = chunk.withUnsafeMutableBytes { recv(guest, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }  // gone before a whole head: nothing was asked
            buffer += chunk[0..<n]
            switch RequestHeadParser.headLength(buffer) {
            case .success(let end): headEnd = end
            case .failure(let error):
                respond(guest, error.status, error.description)
                return
            }
        }
        let end = headEnd!
        let head: RequestHead
        switch RequestHeadParser.parse(buffer[0..<end]) {
        case .success(let parsed): head = parsed
        case .failure(let error):
            respond(guest, error.status, error.description)
            return
        }
        let pending = Array(buffer[end...])
        switch (entry, head.target) {
        case (.proxy, .authority(let host, let port)):
            relay(guest, call: { .connect(host: host, port: port, scheme: .tls, resolved: $0) }, host: host, port: port, target: nil,
                  requestLength: nil) { upstream in
                _ = try? FileIO.sendAll(guest, ProxyResponse.make(status: 200, reason: ProxyResponse.reason(200)),
                                        until: MonotonicClock.deadline(after: 5))
                return (pending, .none)
            }
        case (.proxy, .absolute(let host, let port, let pathAndQuery)):
            if Self.isBrain(host) { return serveBrain(guest, head: head, pathAndQuery: pathAndQuery, pending: pending) }
            let forwarded: ForwardedRequest
            switch ForwardedRequest.make(head, host: host, port: port, pathAndQuery: pathAndQuery) {
            case .success(let made): forwarded = made
            case .failure(let error):
                respond(guest, error.status, error.description)
                return
            }
            let path = String(pathAndQuery.prefix { $0 != "?" })
            let package = governed.session.policy?.aptPoolFile(host: host, port: port, path: path).map { (head.method, $0) }
            relay(guest, call: { .httpRequest(host: host, port: port, method: head.method, path: path, resolved: $0) }, host: host, port: port,
                  target: pathAndQuery, requestLength: forwarded.bodyLength + UInt64(forwarded.head.count), package: package) { _ in
                (forwarded.head + pending, .body(forwarded.bodyLength + UInt64(forwarded.head.count)))
            }
        case (.proxy, .origin):
            respond(guest, 400, "a request to the proxy must name its destination: http://host/path, or CONNECT host:port for TLS")
        case (.brain, .origin(let pathAndQuery)):
            serveBrain(guest, head: head, pathAndQuery: pathAndQuery, pending: pending)
        case (.brain, .absolute(let host, _, let pathAndQuery)) where Self.isBrain(host):
            serveBrain(guest, head: head, pathAndQuery: pathAndQuery, pending: pending)
        case (.brain, _):
            respond(guest, 400, "the Brain endpoint serves http://\(EgressProtocol.brainHost)/v1/... only")
        }
    }

    private func serveBrain(_ guest: Int32, head: RequestHead, pathAndQuery: String, pending: [UInt8]) {
        guard let brain else { return respond(guest, 503, "the Brain endpoint is not served for this VM") }
        brain.serve(guest, head: head, pathAndQuery: pathAndQuery, pending: pending)
    }

    static func isBrain(_ host: String) -> Bool {
        HeaderField.equalIgnoringASCIICase(host, EgressProtocol.brainHost)
    }

    /// Judge, log, connect, pump, log the end. `begin` runs once connected: what goes to the far
    /// end first, and how much of the guest's stream may follow.
    /// `requestLength`: the bytes of a plain HTTP request as forwarded, head and body.
    /// `package`: a `.deb` asked of an apt mirror, and the request's method: logged by name, its
    /// result the body's own size and SHA-256 (what the archive's Packages index gives).
    private func relay(_ guest: Int32, call: ([IPAddress]) -> ToolCall, host rawHost: String, port: UInt16, target: String?,
                       requestLength: UInt64?, package: (method: String, file: AptPoolFile)? = nil,
                       begin: (Int32) -> ([UInt8], Pump.GuestLimit)) {
        let started = MonotonicClock.nanoseconds()
        var resolved: [IPAddress] = []
        var resolveProblem: String?
        if let policy = governed.session.policy {
            (resolved, resolveProblem) = EgressLookup.addresses(for: rawHost, call: call, policy: policy, resolver: resolver)
        }
        let admission: GovernedEgress.Admission
        do {
            admission = try governed.admit(call(resolved), target: target, refusal: tape != nil && target == nil ? Self.recordedTLSRefusal : nil,
                                           package: package?.file)
        } catch {
            switch error {
            case .denied(let decision):
                let limit = decision.rule.id.hasPrefix("network.limits") || decision.rule.id.hasPrefix("limits.")
                var text = "momin: \(decision)"
                if let resolveProblem { text += " (resolving \(rawHost): \(resolveProblem))" }
                respond(guest, limit ? 429 : 403, text, decision: "\(decision)")
            default:
                respond(guest, 503, "momin: the call could not be recorded: \(error)")
            }
            return
        }
        var summary = ConnectionEnd(requestID: admission.id, address: "", bytesSent: 0, bytesReceived: 0, durationMilliseconds: 0, end: "")
        var exchange: CallObservation.Exchange?
        func ended(status: Int64, received: UInt64, sha256: MerkleHash) {
            summary.durationMilliseconds = (MonotonicClock.nanoseconds() - started) / 1_000_000
            try? governed.end(admission, summary, status: status, received: received, sha256: sha256, exchange: exchange)
        }
        var replayed: ReplayedUpstream?
        let upstream: Int32
        let connection: Result<(fd: Int32, address: String), ResolveFailure>
        if case .replaying(let recorded)? = tape {
            connection = ReplayedUpstream.start(expecting: requestLength ?? 0, from: recorded, idleTimeout: configuration.idleTimeout)
                .map { started in
                    replayed = started.upstream
                    return (started.fd, "replay")
                }
        } else {
            connection = Upstream.connect(to: admission.addresses, port: port, timeout: configuration.connectTimeout)
                .map { ($0.fd, Upstream.endpoint($0.address, port)) }
        }
        switch connection {
        case .success(let connected):
            upstream = connected.fd
            summary.address = connected.address
        case .failure(let problem):
            summary.end = "error: connect: \(problem)"
            ended(status: -1, received: 0, sha256: Merkle.emptyRoot)
            respond(guest, 502, "momin: cannot connect to \(rawHost):\(port): \(problem)")
            return
        }
        defer { close(upstream) }
        let (first, limit) = begin(upstream)
        var pump = Pump(guest: guest, upstream: upstream, idleTimeout: configuration.idleTimeout, take: { [governed] in governed.take($0) },
                        limitReason: { [governed] in "limit: network.limits.bytes_per_session (\(governed.bytesPerSession ?? 0) bytes)" })
        // A tunnel's bytes are TLS records nobody here can read: content is kept for plain HTTP.
        if admission.logContent, target != nil { pump.capture = ConnectionEnd.contentKept }
        pump.digestBody = package?.method
        if case .recording(let store)? = tape, let sent = store.writer(), let received = store.writer() { pump.tape = (sent, received) }
        let outcome = pump.run(pending: first, guestLimit: limit)
        if let taped = pump.tape, let request = taped.sent.finish(), let response = taped.received.finish() {
            exchange = CallObservation.Exchange(request: request, response: response)
        }
        if let replayed { exchange = replayed.exchange() }
        summary.bytesSent = outcome.sent
        summary.bytesReceived = outcome.received
        summary.end = outcome.end
        summary.sentContent = outcome.sentContent
        summary.receivedContent = outcome.receivedContent
        if let body = outcome.body?.result(endedCleanly: outcome.clean) {
            return ended(status: outcome.clean ? 0 : 1, received: body.size, sha256: body.sha256)
        }
        ended(status: outcome.clean ? 0 : 1, received: outcome.received, sha256: MerkleHash(bytes: Array(outcome.sha256.finalize()))!)
    }

    /// An answer the relay makes itself, then the connection is closed.
    private func respond(_ guest: Int32, _ status: Int, _ message: String, decision: String? = nil) {
        var fields: [HeaderField] = []
        if let decision { fields.append(HeaderField(name: "X-Momin-Decision", value: Self.headerSafe(decision))) }
        let bytes = ProxyResponse.make(status: status, reason: ProxyResponse.reason(status), fields: fields, body: message + "\n")
        _ = try? FileIO.sendAll(guest, bytes, until: MonotonicClock.deadline(after: 5))
    }

    /// A header value: printable ASCII only, at most 512 bytes.
    static func headerSafe(_ text: String) -> String {
        String(decoding: text.utf8.prefix(512).map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }
}

/// How the host finds the addresses a call is judged with, the relay and `momin policy eval`
/// alike: a name is looked up only when some rule allows it (a denied name never reaches the
/// resolver), an address literal is itself, and a failed lookup leaves none (the policy then
/// refuses the name as unresolved).
public enum EgressLookup {
    public static func addresses(for rawHost: String, call: ([IPAddress]) -> ToolCall, policy: AgentPolicy,
                                 resolver: any HostResolver) -> (resolved: [IPAddress], problem: String?) {
        guard case .success(.name(let name)) = HostName.normalize(rawHost) else { return ([], nil) }
        let decision = policy.evaluate(call([]), resolver: NoGuestPathsResolver())
        guard !decision.isAllowed, case .unresolved = decision.why else { return ([], nil) }
        switch resolver.addresses(of: name) {
        case .success(let addresses): return (addresses, nil)
        case .failure(let problem): return ([], problem.description)
        }
    }
}

/// Egress calls carry no guest paths: every path is its own.
struct NoGuestPathsResolver: PathResolver {
    func canonicalPath(_ path: String, followFinalSymlink: Bool) -> String? { path }
}
