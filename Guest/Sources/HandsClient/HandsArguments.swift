import Doors

/// What one `hands` invocation asks for.
public enum HandsCommand: Equatable, Sendable {
    /// `hands --help`: the usage on stdout, exit 0.
    case help
    /// One call, and what to write from its `ok` reply.
    case call(HandsCall, HandsOutput)
    /// `hands install pip`: an `install` call, its files fetched, then `python -m pip install`
    /// from them (`PipInstall`).
    case install(ecosystem: String, requirements: [String], python: String)
    /// `hands install apt`: an `install` call, then the guest's apt-get through the egress
    /// proxy (`AptInstall`).
    case installApt(packages: [String])
}

/// What `hands` writes from an `ok` reply.
public enum HandsOutput: Equatable, Sendable {
    /// bucket put, door send, stop.
    case nothing
    /// The data blob: bucket get, door recv.
    case data
    /// Field 0 and a newline, then the data blob: door recv --from.
    case senderAndData
    /// Each field on its own line: bucket query.
    case fieldLines
    /// Field 0 and a newline: spawn.
    case firstField
    /// Field 0, and `parent FIELD1` when field 1 is not empty: whoami.
    case identity
    /// The data blob (the child's stdout), and the child's status as the exit status: wait.
    case childStatus
}

/// Where `hands` reads what the arguments do not carry. Each reader returns at most `limit`
/// bytes; the parser asks for one more than it allows, to tell when there is too much.
public struct HandsInput {
    public var standardInput: (_ limit: Int) throws(HandsClientError) -> [UInt8]
    public var file: (_ path: String, _ limit: Int) throws(HandsClientError) -> [UInt8]

    public init(standardInput: @escaping (_ limit: Int) throws(HandsClientError) -> [UInt8],
                file: @escaping (_ path: String, _ limit: Int) throws(HandsClientError) -> [UInt8]) {
        self.standardInput = standardInput
        self.file = file
    }
}

/// Why `hands` stops without a reply to show: the line it prints after `hands: `, and its exit
/// status (sysexits(3)).
public struct HandsClientError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public var exitStatus: Int32
    /// Whether the usage follows the message (wrong arguments).
    public var showsUsage: Bool

    public var description: String { message }

    /// Wrong arguments: exit 64 (EX_USAGE), with the usage.
    public static func usage(_ message: String) -> HandsClientError {
        HandsClientError(message: message, exitStatus: 64, showsUsage: true)
    }

    /// A value, message or policy that cannot go in a call (over a limit): exit 64, as the
    /// relay's `invalid`, without the usage.
    public static func unsendable(_ message: String) -> HandsClientError {
        HandsClientError(message: message, exitStatus: 64, showsUsage: false)
    }

    /// A file that cannot be read: exit 66 (EX_NOINPUT).
    public static func noInput(_ message: String) -> HandsClientError {
        HandsClientError(message: message, exitStatus: 66, showsUsage: false)
    }

    /// Standard input that cannot be read: exit 74 (EX_IOERR).
    public static func inputFailed(_ message: String) -> HandsClientError {
        HandsClientError(message: message, exitStatus: 74, showsUsage: false)
    }

    /// momin-init cannot be reached, or the exchange broke: exit 70 (EX_SOFTWARE), as the
    /// relay's own failures.
    public static func unreachable(_ message: String) -> HandsClientError {
        HandsClientError(message: message, exitStatus: 70, showsUsage: false)
    }
}

/// The `hands` command line (docs/hands.md, "The hands command").
public enum HandsArguments {
    public static let usage = """
        usage: hands bucket put NAMESPACE KEY [VALUE]
               hands bucket get NAMESPACE KEY
               hands bucket query NAMESPACE [KEY-PREFIX]
               hands door send DOOR TO [MESSAGE] [--timeout SECONDS]
               hands door recv DOOR [--timeout SECONDS] [--from]
               hands spawn --name NAME --policy FILE [--vcpus N] [--memory MIB]
                           [--env NAME=VALUE]... [--disk NAME]... [--image] -- CMD [ARGS...]
               hands wait NAME [--timeout SECONDS]
               hands stop NAME
               hands whoami
               hands install pip [--python PATH] REQUIREMENT...
               hands install apt NAME...

        VALUE and MESSAGE are read from standard input when omitted or "-" (at most
        \(HandsCallProtocol.maxData) bytes). door send and door recv wait 30 seconds by default;
        wait waits as long as the child runs unless --timeout says otherwise. A policy FILE is
        JSON when its name ends in .json, else YAML. --disk gives the sub-agent one of this
        VM's named disks, read-only; --image boots it on this VM's root image. install pip has
        the host resolve, judge, fetch and log the packages, then installs them with PATH's pip
        (default: python3), offline and hash-checked. install apt has the host judge and log
        the names, then runs apt-get update and install through the egress proxy, which lets
        apt reach only the policy's mirrors. Calls go to momin-init at $HANDS_SOCKET
        (default /run/momin/hands.sock), which relays them to the host.
        """

    /// door send and door recv without --timeout.
    public static let defaultDoorTimeoutMilliseconds: UInt32 = 30_000
    public static let defaultVCPUs: UInt32 = 1
    /// The disk name that means the caller's root image (the host's `DiskRequest.rootSerial`).
    static let rootDisk = "momin-root"
    public static let defaultMemoryMiB: UInt32 = 256
    /// The Python whose pip `hands install pip` runs, looked up on PATH.
    public static let defaultPython = "python3"

    /// The command `arguments` (without the program name) ask for; VALUE, MESSAGE and the
    /// policy come from `input`. The call is checked as the relay would check it, so a call
    /// that parses here is one the relay passes on.
    public static func parse(_ arguments: [String], input: HandsInput) throws(HandsClientError) -> HandsCommand {
        guard let verb = arguments.first else { throw .usage("no command given") }
        if ["--help", "-h", "help"].contains(verb) { return .help }
        let rest = arguments.dropFirst()
        let command: HandsCommand
        switch verb {
        case "bucket": command = try bucket(rest, input: input)
        case "door": command = try door(rest, input: input)
        case "spawn": command = try spawn(rest, input: input)
        case "install": command = try install(rest)
        case "wait":
            let scanned = try scan(rest, command: "wait", values: ["--timeout"])
            if scanned.help { return .help }
            let agent = try positionals(scanned, command: "wait", names: ["NAME"])[0]
            let timeout = try scanned.value("--timeout").map(milliseconds) ?? 0
            command = .call(.wait(agent: try name(agent, "NAME"), timeoutMilliseconds: timeout), .childStatus)
        case "stop":
            let scanned = try scan(rest, command: "stop")
            if scanned.help { return .help }
            let agent = try positionals(scanned, command: "stop", names: ["NAME"])[0]
            command = .call(.stop(agent: try name(agent, "NAME")), .nothing)
        case "whoami":
            let scanned = try scan(rest, command: "whoami")
            if scanned.help { return .help }
            _ = try positionals(scanned, command: "whoami", names: [])
            command = .call(.whoami, .identity)
        default:
            throw .usage("unknown command \"\(verb)\"")
        }
        switch command {
        case .call(let call, _): try check(call)
        case .install(let ecosystem, let requirements, _): try check(.install(ecosystem: ecosystem, requirements: requirements))
        case .installApt(let packages): try check(.install(ecosystem: "apt", requirements: packages))
        case .help: break
        }
        return command
    }

    // MARK: - Verbs

    private static func bucket(_ arguments: ArraySlice<String>, input: HandsInput) throws(HandsClientError) -> HandsCommand {
        guard let sub = arguments.first else { throw .usage("bucket needs put, get or query") }
        if ["--help", "-h"].contains(sub) { return .help }
        let command = "bucket \(sub)"
        let scanned = try scan(arguments.dropFirst(), command: command)
        if scanned.help { return .help }
        switch sub {
        case "put":
            let words = try positionals(scanned, command: command, names: ["NAMESPACE", "KEY"], optional: ["VALUE"])
            let value = try bytes(words.count > 2 ? words[2] : nil, "VALUE", input: input)
            return .call(.bucketPut(namespace: try name(words[0], "NAMESPACE"), key: try name(words[1], "KEY"), value: value), .nothing)
        case "get":
            let words = try positionals(scanned, command: command, names: ["NAMESPACE", "KEY"])
            return .call(.bucketGet(namespace: try name(words[0], "NAMESPACE"), key: try name(words[1], "KEY")), .data)
        case "query":
            let words = try positionals(scanned, command: command, names: ["NAMESPACE"], optional: ["KEY-PREFIX"])
            let prefix = words.count > 1 ? try name(words[1], "KEY-PREFIX", allowEmpty: true) : ""
            return .call(.bucketQuery(namespace: try name(words[0], "NAMESPACE"), keyPrefix: prefix), .fieldLines)
        default:
            throw .usage("unknown command \"bucket \(sub)\" (bucket put, get or query)")
        }
    }

    private static func door(_ arguments: ArraySlice<String>, input: HandsInput) throws(HandsClientError) -> HandsCommand {
        guard let sub = arguments.first else { throw .usage("door needs send or recv") }
        if ["--help", "-h"].contains(sub) { return .help }
        let command = "door \(sub)"
        switch sub {
        case "send":
            let scanned = try scan(arguments.dropFirst(), command: command, values: ["--timeout"])
            if scanned.help { return .help }
            let words = try positionals(scanned, command: command, names: ["DOOR", "TO"], optional: ["MESSAGE"])
            let timeout = try scanned.value("--timeout").map(milliseconds) ?? defaultDoorTimeoutMilliseconds
            let door = try name(words[0], "DOOR")
            let to = try name(words[1], "TO")
            let message = try bytes(words.count > 2 ? words[2] : nil, "MESSAGE", input: input)
            return .call(.doorSend(door: door, to: to, message: message, timeoutMilliseconds: timeout), .nothing)
        case "recv":
            let scanned = try scan(arguments.dropFirst(), command: command, values: ["--timeout"], flags: ["--from"])
            if scanned.help { return .help }
            let words = try positionals(scanned, command: command, names: ["DOOR"])
            let timeout = try scanned.value("--timeout").map(milliseconds) ?? defaultDoorTimeoutMilliseconds
            let output: HandsOutput = scanned.flags.contains("--from") ? .senderAndData : .data
            return .call(.doorReceive(door: try name(words[0], "DOOR"), timeoutMilliseconds: timeout), output)
        default:
            throw .usage("unknown command \"door \(sub)\" (door send or recv)")
        }
    }

    private static func spawn(_ arguments: ArraySlice<String>, input: HandsInput) throws(HandsClientError) -> HandsCommand {
        let scanned = try scan(arguments, command: "spawn", values: ["--name", "--policy", "--vcpus", "--memory"],
                               repeated: ["--env", "--disk"], flags: ["--image"], commandFollows: true)
        if scanned.help { return .help }
        guard let agent = scanned.value("--name") else { throw .usage("spawn needs --name NAME") }
        guard let policyPath = scanned.value("--policy") else { throw .usage("spawn needs --policy FILE") }
        guard !scanned.positionals.isEmpty else { throw .usage("spawn needs a command after --") }
        let vcpus = try scanned.value("--vcpus").map { (text) throws(HandsClientError) in try count(text, "--vcpus") } ?? defaultVCPUs
        let memory = try scanned.value("--memory").map { (text) throws(HandsClientError) in try count(text, "--memory") } ?? defaultMemoryMiB
        let environment = scanned.repeated["--env", default: []]
        for entry in environment {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw .usage("--env needs NAME=VALUE, not \"\(entry)\"")
            }
        }
        let policy = try input.file(policyPath, HandsCallProtocol.maxData + 1)
        guard policy.count <= HandsCallProtocol.maxData else {
            throw .unsendable("policy \(policyPath) is over the \(HandsCallProtocol.maxData)-byte limit")
        }
        var disks: [String] = []
        for disk in scanned.repeated["--disk", default: []] { disks.append(try name(disk, "--disk")) }
        if scanned.flags.contains("--image") { disks.append(rootDisk) }
        guard disks.count <= SpawnRequest.maxDisks else { throw .usage("spawn takes at most \(SpawnRequest.maxDisks) disks") }
        let request = SpawnRequest(
            name: try name(agent, "--name"), policy: policy, policyFormat: policyPath.hasSuffix(".json") ? "json" : "yaml",
            vcpus: vcpus, memoryMiB: memory, argv: scanned.positionals, env: environment, disks: disks)
        return .call(.spawn(request), .firstField)
    }

    private static func install(_ arguments: ArraySlice<String>) throws(HandsClientError) -> HandsCommand {
        let shapes = "(hands install pip REQUIREMENT... or hands install apt NAME...)"
        let scanned = try scan(arguments, command: "install", values: ["--python"])
        if scanned.help { return .help }
        guard let ecosystem = scanned.positionals.first else { throw .usage("install needs pip or apt \(shapes)") }
        guard ecosystem == "pip" || ecosystem == "apt" else { throw .usage("unknown ecosystem \"\(ecosystem)\" \(shapes)") }
        let words = Array(scanned.positionals.dropFirst())
        let what = ecosystem == "pip" ? "REQUIREMENT" : "NAME"
        guard !words.isEmpty else { throw .usage("install \(ecosystem) needs a \(what) \(shapes)") }
        guard words.count <= HandsInstall.maxRequirements else {
            throw .usage("install \(ecosystem) takes at most \(HandsInstall.maxRequirements) \(what == "NAME" ? "names" : "requirements"), not \(words.count)")
        }
        if ecosystem == "apt" {
            guard scanned.value("--python") == nil else { throw .usage("install apt has no option --python") }
            for name in words { try checkDebianName(name) }
            return .installApt(packages: words)
        }
        for requirement in words { try checkRequirement(requirement) }
        let python = scanned.value("--python") ?? defaultPython
        guard !python.isEmpty else { throw .usage("--python is empty") }
        return .install(ecosystem: ecosystem, requirements: words, python: python)
    }

    /// A Debian package name (Debian Policy §5.6.1): lower case letters, digits, `+`, `-` and
    /// `.`, at least two, starting with a letter or digit; so no apt option, version or path.
    static func checkDebianName(_ text: String) throws(HandsClientError) {
        let bytes = Array(text.utf8)
        guard bytes.count <= HandsInstall.maxRequirementLength else {
            throw .usage("NAME is \(bytes.count) bytes, at most \(HandsInstall.maxRequirementLength)")
        }
        let lowerOrDigit = { (byte: UInt8) in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        guard bytes.count >= 2, lowerOrDigit(bytes[0]),
              bytes.allSatisfy({ lowerOrDigit($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else {
            throw .usage("NAME \"\(text)\" is not a Debian package name (lower case letters, digits, + - ., at least 2, starting with a letter or digit)")
        }
    }

    /// A plausible PEP 508 requirement: it starts with a project name's first letter or digit
    /// (so no pip option or path), at most 1024 bytes, no control characters. The host parses it.
    static func checkRequirement(_ text: String) throws(HandsClientError) {
        guard let first = text.utf8.first else { throw .usage("REQUIREMENT is empty") }
        guard text.utf8.count <= HandsInstall.maxRequirementLength else {
            throw .usage("REQUIREMENT is \(text.utf8.count) bytes, at most \(HandsInstall.maxRequirementLength)")
        }
        guard !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else { throw .usage("REQUIREMENT holds a control character") }
        let letterOrDigit = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first)
        guard letterOrDigit else { throw .usage("REQUIREMENT \"\(text)\" does not start with a project name (PEP 508)") }
    }

    // MARK: - Pieces

    /// Arguments split into options and the words between them.
    struct Scanned {
        var positionals: [String] = []
        var values: [String: String] = [:]
        var repeated: [String: [String]] = [:]
        var flags: Set<String> = []
        var help = false

        func value(_ option: String) -> String? { values[option] }
    }

    /// Options are `--NAME VALUE`, `--NAME=VALUE` or `--NAME` (a flag); the last of a repeated
    /// single-value option wins. `--` ends the options; "-" and other words starting with one
    /// dash are words. With `commandFollows` (spawn) the first word also ends the options: it
    /// and everything after it are the command.
    static func scan(_ arguments: ArraySlice<String>, command: String, values: Set<String> = [], repeated: Set<String> = [],
                     flags: Set<String> = [], commandFollows: Bool = false) throws(HandsClientError) -> Scanned {
        var scanned = Scanned()
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                scanned.positionals += arguments[index...]
                break
            }
            guard argument.hasPrefix("--") else {
                if commandFollows {
                    scanned.positionals += arguments[(index - 1)...]
                    break
                }
                scanned.positionals.append(argument)
                continue
            }
            let option: String
            var inline: String?
            if let equals = argument.firstIndex(of: "=") {
                option = String(argument[..<equals])
                inline = String(argument[argument.index(after: equals)...])
            } else {
                option = argument
            }
            if option == "--help" {
                scanned.help = true
            } else if values.contains(option) || repeated.contains(option) {
                let value: String
                if let inline {
                    value = inline
                } else {
                    guard index < arguments.endIndex else { throw .usage("\(option) needs a value") }
                    value = arguments[index]
                    index += 1
                }
                if repeated.contains(option) {
                    scanned.repeated[option, default: []].append(value)
                } else {
                    scanned.values[option] = value
                }
            } else if flags.contains(option) {
                guard inline == nil else { throw .usage("\(option) takes no value") }
                scanned.flags.insert(option)
            } else {
                throw .usage("\(command) has no option \(option)")
            }
        }
        return scanned
    }

    /// The words, checked against the names they stand for: all of `names`, then at most the
    /// `optional` ones.
    static func positionals(_ scanned: Scanned, command: String, names: [String], optional: [String] = []) throws(HandsClientError) -> [String] {
        let words = scanned.positionals
        let shape = (names + optional.map { "[\($0)]" }).joined(separator: " ")
        if words.count < names.count {
            throw .usage("\(command) needs \(names[words.count])" + (shape.isEmpty ? "" : " (hands \(command) \(shape))"))
        }
        if words.count > names.count + optional.count {
            let extra = words[names.count + optional.count]
            throw .usage("\(command) takes " + (shape.isEmpty ? "no arguments" : shape) + ", not also \"\(extra)\"")
        }
        return words
    }

    /// A name as the protocol allows it: 1 to 255 bytes (or none, where allowed), no control
    /// characters.
    static func name(_ text: String, _ what: String, allowEmpty: Bool = false) throws(HandsClientError) -> String {
        guard allowEmpty || !text.isEmpty else { throw .usage("\(what) is empty") }
        guard text.utf8.count <= HandsCallProtocol.maxNameLength else {
            throw .usage("\(what) is \(text.utf8.count) bytes, at most \(HandsCallProtocol.maxNameLength)")
        }
        guard !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else { throw .usage("\(what) holds a control character") }
        return text
    }

    /// VALUE or MESSAGE: the word itself, or standard input when it is absent or "-".
    static func bytes(_ word: String?, _ what: String, input: HandsInput) throws(HandsClientError) -> [UInt8] {
        let bytes: [UInt8]
        let source: String
        if let word, word != "-" {
            bytes = Array(word.utf8)
            source = what
        } else {
            bytes = try input.standardInput(HandsCallProtocol.maxData + 1)
            source = "\(what) from standard input"
        }
        guard bytes.count <= HandsCallProtocol.maxData else {
            throw .unsendable("\(source) is over the \(HandsCallProtocol.maxData)-byte limit")
        }
        return bytes
    }

    /// Seconds (a decimal number, 0 or more) as milliseconds, clamped to UInt32.
    static func milliseconds(_ text: String) throws(HandsClientError) -> UInt32 {
        guard let seconds = Double(text), seconds.isFinite, seconds >= 0 else {
            throw .usage("--timeout needs a number of seconds (0 or more), not \"\(text)\"")
        }
        let milliseconds = (seconds * 1000).rounded()
        return milliseconds >= Double(UInt32.max) ? UInt32.max : UInt32(milliseconds)
    }

    /// A whole number from 1 to UInt32.max.
    static func count(_ text: String, _ option: String) throws(HandsClientError) -> UInt32 {
        guard let number = UInt32(text), number >= 1 else { throw .usage("\(option) needs a whole number from 1, not \"\(text)\"") }
        return number
    }

    /// The call through the codec and back, as the relay decodes it: what it would refuse is
    /// refused here, without a connection.
    static func check(_ call: HandsCall) throws(HandsClientError) {
        let frame = HandsCallCodec.encode(call)
        do throws(HandsCallError) {
            let (kind, length) = try HandsCallCodec.payloadLength(header: Array(frame.prefix(HandsCallProtocol.headerSize)))
            guard length == frame.count - HandsCallProtocol.headerSize else { throw .truncated }
            _ = try HandsCallCodec.decodeCall(kind: kind, payload: Array(frame.dropFirst(HandsCallProtocol.headerSize)))
        } catch {
            throw .unsendable("the call cannot be sent: \(error)")
        }
    }
}
