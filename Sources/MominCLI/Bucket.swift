import ArgumentParser
import Audit
import Buckets
import Glibc
import Merkle
import POSIX

/// `momin bucket`: append-only, content-addressed bucket stores (docs/buckets.md).
struct BucketCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bucket",
        abstract: "Put, get, query and verify entries of a bucket store.",
        subcommands: [BucketPut.self, BucketGet.self, BucketQueryCommand.self, BucketVerify.self])
}

/// The options every subcommand that names a namespace shares.
struct BucketLocation: ParsableArguments {
    @Option(help: ArgumentHelp("The bucket store (SQLite).", valueName: "path"))
    var db: String

    @Option(help: ArgumentHelp("The namespace: \"/\"-separated names.", valueName: "ns"))
    var namespace: String
}

/// `momin bucket put --db PATH --namespace NS KEY [--tag T]... [--file F]`.
struct BucketPut: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Append a new version of KEY, its value read from stdin (or --file).",
        discussion: """
            Prints the entry: index, key, size, content hash (SHA-256), tags. The store and its \
            signing key (<db>.key, mode 0600) are made on first use; the namespace's head is \
            signed before the command exits. There is no delete.
            """)

    @OptionGroup var location: BucketLocation

    @Argument(help: "The key (UTF-8, 1 to 1024 bytes, no control characters).")
    var key: String

    @Option(name: .customLong("tag"), help: ArgumentHelp("A tag (repeatable; at most 16, each 1 to 64 bytes).", valueName: "tag"))
    var tags: [String] = []

    @Option(help: ArgumentHelp("Read the value from this file instead of stdin.", valueName: "file"))
    var file: String?

    @Option(name: .customLong("key"), help: ArgumentHelp("The signing key (default: <db>.key, made on first use).", valueName: "file"))
    var signingKey: String?

    func run() throws {
        let value = try readValue(file)
        let store: BucketStore
        do { store = try BucketStore(path: location.db, options: BucketStore.Options(keyPath: signingKey)) } catch {
            throw CLIError.usage("\(error)")
        }
        let entry: BucketEntry
        do { entry = try store.put(namespace: location.namespace, key: key, value: value, tags: tags) } catch {
            try? store.close()
            if case .invalid = error { throw CLIError.usage("\(error)") }
            throw CLIError("\(error)", .failure)
        }
        do { try store.close() } catch { throw CLIError("\(error)", .failure) }
        emit(Array((entryLine(entry) + "\n").utf8))
    }
}

/// `momin bucket get --db PATH --namespace NS KEY [--proof]`.
struct BucketGet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Write the newest value of KEY to stdout, byte for byte.",
        discussion: """
            The value is checked against its content hash before it is written. With --proof the \
            entry's inclusion proof against the namespace's newest signed head is checked with \
            the public key and described on stderr. Exits 1 if the key has no entry or the store \
            is damaged where it was read.
            """)

    @OptionGroup var location: BucketLocation

    @Argument(help: "The key.")
    var key: String

    @Flag(help: "Check (and print on stderr) the entry's inclusion proof against the latest signed head.")
    var proof = false

    @Option(help: ArgumentHelp("The signer's public key for --proof (default: <db>.key.pub).", valueName: "file"))
    var pubkey: String?

    func run() throws {
        let publicKey = proof ? try loadPublicKey(pubkey ?? BucketVerifier.defaultPublicKeyPath(forStore: location.db), given: pubkey != nil) : nil
        let store = try openReader(location.db)
        defer { try? store.close() }
        let found: BucketValue?
        do { found = try store.get(namespace: location.namespace, key: key) } catch {
            if case .invalid = error { throw CLIError.usage("\(error)") }
            throw CLIError("\(error)", .failure)
        }
        guard let found else { throw CLIError("\(BucketError.notFound(namespace: location.namespace, key: key))", .failure) }
        if let publicKey {
            do {
                let proof = try store.inclusionProof(for: found.entry)
                try proof.verify(publicKey: publicKey, value: found.value)
                var text = "namespace \(location.namespace) entry \(found.entry.index): leaf \(found.entry.leafHash.hex) is in head \(proof.head.sequence)"
                    + " (tree size \(proof.head.treeSize), root \(proof.head.root.hex)), signed by \(publicKey); proof of \(proof.path.count) nodes:\n"
                for node in proof.path { text += "  \(node.hex)\n" }
                writeStandardError(text)
            } catch {
                throw CLIError("\(error)", .failure)
            }
        }
        emit(found.value)
    }
}

/// `momin bucket query --db PATH --namespace NS [--prefix P] [--tag T]... [--since T] [--until T] [--latest] [--limit N]`.
struct BucketQueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "List the entries of a namespace that pass every filter, in index order.",
        discussion: """
            One line per entry, tab-separated: index, key, size, content hash (SHA-256), tags \
            (comma-separated, - for none), time (RFC 3339, UTC). TIME is nanoseconds since the \
            Unix epoch or RFC 3339 (2025-01-31T12:00:00Z, fractions allowed); --since is \
            inclusive, --until exclusive. Every version is listed unless --latest.
            """)

    @OptionGroup var location: BucketLocation

    @Option(help: ArgumentHelp("Keys that start with these bytes.", valueName: "prefix"))
    var prefix: String?

    @Option(name: .customLong("tag"), help: ArgumentHelp("Entries with this tag (repeatable: all of them).", valueName: "tag"))
    var tags: [String] = []

    @Option(help: ArgumentHelp("Entries put at or after TIME.", valueName: "time"))
    var since: String?

    @Option(help: ArgumentHelp("Entries put before TIME.", valueName: "time"))
    var until: String?

    @Flag(help: "Only the newest version of each key.")
    var latest = false

    @Option(help: "At most N entries.")
    var limit: Int?

    func run() throws {
        if let limit, limit < 0 { throw CLIError.usage("--limit \(limit) is out of range: 0 or more entries") }
        let query = BucketQuery(namespace: location.namespace, keyPrefix: prefix, tags: tags,
                                since: try since.map { try parseTime($0, option: "--since") },
                                until: try until.map { try parseTime($0, option: "--until") }, latestOnly: latest, limit: limit)
        let store = try openReader(location.db)
        defer { try? store.close() }
        let entries: [BucketEntry]
        do { entries = try store.query(query) } catch {
            if case .invalid = error { throw CLIError.usage("\(error)") }
            throw CLIError("\(error)", .failure)
        }
        var text = ""
        for entry in entries { text += entryLine(entry) + "\n" }
        emit(Array(text.utf8))
    }
}

/// `momin bucket verify --db PATH [--pubkey FILE] [--strict]`.
struct BucketVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a bucket store: every entry, value and signed head of every namespace.",
        discussion: """
            Exits 0 with a one-line summary when the store is intact; 1 naming the first bad \
            entry (namespace and index), head or value and why when it is not; 2 on bad input (no \
            such file, no readable key, not a bucket store).
            """)

    @Option(help: ArgumentHelp("The bucket store (SQLite).", valueName: "path"))
    var db: String

    @Option(help: ArgumentHelp("The signer's public key: 64 hex digits or 32 raw bytes (default: <db>.key.pub).", valueName: "file"))
    var pubkey: String?

    @Flag(help: "Treat entries after the last signed head of their namespace as an error.")
    var strict = false

    func run() throws {
        guard access(db, F_OK) == 0 else { throw CLIError.usage("bucket store \(db): \(describeErrno())") }
        let key = try loadPublicKey(pubkey ?? BucketVerifier.defaultPublicKeyPath(forStore: db), given: pubkey != nil)
        let outcome: BucketVerifier.Outcome
        do { outcome = try BucketVerifier.verify(path: db, publicKey: key, strict: strict) } catch {
            throw CLIError.usage("\(error)")
        }
        switch outcome {
        case .intact(let summary):
            var line = "bucket store \(db): intact: \(summary.namespaces) namespaces, \(summary.entries) entries, "
                + "\(summary.values) values, \(summary.signedHeads) signed heads"
            if summary.unsignedEntries > 0 { line += ", \(summary.unsignedEntries) unsigned after the last heads" }
            line += ", key \(key)\n"
            emit(Array(line.utf8))
        case .broken(let finding):
            throw CLIError("bucket store \(db): \(finding)", .failure)
        }
    }
}

// MARK: Helpers

private func openReader(_ db: String) throws -> BucketStore {
    do { return try BucketStore(path: db, options: BucketStore.Options(readOnly: true)) } catch {
        throw CLIError.usage("\(error)")
    }
}

/// index, key, size, content hash, tags, time: tab-separated.
private func entryLine(_ entry: BucketEntry) -> String {
    [String(entry.index), entry.key, String(entry.size), entry.contentHash.hex,
     entry.tags.isEmpty ? "-" : entry.tags.joined(separator: ","), rfc3339(entry.time)].joined(separator: "\t")
}

/// The value of a put: the file's bytes or stdin's, refused past the value limit.
private func readValue(_ file: String?) throws -> [UInt8] {
    let fd = file.map { open($0, O_RDONLY | O_CLOEXEC) } ?? 0
    let name = file ?? "stdin"
    guard fd >= 0 else { throw CLIError.usage("cannot read \(name): \(describeErrno())") }
    defer { if file != nil { close(fd) } }
    do { return try FileIO.readAll(fd, limit: BucketLimits.valueBytes) } catch {
        if error.errno == EFBIG {
            throw CLIError.usage("the value in \(name) is over \(BucketLimits.valueBytes) bytes (16 MiB), the limit")
        }
        throw CLIError.usage("cannot read \(name): \(error.reason)")
    }
}

/// Nanoseconds since the epoch as RFC 3339 UTC with nine fraction digits.
private func rfc3339(_ nanoseconds: UInt64) -> String {
    var seconds = time_t(nanoseconds / 1_000_000_000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ value: Int32, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(width - digits.count, 0)) + digits
    }
    let fraction = String(nanoseconds % 1_000_000_000)
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
        + String(repeating: "0", count: 9 - fraction.count) + fraction + "Z"
}

/// Nanoseconds since the epoch, or RFC 3339 in UTC (`Z`) with up to nine fraction digits.
func parseTime(_ text: String, option: String) throws -> UInt64 {
    if let nanoseconds = UInt64(text) { return nanoseconds }
    let bad = CLIError.usage("\(option) \(text) is not a time: nanoseconds since the Unix epoch or RFC 3339 such as 2025-01-31T12:00:00Z")
    let bytes = Array(text.utf8)
    guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z") else { throw bad }
    func number(_ range: Range<Int>) throws -> Int32 {
        guard range.upperBound <= bytes.count, let value = Int32(String(decoding: bytes[range], as: UTF8.self)) else { throw bad }
        return value
    }
    let separators: [(Int, Character)] = [(4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":")]
    for (offset, character) in separators where Character(UnicodeScalar(bytes[offset])) != character { throw bad }
    var parts = tm()
    parts.tm_year = try number(0..<4) - 1900
    parts.tm_mon = try number(5..<7) - 1
    parts.tm_mday = try number(8..<10)
    parts.tm_hour = try number(11..<13)
    parts.tm_min = try number(14..<16)
    parts.tm_sec = try number(17..<19)
    guard (0...11).contains(parts.tm_mon), (1...31).contains(parts.tm_mday), (0...23).contains(parts.tm_hour),
          (0...59).contains(parts.tm_min), (0...60).contains(parts.tm_sec) else { throw bad }
    var fraction: UInt64 = 0
    if bytes.count > 20 {
        let digits = bytes[20..<(bytes.count - 1)]
        guard bytes[19] == UInt8(ascii: "."), (1...9).contains(digits.count), digits.allSatisfy({ (0x30...0x39).contains($0) }) else { throw bad }
        fraction = UInt64(String(decoding: digits, as: UTF8.self))! * UInt64(pow10(9 - digits.count))
    } else if bytes[19] != UInt8(ascii: "Z") {
        throw bad
    }
    let seconds = timegm(&parts)
    guard seconds >= 0 else { throw bad }
    return UInt64(seconds) * 1_000_000_000 + fraction
}

private func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { result, _ in result * 10 } }
