/// What the Brain relay reads of a guest's Chat Completions request (`POST /v1/chat/completions`):
/// the model, the completion token limit and whether it streams. Nothing else of the body is
/// interpreted; it goes to the provider byte for byte, save the members `rewritten` splices in.
public struct ChatRequest: Sendable, Equatable {
    public var model: String
    /// The larger of `max_tokens` and `max_completion_tokens` when either is present.
    public var maxTokens: Int?
    public var stream: Bool

    /// The largest body the relay reads (413 past it).
    public static let maximumBodyBytes = 8 << 20
    /// The longest model name accepted.
    public static let maximumModelBytes = 1 << 10

    public init(model: String, maxTokens: Int?, stream: Bool) {
        self.model = model
        self.maxTokens = maxTokens
        self.stream = stream
    }

    /// The members read or rewritten: a duplicate of any is refused, as the provider's parser
    /// might take the other one (RFC 8259 §4).
    static let readKeys = ["model", "max_tokens", "max_completion_tokens", "stream", "stream_options"]

    /// Reads a request body: a JSON object with a non-empty string `model`, positive integers
    /// `max_tokens` and `max_completion_tokens` when present, a boolean `stream` when present
    /// (null is absent for each).
    public static func parse(_ body: ArraySlice<UInt8>) -> Result<ChatRequest, BrainWireError> {
        scan(body).map(\.request)
    }

    /// What `parse` found, with where it lies, for `rewritten`.
    struct Scanned {
        var request: ChatRequest
        var object: JSONObject
        var hasTokenField: Bool
        /// The members of `readKeys` that are present, by name.
        var found: [String: JSONMember]
    }

    static func scan(_ body: ArraySlice<UInt8>) -> Result<Scanned, BrainWireError> {
        guard body.count <= maximumBodyBytes else {
            return .failure(BrainWireError(status: 413, "the request body is longer than \(maximumBodyBytes) bytes"))
        }
        let object: JSONObject
        switch JSONScan.object(body) {
        case .success(let found): object = found
        case .failure(let error): return .failure(.request("the request body is not a JSON object: \(error)"))
        }
        var found: [String: JSONMember] = [:]
        for key in readKeys {
            switch object.member(named: key) {
            case .success(let member): found[key] = member
            case .failure: return .failure(.request("\"\(key)\" appears more than once in the request body"))
            }
        }
        func text(_ member: JSONMember) -> String { BrainWireError.quote(body[member.valueRange]) }

        guard let modelMember = found["model"] else { return .failure(.request("model is missing")) }
        guard let model = JSONScan.string(body[modelMember.valueRange]), !model.isEmpty else {
            return .failure(.request("model must be a non-empty string, found \(text(modelMember))"))
        }
        guard model.utf8.count <= maximumModelBytes else { return .failure(.request("model is longer than \(maximumModelBytes) bytes")) }
        // The name is judged by policy and written to logs: no control characters in it.
        guard model.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            return .failure(.request("model must not contain control characters, found \(text(modelMember))"))
        }

        var maxTokens: Int?
        var hasTokenField = false
        for key in ["max_tokens", "max_completion_tokens"] {
            guard let member = found[key], member.kind != .null else { continue }
            guard let value = JSONScan.integer(body[member.valueRange]), value > 0 else {
                return .failure(.request("\(key) must be a positive integer, found \(text(member))"))
            }
            hasTokenField = true
            maxTokens = max(maxTokens ?? 0, value)
        }

        var stream = false
        if let member = found["stream"], member.kind != .null {
            guard let value = JSONScan.bool(body[member.valueRange]) else {
                return .failure(.request("stream must be true or false, found \(text(member))"))
            }
            stream = value
        }

        // stream_options.include_usage is rewritten: it must not be there twice either.
        if let options = found["stream_options"], options.kind == .object {
            if case .success(let inner) = JSONScan.object(body[options.valueRange]), case .failure = inner.member(named: "include_usage") {
                return .failure(.request("\"stream_options.include_usage\" appears more than once in the request body"))
            }
        }
        return .success(Scanned(
            request: ChatRequest(model: model, maxTokens: maxTokens, stream: stream), object: object,
            hasTokenField: hasTokenField, found: found
        ))
    }

    /// The body to send the provider: `body` with, spliced in and every other byte as the guest
    /// sent it,
    /// - `"max_completion_tokens":cap` added when neither token field is present and `cap` is
    ///   given (a cap below 1 is written as 1), or put in place of a null `max_completion_tokens`;
    /// - when the body streams, `stream_options.include_usage` set to true, so that the provider
    ///   reports the usage the relay counts: `stream_options` added as `{"include_usage":true}`
    ///   when absent, its `include_usage` replaced or added when it is an object, and the whole
    ///   value replaced when it is anything else.
    ///
    /// The body's own members decide (it is scanned again); a body `parse` refuses comes back
    /// unchanged. The result is at most 100 bytes longer, so it may pass `maximumBodyBytes`.
    public func rewritten(_ body: ArraySlice<UInt8>, maxTokensWhenAbsent cap: Int?) -> [UInt8] {
        guard case .success(let scanned) = Self.scan(body) else { return Array(body) }
        var edits: [(range: Range<Int>, bytes: [UInt8])] = []
        var added: [UInt8] = []
        if !scanned.hasTokenField, let cap {
            let value = Array("\(max(cap, 1))".utf8)
            // A null max_completion_tokens is replaced, never added a second time.
            if let null = scanned.found["max_completion_tokens"] {
                edits.append((null.valueRange, value))
            } else {
                added += Array("\"max_completion_tokens\":".utf8) + value
            }
        }
        if scanned.request.stream {
            let usage = Array("{\"include_usage\":true}".utf8)
            if let options = scanned.found["stream_options"] {
                if options.kind == .object, case .success(let inner) = JSONScan.object(body[options.valueRange]) {
                    if let include = inner.members(named: "include_usage").first {
                        edits.append((include.valueRange, Array("true".utf8)))
                    } else {
                        let insertion = inner.insertion(of: Array("\"include_usage\":true".utf8))
                        edits.append((insertion.at..<insertion.at, insertion.bytes))
                    }
                } else {
                    edits.append((options.valueRange, usage))
                }
            } else {
                if !added.isEmpty { added.append(UInt8(ascii: ",")) }
                added += Array("\"stream_options\":".utf8) + usage
            }
        }
        if !added.isEmpty {
            let insertion = scanned.object.insertion(of: added)
            edits.append((insertion.at..<insertion.at, insertion.bytes))
        }
        // Edits never overlap: an inner one lies inside stream_options' value, the added
        // members after the last member's value.
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 64)
        var position = body.startIndex
        for edit in edits.sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
            out += body[position..<edit.range.lowerBound]
            out += edit.bytes
            position = edit.range.upperBound
        }
        out += body[position...]
        return out
    }
}
