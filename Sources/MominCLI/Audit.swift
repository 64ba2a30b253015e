import ArgumentParser
import Audit
import Glibc
import Merkle
import POSIX

/// `momin audit`: the signed audit log (docs/audit.md).
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check or exercise a signed audit log.",
        subcommands: [AuditVerify.self, AuditHead.self, AuditShow.self, AuditWriteTest.self])
}

/// `--pubkey FILE` and `--key-fingerprint HEX`: the key that checks a log's heads, pinned by a
/// file kept apart from the log or by its fingerprint; without either, the key beside the log.
struct KeyPinOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The signer's public key: 64 hex digits or 32 raw bytes (default: <db>.key.pub, beside the log: not a pin).",
                               valueName: "file"))
    var pubkey: String?

    @Option(help: ArgumentHelp("The signer's key fingerprint, SHA-256 of its public key, 64 hex digits (as momin audit head prints it): the key used must have it.",
                               valueName: "hex"))
    var keyFingerprint: String?

    // ValidationError, not CLIError: ArgumentParser passes only that on as bad input (exit 2).
    func validate() throws {
        if let keyFingerprint, keyFingerprint.utf8.count != 64 || Hex.decode(keyFingerprint.lowercased()) == nil {
            throw ValidationError("--key-fingerprint \(keyFingerprint) is not 64 hex digits (SHA-256 of the public key, as momin audit head prints it)")
        }
    }

    /// The key for the log at `db` and how it was found, for the summary line ("from FILE
    /// (pinned)", "from FILE beside the log (not pinned)"). A key without the pinned
    /// fingerprint fails (exit 1) naming both fingerprints.
    func key(forLog db: String) throws -> (key: AuditPublicKey, source: String) {
        try validate()
        let path = pubkey ?? AuditVerifier.defaultPublicKeyPath(forLog: db)
        let key = try loadPublicKey(path, given: pubkey != nil)
        if let pinned = keyFingerprint?.lowercased(), key.fingerprint != pinned {
            throw CLIError("audit log \(db): the key in \(path) has fingerprint \(key.fingerprint), not the pinned \(pinned)", .failure)
        }
        let source = switch (pubkey, keyFingerprint) {
        case (.some, _): "from \(path) (pinned)"
        case (nil, .some): "from \(path) beside the log (pinned by fingerprint)"
        case (nil, nil): "from \(path) beside the log (not pinned)"
        }
        return (key, source)
    }
}

/// `momin audit verify --db PATH [--pubkey FILE] [--key-fingerprint HEX] [--head FILE] [--strict]`.
struct AuditVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify an audit log: every leaf, the order of the rows, every signed tree head.",
        discussion: """
            Exits 0 with a one-line summary when the log is intact; 1 with the first bad entry \
            (or head) and why when it is not, or when the key does not have the pinned \
            fingerprint; 2 on bad input (no such file, no readable key or head file, not an \
            audit log). Entries after the last signed head (a writer that stopped before \
            signing them) are counted in the summary, and are an error only with --strict. \
            With --head, the log must also extend the head kept in FILE (momin audit head's \
            output, or a witness file, whose last line is taken): a log cut back to an earlier \
            signed state, heads and all, fails naming the entries cut. Without --pubkey or \
            --key-fingerprint the key is taken from beside the log, and the summary says so.
            """)

    @Option(help: ArgumentHelp("The audit log (SQLite).", valueName: "path"))
    var db: String

    @OptionGroup var pin: KeyPinOptions

    @Option(help: ArgumentHelp("A head kept apart from the log (momin audit head's output, or a witness file: its last line) that the log must extend.",
                               valueName: "file"))
    var head: String?

    @Flag(help: "Treat entries after the last signed head as an error.")
    var strict = false

    func run() throws {
        guard access(db, F_OK) == 0 else { throw CLIError.usage("audit log \(db): \(describeErrno())") }
        let (key, keySource) = try pin.key(forLog: db)
        let kept: AuditVerifier.KeptHead?
        do { kept = try head.map { path throws(AuditError) in AuditVerifier.KeptHead(try PublishedHead.load(path: path), source: path) } } catch {
            throw CLIError.usage("\(error)")
        }
        let outcome: AuditVerifier.Outcome
        let logID: LogID
        do {
            outcome = try AuditVerifier.verify(path: db, publicKey: key, strict: strict, kept: kept)
            logID = try AuditReader.logID(path: db)
        } catch {
            throw CLIError.usage("\(error)")
        }
        switch outcome {
        case .intact(let summary):
            var line = "audit log \(db): intact: \(summary.entries) entries, \(summary.signedHeads) signed heads"
            if summary.signedHeads > 0 { line += " (last at tree size \(summary.signedSize))" }
            if summary.unsignedEntries > 0 { line += ", \(summary.unsignedEntries) unsigned after the last head" }
            if let kept { line += ", extends the head in \(kept.source) (tree size \(kept.published.head.treeSize))" }
            line += ", root \(summary.root.hex), log \(logID), key \(key) \(keySource)\n"
            emit(Array(line.utf8))
        case .broken(let finding):
            throw CLIError("audit log \(db): \(finding)", .failure)
        }
    }
}

/// `momin audit head --db PATH [--pubkey FILE] [--key-fingerprint HEX]`: the latest signed head, as JSON.
struct AuditHead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "head",
        abstract: "Print an audit log's latest signed head as one line of JSON, to keep apart from the log.",
        discussion: """
            {"log_id", "sequence", "tree_size", "root", "time", "signature", "key_fingerprint"} \
            (docs/audit.md, "Head files"). The head's signature is checked with the key first \
            (--pubkey, --key-fingerprint, or the key beside the log); later, momin audit verify \
            --head FILE shows that the log still extends it. Exits 1 when the log has no signed \
            head or the head does not verify; 2 on bad input.
            """)

    @Option(help: ArgumentHelp("The audit log (SQLite).", valueName: "path"))
    var db: String

    @OptionGroup var pin: KeyPinOptions

    func run() throws {
        guard access(db, F_OK) == 0 else { throw CLIError.usage("audit log \(db): \(describeErrno())") }
        let (key, keySource) = try pin.key(forLog: db)
        let latest: SignedTreeHead?
        do { latest = try AuditReader.latestHead(path: db) } catch { throw CLIError.usage("\(error)") }
        guard let head = latest else { throw CLIError("audit log \(db) has no signed head yet", .failure) }
        guard head.isValid(for: key) else {
            throw CLIError("audit log \(db): head \(head.sequence) (tree size \(head.treeSize)) does not verify with key \(key) \(keySource)", .failure)
        }
        emit(Array((PublishedHead(head: head, keyFingerprint: key.fingerprint).json + "\n").utf8))
    }
}

/// `momin audit show --db PATH [--agent NAME]`: the entries, one line each.
struct AuditShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print an audit log's entries, one line each (it checks nothing: momin audit verify does).",
        discussion: """
            Lines: INDEX request #ID AGENT TOOL ARGUMENTS; INDEX decision #ID allow|deny RULE[: REASON]; \
            INDEX result #ID status N, B bytes, sha256 H; INDEX vm-start VM; INDEX vm-stop VM REASON; \
            INDEX policy-load SOURCE sha256 H; INDEX run-refused VM REASON; \
            INDEX disk-attach|disk-detach VM NAME PATH ro|rw SIZE bytes, IDENTITY, sha256 H|not read; \
            INDEX connection-end #ID ADDRESS sent S, received R bytes, D ms, END[, content kept]; \
            INDEX brain-call #ID MODEL status N, USAGE, sent S, received R bytes, D ms, END, request sha256 H, \
            response sha256 H[, content kept]. Arguments that are text (bucket, door and spawn calls) \
            are shown with each newline as '; ', others as their size. With --agent, only that \
            agent's requests, decisions and results. With --elapsed, each line begins with +S.mmm, \
            the seconds since the first entry.
            """)

    @Option(help: ArgumentHelp("The audit log (SQLite).", valueName: "path"))
    var db: String

    static func describe(_ disk: DiskState) -> String {
        "\(disk.name) \(disk.path) \(disk.writable ? "rw" : "ro") \(disk.size) bytes, \(disk.identity), "
            + (disk.sha256.map { "sha256 \($0.hex)" } ?? "sha256 not read")
    }

    @Option(help: "Only the calls of this agent.")
    var agent: String?

    @Flag(help: "Begin each line with the seconds since the first entry (entries' wall-clock times).")
    var elapsed = false

    @Flag(help: "Under a connection-end or brain-call line, print the bytes its rule's log_content kept: '> ' lines sent, '< ' lines received.")
    var content = false

    /// Kept bytes, one line each: printable ASCII as is, `\\` and `\xHH` for the rest.
    static func contentLines(_ bytes: [UInt8], marker: String) -> String {
        guard !bytes.isEmpty else { return "" }
        var out = ""
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            var text = "    \(marker) "
            for byte in line {
                switch byte {
                case UInt8(ascii: "\\"): text += "\\\\"
                case 0x20..<0x7F: text.unicodeScalars.append(Unicode.Scalar(byte))
                default: text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
                }
            }
            out += text + "\n"
        }
        return out
    }

    func run() throws {
        guard access(db, F_OK) == 0 else { throw CLIError.usage("audit log \(db): \(describeErrno())") }
        let records: [AuditRecord]
        do { records = try AuditReader.records(path: db) } catch { throw CLIError.usage("\(error)") }
        var agents: [UInt64: String] = [:]
        var out = ""
        for record in records {
            let line: String
            var owner: String?
            switch record.event {
            case .toolRequest(let request):
                agents[request.requestID] = request.agent
                owner = request.agent
                let text = String(validating: request.arguments, as: UTF8.self)
                let shown = text.map { $0.split(separator: "\n").joined(separator: "; ") } ?? "(\(request.arguments.count) bytes)"
                line = "request #\(request.requestID) \(request.agent) \(request.tool) \(shown)" + (request.caller.map { " (asked by \($0))" } ?? "")
            case .decision(let decision):
                owner = agents[decision.requestID]
                let verdict = decision.verdict == .allow ? "allow" : "deny"
                line = "decision #\(decision.requestID) \(verdict) \(decision.rule)" + (decision.reason.isEmpty ? "" : ": \(decision.reason)")
            case .resultDigest(let result):
                owner = agents[result.requestID]
                line = "result #\(result.requestID) status \(result.status), \(result.byteCount) bytes, sha256 \(result.sha256.hex)"
            case .lifecycle(.vmStart(let vm)):
                line = "vm-start \(vm)"
            case .lifecycle(.vmStop(let vm, let reason)):
                line = "vm-stop \(vm) \(reason)"
            case .lifecycle(.policyLoad(let source, let sha256)):
                line = "policy-load \(source) sha256 \(sha256.hex)"
            case .lifecycle(.runRefused(let vm, let reason)):
                line = "run-refused \(vm) \(reason)"
            case .lifecycle(.diskAttach(let disk)):
                line = "disk-attach \(disk.vm) \(Self.describe(disk))"
            case .lifecycle(.diskDetach(let disk)):
                line = "disk-detach \(disk.vm) \(Self.describe(disk))"
            case .connectionEnd(let end):
                owner = agents[end.requestID]
                line = "connection-end #\(end.requestID) \(end.address.isEmpty ? "-" : end.address) sent \(end.bytesSent), "
                    + "received \(end.bytesReceived) bytes, \(end.durationMilliseconds) ms, \(end.end)"
                    + (end.sentContent.isEmpty && end.receivedContent.isEmpty ? "" : ", content kept")
            case .brainCall(let call):
                owner = agents[call.requestID]
                let usage = switch call.usage {
                case .none: "no usage"
                case .reported: "\(call.promptTokens) prompt + \(call.completionTokens) completion tokens"
                case .estimated: "at least \(call.completionTokens) completion tokens (estimated)"
                }
                line = "brain-call #\(call.requestID) \(call.model) status \(call.status), \(usage), sent \(call.bytesSent), "
                    + "received \(call.bytesReceived) bytes, \(call.durationMilliseconds) ms, \(call.end), "
                    + "request sha256 \(call.requestSHA256.hex), response sha256 \(call.responseSHA256.hex)"
                    + (call.requestContent.isEmpty && call.responseContent.isEmpty ? "" : ", content kept")
            }
            if let agent, owner != agent { continue }
            if elapsed, let first = records.first {
                // Wall-clock times: one set back is shown as +0.000, not as a negative.
                let ms = max(0, (Int64(bitPattern: record.time) - Int64(bitPattern: first.time)) / 1_000_000)
                let fraction = String(ms % 1000)
                out += "+\(ms / 1000).\(String(repeating: "0", count: 3 - fraction.count) + fraction) "
            }
            out += "\(record.index) \(line)\n"
            if content, case .connectionEnd(let end) = record.event {
                out += Self.contentLines(end.sentContent, marker: ">") + Self.contentLines(end.receivedContent, marker: "<")
            }
            if content, case .brainCall(let call) = record.event {
                out += Self.contentLines(call.requestContent, marker: ">") + Self.contentLines(call.responseContent, marker: "<")
            }
        }
        emit(Array(out.utf8))
    }
}

/// The public key that verifies a log or store's heads; usage errors hint at --pubkey when
/// the default path (beside the writer's default key) was tried.
func loadPublicKey(_ path: String, given: Bool) throws -> AuditPublicKey {
    do { return try AuditPublicKey.load(path: path) } catch {
        throw CLIError.usage("\(error)" + (given ? "" : " (give the signer's public key with --pubkey FILE)"))
    }
}

/// `momin audit write-test --db PATH --count N`: a real writer for crash tests and benchmarks.
struct AuditWriteTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write-test",
        abstract: "Append N synthetic entries to an audit log, printing each index once it is committed.",
        discussion: """
            Uses the same AuditLog API as the tool gateway: one transaction per entry, a signed \
            head every --sign-every entries, at most --sign-interval seconds after an entry, with \
            every lifecycle event (a vm-start every 300 entries) and on exit. Each index goes to stdout (unbuffered) \
            right after its commit, so a test that kills this process knows what must survive. \
            An existing log is resumed.
            """)

    @Option(help: ArgumentHelp("The audit log (SQLite); created if missing.", valueName: "path"))
    var db: String

    @Option(help: "How many entries to append.")
    var count: Int

    @Option(help: "Sign a tree head every K entries.")
    var signEvery: Int = Int(AuditLog.defaultSignEvery)

    @Option(help: "Sign a tree head at most this many seconds after an entry (0: only every --sign-every entries, with lifecycle events and on exit).")
    var signInterval: Double = Double(AuditLog.defaultSignInterval.components.seconds)

    @Option(help: ArgumentHelp("The signing key (default: <db>.key, made on first use).", valueName: "file"))
    var key: String?

    @Option(help: ArgumentHelp("A file that every signed head is appended to, one JSON line each (for momin audit verify --head).",
                               valueName: "file"))
    var witness: String?

    @Flag(help: "Wait for fsync on every commit (survives power loss, not only a crash of this process).")
    var fsyncEachCommit = false

    @Flag(help: "Print nothing per entry; report the rate at the end (stderr).")
    var quiet = false

    // ValidationError, not CLIError: ArgumentParser passes only that on as bad input (exit 2).
    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count \(count) is out of range: 0 or more entries") }
        guard signEvery >= 1 else { throw ValidationError("--sign-every \(signEvery) is out of range: at least 1") }
        guard signInterval >= 0, signInterval.isFinite, signInterval < 1e9 else {
            throw ValidationError("--sign-interval \(signInterval) is not a number of seconds ≥ 0")
        }
    }

    func run() throws {
        let log: AuditLog
        do {
            log = try AuditLog(path: db, options: AuditLog.Options(
                keyPath: key, signEvery: UInt64(signEvery), signInterval: signInterval > 0 ? .nanoseconds(Int64(signInterval * 1e9)) : nil,
                witnessPath: witness, durability: fsyncEachCommit ? .powerLoss : .processCrash))
        } catch {
            throw CLIError.usage("\(error)")
        }
        let start = MonotonicClock.nanoseconds()
        for n in 0..<count {
            let record: AuditRecord
            do { record = try log.append(Self.event(n)) } catch { throw CLIError("\(error)", .failure) }
            if !quiet { emit(Array("\(record.index)\n".utf8)) }
        }
        let elapsed = Double(MonotonicClock.nanoseconds() - start) / 1e9
        do { try log.close() } catch { throw CLIError("\(error)", .failure) }
        if quiet {
            let rate = elapsed > 0 ? Int(Double(count) / elapsed) : 0
            writeStandardError("momin audit write-test: \(count) entries in \(Int(elapsed * 1000)) ms (\(rate)/s)\n")
        }
    }

    /// A request, its decision and its result, with a VM or policy event now and then.
    static func event(_ n: Int) -> AuditEvent {
        let id = UInt64(n / 3)
        switch n % 3 {
        case 0 where n % 300 == 0:
            return .lifecycle(.vmStart(vm: "test-\(n / 300)"))
        case 0:
            return .toolRequest(ToolRequest(requestID: id, agent: "write-test", tool: "exec",
                                            arguments: Array("{\"argv\":[\"echo\",\"\(n)\"]}".utf8)))
        case 1:
            return .decision(Decision(requestID: id, verdict: n % 7 == 0 ? .deny : .allow, rule: "test-rule", reason: "synthetic"))
        default:
            return .resultDigest(ResultDigest(requestID: id, status: 0, byteCount: UInt64(n),
                                              sha256: Merkle.leafHash(Array("result \(n)".utf8))))
        }
    }
}
