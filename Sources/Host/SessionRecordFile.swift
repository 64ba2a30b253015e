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

    /// Writes the record next to `path` and renames it into place, so a reader never sees half.
    public static func write(_ path: String, config: MachineConfiguration, policy: LoadedPolicy?,
                             calls: [CallObservation]) throws(HostError) {
        guard let seed = config.entropySeed else { throw .failed("the session had no entropy seed") }
        let kernel = SessionRecord.Input(path: Paths.absolute(config.kernelPath), sha256: try digest(of: config.kernelPath))
        let initrd = try config.initrdPath.map { p throws(HostError) in SessionRecord.Input(path: Paths.absolute(p), sha256: try digest(of: p)) }
        let recordedPolicy = policy.map { SessionRecord.Input(path: Paths.absolute($0.path), sha256: $0.digest) }
        let record = SessionRecord(seed: seed, vcpus: config.vcpus, memoryMiB: config.memoryMiB, commandLine: config.commandLine,
                                   kernel: kernel, initrd: initrd, policy: recordedPolicy, calls: calls)
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

    /// The recorded exec requests, in order; anything else recorded is bad input.
    public static func requests(of record: SessionRecord, path: String) throws(HostError) -> [ExecRequest] {
        var requests: [ExecRequest] = []
        for (index, call) in record.calls.enumerated() {
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
    public static func checkInputs(of record: SessionRecord) throws(HostError) {
        for input in [record.kernel] + [record.initrd, record.policy].compactMap({ $0 }) {
            guard try digest(of: input.path) == input.sha256 else {
                throw .badInput("\(input.path) is not the file the session was recorded with (SHA-256 differs)")
            }
        }
    }
}
