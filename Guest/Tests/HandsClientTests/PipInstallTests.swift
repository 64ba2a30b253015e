import CGuestSys
import Doors
import Glibc
@testable import HandsClient
import POSIX
import Testing

/// A hands socket served by the test: one call per connection, answered by `answer`; the calls
/// it was sent are kept.
final class FakeHandsSocket: @unchecked Sendable {
    let directory: String
    let path: String
    private let listener: Int32
    private let lock = Lock()
    private var received: [HandsCall] = []
    private var thread: POSIXThread?

    init(answer: @escaping @Sendable (HandsCall) -> HandsReply) throws {
        directory = try temporaryDirectory()
        path = directory + "/hands.sock"
        listener = guest_unix_listen(path, 0o600, 8)
        guard listener >= 0 else { throw SystemError("listen", subject: path) }
        thread = try POSIXThread(name: "fake-hands") { [self] in serve(answer) }
    }

    var calls: [HandsCall] { lock.withLock { received } }

    private func serve(_ answer: @Sendable (HandsCall) -> HandsReply) {
        while true {
            let fd = guest_accept_cloexec(listener)
            if fd < 0 && errno == EINTR { continue }
            guard fd >= 0 else { return }
            defer { close(fd) }
            let deadline = MonotonicClock.deadline(after: 10)
            guard let header = FileIO.readExactly(fd, count: HandsCallProtocol.headerSize, until: deadline),
                  let (kind, length) = try? HandsCallCodec.payloadLength(header: header),
                  let payload = FileIO.readExactly(fd, count: length, until: deadline),
                  let call = try? HandsCallCodec.decodeCall(kind: kind, payload: payload) else { continue }
            lock.withLock { received.append(call) }
            try? FileIO.sendAll(fd, HandsCallCodec.encode(answer(call)))
        }
    }

    func stop() {
        // shutdown(2) wakes the accept(2) the serving thread waits in.
        shutdown(listener, Int32(SHUT_RDWR))
        thread?.join()
        close(listener)
        PipInstall.removeTree(directory)
    }
}

func temporaryDirectory() throws -> String {
    var template = Array("/tmp/hands-test.XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!).map { String(cString: $0) } }) else {
        throw SystemError("mkdtemp")
    }
    return made
}

/// The `hands` program this build made, beside the test binary (`swift build --build-tests`
/// builds every product).
let handsProgram: String = {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = buffer.withUnsafeMutableBytes { readlink("/proc/self/exe", $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4095) }
    let executable = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self)
    return String(executable[..<(executable.lastIndex(of: "/") ?? executable.startIndex)]) + "/hands"
}()

/// The built `hands` program run with `arguments` and only `environment`, under /bin/sh, which
/// writes its exit status and stderr into the directory `record` (status, stderr): its status
/// and stderr, once it has ended (at most 60 s).
func runHands(_ arguments: [String], environment: [String], record: String) throws -> (status: Int32, stderr: String) {
    let script = "\"$0\" \"$@\" 2> \(record)/stderr; echo $? > \(record)/status.tmp; mv \(record)/status.tmp \(record)/status"
    let argv = ["/bin/sh", "-c", script, handsProgram] + arguments
    var pointers = (argv + environment).map { strdup($0) }
    defer { for pointer in pointers { free(pointer) } }
    var pid: pid_t = 0
    let result = pointers.withUnsafeMutableBufferPointer { all -> Int32 in
        let argvPart = Array(all[0..<argv.count]) + [nil]
        let environmentPart = Array(all[argv.count...]) + [nil]
        return posix_spawn(&pid, "/bin/sh", nil, nil, argvPart, environmentPart)
    }
    guard result == 0 else { throw SystemError("posix_spawn", errno: result) }
    let deadline = MonotonicClock.deadline(after: 60)
    while access(record + "/status", F_OK) != 0 && MonotonicClock.nanoseconds() < deadline { usleep(10_000) }
    // The shell is ours or the reaper's to reap; either way it is gone after this.
    var ignored: Int32 = 0
    _ = waitpid(pid, &ignored, 0)
    let text = { (name: String) in String(decoding: (try? FileIO.readFile(record + "/" + name, limit: 8 << 20)) ?? [], as: UTF8.self) }
    return (Int32(text("status").split(separator: "\n").first ?? "") ?? -1, text("stderr"))
}

/// `hands install pip` end to end: the install call, the files fetched piece by piece into a
/// private directory, the exact pip command run on them (a shell script standing in for
/// python3 records it), and the directory gone afterwards, whatever happened. Where pip runs,
/// the `hands` program runs under /bin/sh, which writes down its exit status: in this test
/// process GuestDoorsTests' reaper may take the status of any child of ours, never of a
/// grandchild.
@Suite(.serialized) struct PipInstallTests {
    static let sha = String(repeating: "5e", count: 32)
    static let big = "pefile-2024.8.26-py3-none-any.whl"
    static let small = "ordlookup-1.0-py3-none-any.whl"

    /// What the host keeps: a file over 2 MiB, so three pieces, and a small one.
    static let files: [String: [UInt8]] = {
        var state: UInt32 = 17
        let bytes = (0..<(2 * HandsCallProtocol.maxData + 12_345)).map { _ -> UInt8 in
            state = state &* 1_103_515_245 &+ 12_345
            return UInt8(truncatingIfNeeded: state >> 16)
        }
        return [big: bytes, small: Array("PK\u{3}\u{4} a small wheel".utf8)]
    }()

    static let manifest = InstallManifest(id: "3f2a-01", files: [
        InstallManifest.File(name: "pefile", version: "2024.8.26", filename: big, size: UInt64(files[big]!.count), sha256: sha),
        InstallManifest.File(name: "ordlookup", version: "1.0", filename: small, size: UInt64(files[small]!.count), sha256: sha),
    ])

    /// The host's side: the manifest, then each file's bytes from the offset asked, a
    /// `maxData` at most; `piece` may answer otherwise.
    static func host(install: HandsReply = .ok(fields: manifest.fields, data: []),
                     piece: @escaping @Sendable (UInt32, UInt64) -> HandsReply? = { _, _ in nil }) -> @Sendable (HandsCall) -> HandsReply {
        { call in
            switch call {
            case .install:
                return install
            case .installFile(_, let index, let offset):
                if let reply = piece(index, offset) { return reply }
                let bytes = files[manifest.files[Int(index)].filename]!
                let start = min(Int(offset), bytes.count)
                return .ok(fields: [], data: Array(bytes[start..<min(start + HandsCallProtocol.maxData, bytes.count)]))
            default:
                return .failed(.invalid, "not an install call")
            }
        }
    }

    /// A place for the run: the temporary root it makes its directory in, and a stand-in for
    /// python3 that records its arguments, the directory's mode and files, copies the files,
    /// and ends as `ending` says.
    final class Scene {
        let root: String
        let temporary: String
        let record: String
        let python: String
        var said: [String] = []

        init(ending: String = "exit 3") throws {
            root = try temporaryDirectory()
            temporary = root + "/tmp"
            record = root + "/record"
            python = root + "/python3"
            for directory in [temporary, record, record + "/copy"] { mkdir(directory, 0o755) }
            let script = """
                #!/bin/sh
                previous=
                for argument in "$@"; do
                  [ "$previous" = --find-links ] && dir=$argument
                  previous=$argument
                done
                printf '%s\\n' "$@" > \(record)/argv
                stat -c %a "$dir" > \(record)/mode
                ls -A "$dir" > \(record)/files
                cp "$dir"/* \(record)/copy/
                \(ending)

                """
            let fd = open(python, O_WRONLY | O_CREAT | O_TRUNC, 0o755)
            try FileIO.writeAll(fd, Array(script.utf8))
            close(fd)
        }

        /// `hands ARGUMENTS` at `socket`, with $TMPDIR the scene's: its exit status and stderr.
        func hands(_ arguments: [String], socket: FakeHandsSocket) throws -> (status: Int32, stderr: String) {
            try runHands(arguments, environment: ["HANDS_SOCKET=\(socket.path)", "TMPDIR=\(temporary)", "PATH=/usr/bin:/bin"], record: record)
        }

        func install(_ requirements: [String], socket: FakeHandsSocket, python: String? = nil) -> Int32 {
            PipInstall(socketPath: socket.path, python: python ?? self.python, temporaryRoot: temporary, say: { self.said.append($0) })
                .run(requirements: requirements)
        }

        func read(_ name: String) throws -> [UInt8] { try FileIO.readFile(record + "/" + name, limit: 8 << 20) }
        func text(_ name: String) throws -> String { String(decoding: try read(name), as: UTF8.self) }
        var pipRan: Bool { access(record + "/argv", F_OK) == 0 }
        var leftBehind: [String] { (try? FileIO.listDirectory(temporary)) ?? ["(unreadable)"] }

        deinit { PipInstall.removeTree(root) }
    }

    @Test func theFilesArriveInPiecesAndPipInstallsThemHashChecked() throws {
        let socket = try FakeHandsSocket(answer: Self.host())
        defer { socket.stop() }
        let scene = try Scene()

        let (status, stderr) = try scene.hands(["install", "pip", "--python", scene.python, "pefile==2024.8.26"], socket: socket)
        #expect(status == 3, "pip's own exit status")

        let size = Self.files[Self.big]!.count
        #expect(socket.calls == [
            .install(ecosystem: "pip", requirements: ["pefile==2024.8.26"]),
            .installFile(install: "3f2a-01", file: 0, offset: 0),
            .installFile(install: "3f2a-01", file: 0, offset: UInt64(HandsCallProtocol.maxData)),
            .installFile(install: "3f2a-01", file: 0, offset: UInt64(2 * HandsCallProtocol.maxData)),
            .installFile(install: "3f2a-01", file: 1, offset: 0),
        ])
        let argv = try scene.text("argv").split(separator: "\n").map(String.init)
        let directory = argv.count > 5 ? argv[5] : ""
        #expect(directory.hasPrefix(scene.temporary + "/hands-install."))
        #expect(argv == ["-m", "pip", "install", "--no-index", "--find-links", directory, "--require-hashes", "--no-cache-dir",
                         "--disable-pip-version-check", "--break-system-packages", "--root-user-action=ignore", "-r", directory + "/requirements.txt"])
        #expect(try scene.text("mode") == "700\n")
        #expect(try scene.text("files") == "\(Self.small)\n\(Self.big)\nrequirements.txt\n")
        #expect(try scene.text("copy/requirements.txt") == """
            pefile==2024.8.26 --hash=sha256:\(Self.sha)
            ordlookup==1.0 --hash=sha256:\(Self.sha)

            """)
        #expect(try scene.read("copy/" + Self.big) == Self.files[Self.big]!)
        #expect(try scene.read("copy/" + Self.small) == Self.files[Self.small]!)
        #expect(stderr == """
            hands: fetched pefile 2024.8.26 \(Self.big) \(size) sha256:\(Self.sha)
            hands: fetched ordlookup 1.0 \(Self.small) \(Self.files[Self.small]!.count) sha256:\(Self.sha)

            """)
        #expect(scene.leftBehind == [])
    }

    @Test func pipEndedByASignalIs128PlusIt() throws {
        let socket = try FakeHandsSocket(answer: Self.host())
        defer { socket.stop() }
        let scene = try Scene(ending: "kill -TERM $$")
        #expect(try scene.hands(["install", "pip", "--python=\(scene.python)", "pefile"], socket: socket).status == 128 + SIGTERM)
        #expect(scene.pipRan)
        #expect(scene.leftBehind == [])
    }

    @Test func aPieceThatOverrunsItsFileStopsTheInstall() throws {
        let socket = try FakeHandsSocket(answer: Self.host(piece: { index, offset in
            index == 1 ? .ok(fields: [], data: [UInt8](repeating: 1, count: Self.files[Self.small]!.count + 1)) : nil
        }))
        defer { socket.stop() }
        let scene = try Scene()
        #expect(scene.install(["pefile"], socket: socket) == 70)
        let size = Self.files[Self.small]!.count
        #expect(scene.said.last == "the host sent more of \(Self.small) than its \(size) bytes (\(size + 1) at offset 0)")
        #expect(!scene.pipRan)
        #expect(scene.leftBehind == [])
    }

    @Test func aFileThatComesShortStopsTheInstall() throws {
        let socket = try FakeHandsSocket(answer: Self.host(piece: { index, offset in
            index == 0 && offset == UInt64(2 * HandsCallProtocol.maxData) ? .ok(fields: [], data: []) : nil
        }))
        defer { socket.stop() }
        let scene = try Scene()
        #expect(scene.install(["pefile"], socket: socket) == 70)
        #expect(scene.said == ["the host sent \(Self.big) short: \(2 * HandsCallProtocol.maxData) of its \(Self.files[Self.big]!.count) bytes"])
        #expect(socket.calls.count == 4)
        #expect(!scene.pipRan)
        #expect(scene.leftBehind == [])
    }

    @Test func aDenialIsTheHostsMessageAndExit77() throws {
        let why = "denied by policy (install): packages.pip (line 4): pip package \"requests\" is not among packages.pip.allow"
        let socket = try FakeHandsSocket(answer: Self.host(install: .failed(.denied, why)))
        defer { socket.stop() }
        let scene = try Scene()
        #expect(scene.install(["requests"], socket: socket) == 77)
        #expect(scene.said == [why])
        #expect(socket.calls == [.install(ecosystem: "pip", requirements: ["requests"])])
        #expect(!scene.pipRan)
        #expect(scene.leftBehind == [])
    }

    @Test func aFailedPieceIsItsMessageAndStatus() throws {
        let socket = try FakeHandsSocket(answer: Self.host(piece: { index, _ in index == 1 ? .failed(.notFound, "no install 3f2a-01") : nil }))
        defer { socket.stop() }
        let scene = try Scene()
        #expect(scene.install(["pefile"], socket: socket) == 2)
        #expect(scene.said.last == "fetching \(Self.small): no install 3f2a-01")
        #expect(!scene.pipRan)
        #expect(scene.leftBehind == [])
    }

    @Test func aBadManifestFetchesNothing() throws {
        let socket = try FakeHandsSocket(answer: Self.host(install: .ok(fields: ["i", "pefile\t1\t../pefile-1-py3-none-any.whl\t10\t\(Self.sha)"], data: [])))
        defer { socket.stop() }
        let scene = try Scene()
        #expect(scene.install(["pefile"], socket: socket) == 70)
        #expect(scene.said == ["the host's install manifest is not understood: line 1: FILENAME \"../pefile-1-py3-none-any.whl\" is not a plain .whl file name of at most 255 bytes"])
        #expect(socket.calls.count == 1)
        #expect(scene.leftBehind == [])
    }

    @Test func aPythonThatCannotStartIsExit70() throws {
        let socket = try FakeHandsSocket(answer: Self.host())
        defer { socket.stop() }
        let scene = try Scene()
        #expect(scene.install(["pefile"], socket: socket, python: scene.root + "/no-python") == 70)
        #expect(scene.said.last == "cannot start \(scene.root)/no-python: No such file or directory")
        #expect(scene.leftBehind == [])
    }

    @Test func noSocketIsExit70() throws {
        let scene = try Scene()
        let install = PipInstall(socketPath: scene.root + "/none.sock", python: scene.python, temporaryRoot: scene.temporary,
                                 say: { scene.said.append($0) })
        #expect(install.run(requirements: ["pefile"]) == 70)
        #expect(scene.said == ["cannot reach momin-init at \(scene.root)/none.sock: No such file or directory"])
        #expect(!scene.pipRan)
    }

    @Test func theTemporaryRootIsTMPDIROrTmp() {
        #expect(PipInstall.temporaryRoot(environment: nil) == "/tmp")
        #expect(PipInstall.temporaryRoot(environment: "") == "/tmp")
        #expect(PipInstall.temporaryRoot(environment: "/var/tmp") == "/var/tmp")
    }
}
