import Doors

extension Reason: Error {}

extension AgentPolicy {
    /// Allow or deny one call. Pure: the only outside knowledge is what `resolver` answers about
    /// symlinks. Every path is normalised, then resolved, and both forms must be allowed.
    public func evaluate<R: PathResolver>(_ call: ToolCall, resolver: R) -> Decision {
        switch call {
        case .exec(let request): judgeExec(request, resolver)
        case .readFile(let path): judgeFile(path, write: false, followFinal: true, resolver)
        case .stat(let path, let follow): judgeFile(path, write: false, followFinal: follow, resolver)
        case .list(let path): judgeFile(path, write: false, followFinal: true, resolver)
        case .writeFile(let path): judgeFile(path, write: true, followFinal: true, resolver)
        case .mkdir(let path, let parents): judgeFile(path, write: true, followFinal: true, parents: parents, resolver)
        case .remove(let path, let recursive): judgeFile(path, write: true, followFinal: false, subtree: recursive, resolver)
        case .bucket(let namespace, let operation): judgeBucket(namespace, operation)
        case .doorSend(let door, let to): judgeDoor(door, peer: to, .send)
        case .doorReceive(let door, let from): judgeDoor(door, peer: from, .receive)
        case .doorListen(let door): judgeListen(door)
        case .spawn:
            resources.subAgents > 0 ? .allow(resources.rules.subAgents) : .deny(resources.rules.subAgents, .subAgentsNotAllowed)
        case .attachDisk(let path, let writable): judgeDisk(path, writable: writable, resolver)
        case .connect(let host, let port, let scheme, let resolved):
            judgeEgress(host: host, port: port, scheme: scheme, request: nil, resolved: resolved)
        case .httpRequest(let host, let port, let method, let path, let resolved):
            judgeAptMirror(host: host, port: port, method: method, path: path, resolved: resolved)
                ?? judgeEgress(host: host, port: port, scheme: .http, request: (method, path), resolved: resolved)
        case .brain(let model, let maxTokens): judgeBrain(model: model, maxTokens: maxTokens)
        case .installPackage(let ecosystem, let name, let version): judgeInstall(ecosystem, name: name, version: version)
        case .installRequest(let ecosystem): judgeInstallRequest(ecosystem)
        }
    }

    // MARK: Disks

    /// Both the path as given and where it resolves (every symlink followed) must match a
    /// rule that allows the mode: a link in an allowed folder does not reach another file.
    private func judgeDisk<R: PathResolver>(_ raw: String, writable: Bool, _ resolver: R) -> Decision {
        guard !resources.disks.isEmpty, let list = resources.rules.diskList else {
            return .deny(.defaultDeny, .nothingAllowed("disks"))
        }
        let path: ResolvedPath
        switch Self.resolve(raw, what: "disk", followFinal: true, resolver) {
        case .success(let resolved): path = resolved
        case .failure(let reason): return .deny(list, reason)
        }
        func firstMatch(_ text: String) -> DiskRule? {
            resources.disks.first { $0.glob.matches(text) && ($0.writable || !writable) }
        }
        guard let rule = firstMatch(path.normal) else { return .deny(list, .diskNotAllowed(path: path.normal, writable: writable)) }
        guard firstMatch(path.canonical) != nil else {
            return .deny(rule.rule, .resolvesOutside(path: path.normal, canonical: path.canonical, access: writable ? "attachable rw" : "attachable"))
        }
        return .allow(rule.rule, judged: .file(path.canonical))
    }

    /// A path normalised and resolved.
    struct ResolvedPath {
        var normal: String
        var canonical: String
    }

    static func resolve<R: PathResolver>(_ raw: String, what: String, followFinal: Bool, _ resolver: R) -> Result<ResolvedPath, Reason> {
        let normal: String
        switch PathNormalization.normalize(raw) {
        case .success(let path): normal = path
        case .failure(let problem): return .failure(.badPath(what: what, path: raw, problem: problem))
        }
        // The resolver may be the guest's answer: hostile until normalised.
        guard let answer = resolver.canonicalPath(normal, followFinalSymlink: followFinal),
            case .success(let canonical) = PathNormalization.normalize(answer)
        else { return .failure(.unresolvable(path: normal)) }
        return .success(ResolvedPath(normal: normal, canonical: canonical))
    }

    // MARK: Files

    private func judgeFile<R: PathResolver>(
        _ raw: String, write: Bool, followFinal: Bool, subtree: Bool = false, parents: Bool = false, _ resolver: R
    ) -> Decision {
        let rules = write ? tools.write : tools.read
        let access = write ? "writable" : "readable"
        guard !rules.isEmpty, let list = write ? tools.writeList : tools.readList else {
            return .deny(.defaultDeny, .nothingAllowed(write ? "file writes" : "file reads"))
        }
        let path: ResolvedPath
        switch Self.resolve(raw, what: "path", followFinal: followFinal, resolver) {
        case .success(let resolved): path = resolved
        case .failure(let reason): return .deny(list, reason)
        }
        func firstMatch(_ text: String) -> PathRule? {
            rules.first { $0.glob.matches(text) && (!subtree || $0.glob.endsWithDoubleStar) }
        }
        guard let rule = firstMatch(path.normal) else {
            if subtree && rules.contains(where: { $0.glob.matches(path.normal) }) {
                return .deny(list, .subtreeNotAllowed(path: path.normal))
            }
            return .deny(list, .pathNotAllowed(path: path.normal, access: access))
        }
        guard let canonicalRule = firstMatch(path.canonical) else {
            return .deny(rule.rule, .resolvesOutside(path: path.normal, canonical: path.canonical, access: access))
        }
        if parents {
            for (text, matched) in [(path.normal, rule), (path.canonical, canonicalRule)] {
                if let parent = Self.uncoveredParent(of: text, depth: matched.glob.literalPrefixDepth, rules: rules) {
                    return .deny(rule.rule, .parentNotAllowed(path: path.normal, parent: parent))
                }
            }
        }
        return .allow(rule.rule, judged: .file(path.canonical))
    }

    /// mkdir -p may create any ancestor; those deeper than the allowing glob's literal prefix
    /// must be writable themselves. The first one that is not, or nil.
    static func uncoveredParent(of path: String, depth: Int, rules: [PathRule]) -> String? {
        var path = path
        return path.withUTF8 { bytes -> String? in
            var segment = 0
            for end in 1..<max(1, bytes.count) where bytes[end] == UInt8(ascii: "/") {
                segment += 1
                guard segment > depth else { continue }
                let ancestor = UnsafeBufferPointer(rebasing: bytes[0..<end])
                if !rules.contains(where: { $0.glob.matches(bytes: ancestor) }) {
                    return String(decoding: ancestor, as: UTF8.self)
                }
            }
            return nil
        }
    }

    // MARK: Exec

    private func judgeExec<R: PathResolver>(_ request: ExecRequest, _ resolver: R) -> Decision {
        guard let first = request.argv.first, !first.isEmpty else { return .deny(.defaultDeny, .malformedCall("argv is empty")) }
        for entry in request.argv where entry.utf8.contains(0) {
            return .deny(.defaultDeny, .malformedCall("an argument contains a NUL byte"))
        }
        guard !tools.exec.isEmpty, let list = tools.execList else { return .deny(.defaultDeny, .nothingAllowed("exec")) }
        if let ms = request.timeoutMilliseconds, Duration.milliseconds(ms) > limits.callTimeout {
            return .deny(limits.rules.callTimeout, .timeoutTooLong(requestedMilliseconds: ms, limit: limits.callTimeout))
        }
        let program: ResolvedPath
        switch Self.resolve(first, what: "program", followFinal: true, resolver) {
        case .success(let resolved): program = resolved
        case .failure(let reason): return .deny(list, reason)
        }
        // The guest executes argv as given, so exec paths are judged only in the form it will walk.
        if !program.normal.utf8.elementsEqual(first.utf8) { return .deny(list, .notNormal(what: "program", path: first, normal: program.normal)) }
        var cwd: Result<ResolvedPath, Reason>?  // resolved once, when a rule gets that far
        var firstDenial: Decision?
        for rule in tools.exec where rule.program.matches(program.normal) {
            let denial: Decision
            if !(rule.binary ?? rule.program).matches(program.canonical) {
                denial = .deny(rule.rule, .programResolvesOutside(program: program.normal, canonical: program.canonical))
            } else if let reason = Self.checkArguments(request.argv, rule.arguments, resolver) {
                denial = .deny(rule.arguments.rule, reason)
            } else if let reason = Self.checkEnvironment(request.env, rule.env) {
                denial = .deny(rule.envRule, reason)
            } else {
                if cwd == nil { cwd = Self.resolve(request.cwd ?? "/", what: "cwd", followFinal: true, resolver) }
                switch cwd! {
                case .failure(let reason):
                    denial = .deny(rule.cwdRule, reason)
                case .success(let dir) where request.cwd.map({ !$0.utf8.elementsEqual(dir.normal.utf8) }) ?? false:
                    denial = .deny(rule.cwdRule, .notNormal(what: "cwd", path: request.cwd!, normal: dir.normal))
                case .success(let dir):
                    if Self.cwdAllowed(dir, rule.cwd) { return .allow(rule.rule, judged: .exec(program: program.canonical, cwd: dir.canonical)) }
                    denial = .deny(rule.cwdRule, .cwdNotAllowed(dir.normal))
                }
            }
            if firstDenial == nil { firstDenial = denial }
        }
        return firstDenial ?? .deny(list, .programNotAllowed(program.normal))
    }

    private static func cwdAllowed(_ dir: ResolvedPath, _ globs: [PathRule]?) -> Bool {
        guard let globs else { return dir.normal == "/" && dir.canonical == "/" }
        return globs.contains { $0.glob.matches(dir.normal) } && globs.contains { $0.glob.matches(dir.canonical) }
    }

    static func checkArguments<R: PathResolver>(_ argv: [String], _ rule: ArgumentRule, _ resolver: R) -> Reason? {
        let count = argv.count - 1
        let fixed = rule.prefix.count
        if count < fixed || (rule.rest.isEmpty && count > fixed) || count > (rule.maximumCount ?? Int.max) {
            let allowed =
                rule.rest.isEmpty ? "exactly \(fixed)"
                : rule.maximumCount.map { fixed == $0 ? "exactly \($0)" : "\(fixed) to \($0)" } ?? "at least \(fixed)"
            return .argumentCount(count: count, allowed: allowed)
        }
        var index = 1
        while index < argv.count {
            let argument = argv[index]
            let ok =
                index <= fixed
                ? matches(argument, rule.prefix[index - 1], resolver)
                : rule.rest.contains { matches(argument, $0, resolver) }
            if !ok { return .argumentNotAllowed(index: index, value: argument) }
            index += 1
        }
        return nil
    }

    private static func matches<R: PathResolver>(_ argument: String, _ pattern: ArgumentPattern, _ resolver: R) -> Bool {
        switch pattern {
        case .text(let glob):
            return glob.matches(argument)
        case .path(let glob):
            // Only absolute paths (a relative one could be an option, "-f"), already normal
            // (the program walks ".." through symlinks).
            guard argument.utf8.first == UInt8(ascii: "/"),
                case .success(let path) = resolve(argument, what: "argument", followFinal: true, resolver),
                path.normal.utf8.elementsEqual(argument.utf8)
            else { return false }
            return glob.matches(path.normal) && glob.matches(path.canonical)
        }
    }

    static func checkEnvironment(_ env: [String], _ patterns: [EnvironmentPattern]) -> Reason? {
        for entry in env {
            var text = entry
            let verdict = text.withUTF8 { bytes -> Reason? in
                guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")), equals > 0, !bytes.contains(0) else {
                    return .environmentMalformed(entry)
                }
                let name = UnsafeBufferPointer(rebasing: bytes[0..<equals])
                let value = UnsafeBufferPointer(rebasing: bytes[(equals + 1)...])
                let allowed = patterns.contains { $0.name.matches(bytes: name) && ($0.value?.matches(bytes: value) ?? true) }
                return allowed ? nil : .environmentNotAllowed(entry)
            }
            if let verdict { return verdict }
        }
        return nil
    }

    // MARK: Buckets

    private func judgeBucket(_ namespace: String, _ operation: BucketOperation) -> Decision {
        guard !tools.buckets.isEmpty, let list = tools.bucketList else {
            return .deny(.defaultDeny, .nothingAllowed("bucket access"))
        }
        guard PathNormalization.isValidNamespace(namespace) else { return .deny(list, .namespaceInvalid(namespace)) }
        for rule in tools.buckets where rule.operations.contains(operation) && rule.namespace.matches(namespace) {
            return .allow(rule.rule)
        }
        return .deny(list, .bucketNotAllowed(namespace: namespace, operation: operation))
    }

    // MARK: Doors

    /// The rule that lets this agent send to `agent` on `door` (the first that does), for its
    /// max_message_bytes, queue_depth and log_content; nil when none does or a name is malformed.
    public func doorRule(door: String, sendingTo agent: String) -> DoorRule? {
        firstDoorRule(door, agent, .send)
    }

    /// The rule that lets this agent receive from `agent` on `door`; nil when none does.
    public func doorRule(door: String, receivingFrom agent: String) -> DoorRule? {
        firstDoorRule(door, agent, .receive)
    }

    private func firstDoorRule(_ door: String, _ peer: String, _ direction: DoorDirection) -> DoorRule? {
        guard PolicyBuilder.isValidName(door), PolicyBuilder.isValidName(peer) else { return nil }
        return tools.doors.first { rule in
            rule.door.matches(door) && (direction == .send ? rule.send : rule.receive).contains { $0.matches(peer) }
        }
    }

    /// Allowed by the first rule whose door glob matches and that lets it receive from anyone.
    private func judgeListen(_ door: String) -> Decision {
        guard PolicyBuilder.isValidName(door) else {
            return .deny(.defaultDeny, .malformedCall("door name \(quoted(door)) is not a name: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"))
        }
        guard !tools.doors.isEmpty, let list = tools.doorList else { return .deny(.defaultDeny, .nothingAllowed("doors")) }
        guard let rule = tools.doors.first(where: { $0.door.matches(door) && !$0.receive.isEmpty }) else {
            return .deny(list, .doorNotAllowed(door: door, peer: "any agent", direction: .receive))
        }
        return .allow(rule.rule)
    }

    private func judgeDoor(_ door: String, peer: String, _ direction: DoorDirection) -> Decision {
        func notAName(_ what: String, _ name: String) -> Decision {
            .deny(.defaultDeny, .malformedCall("\(what) \(quoted(name)) is not a name: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"))
        }
        guard PolicyBuilder.isValidName(door) else { return notAName("door name", door) }
        guard PolicyBuilder.isValidName(peer) else { return notAName("agent name", peer) }
        guard !tools.doors.isEmpty, let list = tools.doorList else { return .deny(.defaultDeny, .nothingAllowed("doors")) }
        guard let rule = firstDoorRule(door, peer, direction) else {
            return .deny(list, .doorNotAllowed(door: door, peer: peer, direction: direction))
        }
        return .allow(rule.rule)
    }
}
