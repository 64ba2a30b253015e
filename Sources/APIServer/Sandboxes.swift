import Doors
import FoundationEssentials
import Gateway
import Glibc
import GuestClient
import Host
import Images
import POSIX
import Synchronization

/// What `momin serve` does with sandboxes, over the Host library the CLI uses: start them as
/// `momin start` does, run commands and move files through the tool gateway as `momin exec` and
/// `momin cp` do, stop them as `momin stop` does. It adds what a server needs: sandboxes that
/// stop when idle, adopted again by a restarted server, and callers who may not name host paths.
public final class Sandboxes: Sendable {
    public struct Configuration: Sendable {
        /// Stop a sandbox this server created after this long without a call or a running command.
        public var idleSeconds: Double = 1800
        /// The audit log every sandbox gets unless its (owner) creator names one.
        public var audit: String?
        /// Where `policy: NAME` (no /) is found: NAME.yaml or NAME.json in this directory.
        public var policies: String?

        public init() {}
    }

    /// The sandbox record this server keeps in each VM's directory (`StartRequest.records`).
    struct Record: Codable {
        var idleTimeoutSeconds: Double
        var createdBy: String
        /// The creator's uid, or for a TCP client its token's name: a caller other than the
        /// server's owner sees and uses only the sandboxes it created.
        var creatorUID: UInt32?
        var creatorToken: String?

        enum CodingKeys: String, CodingKey {
            case idleTimeoutSeconds = "idle_timeout_seconds", createdBy = "created_by", creatorUID = "creator_uid",
                 creatorToken = "creator_token"
        }

        /// Whether `caller` made the sandbox this record is of.
        func isCreator(_ caller: Caller) -> Bool {
            switch caller.identity {
            case .local(let uid, _, _, _): creatorToken == nil && creatorUID == uid
            case .token(let name, _): creatorToken == name
            }
        }

        static let file = "api.json"
    }

    public let environment: HostEnvironment
    public let images: ImageStore
    public let configuration: Configuration
    let control: VMControl

    /// Per managed sandbox: when it was last used, and how many commands are running in it.
    private struct Activity {
        var last: UInt64
        var running = 0
    }
    private let activity = Mutex<[String: Activity]>([:])
    /// The background commands of each sandbox.
    let background = BackgroundCommands()
    /// Creates under way: their launches wait on children of their own, which `reapChildren`
    /// must leave alone.
    private let creating = Mutex(0)

    public init(environment: HostEnvironment, images: ImageStore, configuration: Configuration) throws(HostError) {
        self.environment = environment
        self.images = images
        self.configuration = configuration
        control = VMControl(registry: try VMRegistry.open(environment), environment: environment)
    }

    var registry: VMRegistry { control.registry }

    // MARK: Create, list, stop

    public func create(_ body: CreateSandbox, caller: Caller) throws(Problem) -> SandboxInfo {
        if !caller.isOwner {
            let named = [("kernel", body.kernel), ("initrd", body.initrd), ("cmdline", body.cmdline), ("audit", body.audit),
                         ("audit_key", body.auditKey), ("witness", body.witness), ("buckets", body.buckets)]
                .filter { $0.1 != nil }.map(\.0)
                + (body.disks?.isEmpty == false ? ["disks"] : [])
                + (body.image?.contains("/") == true ? ["image (a path)"] : [])
                + (body.policy?.contains("/") == true ? ["policy (a path)"] : [])
            if let first = named.first {
                throw Problem(status: 403, title: "forbidden",
                              detail: "\(first): only this server's owner may name host paths or boot settings; use image and policy names (docs/api.md, \"Who may call\")")
            }
        }
        let idle = body.idleTimeoutSeconds ?? configuration.idleSeconds
        guard idle.isFinite, idle > 0 else { throw Problem(status: 400, title: "bad request", detail: "idle_timeout_seconds \(idle) must be a number of seconds > 0") }
        let name = body.name ?? Self.newName()
        var machine = MachineRequest()
        machine.image = body.image
        machine.vcpus = body.vcpus ?? machine.vcpus
        machine.memoryMiB = body.memoryMiB ?? machine.memoryMiB
        machine.timeout = body.timeoutSeconds ?? 0
        machine.kernel = body.kernel
        machine.initrd = body.initrd
        machine.commandLine = body.cmdline ?? machine.commandLine
        machine.disks = body.disks ?? []
        machine.overlay = body.overlay
        machine.scratch = body.scratch
        machine.entropySeed = body.entropySeed
        let governance = GovernanceRequest(policy: try body.policy.map(policyPath), audit: body.audit ?? configuration.audit,
                                           auditKey: body.auditKey, witness: body.witness)
        var request = StartRequest(name: name, machine: machine, governance: governance, buckets: body.buckets)
        let record = Record(idleTimeoutSeconds: idle, createdBy: caller.description, creatorUID: caller.uid, creatorToken: caller.tokenName)
        request.records = [Record.file: (try? Array(JSONEncoder().encode(record))) ?? []]
        creating.withLock { $0 += 1 }
        defer { creating.withLock { $0 -= 1 } }
        do { try VMStart(environment: environment, images: images).start(request) } catch { throw Problem(error) }
        touch(name)
        return try info(name)
    }

    /// A policy named without a / is looked for in the configured directory.
    func policyPath(_ policy: String) throws(Problem) -> String {
        if policy.contains("/") { return policy }
        guard let directory = configuration.policies else {
            throw Problem(status: 400, title: "bad request", detail: "policy \(policy): this server has no policy directory (momin serve --policies DIR); name a file with a /")
        }
        guard Self.isName(policy) else { throw Problem(status: 400, title: "bad request", detail: "policy \(policy): not a policy name") }
        for suffix in [".yaml", ".yml", ".json"] where access(directory + "/" + policy + suffix, R_OK) == 0 {
            return directory + "/" + policy + suffix
        }
        throw Problem(status: 400, title: "bad request", detail: "policy \(policy): no \(policy).yaml, .yml or .json in \(directory)")
    }

    /// A name the registry would take (`VMRegistry.validate`).
    static func isName(_ name: String) -> Bool { (try? VMRegistry.validate(name)) != nil }

    static func newName() -> String { randomName("sbx-") }

    /// `prefix` and 8 random hex digits: a sandbox's or a background command's name.
    static func randomName(_ prefix: String) -> String {
        var bytes = [UInt8](repeating: 0, count: 4)
        bytes.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
        return prefix + hexBytes(bytes)
    }

    /// Every VM on this host's registry that `caller` may see (all of them for the owner and the
    /// server itself), a stale one cleaned as it is seen (as `momin ps` does).
    public func list(for caller: Caller? = nil) -> [SandboxInfo] {
        registry.names().sorted().compactMap { try? info($0, for: caller) }
    }

    /// One sandbox, asked for by name: a call addressed to it, which counts as use.
    public func get(_ name: String, for caller: Caller? = nil) throws(Problem) -> SandboxInfo {
        let found = try info(name, for: caller)
        if found.managed { touch(name) }
        return found
    }

    /// Whether `caller` may see and use sandbox `name`: the owner (and the server, nil) any of
    /// them; anyone else only those it created. The others are "not found" to it, not forbidden,
    /// so that it learns nothing of them.
    func visible(_ name: String, to caller: Caller?) -> Bool {
        guard let caller, !caller.isOwner else { return true }
        return record(name)?.isCreator(caller) ?? false
    }

    public func info(_ name: String, for caller: Caller? = nil) throws(Problem) -> SandboxInfo {
        guard Self.isName(name), visible(name, to: caller) else { throw Problem(status: 404, title: "not found", detail: "no sandbox named \(name)") }
        let state: String, pid: Int32?
        switch registry.state(name) {
        case .absent: throw Problem(status: 404, title: "not found", detail: "no sandbox named \(name)")
        case .running(let running): (state, pid) = ("running", running)
        case .starting: (state, pid) = ("starting", nil)
        case .stale(let why):
            control.free(name)
            forget(name)
            throw Problem(status: 404, title: "not found", detail: "sandbox \(name) was not running (\(why)); its stale state was cleaned")
        }
        let numbers = registry.info(name).split(separator: " ")
        let record = self.record(name)
        return SandboxInfo(name: name, state: state, pid: pid, vcpus: numbers.first.flatMap { Int($0) },
                           memoryMiB: numbers.dropFirst().first.flatMap { Int($0) }, parent: registry.parent(of: name),
                           children: registry.descendants(of: name), managed: record != nil,
                           idleTimeoutSeconds: record?.idleTimeoutSeconds, createdBy: record?.createdBy)
    }

    func record(_ name: String) -> Record? {
        guard let bytes = try? FileIO.readFile(registry.directory(name) + "/" + Record.file, limit: 4096) else { return nil }
        return try? JSONDecoder().decode(Record.self, from: Data(bytes))
    }

    /// Stops a sandbox and its sub-agents; `reason` is what the log's vm-stop says.
    public func stop(_ name: String, reason: String, caller: Caller? = nil) throws(Problem) {
        _ = try info(name, for: caller)
        if let parent = registry.parent(of: name) {
            throw Problem(status: 409, title: "conflict", detail: "sandbox \(name) is a sub-agent of \(parent): stop its parent, or let the parent stop it")
        }
        do { try control.stop(name, reason: reason) } catch { throw Problem(error) }
        forget(name)
    }

    /// Stops every sandbox whose record names `caller` as its creator, exactly (pid and all: one
    /// process's sandboxes); returns their names.
    public func stopAll(createdBy caller: Caller, reason: String) -> [String] {
        registry.names().sorted().filter { record($0)?.createdBy == caller.description }.compactMap { name in
            do throws(Problem) {
                try stop(name, reason: reason)
                return name
            } catch {
                environment.warn("sandbox \(name): could not be stopped: \(error.detail)")
                return nil
            }
        }
    }

    // MARK: Commands and files

    /// The exec a command body asks for, checked: its request, its input, and its program's name.
    func execRequest(_ command: RunCommand) throws(Problem) -> (ExecRequest, DoorsClient.ExecInput, String) {
        guard let first = command.argv.first, !first.isEmpty else { throw Problem(status: 400, title: "bad request", detail: "argv: no command given") }
        if let cwd = command.cwd, !cwd.hasPrefix("/") { throw Problem(status: 400, title: "bad request", detail: "cwd \(cwd): the working directory must be an absolute path") }
        var input = DoorsClient.ExecInput.none
        if let stdin = command.stdin {
            guard let bytes = Data(base64Encoded: stdin) else { throw Problem(status: 400, title: "bad request", detail: "stdin is not base64") }
            input = .bytes(Array(bytes))
        }
        var variables = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"]
        for entry in command.env ?? [] {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex, !entry.contains("\0") else {
                throw Problem(status: 400, title: "bad request", detail: "env \(entry): not NAME=VALUE")
            }
            let prefix = entry[...equals]
            variables.removeAll { $0.hasPrefix(prefix) }
            variables.append(entry)
        }
        var timeout: UInt32?
        if let seconds = command.timeoutSeconds {
            guard seconds.isFinite, seconds > 0 else { throw Problem(status: 400, title: "bad request", detail: "timeout_seconds \(seconds) must be > 0") }
            timeout = UInt32(min(seconds * 1000, Double(UInt32.max)))
        }
        return (ExecRequest(argv: command.argv, env: variables, cwd: command.cwd ?? "/", timeoutMilliseconds: timeout), input, first)
    }

    /// Runs a command through the sandbox's gateway; `event` hears its output and its end.
    public func run(_ name: String, _ command: RunCommand, caller: Caller, event: (CommandEvent) -> Void) throws(Problem) {
        let (request, input, first) = try execRequest(command)
        let gateway = try self.gateway(name, caller: caller)
        begin(name)
        defer { end(name) }
        let report: ExitReport
        do throws(GatewayError) {
            report = try gateway.exec(request, input: input) { isStdout, bytes in
                var line = CommandEvent(type: isStdout ? "stdout" : "stderr")
                line.data = Data(bytes).base64EncodedString()
                event(line)
            }
        } catch {
            throw Problem(error, vm: name, what: first)
        }
        event(Self.exitEvent(report))
    }

    static func exitEvent(_ report: ExitReport) -> CommandEvent {
        var end = CommandEvent(type: "exit")
        switch report.status {
        case .exited(let code): end.exitCode = Int(code)
        case .signaled(let signal): end.signal = Int(signal)
        }
        end.timedOut = report.timedOut
        return end
    }

    // MARK: Background commands

    /// Starts a command on a thread of its own and answers at once. It counts as a running
    /// command for the idle timer until it ends; its output is kept (`BackgroundCommands`).
    public func start(_ name: String, _ command: RunCommand, caller: Caller) throws(Problem) -> BackgroundCommand {
        let (request, input, first) = try execRequest(command)
        let gateway = try self.gateway(name, caller: caller)
        let running = BackgroundCommands.Command(id: BackgroundCommands.newID(), argv: command.argv)
        try background.add(running, to: name)
        begin(name)
        do {
            try POSIXThread.detach(name: "api-command") { [self] in
                defer { end(name) }
                do throws(GatewayError) {
                    let report = try gateway.exec(request, input: input, shouldKill: { running.killRequested.load(ordering: .relaxed) },
                                                  killPollMilliseconds: 200) { isStdout, bytes in running.append(stdout: isStdout, bytes) }
                    running.finish(Self.exitEvent(report))
                } catch {
                    var failed = CommandEvent(type: "error")
                    failed.problem = Problem(error, vm: name, what: first)
                    running.finish(failed)
                }
            }
        } catch {
            end(name)
            var failed = CommandEvent(type: "error")
            failed.problem = Problem(status: 500, title: "internal error", detail: "cannot start a thread for the command: \(error)")
            running.finish(failed)
        }
        return running.info(output: false)
    }

    /// Sandbox `name`'s background commands, oldest first, without their output.
    public func backgroundCommands(_ name: String, caller: Caller) throws(Problem) -> BackgroundCommandList {
        _ = try info(name, for: caller)
        return BackgroundCommandList(commands: background.all(in: name).map { $0.info(output: false) })
    }

    /// One background command with its output; with `kill`, it is asked to end first (the
    /// guest kills its process group; the answer may still say running).
    public func backgroundCommand(_ name: String, id: String, kill: Bool = false, caller: Caller) throws(Problem) -> BackgroundCommand {
        _ = try info(name, for: caller)
        guard let command = background.command(id, in: name) else {
            throw Problem(status: 404, title: "not found", detail: "no background command \(id) in sandbox \(name)")
        }
        if kill { command.killRequested.store(true, ordering: .relaxed) }
        touch(name)
        return command.info(output: true)
    }

    /// Reads a guest file through the gateway, passing its bytes on as they come: at most
    /// `length` of them when given, else to the file's end.
    public func readFile(_ name: String, path: String, length: UInt64? = nil, caller: Caller,
                         received: ([UInt8]) -> Void) throws(Problem) -> UInt64 {
        try fileCall(name, path: path, caller: caller) { gateway throws(GatewayError) in
            try gateway.readFile(ReadFileRequest(path: path, length: length), received: received)
        }
    }

    /// Writes a guest file through the gateway from what `source` yields until its end.
    public func writeFile(_ name: String, path: String, caller: Caller, from source: Int32) throws(Problem) -> UInt64 {
        try fileCall(name, path: path, caller: caller) { gateway throws(GatewayError) in
            try gateway.writeFile(WriteFileRequest(path: path), from: source)
        }
    }

    /// Writes `bytes` to a guest file through the gateway (by way of a temporary file).
    public func writeFile(_ name: String, path: String, caller: Caller, bytes: [UInt8]) throws(Problem) -> UInt64 {
        let fd = try TemporaryFile.open()
        defer { close(fd) }
        do throws(SystemError) { try FileIO.writeAll(fd, bytes) } catch {
            throw Problem(status: 500, title: "internal error", detail: "cannot hold the file's bytes: \(error)")
        }
        try TemporaryFile.rewind(fd)
        return try writeFile(name, path: path, caller: caller, from: fd)
    }

    /// A guest path's type, size, mode and times, if the policy lets the caller read it.
    public func stat(_ name: String, path: String, followSymlinks: Bool, caller: Caller) throws(Problem) -> FileInfo {
        try fileCall(name, path: path, caller: caller) { gateway throws(GatewayError) in
            FileInfo(path: path, try gateway.stat(StatRequest(path: path, followSymlinks: followSymlinks)))
        }
    }

    /// A guest directory's entries, if the policy lets the caller read it.
    public func list(_ name: String, path: String, caller: Caller) throws(Problem) -> DirectoryListing {
        try fileCall(name, path: path, caller: caller) { gateway throws(GatewayError) in
            DirectoryListing(path: path, try gateway.list(path))
        }
    }

    /// A file call on an absolute path, through the sandbox's gateway, counted as use.
    private func fileCall<T>(_ name: String, path: String, caller: Caller,
                             _ call: (ToolGateway) throws(GatewayError) -> T) throws(Problem) -> T {
        guard path.hasPrefix("/") else { throw Problem(status: 400, title: "bad request", detail: "path \(path): must be absolute") }
        let gateway = try self.gateway(name, caller: caller)
        begin(name)
        defer { end(name) }
        do { return try call(gateway) } catch { throw Problem(error, vm: name, what: path) }
    }

    /// The sandbox's gateway, with its governance, logging `caller` with each call it makes.
    func gateway(_ name: String, caller: Caller) throws(Problem) -> ToolGateway {
        guard Self.isName(name), visible(name, to: caller) else { throw Problem(status: 404, title: "not found", detail: "no sandbox named \(name)") }
        if case .absent = registry.state(name) { throw Problem(status: 404, title: "not found", detail: "no sandbox named \(name)") }
        let gateway: ToolGateway
        do { gateway = try control.governedGateway(name) } catch { throw Problem(error) }
        gateway.session.caller = caller.description
        return gateway
    }

    // MARK: Idle sandboxes

    private func touch(_ name: String) {
        let now = MonotonicClock.nanoseconds()
        activity.withLock { $0[name, default: Activity(last: now)].last = now }
    }

    private func begin(_ name: String) {
        let now = MonotonicClock.nanoseconds()
        activity.withLock { $0[name, default: Activity(last: now)].running += 1 }
    }

    private func end(_ name: String) {
        let now = MonotonicClock.nanoseconds()
        activity.withLock { table in
            table[name, default: Activity(last: now)].running -= 1
            table[name]?.last = now
        }
    }

    private func forget(_ name: String) {
        activity.withLock { _ = $0.removeValue(forKey: name) }
        background.forget(name)
    }

    /// Takes over the sandboxes a previous server created: each running one's idle time starts
    /// now; what a dead VMM left is cleaned. Returns the names adopted.
    @discardableResult
    public func adopt() -> [String] {
        var adopted: [String] = []
        for name in registry.names().sorted() {
            switch registry.state(name) {
            case .stale: control.free(name)
            case .running where record(name) != nil:
                touch(name)
                adopted.append(name)
            default: continue
            }
        }
        return adopted
    }

    /// What a server does every few seconds: stop the idle sandboxes, reap the exited children.
    public func tend() {
        stopIdle()
        reapChildren()
    }

    /// Reaps the server's exited children: the momin-vmm and agent host of each sandbox it
    /// started are its children, detached, and become zombies when they stop. Skipped while a
    /// create runs, whose launch waits on its own children.
    public func reapChildren() {
        creating.withLock { count in
            guard count == 0 else { return }
            var status: Int32 = 0
            while waitpid(-1, &status, WNOHANG) > 0 {}
        }
    }

    /// Stops every managed sandbox idle past its limit (no call, no running command); returns their names.
    @discardableResult
    public func stopIdle(now: UInt64 = MonotonicClock.nanoseconds()) -> [String] {
        var stopped: [String] = []
        for name in registry.names().sorted() {
            guard let record = record(name), case .running = registry.state(name) else { continue }
            let idle: Double? = activity.withLock { table in
                guard let entry = table[name] else {
                    table[name] = Activity(last: now)  // first seen now: counted from here
                    return nil
                }
                guard entry.running == 0, now > entry.last else { return nil }
                return Double(now - entry.last) / 1e9
            }
            guard let idle, idle >= record.idleTimeoutSeconds else { continue }
            do throws(Problem) {
                try stop(name, reason: "idle for \(Int(idle)) s, past its \(Int(record.idleTimeoutSeconds)) s (momin serve)")
                stopped.append(name)
            } catch {
                environment.warn("sandbox \(name): idle, but it could not be stopped: \(error.detail)")
            }
        }
        return stopped
    }
}
