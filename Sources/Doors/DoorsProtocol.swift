/// Fixed numbers of the Doors wire protocol. The layout they describe is in docs/doors-protocol.md;
/// changing any of them changes the wire format and needs a new protocol version.
public enum DoorsProtocol {
    /// The first two bytes of every frame: ASCII "MD" (Momin Doors), read as a little-endian UInt16.
    public static let magic: UInt16 = 0x444D
    /// Every frame starts with this many header bytes.
    public static let headerSize = 16
    /// The version a Hello frame always carries in its header, whatever versions its payload
    /// offers, so that a peer of any version can read it.
    public static let handshakeVersion: UInt8 = 1
    /// The versions this build speaks, lowest first.
    /// Version 2 walks every path the host sends without following symlinks and adds Exec's
    /// `program`; version 1, which followed them, is no longer spoken (a guest that did would
    /// reopen the symlink hole version 2 closes).
    public static let supportedVersions: [UInt8] = [2]
    /// The highest version this build speaks.
    public static let currentVersion: UInt8 = 2
    /// The largest payload any v1 peer sends or accepts (256 KiB).
    public static let maxPayload = 262_144
    /// The smallest receive limit a Hello may advertise (64 KiB); every request with a path fits.
    public static let minimumMaxPayload = 65_536
}

/// Bounds on the contents of a payload. A decoder checks each before it allocates for the field,
/// and an encoder refuses to write a frame that breaks one.
public enum DoorsLimits {
    /// Bytes in a path (Linux PATH_MAX).
    public static let maxPathLength = 4096
    /// Bytes in a directory entry name (Linux NAME_MAX).
    public static let maxNameLength = 255
    /// Entries in an exec request's argv.
    public static let maxArguments = 4096
    /// Entries in an exec request's environment.
    public static let maxEnvironment = 4096
    /// Bytes in one argv or environment string (Linux MAX_ARG_STRLEN).
    public static let maxArgumentLength = 131_072
    /// Entries in one ListEntries batch.
    public static let maxListBatch = 4096
    /// Bytes in an Error frame's message.
    public static let maxMessageLength = 4096
    /// Bytes in a Hello's software string.
    public static let maxSoftwareLength = 256
    /// Versions offered in one Hello.
    public static let maxVersions = 16
    /// The highest signal number (Linux SIGRTMAX).
    public static let maxSignal: UInt8 = 64
    /// Permission bits (rwx for user, group, other, plus setuid, setgid, sticky).
    public static let maxPermissions: UInt32 = 0o7777
}

/// The type byte of a frame header. Numbers are grouped: 0x0_ connection, 0x1_ exec, 0x2_ files.
public enum FrameType: UInt8, CaseIterable, Hashable, Sendable {
    case hello = 0x01
    case error = 0x02
    case ok = 0x03
    case ping = 0x04
    case pong = 0x05
    case cancel = 0x06

    case exec = 0x10
    case started = 0x11
    case stdinData = 0x12
    case stdinEnd = 0x13
    case stdoutData = 0x14
    case stderrData = 0x15
    case exit = 0x16
    case kill = 0x17

    case writeFile = 0x20
    case readFile = 0x21
    case fileData = 0x22
    case fileEnd = 0x23
    case stat = 0x24
    case statResult = 0x25
    case list = 0x26
    case listEntries = 0x27
    case listEnd = 0x28
    case mkdir = 0x29
    case remove = 0x2A
    case resolve = 0x2B
    case resolved = 0x2C
}

/// The 16-byte frame header, all fields little-endian:
///
///     0  magic (UInt16)   2  version (UInt8)   3  type (UInt8)
///     4  flags (UInt32, zero in v1)
///     8  request id (UInt32)
///    12  payload length (UInt32)
struct FrameHeader: Hashable, Sendable {
    var version: UInt8
    var type: FrameType
    var flags: UInt32
    var requestID: UInt32
    var payloadLength: UInt32

    init(version: UInt8, type: FrameType, flags: UInt32 = 0, requestID: UInt32, payloadLength: UInt32) {
        self.version = version
        self.type = type
        self.flags = flags
        self.requestID = requestID
        self.payloadLength = payloadLength
    }

    /// Whether a frame's header says `DoorsProtocol.handshakeVersion` whatever the session's:
    /// a Hello, and an Error for the whole connection (request id 0).
    static func carriesHandshakeVersion(type: UInt8, requestID: UInt32) -> Bool {
        type == FrameType.hello.rawValue || (type == FrameType.error.rawValue && UInt32(littleEndian: requestID) == 0)
    }

    /// Reads and checks a header from the first `DoorsProtocol.headerSize` bytes of `bytes`.
    /// Every error it throws is fatal to the connection: the stream can no longer be split into frames.
    static func parse(
        _ bytes: UnsafeRawBufferPointer,
        acceptedVersions: [UInt8],
        maxPayload: Int
    ) throws(DoorsError) -> FrameHeader {
        precondition(bytes.count >= DoorsProtocol.headerSize, "a header needs \(DoorsProtocol.headerSize) bytes")
        let magic = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
        guard magic == DoorsProtocol.magic else { throw .badMagic(magic) }
        let version = bytes[2]
        // A Hello's header, and a connection-level Error's (request id 0: the refusal of a
        // handshake), always say the handshake version: frozen, so that any two builds can read
        // each other's Hello and refusal. Every other frame says a version this side speaks.
        let handshaking = FrameHeader.carriesHandshakeVersion(type: bytes[3],
                                                              requestID: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let accepted = handshaking ? [DoorsProtocol.handshakeVersion] : acceptedVersions
        guard accepted.contains(version) else { throw .unsupportedVersion(version) }
        guard let type = FrameType(rawValue: bytes[3]) else { throw .unknownFrameType(bytes[3]) }
        let flags = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard flags == 0 else { throw .unknownFlags(flags) }
        let requestID = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard Int(length) <= maxPayload else { throw .payloadTooLarge(length: Int(length), limit: maxPayload) }
        return FrameHeader(version: version, type: type, flags: flags, requestID: requestID, payloadLength: length)
    }

    /// Appends the header's 16 bytes to `buffer`.
    func write(into buffer: inout [UInt8]) {
        buffer.appendLittleEndian(DoorsProtocol.magic)
        buffer.append(version)
        buffer.append(type.rawValue)
        buffer.appendLittleEndian(flags)
        buffer.appendLittleEndian(requestID)
        buffer.appendLittleEndian(payloadLength)
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
