import Doors

/// What `hands` does with a reply: the bytes it writes to stdout, the line it writes to stderr
/// (after `hands: `), and its exit status.
public struct HandsOutcome: Equatable, Sendable {
    public var standardOutput: [UInt8]
    /// Bytes for stderr as they are (a sub-agent's own stderr, from `wait`).
    public var standardError: [UInt8]
    public var errorLine: String?
    public var exitStatus: Int32

    public init(standardOutput: [UInt8] = [], standardError: [UInt8] = [], errorLine: String? = nil, exitStatus: Int32 = 0) {
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.errorLine = errorLine
        self.exitStatus = exitStatus
    }

    /// `failed(code, message)` is the message and `code.exitStatus`; `ok` is what `output`
    /// says. An `ok` reply without the fields its call promises is exit 70 (EX_SOFTWARE).
    public static func of(_ reply: HandsReply, output: HandsOutput) -> HandsOutcome {
        switch reply {
        case .failed(let failure, let message):
            return HandsOutcome(errorLine: message, exitStatus: failure.exitStatus)
        case .ok(let fields, let data):
            switch output {
            case .nothing:
                return HandsOutcome()
            case .data:
                return HandsOutcome(standardOutput: data)
            case .senderAndData:
                guard let sender = fields.first else { return malformed("door recv", fields) }
                return HandsOutcome(standardOutput: Array((sender + "\n").utf8) + data)
            case .fieldLines:
                // Data beside the lines is the host's marker that they were cut short (a query
                // over more keys than a reply holds): said on stderr, the lines still printed.
                let marker = data.isEmpty ? nil : String(decoding: data, as: UTF8.self)
                return HandsOutcome(standardOutput: Array(fields.map { $0 + "\n" }.joined().utf8), errorLine: marker)
            case .firstField:
                guard let first = fields.first else { return malformed("spawn", fields) }
                return HandsOutcome(standardOutput: Array((first + "\n").utf8))
            case .identity:
                guard let name = fields.first else { return malformed("whoami", fields) }
                let parent = fields.count > 1 && !fields[1].isEmpty ? "parent \(fields[1])\n" : ""
                return HandsOutcome(standardOutput: Array((name + "\n" + parent).utf8))
            case .childStatus:
                // ["exited", CODE] or ["signaled", SIGNAL], as a shell reports a child, and the
                // tail of the child's stderr when the host sends it.
                guard fields.count == 2 || fields.count == 3, let number = Int32(fields[1]) else { return malformed("wait", fields) }
                let stderr = fields.count == 3 ? Array(fields[2].utf8) : []
                switch fields[0] {
                case "exited" where (0...255).contains(number):
                    return HandsOutcome(standardOutput: data, standardError: stderr, exitStatus: number)
                case "signaled" where (1...127).contains(number):
                    return HandsOutcome(standardOutput: data, standardError: stderr, exitStatus: 128 + number)
                default:
                    return malformed("wait", fields)
                }
            }
        }
    }

    private static func malformed(_ call: String, _ fields: [String]) -> HandsOutcome {
        let shown = fields.prefix(4).map { "\"\(String($0.prefix(64)))\"" }.joined(separator: ", ")
        return HandsOutcome(errorLine: "the host's reply to \(call) is not understood (fields: [\(shown)])", exitStatus: 70)
    }
}
