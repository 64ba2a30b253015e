import Crypto
import HTTPWire
import Merkle

/// The size and SHA-256 of a response's body as it streams past the proxy, for a `.deb` from an
/// apt mirror: the digest the archive's Packages index gives for the file, not the digest of the
/// whole stream with its head. The head is read with the response parser (bounded by it), and
/// the body delimited by its framing (RFC 9112 §6.3), chunks decoded (§7.1).
struct ResponseBodyDigest {
    let requestMethod: String
    private var head: [UInt8] = []
    private var framing: BodyFraming?
    private var left: UInt64 = 0
    private var decoder = ChunkedDecoder()
    private var hasher = SHA256()
    private(set) var size: UInt64 = 0
    private(set) var status = 0
    private(set) var complete = false
    /// Why the body cannot be told apart: a bad head, a bad chunk.
    private(set) var failure: String?

    init(requestMethod: String) { self.requestMethod = requestMethod }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil, !bytes.isEmpty else { return }
        guard framing != nil else {
            head += bytes
            switch ResponseHeadParser.headLength(head) {
            case .failure(let error): failure = "\(error)"
            case .success(nil): break
            case .success(let end?):
                switch ResponseHeadParser.parse(head[0..<end], requestMethod: requestMethod) {
                case .failure(let error): failure = "\(error)"
                case .success(let parsed):
                    status = parsed.status
                    framing = parsed.framing
                    if case .length(let length) = parsed.framing { left = length }
                    complete = parsed.framing == .none || parsed.framing == .length(0)
                    let rest = Array(head[end...])
                    head = []
                    rest.withUnsafeBytes { body($0) }
                }
            }
            return
        }
        body(bytes)
    }

    private mutating func body(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty, !complete else { return }
        switch framing {
        case .length?:
            let taken = UnsafeRawBufferPointer(rebasing: bytes.prefix(Int(clamping: left)))
            add(taken)
            left -= UInt64(taken.count)
            complete = left == 0
        case .chunked?:
            switch decoder.feed(Array(bytes)[...]) {
            case .failure(let error): failure = "\(error)"
            case .success(let decoded):
                decoded.withUnsafeBytes { add($0) }
                complete = decoder.isFinished
            }
        case .untilClose?:
            add(bytes)
        case .none?, nil:
            break
        }
    }

    private mutating func add(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
        size += UInt64(bytes.count)
    }

    /// The body's size and digest when a whole 200 response went by (one ended by the close
    /// counts only when the exchange ended cleanly); nil otherwise.
    func result(endedCleanly: Bool) -> (size: UInt64, sha256: MerkleHash)? {
        guard failure == nil, status == 200, complete || (framing == .untilClose && endedCleanly) else { return nil }
        return (size, MerkleHash(bytes: Array(hasher.finalize()))!)
    }
}
