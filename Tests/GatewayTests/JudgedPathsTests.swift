import Doors
import Foundation
import Gateway
import GuestClient
@testable import GuestClientTestSupport
import Policy
import Testing

/// What the gateway sends the guest is what the policy judged: every path resolved (the
/// guest's Resolve follows the symlinks), never the raw one, which the guest walks without
/// following any (Doors version 2). Issue 12: a policy that allows /tmp/** let
/// `momin cp NAME:/tmp/link/../version` read /proc/version, judged as /tmp/version while the
/// guest's kernel opened <link target>/../version.
@Suite struct JudgedPathsTests {
    /// A guest file system: directories, files, and symlinks to absolute targets.
    struct FakeFileSystem: Sendable {
        var directories: Set<String> = ["/", "/tmp", "/proc", "/proc/sys", "/evidence", "/evidence/disk", "/bin", "/usr", "/usr/bin"]
        var files: Set<String> = ["/proc/version", "/evidence/disk/notes.txt", "/bin/busybox"]
        var links: [String: String] = ["/tmp/link": "/proc/sys", "/evidence/current": "/evidence/disk", "/usr/bin/uname": "/bin/busybox",
                                       "/tmp/dangling": "/etc/cron.d/new", "/tmp/dir-link": "/tmp"]

        /// realpath(3): every symlink followed, "." and ".." taken as the kernel takes them.
        func resolve(_ path: String) -> String? {
            var resolved: [String] = []
            var pending = path.split(separator: "/").map(String.init)
            var hops = 0
            while !pending.isEmpty {
                let name = pending.removeFirst()
                if name == "." || name.isEmpty { continue }
                if name == ".." { _ = resolved.popLast(); continue }
                let candidate = "/" + (resolved + [name]).joined(separator: "/")
                if let target = links[candidate] {
                    hops += 1
                    guard hops < 40 else { return nil }
                    resolved = []
                    pending = target.split(separator: "/").map(String.init) + pending
                    continue
                }
                guard directories.contains(candidate) || files.contains(candidate) else { return nil }
                resolved.append(name)
            }
            return "/" + resolved.joined(separator: "/")
        }

        /// lstat(2) of a path without symlinks in its directories: whether something is there.
        func exists(_ path: String) -> Bool { directories.contains(path) || files.contains(path) || links[path] != nil }
    }

    struct Saw: Sendable {
        var requests: [DoorsMessage] = []
    }

    /// Resolve and Stat from `fs`; ReadFile of an existing file answered with its path's bytes,
    /// of anything else with not-found; Exec answered with exit 0.
    static func fakeGuest(_ fs: FakeFileSystem = FakeFileSystem()) throws -> (DoorsClient, Running<Saw>) {
        try connect { peer in
            var saw = Saw()
            while true {
                guard let frame = try? peer.receive() else { return saw }
                let id = frame.requestID
                let notFound = Frame(requestID: id, .error(ErrorReply(code: .notFound, message: "no such file")))
                switch frame.message {
                case .resolve(let path):
                    try peer.send(fs.resolve(path).map { Frame(requestID: id, .resolved(path: $0)) } ?? notFound)
                case .stat(let request):
                    let info = FileStat(type: .regular, permissions: 0o644, size: 0, mtimeSeconds: 0, mtimeNanoseconds: 0, nlink: 1,
                                        uid: 0, gid: 0)
                    try peer.send(fs.exists(request.path) ? Frame(requestID: id, .statResult(info)) : notFound)
                case .readFile(let request):
                    saw.requests.append(frame.message)
                    try peer.write(try peer.bytes(fs.files.contains(request.path)
                                  ? [Frame(requestID: id, .fileData(Array(request.path.utf8))), Frame(requestID: id, .fileEnd)]
                                  : [notFound]))
                case .writeFile:
                    saw.requests.append(frame.message)
                    try peer.send(Frame(requestID: id, .error(ErrorReply(code: .permissionDenied, message: "test stops here"))))
                case .exec:
                    saw.requests.append(frame.message)
                    try peer.send(Frame(requestID: id, .started(pid: 7)), Frame(requestID: id, .exit(ExitReport(status: .exited(code: 0)))))
                case .list(let path):
                    saw.requests.append(frame.message)
                    guard fs.directories.contains(path) else { try peer.send(notFound); break }
                    let prefix = path == "/" ? "/" : path + "/"
                    let children = (fs.directories.map { ($0, FileType.directory) } + fs.files.map { ($0, FileType.regular) }
                                    + fs.links.keys.map { ($0, FileType.symlink) })
                        .filter { $0.0.hasPrefix(prefix) && $0.0 != path && !$0.0.dropFirst(prefix.count).contains("/") }
                        .map { DirectoryEntry(name: String($0.0.dropFirst(prefix.count)), type: $0.1) }
                        .sorted { $0.name < $1.name }
                    // Two batches when there are two or more entries, as a guest with a long listing sends them.
                    let half = children.count / 2
                    try peer.send(Frame(requestID: id, .listEntries(Array(children[..<half]))), Frame(requestID: id, .listEntries(Array(children[half...]))),
                                  Frame(requestID: id, .listEnd))
                default:
                    throw FakeError("unexpected \(frame)")
                }
            }
        }
    }

    /// The paths of the ReadFile requests among `seen`.
    static func readPaths(_ seen: [DoorsMessage]) -> [String] {
        seen.compactMap { if case .readFile(let request) = $0 { request.path } else { nil } }
    }

    static func policy(_ text: String) throws -> AgentPolicy {
        try AgentPolicy.parse("version: 1\nagent: tester\n" + text, format: .yaml, file: "test.yaml")
    }

    /// The requests the fake guest saw, once the gateway and its client are gone.
    static func run(_ policy: AgentPolicy?, _ calls: (ToolGateway) -> Void) throws -> [DoorsMessage] {
        var (client, guest): (DoorsClient?, Running<Saw>) = try fakeGuest()
        var gateway: ToolGateway? = ToolGateway(agent: "tester", client: client!, policy: policy, log: nil)
        calls(gateway!)
        client = nil
        gateway = nil
        return try guest.join().requests
    }

    @Test func aSymlinkAndDotDotCannotLeadAReadOutOfWhatWasJudged() throws {
        let policy = try Self.policy("tools:\n  files:\n    read: [/tmp/**]\n")
        var received: [UInt8]?
        let seen = try Self.run(policy) { gateway in
            received = try? Array(gateway.readFileCollecting(ReadFileRequest(path: "/tmp/link/../version")))
        }
        // Judged as /tmp/version, and /tmp/version is what the guest was asked for (there is no
        // such file): never /tmp/link/../version, which its kernel would take to /proc/version.
        #expect(Self.readPaths(seen) == ["/tmp/version"])
        #expect(received == nil)
    }

    @Test func aReadThroughAnAllowedSymlinkIsSentResolved() throws {
        let policy = try Self.policy("tools:\n  files:\n    read: [/evidence/**]\n")
        var received: [UInt8]?
        let seen = try Self.run(policy) { gateway in
            received = try? Array(gateway.readFileCollecting(ReadFileRequest(path: "/evidence/current/notes.txt")))
        }
        #expect(Self.readPaths(seen) == ["/evidence/disk/notes.txt"])
        #expect(received == Array("/evidence/disk/notes.txt".utf8))
    }

    @Test func aDanglingSymlinkIsNotANameYetToBeCreatedEvenBehindAnotherSymlink() throws {
        // A write through /tmp/dangling would land in /etc/cron.d: refused before the guest
        // sees it, however the path reaches the link.
        let policy = try Self.policy("tools:\n  files:\n    write: [/tmp/**]\n")
        var denials: [GatewayError] = []
        let seen = try Self.run(policy) { gateway in
            for path in ["/tmp/dangling", "/tmp/dir-link/dangling"] {
                do throws(GatewayError) { _ = try gateway.writeFile(WriteFileRequest(path: path), from: -1) } catch { denials.append(error) }
            }
        }
        #expect(seen.isEmpty)
        #expect(denials.count == 2)
        for denial in denials {
            guard case .denied(let decision) = denial else { Issue.record("not a denial: \(denial)"); continue }
            #expect(decision.reason.contains("cannot be resolved"))
        }
    }

    @Test func anExecIsSentTheJudgedProgramAndDirectoryWithArgv0AsWritten() throws {
        let policy = try Self.policy("""
            tools:
              exec:
                - program: /usr/bin/uname
                  binary: /bin/busybox
                  args: any
                  cwd: [/evidence/**]
            """)
        let seen = try Self.run(policy) { gateway in
            _ = try? gateway.exec(ExecRequest(argv: ["/usr/bin/uname", "-r"], cwd: "/evidence/current"), input: .none) { _, _ in }
        }
        guard case .exec(let request)? = seen.first, seen.count == 1 else { Issue.record("saw \(seen)"); return }
        #expect(request.argv == ["/usr/bin/uname", "-r"])
        #expect(request.program == "/bin/busybox")
        #expect(request.cwd == "/evidence/disk")
    }

    /// A listing is judged as a read of the directory and sent resolved; the entries come back
    /// across batches whole; a directory outside the policy is never asked for.
    @Test func aListIsSentTheResolvedDirectoryAndDeniedOutsideThePolicy() throws {
        let policy = try Self.policy("tools:\n  files:\n    read: [/evidence/**, /usr/**]\n")
        var listed: [DirectoryEntry] = []
        var denial: GatewayError?
        var info: FileStat?
        var followed: GatewayError?
        let seen = try Self.run(policy) { gateway in
            listed = (try? gateway.list("/evidence/current")) ?? []
            // The link itself is under /usr; what it leads to (/bin/busybox) is not.
            info = try? gateway.stat(StatRequest(path: "/usr/bin/uname", followSymlinks: false))
            do throws(GatewayError) { _ = try gateway.stat(StatRequest(path: "/usr/bin/uname", followSymlinks: true)) } catch { followed = error }
            do throws(GatewayError) { _ = try gateway.list("/proc/sys") } catch { denial = error }
        }
        #expect(seen == [.list(path: "/evidence/disk")])
        #expect(listed == [DirectoryEntry(name: "notes.txt", type: .regular)])
        #expect(info?.type == .regular && info?.permissions == 0o644)
        guard case .denied? = followed else { Issue.record("a followed stat outside the policy: \(String(describing: followed))"); return }
        guard case .denied(let decision)? = denial else { Issue.record("not a denial: \(String(describing: denial))"); return }
        #expect(decision.rule.id == "tools.files.read")
    }

    /// A guest that lists more than the host takes ends the call, however it batches them.
    @Test func aListingPastTheBoundEndsTheCall() throws {
        let (client, guest) = try connect { peer in
            guard let frame = try? peer.receive(), case .list = frame.message else { throw FakeError("expected a list") }
            let batch = (0..<4).map { DirectoryEntry(name: "f\($0)", type: .regular) }
            try peer.send(Frame(requestID: frame.requestID, .listEntries(batch)), Frame(requestID: frame.requestID, .listEntries(batch)),
                          Frame(requestID: frame.requestID, .listEnd))
            return 0
        }
        var failure: GuestCallError?
        do throws(GuestCallError) { _ = try client.list("/tmp", maxEntries: 5) } catch { failure = error }
        #expect(failure?.description == "the guest's answer went past a bound: a listing of /tmp with more than 5 entries")
        _ = try? guest.join()
    }

    @Test func withoutAPolicyPathsAreResolvedTooAndTheGuestFindsTheProgram() throws {
        let seen = try Self.run(nil) { gateway in
            _ = try? gateway.readFileCollecting(ReadFileRequest(path: "/evidence/current/notes.txt"))
            _ = try? gateway.exec(ExecRequest(argv: ["uname", "-r"], cwd: "/evidence/current"), input: .none) { _, _ in }
        }
        #expect(seen.count == 2)
        #expect(Self.readPaths(seen) == ["/evidence/disk/notes.txt"])
        guard case .exec(let request)? = seen.last else { Issue.record("saw \(seen)"); return }
        #expect(request.program == nil)
        #expect(request.argv == ["uname", "-r"])
        #expect(request.cwd == "/evidence/disk")
    }
}

extension ToolGateway {
    /// The whole file, collected.
    func readFileCollecting(_ request: ReadFileRequest) throws(GatewayError) -> [UInt8] {
        var bytes: [UInt8] = []
        _ = try readFile(request) { bytes += $0 }
        return bytes
    }
}
