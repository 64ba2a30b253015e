import Foundation
import Glibc
import Merkle
import POSIX

/// A signed head as it leaves its log, to be kept elsewhere: what `momin audit head` prints and
/// a witness file gets at every signing, one JSON object on one line (docs/audit.md, "Head
/// files"), keys in this order:
///
///     {"log_id":"<32 hex>","sequence":N,"tree_size":N,"root":"<64 hex>","time":N,
///      "signature":"<128 hex>","key_fingerprint":"<64 hex>"}
///
/// Integers are JSON numbers written in full (`time`, in nanoseconds, is above 2^53: a tool
/// that reads numbers as doubles changes it, and the signature no longer verifies).
public struct PublishedHead: Hashable, Sendable {
    public var head: SignedTreeHead
    /// SHA-256 of the signer's public key, 64 lowercase hex digits (`AuditPublicKey.fingerprint`).
    public var keyFingerprint: String

    public init(head: SignedTreeHead, keyFingerprint: String) {
        self.head = head
        self.keyFingerprint = keyFingerprint
    }

    /// One line, without its newline.
    public var json: String {
        #"{"log_id":"\#(head.logID.hex)","sequence":\#(head.sequence),"tree_size":\#(head.treeSize),"root":"\#(head.root.hex)","#
            + #""time":\#(head.time),"signature":"\#(Hex.encode(head.signature))","key_fingerprint":"\#(keyFingerprint)"}"#
    }

    /// Parses one head: exactly the seven keys, each of its type and length. Hex either case.
    public init(json: some Collection<UInt8>) throws(HeadFormatError) {
        do {
            self = try JSONDecoder().decode(Wire.self, from: Data(json)).head
        } catch let error as HeadFormatError {
            throw error
        } catch {
            throw HeadFormatError("not a JSON object")
        }
    }

    /// The longest line `load` takes; a head is about 420 bytes.
    public static let maximumLineLength = 4096

    /// The last line of the file at `path`: a head file that `momin audit head` wrote, or a
    /// witness file that a writer appends one head to at every signing. Reads at most
    /// `maximumLineLength` bytes from its end, however long the file.
    public static func load(path: String) throws(AuditError) -> PublishedHead {
        func refuse(_ problem: String) -> AuditError { .headFile(path: path, problem: problem) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw refuse("cannot open: \(describeErrno())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw refuse("cannot stat: \(describeErrno())") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw refuse("not a regular file") }
        // The line and its newline, and one byte more to see where the line starts.
        let tail = min(Int(info.st_size), maximumLineLength + 2)
        var bytes = [UInt8](repeating: 0, count: tail)
        var done = 0
        while done < tail {
            let got = bytes.withUnsafeMutableBytes { buffer in
                retryingEINTR { pread(fd, buffer.baseAddress! + done, tail - done, off_t(Int(info.st_size) - tail + done)) }
            }
            guard got > 0 else { throw refuse(got == 0 ? "it was cut short while being read" : "cannot read: \(describeErrno())") }
            done += got
        }
        var end = bytes.endIndex
        while end > bytes.startIndex, bytes[end - 1] == UInt8(ascii: "\n") || bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        guard end > bytes.startIndex else { throw refuse("it is empty: no head in it") }
        let start = bytes[..<end].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 }
        guard start != nil || Int(info.st_size) == tail else {
            throw refuse("its last line is over \(maximumLineLength) bytes: not a signed head")
        }
        do { return try PublishedHead(json: bytes[(start ?? 0)..<end]) } catch {
            throw refuse("its last line is not a signed head: \(error)")
        }
    }

    /// The JSON object, as JSONDecoder reads it.
    private struct Wire: Decodable {
        let head: PublishedHead

        struct Key: CodingKey {
            let stringValue: String
            init(stringValue: String) { self.stringValue = stringValue }
            var intValue: Int? { nil }
            init?(intValue: Int) { nil }
        }

        static let keys = ["log_id", "sequence", "tree_size", "root", "time", "signature", "key_fingerprint"]

        init(from decoder: any Decoder) throws {
            let object = try decoder.container(keyedBy: Key.self)
            let present = Set(object.allKeys.map(\.stringValue))
            if let unknown = present.subtracting(Self.keys).sorted().first { throw HeadFormatError("unknown key \"\(unknown)\"") }
            if let missing = Self.keys.first(where: { !present.contains($0) }) { throw HeadFormatError("no \"\(missing)\"") }
            func integer(_ name: String) throws -> UInt64 {
                do { return try object.decode(UInt64.self, forKey: Key(stringValue: name)) } catch DecodingError.typeMismatch, DecodingError.valueNotFound {
                    throw HeadFormatError("\(name) is not a number")
                } catch {
                    throw HeadFormatError("\(name) is not a whole number from 0 to 2^64-1")
                }
            }
            func hex(_ name: String, bytes: Int) throws -> [UInt8] {
                let text: String
                do { text = try object.decode(String.self, forKey: Key(stringValue: name)) } catch {
                    throw HeadFormatError("\(name) is not a string")
                }
                guard text.utf8.count == 2 * bytes, let decoded = Hex.decode(text.lowercased()) else {
                    throw HeadFormatError("\(name) is not \(2 * bytes) hex digits")
                }
                return decoded
            }
            let logID = LogID(bytes: try hex("log_id", bytes: LogID.byteCount))!
            let root = MerkleHash(bytes: try hex("root", bytes: MerkleHash.byteCount))!
            let head = SignedTreeHead(logID: logID, sequence: try integer("sequence"), treeSize: try integer("tree_size"), root: root,
                                      time: try integer("time"), signature: try hex("signature", bytes: 64))
            self.head = PublishedHead(head: head, keyFingerprint: Hex.encode(try hex("key_fingerprint", bytes: 32)))
        }
    }
}

/// A head line that is not a signed head: what is wrong with it.
public struct HeadFormatError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
