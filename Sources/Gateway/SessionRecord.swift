import Merkle

/// What one call came to, as replay compares it: the tool and the request as the log keeps
/// them, the decision, for an allowed call its status and the digest of its output, and for a
/// call that went outside the host (a model call, a plain HTTP request) the exchange kept for
/// replay.
public struct CallObservation: Equatable, Sendable {
    /// The log's tool name: `exec` for the calls the run itself made, the hands call's otherwise.
    public var tool: String
    public var arguments: [UInt8]
    public var allowed: Bool
    public var rule: String
    /// Nil for a denied call (it never ran).
    public var status: Int64?
    public var byteCount: UInt64 = 0
    public var digest: MerkleHash?
    /// What a recorded session kept of the call's exchange with the world (docs/replay.md); nil
    /// for calls that stay on the host, and for one too large to keep.
    public var exchange: Exchange?

    /// The bytes a call sent out and got back, by their SHA-256 in the record's exchange store.
    public struct Exchange: Equatable, Sendable {
        public var request: MerkleHash
        public var response: MerkleHash
        public init(request: MerkleHash, response: MerkleHash) {
            self.request = request
            self.response = response
        }
    }

    public init(tool: String = "exec", arguments: [UInt8], allowed: Bool, rule: String, status: Int64? = nil, byteCount: UInt64 = 0,
                digest: MerkleHash? = nil, exchange: Exchange? = nil) {
        self.tool = tool
        self.arguments = arguments
        self.allowed = allowed
        self.rule = rule
        self.status = status
        self.byteCount = byteCount
        self.digest = digest
        self.exchange = exchange
    }
}

/// A recorded session (`momin run --record`): the machine, the entropy seed its virtio-rng was
/// given, the inputs by digest, and every call in order. A line-oriented text file:
///
///     momin-record 2
///     seed <64 hex digits>
///     vcpus <n>
///     memory <MiB>
///     cmdline <the kernel command line, to the end of the line>
///     kernel <sha256> <path>
///     initrd <sha256> <path>            (absent without an initrd)
///     policy <sha256> <path>            (absent without a policy)
///     image <sha256> <path>             (the root image, --image; absent without one)
///     overlay <size>                    (--overlay; absent without one)
///     disk <sha256> <path[,name=N][,bps=N][,iops=N]>   (each read-only --disk, in order)
///     buckets                           (the run had a bucket store: a replay gets an empty one)
///     bucket-time <ns>                  (each time the store's clock was read, in order)
///     call <tool> <allow|deny> <rule> <status|-> <bytes> <sha256|-> <request as hex> <exchange|->
///
/// An exchange is `<request sha256>:<response sha256>`, both in the exchange store beside the
/// record (docs/replay.md). Paths come last on their lines, so they may hold spaces; they may
/// not hold newlines. Version 1 records (no tool, no exchange, exec calls only) are read too.
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
    public var image: Input?
    public var overlay: String?
    /// Read-only disks: `path` is the whole `--disk` value, options included.
    public var disks: [Input] = []
    public var buckets = false
    /// What the bucket store's clock said, each time it was read: a replay's store is given the
    /// same times, so the agent sees the same entry times.
    public var bucketTimes: [UInt64] = []
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

    public static let header = "momin-record 2"
    static let headerVersion1 = "momin-record 1"

    public var text: String {
        var lines = [Self.header, "seed \(Hex.encode(seed))", "vcpus \(vcpus)", "memory \(memoryMiB)", "cmdline \(commandLine)",
                     "kernel \(kernel.sha256.hex) \(kernel.path)"]
        if let initrd { lines.append("initrd \(initrd.sha256.hex) \(initrd.path)") }
        if let policy { lines.append("policy \(policy.sha256.hex) \(policy.path)") }
        if let image { lines.append("image \(image.sha256.hex) \(image.path)") }
        if let overlay { lines.append("overlay \(overlay)") }
        for disk in disks { lines.append("disk \(disk.sha256.hex) \(disk.path)") }
        if buckets { lines.append("buckets") }
        for time in bucketTimes { lines.append("bucket-time \(time)") }
        for call in calls {
            let exchange = call.exchange.map { "\($0.request.hex):\($0.response.hex)" } ?? "-"
            lines.append("call \(call.tool) \(call.allowed ? "allow" : "deny") \(Self.escapeRule(call.rule)) \(call.status.map(String.init) ?? "-") "
                         + "\(call.byteCount) \(call.digest?.hex ?? "-") \(Hex.encode(call.arguments)) \(exchange)")
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
        var kernel: Input?, initrd: Input?, policy: Input?, image: Input?, overlay: String?
        var disks: [Input] = []
        var buckets = false
        var bucketTimes: [UInt64] = []
        var calls: [CallObservation] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let first = lines.first.map(String.init)
        guard first == header || first == headerVersion1 else {
            throw ParseError(line: 1, message: "not a MominAI session record (no '\(header)')")
        }
        let version1 = first == headerVersion1
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
            func once<T>(_ value: T?) throws(ParseError) {
                guard value == nil else { throw fail("a second \(word) line") }
            }
            switch word {
            case "seed":
                try once(seed)
                guard rest.utf8.count == 64, let bytes = Hex.decode(rest) else { throw fail("seed must be 64 hex digits") }
                seed = bytes
            case "vcpus":
                try once(vcpus)
                guard let n = Int(rest), n >= 1 else { throw fail("vcpus must be a positive number") }
                vcpus = n
            case "memory":
                try once(memory)
                guard let n = UInt64(rest), n >= 1 else { throw fail("memory must be a positive number of MiB") }
                memory = n
            case "cmdline":
                try once(cmdline)
                cmdline = rest
            case "kernel":
                try once(kernel)
                kernel = try input()
            case "initrd":
                try once(initrd)
                initrd = try input()
            case "policy":
                try once(policy)
                policy = try input()
            case "image" where !version1:
                try once(image)
                image = try input()
            case "overlay" where !version1:
                try once(overlay)
                guard !rest.isEmpty, !rest.contains(" ") else { throw fail("overlay needs one size") }
                overlay = rest
            case "disk" where !version1:
                guard disks.count < 64 else { throw fail("more than 64 disks") }
                disks.append(try input())
            case "buckets" where !version1:
                guard rest.isEmpty else { throw fail("buckets takes nothing after it") }
                buckets = true
            case "bucket-time" where !version1:
                guard let time = UInt64(rest) else { throw fail("bucket-time must be a number of nanoseconds") }
                bucketTimes.append(time)
            case "call":
                calls.append(try call(rest, version1: version1, fail: fail))
            default:
                throw fail("unknown line '\(word)'")
            }
        }
        let end = lines.count
        guard let seed else { throw ParseError(line: end, message: "no seed line") }
        guard let vcpus, let memory, let cmdline, let kernel else {
            throw ParseError(line: end, message: "the machine is incomplete (vcpus, memory, cmdline and kernel lines are required)")
        }
        var record = SessionRecord(seed: seed, vcpus: vcpus, memoryMiB: memory, commandLine: cmdline, kernel: kernel, initrd: initrd,
                                   policy: policy, calls: calls)
        record.image = image
        record.overlay = overlay
        record.disks = disks
        record.buckets = buckets
        record.bucketTimes = bucketTimes
        return record
    }

    /// One `call` line's fields (after the word): 8 of them, or 6 in a version 1 record.
    private static func call(_ rest: String, version1: Bool, fail: (String) -> ParseError) throws(ParseError) -> CallObservation {
        var fields = rest.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let expected = version1 ? 6 : 8
        guard fields.count == expected else { throw fail("call needs \(expected) fields, not \(fields.count)") }
        let tool = version1 ? "exec" : fields.removeFirst()
        guard !tool.isEmpty, tool.utf8.count <= 64 else { throw fail("call tool must be a name") }
        guard fields[0] == "allow" || fields[0] == "deny" else { throw fail("call verdict must be allow or deny") }
        let status: Int64? = fields[2] == "-" ? nil : Int64(fields[2])
        guard fields[2] == "-" || status != nil, let bytes = UInt64(fields[3]) else { throw fail("call status or size is not a number") }
        let digest: MerkleHash? = fields[4] == "-" ? nil : MerkleHash(hex: fields[4])
        guard fields[4] == "-" || digest != nil else { throw fail("call digest is not 64 hex digits") }
        guard let arguments = Hex.decode(fields[5]), !arguments.isEmpty else { throw fail("call request is not hex") }
        var exchange: CallObservation.Exchange?
        if !version1, fields[6] != "-" {
            let parts = fields[6].split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let request = MerkleHash(hex: parts[0]), let response = MerkleHash(hex: parts[1]) else {
                throw fail("call exchange must be two SHA-256s joined by ':'")
            }
            exchange = CallObservation.Exchange(request: request, response: response)
        }
        guard let rule = unescapeRule(fields[1]) else { throw fail("call rule has a bad %-escape") }
        return CallObservation(tool: tool, arguments: arguments, allowed: fields[0] == "allow", rule: rule, status: status,
                               byteCount: bytes, digest: digest, exchange: exchange)
    }

    /// A rule id on a call line: `%` and space written as `%25` and `%20` (a peer's refusal names
    /// "peer: rule").
    static func escapeRule(_ rule: String) -> String {
        var out = ""
        for c in rule {
            switch c {
            case "%": out += "%25"
            case " ": out += "%20"
            default: out.append(c)
            }
        }
        return out
    }

    static func unescapeRule(_ text: String) -> String? {
        var out = ""
        var rest = Substring(text)
        while let c = rest.first {
            if c == "%" {
                switch rest.prefix(3) {
                case "%25": out += "%"
                case "%20": out += " "
                default: return nil
                }
                rest = rest.dropFirst(3)
            } else {
                out.append(c)
                rest = rest.dropFirst()
            }
        }
        return out
    }
}
