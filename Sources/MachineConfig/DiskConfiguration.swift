/// A limit of so many units per second, with a burst: the most that may go at once after a
/// quiet spell (a token bucket's size). The burst defaults to one second's worth.
public struct RateLimit: Equatable, Sendable {
    public var perSecond: UInt64
    public var burst: UInt64

    public init(perSecond: UInt64, burst: UInt64? = nil) {
        self.perSecond = perSecond
        self.burst = burst ?? perSecond
    }
}

/// One virtio-blk disk. `MachineConfiguration.disks` is in the guest's order: the first is
/// /dev/vda, the next /dev/vdb, and so on.
///
/// On momin-vmm's command line (`--disk`), one argument:
///
///     PATH[,ro|,rw][,serial=S][,bps=N][,iops=N][,bps-burst=N][,iops-burst=N]
///
/// PATH may be `fd=N`: an inherited descriptor, open in the disk's mode (what momin passes).
/// Read-only unless `rw`. `serial` is what the guest reads with GET_ID (/sys/block/vdX/serial):
/// 1 to 20 printable ASCII characters. `bps` limits bytes read and written per second, `iops`
/// requests per second; each burst defaults to one second's worth. A comma inside PATH or S is
/// written twice (`,,`).
public struct DiskConfiguration: Equatable, Sendable {
    /// VIRTIO_BLK_ID_BYTES (virtio 1.2 §5.2.6).
    public static let maximumSerialBytes = 20

    /// The file momin-vmm opens; for a disk passed as a descriptor, `fd=N`.
    public var path: String
    /// A descriptor momin-vmm inherits already open (momin passes each disk so, opened in its
    /// mode after the policy judged it): nothing is opened by path, and the jail binds no file.
    public var descriptor: Int32?
    public var readOnly: Bool
    public var serial: String?
    public var bytesPerSecond: RateLimit?
    public var operationsPerSecond: RateLimit?

    public init(path: String, readOnly: Bool = true, serial: String? = nil, bytesPerSecond: RateLimit? = nil,
                operationsPerSecond: RateLimit? = nil) {
        self.path = path
        self.readOnly = readOnly
        self.serial = serial
        self.bytesPerSecond = bytesPerSecond
        self.operationsPerSecond = operationsPerSecond
    }

    /// A disk on an inherited descriptor (`fd=N` on the command line).
    public init(descriptor: Int32, readOnly: Bool = true, serial: String? = nil, bytesPerSecond: RateLimit? = nil,
                operationsPerSecond: RateLimit? = nil) {
        self.init(path: "fd=\(descriptor)", readOnly: readOnly, serial: serial, bytesPerSecond: bytesPerSecond,
                  operationsPerSecond: operationsPerSecond)
        self.descriptor = descriptor
    }

    /// `fd=N` in place of PATH: a descriptor from 3 to 1023 (a file named so is written `./fd=N`).
    static func descriptor(in path: String) -> Int32? {
        let digits = path.utf8.dropFirst(3)
        guard path.hasPrefix("fd="), !digits.isEmpty, digits.count <= 4, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let n = Int32(path.dropFirst(3)), (3...1023).contains(n) else { return nil }
        return n
    }

    /// What was wrong with one `--disk` argument.
    public enum SpecError: Error, Equatable, Sendable, CustomStringConvertible {
        case emptyPath
        /// An empty part between commas, or a key this grammar does not have.
        case unknownKey(String)
        case repeatedKey(String)
        case conflictingModes
        case badNumber(key: String, value: String)
        case serialTooLong(String, bytes: Int)
        case badSerial(String)
        case burstWithoutRate(String)

        public var description: String {
            switch self {
            case .emptyPath: "no path before the first comma"
            case .unknownKey(let k): "unknown key '\(k)' (expected ro, rw, serial=, bps=, iops=, bps-burst=, iops-burst=)"
            case .repeatedKey(let k): "\(k) is given twice"
            case .conflictingModes: "both ro and rw"
            case .badNumber(let k, let v): "\(k)=\(v) is not a whole number from 1 to \(UInt64.max)"
            case .serialTooLong(let s, let n): "serial '\(s)' is \(n) bytes; at most \(DiskConfiguration.maximumSerialBytes)"
            case .badSerial(let s): "serial '\(s)' must be 1 to 20 printable ASCII characters"
            case .burstWithoutRate(let k): "\(k) needs \(k.replacingBurst) as well"
            }
        }
    }

    /// Reads one `--disk` argument.
    public static func parse(_ spec: String) throws(SpecError) -> DiskConfiguration {
        let parts = split(spec)
        guard let path = parts.first, !path.isEmpty else { throw .emptyPath }
        var disk = descriptor(in: path).map { DiskConfiguration(descriptor: $0) } ?? DiskConfiguration(path: path)
        var seen = Set<String>()
        var mode: String?
        var bursts: [String: UInt64] = [:]
        for part in parts.dropFirst() {
            let key = part.firstIndex(of: "=").map { String(part[..<$0]) } ?? part
            let value = part.firstIndex(of: "=").map { String(part[part.index(after: $0)...]) }
            if value == nil, key == "ro" || key == "rw" {
                if let mode { throw mode == key ? .repeatedKey(key) : .conflictingModes }
                mode = key
            } else if !key.isEmpty, !seen.insert(key).inserted {
                throw .repeatedKey(key)
            }
            switch (key, value) {
            case ("ro", nil): disk.readOnly = true
            case ("rw", nil): disk.readOnly = false
            case ("serial", let text?):
                guard text.utf8.count <= maximumSerialBytes else { throw .serialTooLong(text, bytes: text.utf8.count) }
                guard !text.isEmpty, text.utf8.allSatisfy({ (0x20...0x7e).contains($0) }) else { throw .badSerial(text) }
                disk.serial = text
            case ("bps", let text?): disk.bytesPerSecond = RateLimit(perSecond: try number(key, text))
            case ("iops", let text?): disk.operationsPerSecond = RateLimit(perSecond: try number(key, text))
            case ("bps-burst", let text?), ("iops-burst", let text?): bursts[key] = try number(key, text)
            default: throw .unknownKey(part)
            }
        }
        for (key, burst) in bursts {
            if key == "bps-burst" {
                guard disk.bytesPerSecond != nil else { throw .burstWithoutRate(key) }
                disk.bytesPerSecond?.burst = burst
            } else {
                guard disk.operationsPerSecond != nil else { throw .burstWithoutRate(key) }
                disk.operationsPerSecond?.burst = burst
            }
        }
        return disk
    }

    /// The argument `parse` reads back as this disk (mode always spelled out; bursts only when
    /// they differ from one second's worth).
    public var spec: String {
        var text = (descriptor.map { "fd=\($0)" } ?? Self.escape(path)) + (readOnly ? ",ro" : ",rw")
        if let serial { text += ",serial=" + Self.escape(serial) }
        if let bytesPerSecond {
            text += ",bps=\(bytesPerSecond.perSecond)"
            if bytesPerSecond.burst != bytesPerSecond.perSecond { text += ",bps-burst=\(bytesPerSecond.burst)" }
        }
        if let operationsPerSecond {
            text += ",iops=\(operationsPerSecond.perSecond)"
            if operationsPerSecond.burst != operationsPerSecond.perSecond { text += ",iops-burst=\(operationsPerSecond.burst)" }
        }
        return text
    }

    /// The parts between single commas; `,,` is a comma inside a part.
    static func split(_ spec: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var characters = spec.makeIterator()
        var pending = characters.next()
        while let c = pending {
            pending = characters.next()
            guard c == "," else { current.append(c); continue }
            if pending == "," {
                current.append(",")
                pending = characters.next()
            } else {
                parts.append(current)
                current = ""
            }
        }
        parts.append(current)
        return parts
    }

    static func escape(_ text: String) -> String { text.split(separator: ",", omittingEmptySubsequences: false).joined(separator: ",,") }

    private static func number(_ key: String, _ text: String) throws(SpecError) -> UInt64 {
        guard let n = UInt64(text), n > 0 else { throw .badNumber(key: key, value: text) }
        return n
    }
}

extension String {
    /// "bps-burst" → "bps=".
    fileprivate var replacingBurst: String { (split(separator: "-").first.map(String.init) ?? self) + "=" }
}
