import Glibc
import POSIX

extension AgentPolicy {
    /// The largest policy file read.
    public static let maximumFileSize = 1 << 20

    /// Reads and validates the policy at `path`: JSON for ".json", YAML for ".yaml" and ".yml".
    /// The only I/O in this module.
    public static func load(path: String) throws(PolicyError) -> AgentPolicy {
        try loadWithSource(path: path).policy
    }

    /// `load(path:)`, with the exact bytes the policy was read from (what an audit log's
    /// policy-load entry digests).
    public static func loadWithSource(path: String) throws(PolicyError) -> (policy: AgentPolicy, source: [UInt8]) {
        let name = path
        let format: PolicyFormat
        if path.hasSuffix(".json") {
            format = .json
        } else if path.hasSuffix(".yaml") || path.hasSuffix(".yml") {
            format = .yaml
        } else {
            throw PolicyError(file: name, line: nil, field: "", message: "unknown policy format (name it .yaml, .yml or .json)")
        }
        let bytes = try readFile(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw PolicyError(file: name, line: nil, field: "", message: "not UTF-8 text")
        }
        return (try parse(text, format: format, file: name), bytes)
    }

    private static func readFile(_ path: String) throws(PolicyError) -> [UInt8] {
        func failure(_ what: String) -> PolicyError {
            PolicyError(file: path, line: nil, field: "", message: "\(what): \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("cannot stat") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw PolicyError(file: path, line: nil, field: "", message: "not a regular file") }
        do { return try FileIO.readAll(fd, limit: maximumFileSize) } catch {
            let message = error.errno == EFBIG ? "larger than \(maximumFileSize) bytes" : "cannot read: \(error.reason)"
            throw PolicyError(file: path, line: nil, field: "", message: message)
        }
    }
}
