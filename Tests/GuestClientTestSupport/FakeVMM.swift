import Doors
import Foundation
import Glibc
import GuestClient
import POSIX
import Testing

/// A failure inside the fake VMM or guest; the test sees it when it joins the fake.
struct FakeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// How long the fake waits for the client before it gives up (so a broken client fails a test
/// instead of hanging it).
let fakePatience: Double = 10

/// The VMM's vsock Unix socket, played by a listening socket in a fresh temp directory. A test
/// starts a script with `serve`, which runs on its own thread and plays the VMM and the guest
/// (accept, read `CONNECT <port>`, answer, then speak Doors); `join` waits for it.
final class FakeVMM: @unchecked Sendable {
    let directory: String
    let socketPath: String
    private let listener: Int32
    /// Touched only by the script's thread.
    private var peers: [Peer] = []

    /// Whether the socket's directory was made here (and is removed with the socket).
    private let ownDirectory: Bool

    /// Listens at `socketPath` (a fresh temp directory's vsock.sock by default).
    init(socketPath given: String? = nil) throws {
        if let given {
            socketPath = given
            directory = String(given[..<(given.lastIndex(of: "/") ?? given.endIndex)])
            ownDirectory = false
        } else {
            directory = try makeTempDirectory()
            socketPath = directory + "/vsock.sock"
            ownDirectory = true
        }
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw FakeError("socket: errno \(errno)") }
        var address = unixAddress(socketPath)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(listener, 8) == 0 else { throw FakeError("bind/listen: errno \(errno)") }
    }

    deinit { shutDown() }

    /// Closes the listener and removes the socket and its directory; once.
    private var shut = false
    private func shutDown() {
        guard !shut else { return }
        shut = true
        close(listener)
        unlink(socketPath)
        if ownDirectory { rmdir(directory) }
    }

    /// Runs `script` on a new thread; every connection it accepted is closed when it returns, and
    /// the socket is removed before `join` returns (not left to a deinit that may lose the race with
    /// the end of the test process).
    func serve<T: Sendable>(_ script: @escaping @Sendable (FakeVMM) throws -> T) -> Running<T> {
        let running = Running<T>()
        let thread = Thread { [self] in
            let result = Result { try script(self) }
            for peer in peers { peer.close() }
            peers = []
            shutDown()
            running.finish(result)
        }
        thread.start()
        return running
    }

    /// Accepts the next connection (a client's attempt).
    func accept() throws -> Peer {
        var waiting = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&waiting, 1, Int32(fakePatience * 1000)) == 1 else { throw FakeError("no client connected") }
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { throw FakeError("accept: errno \(errno)") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var timeout = timeval(tv_sec: Int(fakePatience), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let peer = Peer(fd: fd)
        peers.append(peer)
        return peer
    }
}

/// The fake's thread, to be joined.
final class Running<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<T, any Error>?

    fileprivate func finish(_ result: Result<T, any Error>) {
        self.result = result
        done.signal()
    }

    /// A fake that never started: joining it throws `why`.
    static func failed(_ why: String) -> Running<T> {
        let running = Running<T>()
        running.finish(.failure(FakeError(why)))
        return running
    }

    /// Waits for the script to end and returns what it returned, or throws what it threw.
    func join() throws -> T {
        guard done.wait(timeout: .now() + fakePatience * 2) == .success else {
            throw FakeError("the fake VMM did not finish")
        }
        return try result!.get()
    }
}

/// One accepted connection: the VMM side (the CONNECT line) and then the guest side (Doors).
final class Peer {
    let fd: Int32
    private var decoder = FrameDecoder()
    private(set) var encoder = FrameEncoder()
    private(set) var session = Session(version: DoorsProtocol.currentVersion, maxPayload: DoorsProtocol.maxPayload)
    private var closed = false

    init(fd: Int32) { self.fd = fd }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    /// One line without its newline, read a byte at a time so nothing after it is consumed.
    func readLine() throws -> String {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 256 {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { throw FakeError("the client sent no line (read \(n), errno \(errno))") }
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        throw FakeError("the client's line is too long")
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FakeError("send: errno \(errno)") }
            offset += n
        }
    }

    func write(_ text: String) throws { try write(Array(text.utf8)) }

    func bytes(_ frames: [Frame]) throws -> [UInt8] {
        var bytes: [UInt8] = []
        for frame in frames { try encoder.encode(frame, into: &bytes) }
        return bytes
    }

    /// Sends the frames in one write, so the client gets several frames per read.
    func send(_ frames: Frame...) throws { try write(bytes(frames)) }

    func receive() throws -> Frame {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let frame = try decoder.next() { return frame }
            let room = min(buffer.count, decoder.freeCapacity)
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, room) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FakeError("the client sent no frame (read \(n), errno \(errno))") }
            decoder.append(buffer[0..<n])
        }
    }

    /// Checks that the client closed its end and sent nothing more.
    /// Reads and drops everything until the client closes; returns how many bytes that was.
    func drainToEOF() throws -> Int {
        var total = decoder.bufferedByteCount
        var sink = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = sink.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw FakeError("read while draining: errno \(errno)") }
            if n == 0 { return total }
            total += n
        }
    }

    func expectEOF() throws {
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        guard n == 0 else { throw FakeError("expected the client to close its socket (read \(n), errno \(errno))") }
        guard decoder.bufferedByteCount == 0 else { throw FakeError("unread bytes before the close") }
    }

    /// The VMM's part: reads `CONNECT <port>` and checks the port.
    func acceptConnect(port: UInt32 = testPort) throws {
        let line = try readLine()
        guard line == "CONNECT \(port)" else { throw FakeError("bad CONNECT line \(line.debugDescription)") }
    }

    /// The whole handshake as a guest: CONNECT, `OK`, Hello (in the same write as the OK line, so
    /// a client that reads past its newline loses it), the client's Hello, negotiation.
    /// Returns the client's Hello.
    @discardableResult
    func handshake(port: UInt32 = testPort, hello: Hello = Hello(software: "fake-init")) throws -> Hello {
        try acceptConnect(port: port)
        try write(Array("OK 1\n".utf8) + FrameEncoder().encode(Frame(requestID: 0, .hello(hello))))
        let frame = try receive()
        guard frame.requestID == 0, case .hello(let remote) = frame.message else {
            throw FakeError("expected the client's Hello, got \(frame)")
        }
        session = try Session.negotiate(local: hello, remote: remote)
        encoder = FrameEncoder(session: session)
        decoder.apply(session)
        return remote
    }
}

/// The guest vsock port the tests connect to.
let testPort: UInt32 = 52

func unixAddress(_ path: String) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    precondition(bytes.count < MemoryLayout.size(ofValue: address.sun_path))
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
    }
    return address
}

func makeTempDirectory() throws -> String {
    var template = Array("/tmp/hands-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw FakeError("mkdtemp: errno \(errno)") }
    return String(cString: made)
}

/// A temp file opened read-write; removed on deinit.
final class TempFile {
    let path: String
    let fd: Int32

    init(_ contents: [UInt8] = []) throws {
        var template = Array("/tmp/hands-file-XXXXXX".utf8CString)
        fd = mkstemp(&template)
        guard fd >= 0 else { throw FakeError("mkstemp: errno \(errno)") }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        guard (try? FileIO.writeAll(fd, contents)) != nil, lseek(fd, 0, SEEK_SET) == 0 else { throw FakeError("writing \(path)") }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Everything in the file now.
    func contents() throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            guard n >= 0 else { throw FakeError("pread: errno \(errno)") }
            if n == 0 { return result }
            result += buffer[0..<n]
            offset += off_t(n)
        }
    }
}

/// `count` bytes of a fixed pseudo-random pattern (no runs, so shifted or dropped bytes show).
func pattern(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var state = seed
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        for i in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            buffer[i] = UInt8(truncatingIfNeeded: state >> 33)
        }
        initialized = count
    }
}

/// Records an issue when the bytes differ, naming sizes and the first difference instead of
/// printing megabytes.
func expectSameBytes(
    _ actual: [UInt8], _ expected: [UInt8], _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    guard actual != expected else { return }
    let first = zip(actual, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(actual.count, expected.count)
    Issue.record("\(what): got \(actual.count) bytes, expected \(expected.count); they differ from byte \(first)", sourceLocation: sourceLocation)
}

/// The chunks back to back.
func concatenated(_ chunks: [[UInt8]]) -> [UInt8] {
    var all: [UInt8] = []
    all.reserveCapacity(chunks.reduce(0) { $0 + $1.count })
    for chunk in chunks { all += chunk }
    return all
}

/// The error a call into the guest threw, or nil when it returned.
func handsError(_ body: () throws -> Void) -> GuestCallError? {
    do {
        try body()
        return nil
    } catch let error as GuestCallError {
        return error
    } catch {
        Issue.record("not a GuestCallError: \(error)")
        return nil
    }
}

extension GuestCallError {
    var remoteReply: ErrorReply? { if case .remote(let reply) = self { reply } else { nil } }
    var handshakeLine: String? { if case .handshake(let line) = self { line } else { nil } }
    var doorsError: DoorsError? { if case .protocolError(let error) = self { error } else { nil } }
    var unexpectedMessage: DoorsMessage? { if case .unexpected(let message) = self { message } else { nil } }
    var isConnectionClosed: Bool { if case .connectionClosed = self { true } else { false } }
    var timedOutWaitingFor: String? { if case .timedOut(let what) = self { what } else { nil } }
    var notListening: (port: UInt32, seconds: Double)? {
        if case .guestNotListening(let port, let seconds) = self { (port, seconds) } else { nil }
    }
}

/// A connected client against a fake whose script first does the whole handshake. The script's
/// thread keeps the fake VMM alive until it ends.
func connect<T: Sendable>(
    hello: Hello = Hello(software: "fake-init"),
    silenceSeconds: Double = DoorsClient.defaultSilenceSeconds,
    _ guest: @escaping @Sendable (Peer) throws -> T
) throws -> (DoorsClient, Running<T>) {
    let vmm = try FakeVMM()
    let running = vmm.serve { vmm in
        let peer = try vmm.accept()
        try peer.handshake(hello: hello)
        return try guest(peer)
    }
    do {
        let client = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5, silenceSeconds: silenceSeconds)
        return (client, running)
    } catch {
        _ = try? running.join()
        throw error
    }
}
