import Doors
import Glibc
@testable import HandsClient
import POSIX
import Testing

/// `hands install apt` end to end: the install call, the mirrors said, then apt-get update and
/// install with the proxy, pipelining off and no retries, in apt's noninteractive mode and
/// without `no_proxy`; a stand-in apt-get first on PATH records each run. As in
/// PipInstallTests, where apt-get runs the built `hands` runs under /bin/sh.
@Suite(.serialized) struct AptInstallTests {
    static let mirrors = ["http://127.0.0.1:8080/debian", "http://127.0.0.1:8080/debian-security"]

    static func host(_ install: HandsReply = .ok(fields: mirrors, data: [])) -> @Sendable (HandsCall) -> HandsReply {
        { call in
            guard case .install = call else { return .failed(.invalid, "not an install call") }
            return install
        }
    }

    /// A directory with a stand-in apt-get, which appends each run's arguments and environment
    /// to `record/runs` and ends as `update` or `install` says.
    final class Scene {
        let root: String
        let record: String
        let bin: String

        init(update: String = "exit 0", install: String = "exit 0") throws {
            root = try temporaryDirectory()
            record = root + "/record"
            bin = root + "/bin"
            for directory in [record, bin] { mkdir(directory, 0o755) }
            let script = """
                #!/bin/sh
                printf '%s\\n' "apt-get $*" "DEBIAN_FRONTEND=${DEBIAN_FRONTEND-unset} no_proxy=${no_proxy-unset} NO_PROXY=${NO_PROXY-unset} KEPT=${KEPT-unset}" >> \(record)/runs
                for argument in "$@"; do
                  [ "$argument" = update ] && { \(update); }
                done
                \(install)

                """
            let fd = open(bin + "/apt-get", O_WRONLY | O_CREAT | O_TRUNC, 0o755)
            try FileIO.writeAll(fd, Array(script.utf8))
            close(fd)
        }

        /// `hands ARGUMENTS` at `socket`, the stand-in first on PATH, with `environment` besides.
        func hands(_ arguments: [String], socket: FakeHandsSocket, environment: [String] = []) throws -> (status: Int32, stderr: String) {
            try runHands(arguments, environment: ["HANDS_SOCKET=\(socket.path)", "PATH=\(bin):/usr/bin:/bin", "KEPT=yes"] + environment,
                         record: record)
        }

        var runs: [String] {
            String(decoding: (try? FileIO.readFile(record + "/runs", limit: 1 << 20)) ?? [], as: UTF8.self)
                .split(separator: "\n").map(String.init)
        }

        deinit { PipInstall.removeTree(root) }
    }

    static func options(_ proxy: String) -> String {
        "-o Acquire::http::Proxy=\(proxy) -o Acquire::http::Pipeline-Depth=0 -o Acquire::Retries=0"
    }

    static let environment = "DEBIAN_FRONTEND=noninteractive no_proxy=unset NO_PROXY=unset KEPT=yes"

    @Test func updateThenInstallThroughTheProxy() throws {
        let socket = try FakeHandsSocket(answer: Self.host())
        defer { socket.stop() }
        let scene = try Scene()
        let proxy = "http://127.0.0.1:3128"
        let (status, stderr) = try scene.hands(["install", "apt", "momin-tool", "momin-lib"], socket: socket, environment: [
            "http_proxy=\(proxy)", "no_proxy=localhost,127.0.0.1", "NO_PROXY=localhost,127.0.0.1", "DEBIAN_FRONTEND=dialog",
        ])
        #expect(status == 0)
        #expect(socket.calls == [.install(ecosystem: "apt", requirements: ["momin-tool", "momin-lib"])])
        #expect(scene.runs == [
            "apt-get \(Self.options(proxy)) update", Self.environment,
            "apt-get \(Self.options(proxy)) install -y --no-install-recommends momin-tool momin-lib", Self.environment,
        ])
        #expect(stderr == "hands: apt may reach \(Self.mirrors[0])\nhands: apt may reach \(Self.mirrors[1])\n")
    }

    @Test func aFailedUpdateIsItsStatusAndNothingIsInstalled() throws {
        let socket = try FakeHandsSocket(answer: Self.host())
        defer { socket.stop() }
        let scene = try Scene(update: "exit 100")
        // No $http_proxy: momin-init's proxy.
        #expect(try scene.hands(["install", "apt", "momin-tool"], socket: socket).status == 100)
        #expect(scene.runs == ["apt-get \(Self.options("http://127.0.0.1:3128")) update", Self.environment])
    }

    @Test func theInstallsStatusIsHands() throws {
        let socket = try FakeHandsSocket(answer: Self.host())
        defer { socket.stop() }
        let scene = try Scene(install: "exit 100")
        let proxy = "http://10.0.0.1:8000"
        #expect(try scene.hands(["install", "apt", "momin-needs-bad"], socket: socket, environment: ["http_proxy=\(proxy)"]).status == 100)
        #expect(scene.runs.count == 4)
        #expect(scene.runs.last == Self.environment)
        #expect(scene.runs[2] == "apt-get \(Self.options(proxy)) install -y --no-install-recommends momin-needs-bad")
    }

    @Test func aptGetEndedByASignalIs128PlusIt() throws {
        let socket = try FakeHandsSocket(answer: Self.host())
        defer { socket.stop() }
        let scene = try Scene(update: "kill -TERM $$")
        #expect(try scene.hands(["install", "apt", "momin-tool"], socket: socket).status == 128 + SIGTERM)
        #expect(scene.runs.count == 2)
    }

    @Test func aDenialIsTheHostsMessageAndExit77WithoutApt() throws {
        let why = "momin-bad: denied by policy (packages.apt, line 9): apt package \"momin-bad\" is not among packages.apt.allow"
        let socket = try FakeHandsSocket(answer: Self.host(.failed(.denied, why)))
        defer { socket.stop() }
        let scene = try Scene()
        #expect(try scene.hands(["install", "apt", "momin-bad"], socket: socket) == (77, "hands: \(why)\n"))
        #expect(socket.calls == [.install(ecosystem: "apt", requirements: ["momin-bad"])])
        #expect(scene.runs == [])
    }

    @Test func anAptGetThatCannotStartIsExit70() throws {
        let socket = try FakeHandsSocket(answer: Self.host())
        defer { socket.stop() }
        let scene = try Scene()
        var said: [String] = []
        let install = AptInstall(socketPath: socket.path, proxy: "http://127.0.0.1:3128", aptGet: scene.root + "/no-apt-get", say: { said.append($0) })
        #expect(install.run(packages: ["momin-tool"]) == 70)
        #expect(said == ["apt may reach \(Self.mirrors[0])", "apt may reach \(Self.mirrors[1])",
                         "cannot start \(scene.root)/no-apt-get: No such file or directory"])
    }

    @Test func theProxyIsHttpProxyOrMominInits() {
        #expect(AptInstall.proxy(environment: nil) == "http://127.0.0.1:3128")
        #expect(AptInstall.proxy(environment: "") == "http://127.0.0.1:3128")
        #expect(AptInstall.proxy(environment: "http://10.0.0.1:8000") == "http://10.0.0.1:8000")
    }
}
