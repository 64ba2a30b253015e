import Doors

/// Whole Doors requests over a `DoorsLink`, one at a time, each on the id the caller picks.
/// Data goes out in frames of `chunk` bytes while the answers are read (`DoorsLink.pump`).
extension DoorsLink {
    static let chunk = 64 << 10

    /// The frames of a request that streams `data` after it: WriteFile + FileData... + FileEnd,
    /// or Exec + StdinData... + StdinEnd. `upTo` stops after that many data bytes, without the
    /// end frame: the start of a transfer, to be dropped mid-way.
    func streamingRequest(_ request: DoorsMessage, id: UInt32, data: [UInt8], upTo limit: Int? = nil) throws(ProbeError) -> [UInt8] {
        let isExec = if case .exec = request { true } else { false }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(data.count + data.count / Self.chunk * 16 + 256)
        try encode(Frame(requestID: id, request), into: &bytes)
        let end = min(limit ?? data.count, data.count)
        var offset = 0
        while offset < end {
            let piece = Array(data[offset..<min(offset + Self.chunk, end)])
            try encode(Frame(requestID: id, isExec ? .stdinData(piece) : .fileData(piece)), into: &bytes)
            offset += piece.count
        }
        if limit == nil { try encode(Frame(requestID: id, isExec ? .stdinEnd : .fileEnd), into: &bytes) }
        return bytes
    }

    func writeFile(_ path: String, _ data: [UInt8], id: UInt32) throws(ProbeError) -> UInt64 {
        let outgoing = try streamingRequest(.writeFile(WriteFileRequest(path: path)), id: id, data: data)
        var written: UInt64?
        try pump(outgoing) { frame throws(ProbeError) in
            guard frame.requestID == id else { return false }
            switch frame.message {
            case .ok(let count): written = count
            case .error(let reply): throw .remote(reply)
            default: throw .unexpected("writeFile answered \(frame.type)")
            }
            return true
        }
        return written ?? 0
    }

    func readFile(_ path: String, id: UInt32) throws(ProbeError) -> [UInt8] {
        var outgoing: [UInt8] = []
        try encode(Frame(requestID: id, .readFile(ReadFileRequest(path: path))), into: &outgoing)
        var content: [UInt8] = []
        try pump(outgoing) { frame throws(ProbeError) in
            guard frame.requestID == id else { return false }
            switch frame.message {
            case .fileData(let bytes): content += bytes
            case .fileEnd: return true
            case .error(let reply): throw .remote(reply)
            default: throw .unexpected("readFile answered \(frame.type)")
            }
            return false
        }
        return content
    }

    /// Runs `argv` (stdin from `stdin`, else /dev/null); its exit and its stdout.
    func run(_ argv: [String], stdin: [UInt8]? = nil, id: UInt32) throws(ProbeError) -> (ExitReport, [UInt8]) {
        let request = ExecRequest(argv: argv, env: ["PATH=/usr/bin:/bin:/usr/sbin:/sbin"], cwd: "/", sendsStdin: stdin != nil)
        let outgoing: [UInt8]
        if let stdin {
            outgoing = try streamingRequest(.exec(request), id: id, data: stdin)
        } else {
            var bytes: [UInt8] = []
            try encode(Frame(requestID: id, .exec(request)), into: &bytes)
            outgoing = bytes
        }
        var output: [UInt8] = []
        var exit: ExitReport?
        try pump(outgoing) { frame throws(ProbeError) in
            guard frame.requestID == id else { return false }
            switch frame.message {
            case .started, .stderrData: return false
            case .stdoutData(let bytes): output += bytes
            case .exit(let report): exit = report
            case .error(let reply): throw .remote(reply)
            default: throw .unexpected("exec answered \(frame.type)")
            }
            return exit != nil
        }
        guard let exit else { throw .unexpected("exec ended without Exit") }
        return (exit, output)
    }

    /// A request answered by one terminal frame (Ping, Stat, Mkdir, Remove): that frame's message.
    func call(_ message: DoorsMessage, id: UInt32) throws(ProbeError) -> DoorsMessage {
        var outgoing: [UInt8] = []
        try encode(Frame(requestID: id, message), into: &outgoing)
        var answer: DoorsMessage?
        try pump(outgoing) { frame throws(ProbeError) in
            guard frame.requestID == id else { return false }
            answer = frame.message
            return true
        }
        guard let answer else { throw .unexpected("no answer to \(message.type)") }
        if case .error(let reply) = answer { throw .remote(reply) }
        return answer
    }
}

/// Prints one line per check and remembers whether any failed.
final class Checklist {
    private(set) var failures = 0
    private(set) var count = 0

    func check(_ name: String, _ passed: Bool, _ detail: @autoclosure () -> String = "") {
        count += 1
        if passed {
            say("ok: \(name)")
        } else {
            failures += 1
            let why = detail()
            say("not ok: \(name)\(why.isEmpty ? "" : ": \(why)")")
        }
    }

    /// Runs a step that may throw; a throw is a failed check named `name`.
    func attempt<T>(_ name: String, _ body: () throws(ProbeError) -> T) -> T? {
        Watchdog.board.set("main", name)
        defer { Watchdog.board.done("main") }
        do throws(ProbeError) {
            return try body()
        } catch {
            check(name, false, error.description)
            return nil
        }
    }

    /// The last line: how many checks passed.
    func summary(_ what: String) -> Bool {
        say("\(what): \(count - failures) of \(count) checks passed")
        return failures == 0
    }
}

/// Deterministic bytes that differ per `seed`, so a transfer that crossed over with another
/// connection's data cannot pass the comparison.
func pattern(seed: Int, count: Int) -> [UInt8] {
    var state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 | 1
    var bytes = [UInt8](repeating: 0, count: (count + 7) / 8 * 8)
    bytes.withUnsafeMutableBytes { raw in
        for word in 0..<(raw.count / 8) {
            // xorshift64
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            raw.storeBytes(of: state.littleEndian, toByteOffset: word * 8, as: UInt64.self)
        }
    }
    bytes.removeLast(bytes.count - count)
    return bytes
}
