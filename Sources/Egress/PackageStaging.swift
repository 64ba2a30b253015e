import Glibc
import POSIX
import Synchronization

/// Wheels the host fetched for its agents' installs, kept until each guest has taken them
/// (docs/hands.md, "Installing packages"). Each install is a directory of its own under
/// `root`, a directory only the host can reach; its files are named by their place in the
/// install, never by anything an index or a guest wrote. An agent reads only its own installs,
/// and keeps its newest `keptPerAgent`; older ones are removed.
public final class PackageStaging: Sendable {
    public let root: String
    public static let keptPerAgent = 2
    private let installs = Mutex<[Staged]>([])

    struct Staged {
        var id: String
        var agent: String
        var directory: String
        var sizes: [UInt64]
    }

    /// Uses `root`, made (mode 0700) when it is not there; it must be a directory this process owns.
    public init(root: String) throws(PackageStagingError) {
        if mkdir(root, 0o700) != 0 && errno != EEXIST { throw PackageStagingError("cannot make \(root): \(describeErrno())") }
        var st = stat()
        guard lstat(root, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
            throw PackageStagingError("\(root) is not a directory of this user's with mode 0700")
        }
        self.root = root
    }

    /// A new install's directory and id.
    func begin() throws(PackageStagingError) -> (id: String, directory: String) {
        var generator = SystemRandomNumberGenerator()
        let id = String(generator.next() as UInt64, radix: 16) + String(generator.next() as UInt64, radix: 16)
        let directory = "\(root)/\(id)"
        guard mkdir(directory, 0o700) == 0 else { throw PackageStagingError("cannot make \(directory): \(describeErrno())") }
        return (id, directory)
    }

    /// The path of file `index` of an install begun.
    static func path(_ directory: String, _ index: Int) -> String { "\(directory)/\(index).whl" }

    /// Keeps a finished install for `agent`, removing the agent's oldest beyond `keptPerAgent`.
    func keep(id: String, agent: String, directory: String, sizes: [UInt64]) {
        let evicted: [Staged] = installs.withLock { list in
            list.append(Staged(id: id, agent: agent, directory: directory, sizes: sizes))
            let mine = list.filter { $0.agent == agent }
            guard mine.count > Self.keptPerAgent else { return [] }
            let old = Set(mine.prefix(mine.count - Self.keptPerAgent).map(\.id))
            defer { list.removeAll { old.contains($0.id) } }
            return list.filter { old.contains($0.id) }
        }
        for staged in evicted { Self.remove(staged.directory, files: staged.sizes.count) }
    }

    /// Removes an install's directory and its first `files` files.
    static func remove(_ directory: String, files: Int) {
        for index in 0..<files { unlink(path(directory, index)) }
        rmdir(directory)
    }

    /// Up to `max` bytes of file `file` of `agent`'s install `id` from `offset`; empty at or
    /// past its end; nil when the agent has no such install or file.
    public func read(agent: String, install id: String, file: UInt32, offset: UInt64, max: Int) -> Result<[UInt8], PackageStagingError> {
        guard let staged = installs.withLock({ list in list.first { $0.id == id && $0.agent == agent } }) else {
            return .failure(PackageStagingError("no install \(id) of this agent is kept (an agent keeps its newest \(Self.keptPerAgent))"))
        }
        guard Int(file) < staged.sizes.count else {
            return .failure(PackageStagingError("install \(id) has \(staged.sizes.count) files, not \(UInt64(file) + 1)"))
        }
        let size = staged.sizes[Int(file)]
        guard offset < size else { return .success([]) }
        let count = Int(min(UInt64(max), size - offset))
        let fd = open(Self.path(staged.directory, Int(file)), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return .failure(PackageStagingError("the staged file is gone: \(describeErrno())")) }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: count)
        let read: Int
        do { read = try bytes.withUnsafeMutableBytes { buffer throws(SystemError) in try FileIO.preadFully(fd, into: buffer, at: Int(offset)) } } catch {
            return .failure(PackageStagingError("reading the staged file: \(error)"))
        }
        guard read == count else { return .failure(PackageStagingError("reading the staged file: it is shorter than fetched")) }
        return .success(bytes)
    }

    /// Removes every install of `agent` (its VM is gone).
    public func removeAll(agent: String) {
        let gone = installs.withLock { list in
            defer { list.removeAll { $0.agent == agent } }
            return list.filter { $0.agent == agent }
        }
        for staged in gone { Self.remove(staged.directory, files: staged.sizes.count) }
    }
}

public struct PackageStagingError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
