import FoundationEssentials
import Synchronization

/// Commands started with `"background": true` (docs/api.md, "Background commands"): each runs
/// on a thread of its own through its sandbox's gateway, with its output kept in a bounded
/// window, until it exits or is killed. The table is bounded per sandbox.
final class BackgroundCommands: Sendable {
    /// The bytes kept of each stream of one command: the newest; older ones are counted as dropped.
    static let windowBytes = 256 << 10
    /// Commands kept per sandbox, running or done. To make room the oldest done one is forgotten;
    /// a running one never is. With the window, what a guest's output can hold of the server's
    /// memory is bounded: 16 × 2 × 256 KiB = 8 MiB per sandbox.
    static let perSandbox = 16

    /// One stream's newest bytes, never more than `windowBytes`.
    struct Window {
        private(set) var kept: [UInt8] = []
        private(set) var dropped: UInt64 = 0

        mutating func append(_ chunk: [UInt8]) {
            let window = BackgroundCommands.windowBytes
            if chunk.count >= window {
                dropped += UInt64(kept.count + chunk.count - window)
                kept = Array(chunk.suffix(window))
                return
            }
            let cut = max(0, kept.count + chunk.count - window)
            if cut > 0 {
                dropped += UInt64(cut)
                kept.removeFirst(cut)
            }
            kept += chunk
        }
    }

    final class Command: Sendable {
        let id: String
        let argv: [String]
        let killRequested = Atomic<Bool>(false)
        private let state = Mutex<(stdout: Window, stderr: Window, end: CommandEvent?)>((Window(), Window(), nil))

        init(id: String, argv: [String]) {
            self.id = id
            self.argv = argv
        }

        func append(stdout: Bool, _ bytes: [UInt8]) {
            state.withLock { if stdout { $0.stdout.append(bytes) } else { $0.stderr.append(bytes) } }
        }

        func finish(_ end: CommandEvent) {
            state.withLock { $0.end = end }
        }

        var isRunning: Bool { state.withLock { $0.end == nil } }

        /// What the API answers about it; its output too when `output`.
        func info(output: Bool) -> BackgroundCommand {
            state.withLock { state in
                var info = BackgroundCommand(id: id, argv: argv, state: state.end == nil ? "running" : "done")
                info.killRequested = killRequested.load(ordering: .relaxed)
                if let end = state.end {
                    info.exitCode = end.exitCode
                    info.signal = end.signal
                    info.timedOut = end.timedOut
                    info.problem = end.problem
                }
                if output {
                    info.stdout = Data(state.stdout.kept).base64EncodedString()
                    info.stderr = Data(state.stderr.kept).base64EncodedString()
                    info.droppedBytes = state.stdout.dropped + state.stderr.dropped
                }
                return info
            }
        }
    }

    private let table = Mutex<[String: [Command]]>([:])

    /// Adds a command to sandbox `name`'s table, or says why there is no room.
    func add(_ command: Command, to name: String) throws(Problem) {
        try table.withLock { table throws(Problem) in
            var commands = table[name, default: []]
            if commands.count >= Self.perSandbox {
                guard let done = commands.firstIndex(where: { !$0.isRunning }) else {
                    throw Problem(status: 409, title: "conflict",
                                  detail: "\(Self.perSandbox) background commands are running in \(name); wait for one to end or kill one")
                }
                commands.remove(at: done)
            }
            commands.append(command)
            table[name] = commands
        }
    }

    func command(_ id: String, in name: String) -> Command? {
        table.withLock { $0[name]?.first { $0.id == id } }
    }

    func all(in name: String) -> [Command] {
        table.withLock { $0[name] ?? [] }
    }

    /// Forgets a stopped sandbox's commands (their threads end with its connection).
    func forget(_ name: String) {
        _ = table.withLock { $0.removeValue(forKey: name) }
    }

    static func newID() -> String { Sandboxes.randomName("cmd-") }
}
