import Doors
import Glibc
import POSIX

/// The guest's /etc/hosts when egress is on: the guest has no DNS, so `brain.momin` must be
/// named there (hosts(5)), beside `localhost` for both families. An image's own file is kept
/// line for line; only what it lacks is appended.
public enum EgressHosts {
    public static let path = "/etc/hosts"

    /// The lines egress needs, each appended only when no line of `existing` already maps the
    /// name (for `localhost`, in that address family; for the Brain, to its address).
    public static func merged(_ existing: String?) -> String {
        var hasLocalhost4 = false
        var hasLocalhost6 = false
        var hasBrain = false
        for line in (existing ?? "").split(separator: "\n") {
            // hosts(5): an address, then names; "#" starts a comment.
            let fields = line.prefix { $0 != "#" }.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let address = fields.first else { continue }
            let names = fields.dropFirst().map { $0.lowercased() }
            if names.contains("localhost") {
                if address.contains(":") { hasLocalhost6 = true } else { hasLocalhost4 = true }
            }
            if address == EgressProtocol.brainAddress && names.contains(EgressProtocol.brainHost) { hasBrain = true }
        }
        var text = existing ?? ""
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        if !hasLocalhost4 { text += "127.0.0.1 localhost\n" }
        if !hasLocalhost6 { text += "::1 localhost\n" }
        if !hasBrain { text += "\(EgressProtocol.brainAddress) \(EgressProtocol.brainHost)\n" }
        return text
    }

    /// Makes the file at `path` hold what `merged` gives for it, creating its directory (mode
    /// 0755) if missing. A change is written to a new file beside it and renamed over it, so a
    /// reader never sees half a file. Call it after the root switch: the root processes see.
    public static func install(path: String = path) throws(SetupError) {
        let existing: String?
        do throws(SystemError) {
            existing = String(decoding: try FileIO.readFile(path, limit: 1 << 20), as: UTF8.self)
        } catch where error.errno == ENOENT {
            existing = nil
        } catch {
            throw SetupError(error)
        }
        let text = merged(existing)
        guard text != existing else { return }

        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            let directory = String(path[..<slash])
            guard mkdir(directory, 0o755) == 0 || errno == EEXIST else { throw SetupError(SystemError("mkdir", subject: directory)) }
        }
        let staging = path + ".momin-new"
        let fd = retryingEINTR { open(staging, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644) }
        guard fd >= 0 else { throw SetupError(SystemError("open", subject: staging)) }
        let file = Descriptor(fd)
        do throws(SystemError) {
            try FileIO.writeAll(file.raw, Array(text.utf8))
            try file.closeReportingErrors()
        } catch {
            unlink(staging)
            throw SetupError(error)
        }
        guard rename(staging, path) == 0 else {
            let failure = SystemError("rename", subject: path)
            unlink(staging)
            throw SetupError(failure)
        }
    }
}
