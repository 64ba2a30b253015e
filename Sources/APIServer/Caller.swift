import Glibc
import POSIX

/// Who is calling the API: a local process, as the kernel says (SO_PEERCRED, socket(7)), or a
/// TCP client by the name its bearer token is registered under; never what the client claims.
/// Written into the audit log with every call it makes (docs/api.md, "Who may call").
public struct Caller: Sendable, Equatable, CustomStringConvertible {
    public enum Identity: Sendable, Equatable {
        /// A process on this host, connected over the Unix socket.
        case local(uid: uid_t, gid: gid_t, pid: pid_t, user: String?)
        /// A client over TCP holding the token registered as `name`, from `peer` (`a.b.c.d:port`).
        case token(name: String, peer: String)
    }

    public var identity: Identity
    /// The server's own user: only it may name host paths (kernels, disks, policies, logs).
    /// Never a TCP client.
    public var isOwner: Bool
    /// The front end the call came through, for the log: `momin serve`, its MCP endpoint, or
    /// `momin mcp` on standard input.
    public var via = "momin serve"

    public init(uid: uid_t, gid: gid_t, pid: pid_t, user: String?, isOwner: Bool) {
        identity = .local(uid: uid, gid: gid, pid: pid, user: user)
        self.isOwner = isOwner
    }

    /// This process's own user: `momin mcp` on standard input calls as its owner.
    public static func thisProcess(via: String) -> Caller {
        var caller = Caller(uid: getuid(), gid: getgid(), pid: getpid(), user: CallerPolicy.userName(getuid()), isOwner: true)
        caller.via = via
        return caller
    }

    /// A TCP client admitted by its token.
    public static func token(_ name: String, peer: String) -> Caller {
        Caller(identity: .token(name: name, peer: peer))
    }

    private init(identity: Identity) {
        self.identity = identity
        isOwner = false
    }

    /// The local caller's uid; nil for a TCP client.
    public var uid: uid_t? {
        if case .local(let uid, _, _, _) = identity { return uid }
        return nil
    }

    /// The token's name for a TCP client; nil for a local caller.
    public var tokenName: String? {
        if case .token(let name, _) = identity { return name }
        return nil
    }

    /// `uid=1000(alice) pid=4242 via momin serve`, or `token ci from 127.0.0.1:50122 via momin
    /// serve`: what the audit log keeps.
    public var description: String {
        switch identity {
        case .local(let uid, _, let pid, let user): "uid=\(uid)\(user.map { "(\($0))" } ?? "") pid=\(pid) via \(via)"
        case .token(let name, let peer): "token \(name) from \(peer) via \(via)"
        }
    }
}

/// Who may call: the server's owner, and the members of one group (primary or supplementary,
/// from the group database at the time of the call). Everyone else is turned away before a
/// byte of their request is read.
public struct CallerPolicy: Sendable {
    public var owner: uid_t
    public var group: gid_t?

    public init(owner: uid_t = getuid(), group: gid_t? = nil) {
        self.owner = owner
        self.group = group
    }

    /// The connected peer on `fd`, if it may call; why not otherwise.
    public func admit(_ fd: Int32) -> Result<Caller, Problem> {
        var credentials = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else {
            return .failure(Problem(status: 403, title: "forbidden", detail: "the caller's credentials could not be read: \(describeErrno())"))
        }
        let user = Self.userName(credentials.uid)
        let caller = Caller(uid: credentials.uid, gid: credentials.gid, pid: credentials.pid, user: user, isOwner: credentials.uid == owner)
        if caller.isOwner { return .success(caller) }
        if let group, credentials.gid == group || (user.map { Self.groups(of: $0, primary: credentials.gid).contains(group) } ?? false) {
            return .success(caller)
        }
        return .failure(Problem(status: 403, title: "forbidden",
                                detail: "uid \(credentials.uid) is neither this server's owner (uid \(owner)) nor in its group\(group.map { " (gid \($0))" } ?? "")"))
    }

    /// `struct ucred` (socket(7)), which Glibc declares only under _GNU_SOURCE.
    struct PeerCredentials {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
    }

    static func userName(_ uid: uid_t) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else { return nil }
        return String(cString: name)
    }

    /// The user's groups, as getgrouplist(3) reads them (at most 1024).
    static func groups(of user: String, primary: gid_t) -> [gid_t] {
        var count: Int32 = 1024
        var groups = [gid_t](repeating: 0, count: Int(count))
        guard getgrouplist(user, primary, &groups, &count) >= 0 else { return [primary] }
        return Array(groups.prefix(Int(count)))
    }

    /// A group's id from its name or number.
    public static func groupID(_ text: String) -> gid_t? {
        if let number = gid_t(text) { return number }
        var entry = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(text, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return entry.gr_gid
    }
}
