import Crypto
import Doors
import Gateway
import Glibc
import MachineConfig
import Merkle
import POSIX

/// Session records on disk (`momin run --record`, `momin replay`): written whole, read bounded.
public enum SessionRecordFile {
    /// The largest record read back.
    public static let maximumBytes = 64 << 20

    /// SHA-256 of a file's bytes.
    public static func digest(of path: String) throws(HostError) -> MerkleHash {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw .badInput("cannot read \(path): \(describeErrno())") }
        defer { close(fd) }
        var hasher = SHA256()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { raw in retryingEINTR { Glibc.read(fd, raw.baseAddress, raw.count) } }
            guard n >= 0 else { throw .badInput("cannot read \(path): \(describeErrno())") }
            if n == 0 { break }
            hasher.update(data: chunk[0..<n])
        }
        return MerkleHash(bytes: Array(hasher.finalize()))!
    }

    /// What a run will be recorded with, before it runs (docs/replay.md): the machine, the
    /// inputs by digest, read-only disks with their options. A disk the VM may write cannot be
    /// replayed (its contents change under the run), and is refused.
    public static func prepare(config: MachineConfiguration, policy: LoadedPolicy?, rootImage: String?, overlay: String?,
                               disks: [DiskRequest], buckets: Bool) throws(HostError) -> SessionRecord {
        guard let seed = config.entropySeed else { throw .failed("the session has no entropy seed") }
        try refuseWritable(disks)
        let kernel = SessionRecord.Input(path: Paths.absolute(config.kernelPath), sha256: try digest(of: config.kernelPath))
        let initrd = try config.initrdPath.map { p throws(HostError) in SessionRecord.Input(path: Paths.absolute(p), sha256: try digest(of: p)) }
        let recordedPolicy = policy.map { SessionRecord.Input(path: Paths.absolute($0.path), sha256: $0.digest) }
        var record = SessionRecord(seed: seed, vcpus: config.vcpus, memoryMiB: config.memoryMiB, commandLine: config.commandLine,
                                   kernel: kernel, initrd: initrd, policy: recordedPolicy)
        record.image = try rootImage.map { p throws(HostError) in SessionRecord.Input(path: Paths.absolute(p), sha256: try digest(of: p)) }
        record.overlay = overlay
        record.disks = try disks.map { disk throws(HostError) in
            SessionRecord.Input(path: spec(disk), sha256: try digest(of: disk.path))
        }
        record.buckets = buckets
        return record
    }

    /// Refuses a disk the VM may write: a replay cannot have what the run wrote to it.
    public static func refuseWritable(_ disks: [DiskRequest]) throws(HostError) {
        if let writable = disks.first(where: \.writable) {
            throw .badInput("--record with a writable --disk \(writable.path): a replay cannot have what the run wrote to it")
        }
    }

    /// A read-only disk as the record writes it: its absolute path, `:ro` and its options, what
    /// `DiskRequest.parse` reads back.
    static func spec(_ disk: DiskRequest) -> String {
        var text = Paths.absolute(disk.path) + ":ro"
        if let name = disk.name { text += ",name=\(name)" }
        if let bps = disk.bytesPerSecond { text += ",bps=\(bps)" }
        if let iops = disk.operationsPerSecond { text += ",iops=\(iops)" }
        return text
    }

    /// The recorded read-only disks, as requests.
    public static func disks(of record: SessionRecord, path: String) throws(HostError) -> [DiskRequest] {
        try record.disks.map { disk throws(HostError) in
            do { return try DiskRequest.parse(disk.path) } catch { throw .badInput("\(path): \(error)") }
        }
    }

    /// Writes the record next to `path` and renames it into place, so a reader never sees half.
    public static func write(_ path: String, _ record: SessionRecord) throws(HostError) {
        let temporary = path + ".partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .failed(describeErrno()) }
        let written = (try? FileIO.writeAll(fd, Array(record.text.utf8))) != nil && fsync(fd) == 0
        close(fd)
        guard written, rename(temporary, path) == 0 else {
            let why = describeErrno()
            unlink(temporary)
            throw .failed(why)
        }
    }

    /// Reads and parses a record; one that cannot be read or parsed is bad input.
    public static func read(_ path: String) throws(HostError) -> SessionRecord {
        let bytes: [UInt8]
        do { bytes = try FileIO.readFile(path, limit: maximumBytes) } catch {
            if error.errno == EFBIG { throw .badInput("\(path) is larger than 64 MiB") }
            throw .badInput("cannot read \(path): \(error.reason)")
        }
        do { return try SessionRecord.parse(String(decoding: bytes, as: UTF8.self)) } catch {
            throw .badInput("\(path): \(error)")
        }
    }

    /// The run's own exec requests, in order: the calls whose tool is `exec` (the others the
    /// guest made itself, and makes again).
    public static func requests(of record: SessionRecord, path: String) throws(HostError) -> [ExecRequest] {
        var requests: [ExecRequest] = []
        for (index, call) in record.calls.enumerated() where call.tool == "exec" {
            var decoder = FrameDecoder()
            decoder.append(call.arguments[...])
            guard case .exec(let request)? = (try? decoder.next())?.message else {
                throw .badInput("\(path): call \(index + 1) is not an exec request")
            }
            requests.append(request)
        }
        return requests
    }

    /// Checks that each input the session was recorded with is the same file now, byte for byte.
    /// `disks` are the record's, as `disks(of:path:)` read them.
    public static func checkInputs(of record: SessionRecord, disks: [DiskRequest]) throws(HostError) {
        let inputs = [record.kernel] + [record.initrd, record.policy, record.image].compactMap({ $0 })
            + zip(record.disks, disks).map { SessionRecord.Input(path: $1.path, sha256: $0.sha256) }
        for input in inputs {
            guard try digest(of: input.path) == input.sha256 else {
                throw .badInput("\(input.path) is not the file the session was recorded with (SHA-256 differs)")
            }
        }
    }
}
