import BrainWire
import HTTPWire

/// What a provider sends the Brain relay and what a guest sends it (`brain.momin`): the first
/// byte picks a parser, the second (where used) how the rest is cut into pieces.
/// 0: a response head; 1: a chunked body; 2: a chat request, parsed and rewritten; 3: an event
/// stream, each event read as a response document.
enum BrainWireTarget {
    static func run(_ input: [UInt8]) {
        guard let mode = input.first else { return }
        let rest = input.dropFirst()
        switch mode % 4 {
        case 0: responseHead(rest)
        case 1: chunked(rest)
        case 2: chatRequest(rest)
        default: eventStream(rest)
        }
    }

    /// Pieces of 1 to 64 bytes, the size taken from the first byte.
    static func pieces(_ input: ArraySlice<UInt8>) -> (size: Int, body: ArraySlice<UInt8>) {
        (Int((input.first ?? 0) % 64) + 1, input.dropFirst())
    }

    /// Found within 16 KiB, refused with 502, or parsed with a framing RFC 9112 §6.3 allows.
    static func responseHead(_ input: ArraySlice<UInt8>) {
        let method = input.first.map { $0 & 1 == 0 ? "GET" : "HEAD" } ?? "GET"
        let bytes = input.dropFirst()
        let length: Int?
        switch ResponseHeadParser.headLength(bytes) {
        case .failure(let error):
            guard error.status == 502 else { violated("headLength refused with \(error.status)") }
            return
        case .success(let found): length = found
        }
        guard let length else { return }
        guard length <= ResponseHeadParser.maximumHeadBytes, length <= bytes.count else { violated("a head of \(length) bytes") }
        switch ResponseHeadParser.parse(bytes.prefix(length), requestMethod: method) {
        case .failure(let error):
            guard error.status == 502 else { violated("parse refused with \(error.status)") }
        case .success(let head):
            guard head.fields.count <= ResponseHeadParser.maximumFields, (100...599).contains(head.status) else { violated("\(head.fields.count) fields, status \(head.status)") }
            let noBody = method == "HEAD" || head.status < 200 || head.status == 204 || head.status == 304
            let te = head.value(of: "Transfer-Encoding") != nil, cl = head.value(of: "Content-Length") != nil
            switch head.framing {
            case .none: guard noBody else { violated("no body for a \(head.status)") }
            case .chunked: guard !noBody, te, !cl else { violated("chunked without Transfer-Encoding alone") }
            case .length: guard !noBody, cl, !te else { violated("a length without Content-Length alone") }
            case .untilClose: guard !noBody, !cl else { violated("until close with a Content-Length") }
            }
        }
    }

    /// Fed whole and fed in pieces, the decoder gives the same data and the same end; it never
    /// gives more bytes than it took.
    static func chunked(_ input: ArraySlice<UInt8>) {
        let (size, body) = pieces(input)
        var whole = ChunkedDecoder()
        let wholeResult = whole.feed(body)
        var split = ChunkedDecoder()
        var data: [UInt8] = []
        var failed: ChunkedError?
        var start = body.startIndex
        while start < body.endIndex, failed == nil {
            let end = min(start + size, body.endIndex)
            switch split.feed(body[start..<end]) {
            case .success(let out):
                guard out.count <= end - start else { violated("\(out.count) bytes out of \(end - start) in") }
                data += out
            case .failure(let error): failed = error
            }
            start = end
        }
        switch wholeResult {
        case .success(let out):
            guard failed == nil, out == data, whole.isFinished == split.isFinished else { violated("pieces of \(size) decode differently") }
        case .failure(let error):
            guard failed == error else { violated("pieces of \(size) fail differently: \(String(describing: failed)) and \(error)") }
        }
    }

    /// A request that parses is rewritten into one that parses to the same model and stream,
    /// the same token limit or the cap, and, streaming, asks for usage.
    static func chatRequest(_ input: ArraySlice<UInt8>) {
        let cap: Int? = input.first.flatMap { $0 == 0 ? nil : Int($0) * 1000 }
        let body = input.dropFirst()
        if case .success(let value) = JSONScan.validate(body) {
            guard body.indices.contains(value.valueRange.lowerBound), value.valueRange.upperBound <= body.endIndex else { violated("a value outside the text") }
        }
        guard case .success(let request) = ChatRequest.parse(body) else { return }
        let rewritten = request.rewritten(body, maxTokensWhenAbsent: cap)
        guard case .success(let again) = ChatRequest.parse(rewritten[...]) else { violated("the rewritten body does not parse") }
        guard again.model == request.model, again.stream == request.stream else { violated("the rewrite changed the model or stream") }
        guard again.maxTokens == (request.maxTokens ?? cap) else { violated("max tokens \(String(describing: again.maxTokens)) after the rewrite") }
        if request.stream {
            guard case .success(let object) = JSONScan.object(rewritten[...]),
                  let options = object.members(named: "stream_options").first,
                  case .success(let inner) = JSONScan.object(rewritten[options.valueRange]),
                  let include = inner.members(named: "include_usage").first,
                  JSONScan.bool(rewritten[include.valueRange]) == true
            else { violated("a streaming request's rewrite does not ask for usage") }
        } else if request.maxTokens != nil || cap == nil {
            guard rewritten.elementsEqual(body) else { violated("a request with nothing to rewrite changed") }
        }
        // Rewriting twice changes nothing more.
        guard again.rewritten(rewritten[...], maxTokensWhenAbsent: cap) == rewritten else { violated("the rewrite is not idempotent") }
    }

    /// Fed whole and in pieces, the scanner dispatches the same events; each event is within
    /// the bound and reads as a response document or is refused with 502.
    static func eventStream(_ input: ArraySlice<UInt8>) {
        let (size, body) = pieces(input)
        let bound = 4096
        var whole = EventStreamScanner(maximumEventBytes: bound)
        let wholeResult = whole.feed(body)
        var split = EventStreamScanner(maximumEventBytes: bound)
        var events: [ServerSentEvent] = []
        var failed: EventStreamError?
        var start = body.startIndex
        while start < body.endIndex, failed == nil {
            let end = min(start + size, body.endIndex)
            switch split.feed(body[start..<end]) {
            case .success(let found): events += found
            case .failure(let error): failed = error
            }
            start = end
        }
        switch wholeResult {
        case .success(let found):
            guard failed == nil, found == events else { violated("pieces of \(size) scan differently") }
            guard (try? whole.finish().get()) != nil ? (try? split.finish().get()) != nil : (try? split.finish().get()) == nil else {
                violated("pieces of \(size) finish differently")
            }
        case .failure(let error):
            guard failed == error else { violated("pieces of \(size) fail differently") }
        }
        for event in events {
            guard event.data.count <= bound else { violated("an event of \(event.data.count) bytes") }
            if ChatResponseView.isDone(event.data[...]) { continue }
            switch ChatResponseView.read(event.data[...]) {
            case .failure(let error): guard error.status == 502 else { violated("a response refused with \(error.status)") }
            case .success(let view):
                if let usage = view.usage {
                    guard usage.prompt >= 0, usage.completion >= 0, usage.total >= 0 else { violated("negative usage") }
                }
                guard view.choiceCount >= 0, view.choiceCount > 0 || !view.hasContent else { violated("content without choices") }
            }
        }
    }
}
