import Doors
import Glibc
import POSIX

/// Many clients at once, half of them crashing mid-transfer: the guest must finish the others'
/// transfers byte for byte, clean up after the dropped ones (their children killed, their
/// descriptors closed), and go on serving.
///
/// Connection i streams `bytes` bytes: even i a writeFile (then read back), odd i through an
/// exec of `cat` (echoed on stdout). Where i % 4 is 2 or 3 the client closes its socket once
/// the guest is provably mid-request (half the data taken, file open or `cat` running).
struct Stress {
    let target: Target
    let connections: Int
    let bytes: Int
    let directory = "/tmp/momin-probe-stress"

    init(_ target: Target, connections: Int, bytes: Int) {
        self.target = target
        self.connections = connections
        self.bytes = bytes
    }

    enum Kind: Sendable { case file, cat }

    struct Outcome: Sendable {
        var connected = false
        var passed = false
        var detail = "did not run"
    }

    func kind(_ i: Int) -> Kind { i % 2 == 0 ? .file : .cat }
    func drops(_ i: Int) -> Bool { i % 4 >= 2 }
    func path(_ i: Int) -> String { "\(directory)/\(i)" }

    func run() -> Bool {
        let checks = Checklist()
        say("stress: \(connections) connections, \(bytes) bytes each, every other one dropped mid-transfer")
        guard let control = checks.attempt("a control connection", { () throws(ProbeError) in try DoorsLink(target) }) else {
            return checks.summary("stress")
        }
        var nextID: UInt32 = 1
        func id() -> UInt32 {
            defer { nextID += 1 }
            return nextID
        }
        _ = checks.attempt("mkdir \(directory)") { () throws(ProbeError) in
            try control.call(.mkdir(MkdirRequest(path: directory, parents: true)), id: id())
        }
        let descriptorsBefore = checks.attempt("count the Doors server's descriptors") { () throws(ProbeError) in
            try initDescriptors(control, id: id())
        }

        // --- All connections open at once, then all transfers start together.
        let outcomes = OutcomeTable(count: connections)
        let gate = Gate(parties: connections)
        var threads: [POSIXThread] = []
        for i in 0..<connections {
            let job = self
            do {
                threads.append(try probeThread("probe-client") { job.client(i, gate: gate, outcomes: outcomes) })
            } catch {
                checks.check("start client thread \(i)", false, error.description)
                for _ in i..<connections { gate.arrive() }  // the threads already started must not wait for ever
                break
            }
        }
        Watchdog.board.set("main", "waiting for the client threads")
        for thread in threads { thread.join() }
        Watchdog.board.done("main")
        let results = outcomes.all()

        let connected = results.filter(\.connected).count
        checks.check("\(connections) Doors connections open at the same time", connected == connections,
                     "\(connected) connected; first problem: \(results.first { !$0.connected }?.detail ?? "-")")
        for (label, selected) in [
            ("writeFile transfers finished and read back identical", { (i: Int) in kind(i) == .file && !drops(i) }),
            ("cat transfers finished with stdout identical to stdin", { (i: Int) in kind(i) == .cat && !drops(i) }),
            ("writeFile transfers dropped mid-way (file open, half written)", { (i: Int) in kind(i) == .file && drops(i) }),
            ("cat transfers dropped mid-way (cat running, half its stdin sent)", { (i: Int) in kind(i) == .cat && drops(i) }),
        ] {
            let indices = (0..<connections).filter(selected)
            let bad = indices.filter { !results[$0].passed }
            checks.check("\(indices.count - bad.count)/\(indices.count) \(label)", bad.isEmpty,
                         bad.prefix(3).map { "#\($0): \(results[$0].detail)" }.joined(separator: "; "))
        }

        // --- What the dropped writers left: exactly the half the guest had taken.
        let half = bytes / 2
        let dropped = (0..<connections).filter { kind($0) == .file && drops($0) }
        var sizes: [String] = []
        Watchdog.board.set("main", "stat of the dropped writers' files")
        defer { Watchdog.board.done("main") }
        for i in dropped {
            if case .statResult(let stat)? = try? control.call(.stat(StatRequest(path: path(i))), id: id()), stat.size == UInt64(half) {
                continue
            }
            sizes.append("#\(i)")
        }
        checks.check("each dropped writeFile left exactly the \(half) bytes sent before the drop", sizes.isEmpty,
                     "wrong size or missing: \(sizes.prefix(5).joined(separator: ", "))")

        // --- The guest cleaned up: no cat left running, PID 1's descriptors back where they were.
        let cats = settle { () throws(ProbeError) in try runningCats(control, id: id()) == 0 }
        checks.check("no cat from a dropped connection is left running", cats.0, cats.1)
        if let descriptorsBefore {
            let descriptors = settle { () throws(ProbeError) in
                let now = try initDescriptors(control, id: id())
                guard now == descriptorsBefore else { throw .unexpected("the server has \(now) descriptors open, \(descriptorsBefore) before") }
                return true
            }
            checks.check("the Doors server (PID 1) holds as many descriptors as before (\(descriptorsBefore))", descriptors.0, descriptors.1)
        }

        // --- A newcomer is served as if nothing had happened.
        let fresh = checks.attempt("a fresh connection after the storm") { () throws(ProbeError) -> Bool in
            let link = try DoorsLink(target)
            let data = pattern(seed: 7777, count: bytes)
            let written = try link.writeFile(directory + "/fresh", data, id: 1)
            let back = try link.readFile(directory + "/fresh", id: 2)
            guard written == UInt64(data.count), back == data else {
                throw .unexpected("wrote \(written) bytes, read back \(back.count), identical: \(back == data)")
            }
            let (exit, output) = try link.run(["echo", "ok"], id: 3)
            guard exit.status == .exited(code: 0), output == Array("ok\n".utf8) else {
                throw .unexpected("echo ok gave \(exit.status) and '\(String(decoding: output, as: UTF8.self))'")
            }
            return true
        }
        if fresh == true { checks.check("a fresh connection writes, reads back and runs `echo ok`", true) }
        _ = checks.attempt("remove \(directory)") { () throws(ProbeError) in
            try control.call(.remove(RemoveRequest(path: directory, recursive: true)), id: id())
        }
        return checks.summary("stress")
    }

    /// One client thread: connect, wait for the others, transfer (or drop mid-way), verify.
    func client(_ i: Int, gate: Gate, outcomes: OutcomeTable) {
        var outcome = Outcome()
        let name = "client \(i) (\(kind(i))\(drops(i) ? ", drops" : ""))"
        let progress = { (doing: String) in Watchdog.board.set(name, doing) }
        defer { Watchdog.board.done(name) }
        progress("connecting")
        let link: DoorsLink
        do {
            link = try DoorsLink(target)
            outcome.connected = true
        } catch {
            outcome.detail = "connect: \(error)"
            outcomes.set(i, outcome)
            progress("waiting for the others at the gate (connect failed: \(error))")
            gate.arriveAndWait()
            return
        }
        progress("waiting for the others at the gate")
        gate.arriveAndWait()
        progress("transferring")
        do throws(ProbeError) {
            let data = pattern(seed: i, count: bytes)
            switch (kind(i), drops(i)) {
            case (.file, false):
                let written = try link.writeFile(path(i), data, id: 1)
                guard written == UInt64(data.count) else { throw .unexpected("the guest wrote \(written) of \(data.count) bytes") }
                progress("reading the file back")
                let back = try link.readFile(path(i), id: 2)
                guard back == data else { throw .unexpected("read back \(back.count) bytes that differ from what was written") }
            case (.cat, false):
                let (exit, output) = try link.run(["cat"], stdin: data, id: 1)
                guard exit.status == .exited(code: 0) else { throw .unexpected("cat ended with \(exit.status)") }
                guard output == data else { throw .unexpected("cat echoed \(output.count) bytes that differ from its \(data.count) of stdin") }
            case (.file, true):
                // Half the data, then a Ping: the guest handles frames in order, so its Pong
                // says the half is written and the file is still open.
                var outgoing = try link.streamingRequest(.writeFile(WriteFileRequest(path: path(i))), id: 1, data: data, upTo: bytes / 2)
                try link.encode(Frame(requestID: 2, .ping(nonce: UInt64(i))), into: &outgoing)
                try link.pump(outgoing) { frame throws(ProbeError) in
                    if case .error(let reply) = frame.message { throw .remote(reply) }
                    return frame.requestID == 2
                }
                link.stream.closeAbruptly()
            case (.cat, true):
                // Half of stdin, and wait until cat has echoed something: it is running.
                let request = ExecRequest(argv: ["cat"], env: ["PATH=/usr/bin:/bin"], sendsStdin: true)
                let outgoing = try link.streamingRequest(.exec(request), id: 1, data: data, upTo: bytes / 2)
                try link.pump(outgoing) { frame throws(ProbeError) in
                    switch frame.message {
                    case .error(let reply): throw .remote(reply)
                    case .exit(let report): throw .unexpected("cat ended early: \(report.status)")
                    case .stdoutData: return true
                    default: return false
                    }
                }
                link.stream.closeAbruptly()
            }
            outcome.passed = true
            outcome.detail = ""
        } catch {
            outcome.detail = error.description
        }
        outcomes.set(i, outcome)
    }

    /// Retries `probe` for up to 20 s: the guest cleans up a dropped connection on its own
    /// thread, a moment after the drop.
    func settle(_ probe: () throws(ProbeError) -> Bool) -> (Bool, String) {
        let deadline = MonotonicClock.seconds() + 20
        var last = "not checked"
        while true {
            do throws(ProbeError) {
                if try probe() { return (true, "") }
                last = "still not the case after 20 s"
            } catch {
                last = error.description
            }
            if MonotonicClock.seconds() > deadline { return (false, last) }
            usleep(250_000)
        }
    }

    /// How many descriptors the Doors server (momin-init, PID 1) has open: the parent of the
    /// shell that counts.
    func initDescriptors(_ link: DoorsLink, id: UInt32) throws(ProbeError) -> Int {
        let (exit, output) = try link.run(["sh", "-c", "ls /proc/$PPID/fd | wc -l"], id: id)
        let text = String(decoding: output, as: UTF8.self).filter { !$0.isWhitespace }
        guard exit.status == .exited(code: 0), let count = Int(text) else { throw .unexpected("counting /proc/1/fd gave '\(text)'") }
        return count
    }

    /// `cat` processes whose parent is the Doors server (the parent of the shell that counts,
    /// which uses only builtins): the children of dropped connections, if any survived.
    func runningCats(_ link: DoorsLink, id: UInt32) throws(ProbeError) -> Int {
        let script = """
            set -f; read -r s < /proc/$$/stat; set -- $s; server=$4; n=0
            for f in /proc/[0-9]*/stat; do
              read -r s < $f 2>/dev/null || continue; set -- $s
              [ "$2" = "(cat)" ] && [ "$4" = "$server" ] && n=$((n + 1))
            done
            echo $n
            """
        let (exit, output) = try link.run(["sh", "-c", script], id: id)
        let text = String(decoding: output, as: UTF8.self).filter { !$0.isWhitespace }
        guard exit.status == .exited(code: 0), let count = Int(text) else { throw .unexpected("counting cats gave '\(text)'") }
        if count > 0 { throw .unexpected("\(count) cat processes still running") }
        return count
    }
}

/// The client threads' outcomes, one slot each.
final class OutcomeTable: @unchecked Sendable {
    private let lock = Lock()
    private var slots: [Stress.Outcome]

    init(count: Int) { slots = Array(repeating: Stress.Outcome(), count: count) }

    func set(_ i: Int, _ outcome: Stress.Outcome) { lock.withLock { slots[i] = outcome } }
    func all() -> [Stress.Outcome] { lock.withLock { slots } }
}
