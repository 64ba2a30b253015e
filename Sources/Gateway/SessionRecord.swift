import Merkle

/// What one call came to, as replay compares it: the request (its Doors encoding), the
/// decision, and for an allowed call its status and the digest of its output.
public struct CallObservation: Equatable, Sendable {
    public var arguments: [UInt8]
    public var allowed: Bool
    public var rule: String
    /// Nil for a denied call (it never ran).
    public var status: Int64?
    public var byteCount: UInt64 = 0
    public var digest: MerkleHash?

    public init(arguments: [UInt8], allowed: Bool, rule: String, status: Int64? = nil, byteCount: UInt64 = 0,
                digest: MerkleHash? = nil) {
        self.arguments = arguments
        self.allowed = allowed
        self.rule = rule
        self.status = status
        self.byteCount = byteCount
        self.digest = digest
    }
}

/// A recorded session (`momin run --record`): the machine, the entropy seed its virtio-rng was
/// given, the inputs by digest, and every call in order. A line-oriented text file:
///
///     momin-record 1
///     seed <64 hex digits>
///     vcpus <n>
///     memory <MiB>
///     cmdline <the kernel command line, to the end of the line>
///     kernel <sha256> <path>
///     initrd <sha256> <path>            (absent without an initrd)
///     policy <sha256> <path>            (absent without a policy)
///     call <allow|deny> <rule> <status|-> <bytes> <sha256|-> <request as hex>
///
/// Paths come last on their lines, so they may hold spaces; they may not hold newlines.
public struct SessionRecord: Equatable, Sendable {
    public struct Input: Equatable, Sendable {
        public var path: String
        public var sha256: MerkleHash
        public init(path: String, sha256: MerkleHash) {
            self.path = path
            self.sha256 = sha256
        }
    }

    public var seed: [UInt8]
    public var vcpus: Int
    public var memoryMiB: UInt64
    public var commandLine: String
    public var kernel: Input
    public var initrd: Input?
    public var policy: Input?
    public var calls: [CallObservation]

    public init(seed: [UInt8], vcpus: Int, memoryMiB: UInt64, commandLine: String, kernel: Input, initrd: Input?,
                policy: Input?, calls: [CallObservation] = []) {
        self.seed = seed
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.commandLine = commandLine
        self.kernel = kernel
        self.initrd = initrd
        self.policy = policy
        self.calls = calls
    }

    public static let header = "momin-record 1"

    public var text: String {
        var lines = [Self.header, "seed \(Hex.encode(seed))", "vcpus \(vcpus)", "memory \(memoryMiB)", "cmdline \(commandLine)",
                     "kernel \(kernel.sha256.hex) \(kernel.path)"]
        if let initrd { lines.append("initrd \(initrd.sha256.hex) \(initrd.path)") }
        if let policy { lines.append("policy \(policy.sha256.hex) \(policy.path)") }
        for call in calls {
            lines.append("call \(call.allowed ? "allow" : "deny") \(call.rule) \(call.status.map(String.init) ?? "-") "
                         + "\(call.byteCount) \(call.digest?.hex ?? "-") \(Hex.encode(call.arguments))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Why a record file could not be read: the line and what was wrong with it.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    public static func parse(_ text: String) throws(ParseError) -> SessionRecord {
        var seed: [UInt8]?, vcpus: Int?, memory: UInt64?, cmdline: String?
        var kernel: Input?, initrd: Input?, policy: Input?
        var calls: [CallObservation] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first.map(String.init) == header else { throw ParseError(line: 1, message: "not a MominAI session record (no '\(header)')") }
        for (offset, raw) in lines.enumerated().dropFirst() where !raw.isEmpty {
            let number = offset + 1
            func fail(_ message: String) -> ParseError { ParseError(line: number, message: message) }
            let line = String(raw)
            let (word, rest) = line.firstIndex(of: " ").map { (String(line[..<$0]), String(line[line.index(after: $0)...])) }
                ?? (line, "")
            func input() throws(ParseError) -> Input {
                guard let space = rest.firstIndex(of: " "), let hash = MerkleHash(hex: rest[..<space]) else {
                    throw fail("\(word) needs a SHA-256 and a path")
                }
                let path = String(rest[rest.index(after: space)...])
                guard path.hasPrefix("/") else { throw fail("\(word) path must be absolute") }
                return Input(path: path, sha256: hash)
            }
            switch word {
            case "seed":
                guard rest.utf8.count == 64, let bytes = Hex.decode(rest) else { throw fail("seed must be 64 hex digits") }
                seed = bytes
            case "vcpus":
                guard let n = Int(rest), n >= 1 else { throw fail("vcpus must be a positive number") }
                vcpus = n
            case "memory":
                guard let n = UInt64(rest), n >= 1 else { throw fail("memory must be a positive number of MiB") }
                memory = n
            case "cmdline": cmdline = rest
            case "kernel": kernel = try input()
            case "initrd": initrd = try input()
            case "policy": policy = try input()
            case "call":
                let fields = rest.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                guard fields.count == 6 else { throw fail("call needs 6 fields, not \(fields.count)") }
                guard fields[0] == "allow" || fields[0] == "deny" else { throw fail("call verdict must be allow or deny") }
                let status: Int64? = fields[2] == "-" ? nil : Int64(fields[2])
                guard fields[2] == "-" || status != nil, let bytes = UInt64(fields[3]) else { throw fail("call status or size is not a number") }
                let digest: MerkleHash? = fields[4] == "-" ? nil : MerkleHash(hex: fields[4])
                guard fields[4] == "-" || digest != nil else { throw fail("call digest is not 64 hex digits") }
                guard let arguments = Hex.decode(fields[5]), !arguments.isEmpty else { throw fail("call request is not hex") }
                calls.append(CallObservation(arguments: arguments, allowed: fields[0] == "allow", rule: fields[1],
                                             status: status, byteCount: bytes, digest: digest))
            default:
                throw fail("unknown line '\(word)'")
            }
        }
        let end = lines.count
        guard let seed else { throw ParseError(line: end, message: "no seed line") }
        guard let vcpus, let memory, let cmdline, let kernel else {
            throw ParseError(line: end, message: "the machine is incomplete (vcpus, memory, cmdline and kernel lines are required)")
        }
        return SessionRecord(seed: seed, vcpus: vcpus, memoryMiB: memory, commandLine: cmdline, kernel: kernel, initrd: initrd,
                             policy: policy, calls: calls)
    }
}
