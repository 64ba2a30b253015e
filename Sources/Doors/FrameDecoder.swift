/// Splits a byte stream into frames. Feed it whatever the transport delivered, in pieces of any
/// size, then call `next()` until it returns nil.
///
/// It holds at most `bufferLimit` bytes (one largest frame and its header). Read at most
/// `freeCapacity` bytes from the transport before each `append`, and drain with `next()` after
/// it; then the limit is never reached unexpectedly, because a full buffer always holds a whole
/// frame. Bytes appended past the limit are dropped and `next()` throws `bufferOverflow` once the
/// whole frames before them are out.
///
///     var decoder = FrameDecoder()
///     while running {
///         let chunk = read(fd, upTo: decoder.freeCapacity)
///         decoder.append(chunk)
///         while let frame = try decoder.next() { handle(frame) }
///     }
///
/// A header is checked as soon as its 16 bytes are in, without waiting for the payload, and a
/// bad one (magic, version, type, flags, length) is fatal: `next()` throws the same error from then
/// on. A whole frame whose payload is bad throws `invalidFrame`; that frame is skipped and the
/// next call goes on with the following one.
public struct FrameDecoder: Sendable {
    /// The largest payload accepted; bigger ones are refused from the header alone.
    public private(set) var maxPayload: Int
    /// The header versions accepted: all this build speaks until `apply(_:)` pins the agreed one.
    public private(set) var acceptedVersions: [UInt8]

    private var storage: [UInt8] = []
    /// Where the unread bytes of `storage` start.
    private var head = 0
    private var overflowed = false
    private var failure: DoorsError?

    public init(maxPayload: Int = DoorsProtocol.maxPayload, acceptedVersions: [UInt8] = DoorsProtocol.supportedVersions) {
        precondition(maxPayload >= 0, "maxPayload must not be negative")
        self.maxPayload = maxPayload
        self.acceptedVersions = acceptedVersions
    }

    /// After the handshake: accept only the agreed version, and no payload over the agreed size.
    public mutating func apply(_ session: Session) {
        acceptedVersions = [session.version]
        maxPayload = min(maxPayload, session.maxPayload)
    }

    /// The most bytes this decoder holds.
    public var bufferLimit: Int { DoorsProtocol.headerSize + maxPayload }
    /// Bytes appended and not yet returned as frames.
    public var bufferedByteCount: Int { storage.count - head }
    /// How many bytes the next `append` may bring without overflowing.
    public var freeCapacity: Int {
        failure == nil && !overflowed ? max(0, bufferLimit - bufferedByteCount) : 0
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        guard failure == nil, !overflowed else { return }
        if head > 0 {
            storage.removeSubrange(0..<head)
            head = 0
        }
        let room = max(0, bufferLimit - storage.count)
        let copied: Void? = bytes.withContiguousStorageIfAvailable { chunk in
            if chunk.count > room {
                storage.append(contentsOf: UnsafeBufferPointer(rebasing: chunk.prefix(room)))
                overflowed = true
            } else {
                storage.append(contentsOf: chunk)
            }
        }
        if copied == nil {
            for byte in bytes {
                guard storage.count < bufferLimit else {
                    overflowed = true
                    break
                }
                storage.append(byte)
            }
        }
    }

    /// The next whole frame, or nil when more bytes are needed.
    public mutating func next() throws(DoorsError) -> Frame? {
        if let failure { throw failure }
        guard bufferedByteCount >= DoorsProtocol.headerSize else { return try needMore() }
        let parsed = storage.withUnsafeBytes { [head, acceptedVersions, maxPayload] all in
            Result { () throws(DoorsError) in
                try FrameHeader.parse(
                    UnsafeRawBufferPointer(rebasing: all[head...]),
                    acceptedVersions: acceptedVersions,
                    maxPayload: maxPayload)
            }
        }
        let header: FrameHeader
        switch parsed {
        case .success(let parsedHeader):
            header = parsedHeader
        case .failure(let error):
            failure = error
            throw error
        }
        let total = DoorsProtocol.headerSize + Int(header.payloadLength)
        guard bufferedByteCount >= total else { return try needMore() }
        let payload = Array(storage[(head + DoorsProtocol.headerSize)..<(head + total)])
        head += total
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        }
        do throws(PayloadProblem) {
            try Check.requestID(header.requestID, for: header.type)
            let message = try DoorsMessage.decode(type: header.type, payload: payload)
            return Frame(requestID: header.requestID, message)
        } catch {
            throw .invalidFrame(header.type, requestID: header.requestID, error)
        }
    }

    private mutating func needMore() throws(DoorsError) -> Frame? {
        guard overflowed else { return nil }
        let error = DoorsError.bufferOverflow(limit: bufferLimit)
        failure = error
        storage = []
        head = 0
        throw error
    }
}
