/// The command line of `momin-jailer`: a fixed, internal interface written by `momin`, parsed
/// without Foundation or an argument-parsing library (like momin-vmm's).
///
///     momin-jailer --id NAME --root DIR --uid U --gid G [--bind SRC[:DST[:ro|rw]]]...
///                  [--device /dev/PATH]... [--netns new|host] [--rlimit nofile=N,fsize=B,nproc=N,core=N]...
///                  [--env KEY=VALUE]... [--liveness-fd N] [--pass-fd N]... -- PROGRAM [ARGS...]
///
/// Only the shape of each value is checked here; `JailPlan.validate(against:)` checks the file
/// system.
public enum JailArguments {
    public static let usage = "momin-jailer --id NAME --root DIR --uid U --gid G [--bind SRC[:DST[:ro|rw]]]... "
        + "[--device /dev/PATH]... [--netns new|host] [--rlimit nofile=N,fsize=BYTES,nproc=N,core=N]... "
        + "[--env KEY=VALUE]... [--liveness-fd N] [--pass-fd N]... -- PROGRAM [ARGS...]"

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        /// `--help` or `-h` before `--`: the usage to print, not an error.
        case helpRequested
        case unknownOption(String)
        case missingValue(String)
        case missingOption(String)
        case givenTwice(String)
        case missingProgram
        case badName(String)
        case badID(option: String, value: String)
        case rootID(option: String)
        case badPath(option: String, value: String, problem: String)
        case badBind(spec: String, problem: String)
        case badNetwork(String)
        case badLimit(spec: String, problem: String)
        case badEnvironment(String)
        case badDescriptor(String)
        case badPassedDescriptor(String)

        public var description: String {
            switch self {
            case .helpRequested: "usage: \(JailArguments.usage)"
            case .unknownOption(let o): "unknown option \(o) (usage: \(JailArguments.usage))"
            case .missingValue(let o): "\(o) needs a value"
            case .missingOption(let o): "\(o) is required"
            case .givenTwice(let o): "\(o) is given twice"
            case .missingProgram: "no program to run: give its path inside the jail after --"
            case .badName(let v): "--id \(v) must be 1 to 64 letters, digits, '-' or '_'"
            case .badID(let o, let v): "\(o) \(v) is not a number from 1 to 4294967294"
            case .rootID(let o): "\(o) 0 is refused: the jailed program must not run as root"
            case .badPath(let o, let v, let p): "\(o) \(v): \(p)"
            case .badBind(let s, let p): "--bind \(s): \(p)"
            case .badNetwork(let v): "--netns \(v) must be new or host"
            case .badLimit(let s, let p): "--rlimit \(s): \(p)"
            case .badEnvironment(let v): "--env \(v) is not KEY=VALUE"
            case .badDescriptor(let v): "--liveness-fd \(v) is not an inherited descriptor above 2"
            case .badPassedDescriptor(let v): "--pass-fd \(v) is not an inherited descriptor above 2 (below 1024), given once, other than --liveness-fd"
            }
        }
    }

    public static func parse(_ arguments: [String]) throws(ParseError) -> JailPlan {
        var id: String?, root: String?, uid: UInt32?, gid: UInt32?, network: JailPlan.Network?, cgroup: String?, liveness: Int32?
        var binds: [Bind] = [], devices: [String] = [], limits: [ResourceLimit] = [], environment: [String] = []
        var passed: [Int32] = []
        var command: [String]?
        var i = 0
        func value(_ option: String) throws(ParseError) -> String {
            guard i + 1 < arguments.count else { throw .missingValue(option) }
            i += 1
            return arguments[i]
        }
        func once<T>(_ option: String, _ current: T?, _ new: T) throws(ParseError) -> T {
            guard current == nil else { throw .givenTwice(option) }
            return new
        }
        while i < arguments.count {
            let option = arguments[i]
            switch option {
            case "--":
                command = Array(arguments[(i + 1)...])
                i = arguments.count
                continue
            case "--help", "-h": throw .helpRequested
            case "--id": id = try once(option, id, parseName(try value(option)))
            case "--root": root = try once(option, root, try path(option, try value(option)))
            case "--uid": uid = try once(option, uid, try parseID(option, try value(option)))
            case "--gid": gid = try once(option, gid, try parseID(option, try value(option)))
            case "--bind": binds.append(try parseBind(try value(option)))
            case "--device": devices.append(try path(option, try value(option)))
            case "--netns":
                let text = try value(option)
                guard let n = JailPlan.Network(rawValue: text) else { throw .badNetwork(text) }
                network = try once(option, network, n)
            case "--rlimit": limits += try parseLimits(try value(option), after: limits)
            case "--cgroup": cgroup = try once(option, cgroup, try path(option, try value(option)))
            case "--liveness-fd":
                let text = try value(option)
                guard let fd = Int32(text), fd > 2, fd < 1024 else { throw .badDescriptor(text) }
                liveness = try once(option, liveness, fd)
            case "--pass-fd":
                let text = try value(option)
                guard let fd = Int32(text), fd > 2, fd < 1024, !passed.contains(fd) else { throw .badPassedDescriptor(text) }
                passed.append(fd)
            case "--env":
                let text = try value(option)
                guard let eq = text.firstIndex(of: "="), eq != text.startIndex else { throw .badEnvironment(text) }
                environment.append(text)
            default: throw .unknownOption(option)
            }
            i += 1
        }
        guard let id else { throw .missingOption("--id") }
        guard let root else { throw .missingOption("--root") }
        guard let uid else { throw .missingOption("--uid") }
        guard let gid else { throw .missingOption("--gid") }
        guard let command, let program = command.first else { throw .missingProgram }
        var plan = JailPlan(id: id, root: root, uid: uid, gid: gid,
                            program: try path("program", program, hint: " (it runs inside the jail, without PATH)"))
        plan.arguments = Array(command.dropFirst())
        plan.binds = binds
        plan.devices = devices
        plan.network = network ?? .new
        plan.limits = limits
        plan.environment = environment
        plan.cgroup = cgroup
        plan.livenessFD = liveness
        if let liveness, passed.contains(liveness) { throw .badPassedDescriptor(String(liveness)) }
        plan.passedFDs = passed
        return plan
    }

    /// The command line that makes `momin-jailer` carry out `plan` (what `parse` reads back).
    public static func render(_ plan: JailPlan) -> [String] {
        var args = ["--id", plan.id, "--root", plan.root, "--uid", String(plan.uid), "--gid", String(plan.gid)]
        for b in plan.binds { args += ["--bind", "\(b.source):\(b.destination):\(b.writable ? "rw" : "ro")"] }
        for d in plan.devices { args += ["--device", d] }
        args += ["--netns", plan.network.rawValue]
        if !plan.limits.isEmpty {
            args += ["--rlimit", plan.limits.map { "\($0.resource.rawValue)=\($0.value)" }.joined(separator: ",")]
        }
        if let cgroup = plan.cgroup { args += ["--cgroup", cgroup] }
        for e in plan.environment { args += ["--env", e] }
        if let fd = plan.livenessFD { args += ["--liveness-fd", String(fd)] }
        for fd in plan.passedFDs { args += ["--pass-fd", String(fd)] }
        return args + ["--", plan.program] + plan.arguments
    }

    static func parseName(_ text: String) throws(ParseError) -> String {
        let allowed = text.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
        }
        // 64: __NEW_UTS_LEN, the longest hostname sethostname(2) takes.
        guard allowed, (1...64).contains(text.utf8.count) else { throw .badName(text) }
        return text
    }

    /// 1...4294967294: 0 is root, and (uid_t)-1 means "unchanged" to setresuid(2).
    static func parseID(_ option: String, _ text: String) throws(ParseError) -> UInt32 {
        guard let n = UInt32(text), n != UInt32.max else { throw .badID(option: option, value: text) }
        guard n != 0 else { throw .rootID(option: option) }
        return n
    }

    static func path(_ option: String, _ text: String, hint: String = "") throws(ParseError) -> String {
        switch JailPath.normalize(text) {
        case .success(let p): return p
        case .failure(let problem): throw .badPath(option: option, value: text, problem: problem.text + hint)
        }
    }

    /// SRC[:DST[:ro|rw]]; an empty DST means the same path as SRC.
    static func parseBind(_ spec: String) throws(ParseError) -> Bind {
        let fields = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(fields.count) else { throw .badBind(spec: spec, problem: "expected SRC[:DST[:ro|rw]]") }
        func normalized(_ what: String, _ text: String) throws(ParseError) -> String {
            switch JailPath.normalize(text) {
            case .success(let p): return p
            case .failure(.empty): throw .badBind(spec: spec, problem: "\(what) is empty")
            case .failure(let problem): throw .badBind(spec: spec, problem: "\(what) \(text): \(problem.text)")
            }
        }
        let source = try normalized("source", fields[0])
        let destination = fields.count > 1 && !fields[1].isEmpty ? try normalized("destination", fields[1]) : source
        var writable = false
        if fields.count == 3 {
            switch fields[2] {
            case "ro": writable = false
            case "rw": writable = true
            default: throw .badBind(spec: spec, problem: "mode must be ro or rw, not '\(fields[2])'")
            }
        }
        return Bind(source: source, destination: destination, writable: writable, spec: spec)
    }

    /// nofile=N,fsize=BYTES,nproc=N,core=N (any of them); a resource may be named once in all.
    static func parseLimits(_ spec: String, after earlier: [ResourceLimit]) throws(ParseError) -> [ResourceLimit] {
        var limits: [ResourceLimit] = []
        for item in spec.split(separator: ",", omittingEmptySubsequences: false) {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2, !pair[0].isEmpty else { throw .badLimit(spec: spec, problem: "expected NAME=VALUE, not '\(item)'") }
            guard let resource = ResourceLimit.Resource(rawValue: String(pair[0])) else {
                let known = ResourceLimit.Resource.allCases.map(\.rawValue).joined(separator: ", ")
                throw .badLimit(spec: spec, problem: "unknown resource '\(pair[0])' (\(known))")
            }
            guard let value = UInt64(pair[1]) else {
                throw .badLimit(spec: spec, problem: "\(resource.rawValue) value '\(pair[1])' is not a number")
            }
            guard !(earlier + limits).contains(where: { $0.resource == resource }) else {
                throw .badLimit(spec: spec, problem: "\(resource.rawValue) is given twice")
            }
            limits.append(ResourceLimit(resource, value))
        }
        return limits
    }
}
