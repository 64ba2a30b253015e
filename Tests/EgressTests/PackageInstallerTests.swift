import Audit
import Crypto
import Egress
import Foundation
import Gateway
import Glibc
import Merkle
import Policy
import POSIX
import Synchronization
import Testing
import TLSTestSupport

/// `hands install pip` on the host, end to end but for the guest: a PEP 503 index served by a
/// real loopback HTTP server, a real audit log, wheels staged in a real directory.
@Suite struct PackageInstallerTests {
    /// Serves fixed bodies by path (404 otherwise) and keeps every path asked, in order.
    final class Index: @unchecked Sendable {
        let fd: Int32
        let port: UInt16
        let asked = Mutex<[String]>([])
        var files: [String: [UInt8]] = [:]

        init() throws { (fd, port) = try listenOnLoopback() }

        func start() throws {
            let files = self.files
            try POSIXThread.detach(name: "index") { [self] in
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 { return }
                    defer { close(client) }
                    var got: [UInt8] = []
                    var chunk = [UInt8](repeating: 0, count: 4096)
                    while !got.suffix(4).elementsEqual([13, 10, 13, 10]) {
                        let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                        if n <= 0 { break }
                        got += chunk[0..<n]
                    }
                    let path = String(decoding: got, as: UTF8.self).split(separator: " ").dropFirst().first.map(String.init) ?? ""
                    asked.withLock { $0.append(path) }
                    let head: String
                    var body: [UInt8] = []
                    if let found = files[path] {
                        body = found
                        head = "HTTP/1.1 200 OK\r\nContent-Type: \(path.hasSuffix("/") ? "text/html" : "application/octet-stream")\r\n"
                    } else {
                        head = "HTTP/1.1 404 Not Found\r\n"
                    }
                    _ = try? FileIO.sendAll(client, Array((head + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n").utf8) + body)
                }
            }
        }

        func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

        /// A wheel (any bytes: the host never opens one), its PEP 658 metadata, and its project
        /// page's link. `lie` gives the page a digest other than the file's.
        func wheel(_ name: String, _ version: String, requires: [String] = [], size: Int = 3000, lie: Bool = false) -> String {
            let filename = "\(name.replacing("-", with: "_"))-\(version)-py3-none-any.whl"
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ name.utf8.count) }
            let metadata = Array(("Metadata-Version: 2.1\nName: \(name)\nVersion: \(version)\n"
                + requires.map { "Requires-Dist: \($0)\n" }.joined()).utf8)
            files["/files/\(filename)"] = bytes
            files["/files/\(filename).metadata"] = metadata
            let sha = Hex.encode(SHA256.hash(data: lie ? bytes + [0] : bytes))
            return "<a href=\"../../files/\(filename)#sha256=\(sha)\" data-dist-info-metadata=\"sha256=\(Hex.encode(SHA256.hash(data: metadata)))\">\(filename)</a>"
        }

        func page(_ project: String, _ links: [String]) {
            files["/simple/\(project)/"] = Array("<html><body>\(links.joined())</body></html>".utf8)
        }

        var paths: [String] { asked.withLock { $0 } }
    }

    struct Rig {
        let dir: String
        let log: AuditLog
        let session: GovernedSession
        let staging: PackageStaging

        init(port: UInt16, allow: String, index: String? = nil) throws {
            dir = try makeTemporaryDirectory()
            log = try AuditLog(path: dir + "/audit.db", options: AuditLog.Options(keyPath: dir + "/audit.key"))
            let text = """
                version: 1
                agent: triage
                packages:
                  pip:
                    index: \(index ?? "http://127.0.0.1:\(port)/simple")
                    allow:
                \(allow)
                """
            session = GovernedSession(agent: "triage", policy: try AgentPolicy.parse(text, format: .yaml, file: "p.yaml"), log: log,
                                      resolver: LexicalPaths())
            staging = try PackageStaging(root: dir + "/staging")
        }

        func installer(refusal: Policy.Decision? = nil, configuration: PackageConfiguration = PackageConfiguration()) -> PackageInstaller {
            PackageInstaller(session: session, staging: staging, resolver: EgressRelayTests.Table(names: ["localhost": [.v4(0x7F00_0001)]]),
                             configuration: configuration, refusal: refusal)
        }

        /// (tool, verdict, rule or reason, result status and sha256) of each call, in order.
        func calls() throws -> [(tool: String, arguments: String, allowed: Bool, reason: String, status: Int64?, sha256: String?)] {
            var out: [(tool: String, arguments: String, allowed: Bool, reason: String, status: Int64?, sha256: String?)] = []
            var index: [UInt64: Int] = [:]
            for event in try AuditReader.records(path: dir + "/audit.db").map(\.event) {
                switch event {
                case .toolRequest(let request):
                    index[request.requestID] = out.count
                    out.append((request.tool, String(decoding: request.arguments, as: UTF8.self), false, "", nil, nil))
                case .decision(let decision):
                    if let at = index[decision.requestID] {
                        out[at].allowed = decision.verdict == .allow
                        out[at].reason = decision.reason
                    }
                case .resultDigest(let result):
                    if let at = index[result.requestID] {
                        out[at].status = result.status
                        out[at].sha256 = result.sha256.hex
                    }
                default: break
                }
            }
            return out
        }

        func close() {
            try? log.close()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// How `body` failed; a test failure when it did not.
    static func failure<T>(_ body: () throws -> T) throws -> PackageInstaller.Failure {
        let installed: T
        do { installed = try body() } catch let failure as PackageInstaller.Failure { return failure }
        throw POSIXError(.EINVAL, userInfo: ["installed": "\(installed)"])
    }

    func read(_ staging: PackageStaging, _ id: String, _ file: UInt32) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while true {
            let piece = try staging.read(agent: "triage", install: id, file: file, offset: UInt64(bytes.count), max: 1000).get()
            if piece.isEmpty { return bytes }
            bytes += piece
        }
    }

    @Test func anAllowedPackageAndItsDependencyAreFetchedCheckedLoggedAndStaged() throws {
        let index = try Index()
        index.page("momin-good", [index.wheel("momin-good", "1.0", requires: ["momin-dep>=1"]), index.wheel("momin-good", "2.0")])
        index.page("momin-dep", [index.wheel("momin-dep", "1.0", size: 2500)])
        try index.start()
        defer { index.stop() }
        let rig = try Rig(port: index.port, allow: "      - {name: momin-good, versions: \"<2\"}\n      - momin-dep")
        defer { rig.close() }

        let installed = try rig.installer().install(ecosystem: "pip", requirements: ["Momin_Good"])
        #expect(installed.files.map { "\($0.name) \($0.version) \($0.filename) \($0.size)" }
            == ["momin-good 1.0 momin_good-1.0-py3-none-any.whl 3000", "momin-dep 1.0 momin_dep-1.0-py3-none-any.whl 2500"])
        for (number, file) in installed.files.enumerated() {
            let served = index.files["/files/\(file.filename)"]!
            #expect(try read(rig.staging, installed.id, UInt32(number)) == served)
            #expect(file.sha256 == Hex.encode(SHA256.hash(data: served)))
        }
        // Another agent cannot read them; an install id that is not kept is an error.
        #expect(throws: PackageStagingError.self) { try rig.staging.read(agent: "other", install: installed.id, file: 0, offset: 0, max: 10).get() }
        #expect(throws: PackageStagingError.self) { try rig.staging.read(agent: "triage", install: installed.id, file: 2, offset: 0, max: 10).get() }
        // 2.0 is beyond the rule: never fetched.
        #expect(!index.paths.contains { $0.contains("momin_good-2.0") })

        let calls = try rig.calls()
        #expect(calls.map(\.tool) == ["package-install", "package", "package"])
        #expect(calls.allSatisfy { $0.allowed && $0.status == 0 })
        #expect(calls[0].arguments == "ecosystem=pip\nrequirement=Momin_Good\n")
        #expect(calls[1].arguments.contains("name=momin-good\nversion=1.0\nfile=momin_good-1.0-py3-none-any.whl\n"))
        #expect(calls[2].arguments.hasSuffix("required-by=momin-good\n"))
        #expect(calls[1].sha256 == installed.files[0].sha256 && calls[2].sha256 == installed.files[1].sha256)
        #expect(calls[1].arguments.contains("sha256=\(installed.files[0].sha256)\n"))
    }

    @Test func aRefusedDependencyRefusesTheWholeRequestBeforeAnythingOfItIsFetched() throws {
        let index = try Index()
        index.page("momin-needs-evil", [index.wheel("momin-needs-evil", "1.0", requires: ["momin-evil"])])
        index.page("momin-evil", [index.wheel("momin-evil", "1.0")])
        try index.start()
        defer { index.stop() }
        let rig = try Rig(port: index.port, allow: "      - momin-needs-evil")
        defer { rig.close() }

        let failure = try Self.failure { try rig.installer().install(ecosystem: "pip", requirements: ["momin-needs-evil"]) }
        guard case .denied(let decision, let message) = failure else { Issue.record("not denied: \(failure)"); return }
        #expect(message.hasPrefix("momin-evil (a dependency of momin-needs-evil): denied by policy (packages.pip, line 4)"))
        #expect(decision.reason.contains("\"momin-evil\" is not among packages.pip.allow"))
        #expect(!index.paths.contains { $0 == "/simple/momin-evil/" || $0.contains("/momin_evil-") || $0.hasSuffix(".whl") })
        #expect(index.paths.contains("/files/momin_needs_evil-1.0-py3-none-any.whl.metadata"))
        let calls = try rig.calls()
        #expect(calls.map(\.tool) == ["package-install", "package"])
        #expect(calls[1].arguments == "ecosystem=pip\nname=momin-evil\nversion=\nrequired-by=momin-needs-evil\n" && !calls[1].allowed)
        #expect(calls[0].status == 77)
    }

    @Test func sourceOnlyProjectsBadDigestsAndRecordedSessionsInstallNothing() throws {
        let index = try Index()
        index.files["/files/momin_sdist_only-1.0.tar.gz"] = [1, 2, 3]
        index.files["/simple/momin-sdist-only/"] = Array("<a href=\"../../files/momin_sdist_only-1.0.tar.gz#sha256=\(String(repeating: "0", count: 64))\">s</a>".utf8)
        index.page("momin-liar", [index.wheel("momin-liar", "1.0", lie: true)])
        try index.start()
        defer { index.stop() }
        let rig = try Rig(port: index.port, allow: "      - \"momin-*\"")
        defer { rig.close() }

        #expect(throws: PackageInstaller.Failure.self) { try rig.installer().install(ecosystem: "pip", requirements: ["momin-sdist-only"]) }
        #expect(!index.paths.contains { $0.hasSuffix(".tar.gz") })
        let lie = try Self.failure { try rig.installer().install(ecosystem: "pip", requirements: ["momin-liar"]) }
        #expect(lie.description.contains("momin_liar-1.0-py3-none-any.whl has SHA-256"))
        let record = Policy.Decision.refused(RuleRef("record", line: nil), because: "a recorded session installs nothing")
        #expect(throws: PackageInstaller.Failure.self) { try rig.installer(refusal: record).install(ecosystem: "pip", requirements: ["momin-liar"]) }
        #expect(throws: PackageInstaller.Failure.self) { try rig.installer().install(ecosystem: "apt", requirements: ["binwalk"]) }
        #expect(throws: PackageInstaller.Failure.self) { try rig.installer().install(ecosystem: "pip", requirements: ["not a name!"]) }

        let calls = try rig.calls()
        #expect(calls.map(\.tool) == ["package-install", "package-install", "package", "package-install"])
        #expect(calls[0].status == 70 && calls[1].status == 70)
        // The lying file's own digest is logged, with the status that says it did not match.
        #expect(calls[2].status == 65 && calls[2].sha256 == Hex.encode(SHA256.hash(data: index.files["/files/momin_liar-1.0-py3-none-any.whl"]!)))
        #expect(!calls[3].allowed && calls[3].reason.contains("a recorded session installs nothing"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: rig.dir + "/staging").isEmpty)
    }

    /// `hands install apt`: every name judged and logged before the guest's apt runs; the answer
    /// is the policy's mirrors. Nothing is fetched by the host.
    @Test func anAptInstallIsApprovedNameByNameAndAnswersTheMirrors() throws {
        let index = try Index()
        let rig = try Rig(port: index.port, allow: "      - momin-good\n  apt:\n    mirrors: [http://127.0.0.1:9/debian]\n    allow: [\"momin-*\", binwalk]")
        defer { rig.close() }
        defer { index.stop() }
        #expect(try rig.installer().approveApt(["binwalk", "momin-tool"]) == ["http://127.0.0.1:9/debian"])
        let refused = try Self.failure { try rig.installer().approveApt(["binwalk", "nmap"]) }
        guard case .denied(let decision, let message) = refused else { Issue.record("not denied: \(refused)"); return }
        #expect(decision.rule.id == "packages.apt" && message.hasPrefix("nmap: denied by policy"))
        #expect(throws: PackageInstaller.Failure.self) { try rig.installer().approveApt(["Not_A_Name"]) }
        let calls = try rig.calls()
        #expect(calls.map(\.tool) == ["package-install", "package-install", "package"])
        #expect(calls[0].arguments == "ecosystem=apt\nrequirement=binwalk\nrequirement=momin-tool\n" && calls[0].status == 0)
        #expect(calls[1].status == 77 && calls[2].arguments == "ecosystem=apt\nname=nmap\nversion=\nrequired-by=\n" && !calls[2].allowed)
        #expect(index.paths.isEmpty)
    }

    /// An https index, as PyPI is: the rig's wheel index (Tests/rig/make-wheel-index) served by
    /// Python's http.server over TLS with a test CA's certificate for localhost. With that CA
    /// trusted the install goes through, each file the digest make-wheel-index wrote down; with
    /// the system's CAs the certificate is refused and nothing is fetched or staged.
    @Test func anHTTPSIndexIsReadOverVerifiedTLS() throws {
        let pki = try PKI()
        let root = String(#filePath).components(separatedBy: "/Tests/EgressTests/")[0]
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        made.arguments = [root + "/Tests/rig/make-wheel-index", pki.directory + "/index"]
        made.standardOutput = FileHandle.nullDevice
        try made.run()
        made.waitUntilExit()
        try #require(made.terminationStatus == 0)
        let portFile = pki.directory + "/port"
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-c", """
            import functools, http.server, os, ssl, sys
            certificate, key, port_file, root = sys.argv[1:5]
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=root))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificate, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            with open(port_file + ".new", "w") as out:
                out.write(str(server.server_address[1]))
            os.rename(port_file + ".new", port_file)
            server.serve_forever()
            """, pki.certificate, pki.key, portFile, pki.directory + "/index"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        let ready = MonotonicClock.deadline(after: 10)
        while access(portFile, F_OK) != 0 && MonotonicClock.nanoseconds() < ready { usleep(10_000) }
        let port = try #require(UInt16(String(contentsOfFile: portFile, encoding: .utf8)))
        let rig = try Rig(port: port, allow: "      - {name: momin-good, versions: \"<2\"}\n      - momin-dep",
                          index: "https://localhost:\(port)/simple")
        defer { rig.close() }

        var trusted = PackageConfiguration()
        trusted.trust = .caBundle(path: pki.caFile)
        let installed = try rig.installer(configuration: trusted).install(ecosystem: "pip", requirements: ["momin-good"])
        let manifest = try String(contentsOfFile: pki.directory + "/index/MANIFEST", encoding: .utf8)
        #expect(installed.files.map { "\($0.filename) \($0.sha256)" }.allSatisfy { manifest.contains($0) })
        #expect(installed.files.map(\.name) == ["momin-good", "momin-dep"])

        let untrusted = try Self.failure { try rig.installer().install(ecosystem: "pip", requirements: ["momin-dep"]) }
        #expect(untrusted.description.contains("certificate verify failed"), "\(untrusted)")
        #expect(try rig.calls().map(\.tool) == ["package-install", "package", "package", "package-install"])
    }
}
