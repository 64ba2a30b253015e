import Foundation
import Glibc
import POSIX
import Testing
import TLS
import TLSTestSupport

/// TLSClient against `openssl s_server` on 127.0.0.1: each test makes a throwaway CA and a
/// server certificate for localhost and 127.0.0.1 with the openssl CLI in a temporary
/// directory, runs its own server, and kills and reaps it before returning.
@Suite struct TLSClientTests {
    /// `openssl s_server` on 127.0.0.1 (port chosen by the kernel, read from its "ACCEPT" line),
    /// its stdout kept for `output(for:)`.
    final class Server {
        let process = Process()
        let stdout = Pipe()
        private(set) var port: UInt16 = 0
        private var text = ""

        init(_ pki: PKI, _ mode: [String]) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = ["s_server", "-accept", "127.0.0.1:0", "-cert", pki.certificate, "-key", pki.key, "-alpn", "http/1.1"] + mode
            process.standardOutput = stdout
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let deadline = MonotonicClock.deadline(after: 10)
            while port == 0 {
                let more = read(until: deadline)
                if !more { stop(); throw POSIXError(.ETIMEDOUT) }
                if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT ") }), let colon = line.lastIndex(of: ":") {
                    port = UInt16(line[line.index(after: colon)...]) ?? 0
                }
            }
        }

        /// Reads what the server printed, for up to `seconds`.
        func output(for seconds: Double) -> String {
            let deadline = MonotonicClock.deadline(after: seconds)
            while read(until: deadline) {}
            return text
        }

        private func read(until deadline: UInt64) -> Bool {
            let fd = stdout.fileHandleForReading.fileDescriptor
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, MonotonicClock.pollTimeout(until: deadline)) > 0 else { return false }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return false }
            text += String(decoding: chunk[..<count], as: UTF8.self)
            return true
        }

        func kill() { Glibc.kill(process.processIdentifier, SIGKILL) }

        func stop() {
            if process.isRunning { kill() }
            process.waitUntilExit()
        }
    }

    /// A blocking TCP connection to 127.0.0.1:`port`.
    static func connectLoopback(_ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, connected == 0 else {
            if fd >= 0 { close(fd) }
            throw POSIXError(.ECONNREFUSED)
        }
        return fd
    }

    /// A listener on 127.0.0.1 that never accepts: the kernel completes TCP's handshake, and
    /// nothing ever answers TLS's.
    static func silentListener() throws -> (fd: Int32, port: UInt16) { try listenOnLoopback() }

    static func deadline(_ seconds: Double = 10) -> UInt64 { MonotonicClock.deadline(after: seconds) }

    /// The handshake's error, or nil when it succeeded.
    static func handshakeError(port: UInt16, serverName: String, trust: TLSTrust) throws -> TLSError? {
        let fd = try connectLoopback(port)
        defer { close(fd) }
        var client = try TLSClient(socket: fd, serverName: serverName, trust: trust)
        do { try client.handshake(deadline: deadline()) } catch { return error }
        return nil
    }

    @Test func roundTripOverHTTPWithSNIAndALPN() throws {
        let pki = try PKI()
        let server = try Server(pki, ["-www", "-tlsextdebug"])
        defer { server.stop() }
        let fd = try Self.connectLoopback(server.port)
        defer { close(fd) }
        var client = try TLSClient(socket: fd, serverName: "localhost", trust: .caBundle(path: pki.caFile))
        try client.handshake(deadline: Self.deadline())
        // ~Copyable values cannot go into #expect's expansion: copied out first.
        let version = client.protocolVersion, alpn = client.negotiatedProtocol
        #expect(version == "TLSv1.3")
        #expect(alpn == "http/1.1")
        try client.write(Array("GET / HTTP/1.0\r\n\r\n".utf8), deadline: Self.deadline())
        // A small first read leaves the rest of the record inside OpenSSL, where poll(2) cannot see it.
        var response = try client.read(upTo: 16, deadline: Self.deadline())
        #expect(response.count == 16)
        let buffered = client.hasBufferedBytes
        #expect(buffered)
        while true {
            let more = try client.read(upTo: 4096, deadline: Self.deadline())
            if more.isEmpty { break }
            response += more
        }
        let text = String(decoding: response, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.0 200 ok\r\n"))
        #expect(text.contains("TLSv1.3"))
        let closeNotify = client.closeNotifyReceived, bufferedAtEnd = client.hasBufferedBytes
        #expect(closeNotify)
        #expect(!bufferedAtEnd)
        let after = try client.read(upTo: 16, deadline: Self.deadline())
        #expect(after.isEmpty)
        client.shutdown()
        // -tlsextdebug prints each extension of the ClientHello: SNI carried the name.
        #expect(server.output(for: 0.5).contains("TLS client extension \"server name\""))
    }

    @Test func anAddressLiteralIsCheckedAgainstIPNamesAndSentWithoutSNI() throws {
        let pki = try PKI()
        let server = try Server(pki, ["-www", "-tlsextdebug"])
        defer { server.stop() }
        #expect(try Self.handshakeError(port: server.port, serverName: "127.0.0.1", trust: .caBundle(path: pki.caFile)) == nil)
        let output = server.output(for: 0.5)
        #expect(output.contains("TLS client extension"))
        #expect(!output.contains("\"server name\""))
        let wrong = try Self.handshakeError(port: server.port, serverName: "127.0.0.2", trust: .caBundle(path: pki.caFile))
        #expect(wrong == .certificateVerifyFailed(reason: "IP address mismatch", serverName: "127.0.0.2"))
    }

    @Test func aCertificateFromAnUnknownCAFailsVerification() throws {
        let pki = try PKI()
        let server = try Server(pki, ["-www"])
        defer { server.stop() }
        let error = try Self.handshakeError(port: server.port, serverName: "localhost", trust: .system)
        #expect(error == .certificateVerifyFailed(reason: "unable to get local issuer certificate", serverName: "localhost"))
        #expect(error?.description == "certificate verify failed: unable to get local issuer certificate (localhost)")
    }

    @Test func aWrongHostNameFailsVerification() throws {
        let pki = try PKI()
        let server = try Server(pki, ["-www"])
        defer { server.stop() }
        let error = try Self.handshakeError(port: server.port, serverName: "api.example.com", trust: .caBundle(path: pki.caFile))
        #expect(error?.description == "certificate verify failed: hostname mismatch (api.example.com)")
        // A wildcard in the certificate is not needed to refuse a suffix: "localhost.evil" is not "localhost".
        let suffix = try Self.handshakeError(port: server.port, serverName: "localhost.example", trust: .caBundle(path: pki.caFile))
        #expect(suffix == .certificateVerifyFailed(reason: "hostname mismatch", serverName: "localhost.example"))
    }

    @Test func aSilentServerTimesOutByTheDeadline() throws {
        let listener = try Self.silentListener()
        defer { close(listener.fd) }
        let fd = try Self.connectLoopback(listener.port)
        defer { close(fd) }
        var client = try TLSClient(socket: fd, serverName: "localhost")
        let started = MonotonicClock.seconds()
        var caught: TLSError?
        do { try client.handshake(deadline: MonotonicClock.deadline(after: 0.3)) } catch { caught = error }
        #expect(caught == .timedOut(.handshake))
        let waited = MonotonicClock.seconds() - started
        #expect(waited >= 0.29 && waited < 1, "waited \(waited) s")
    }

    @Test func aServerThatHangsUpInTheHandshakeIsClosedByPeer() throws {
        let listener = try Self.silentListener()
        defer { close(listener.fd) }
        let fd = try Self.connectLoopback(listener.port)
        defer { close(fd) }
        // Taken from the backlog and closed at once: a FIN before the ClientHello.
        close(accept(listener.fd, nil, nil))
        var client = try TLSClient(socket: fd, serverName: "localhost")
        var caught: TLSError?
        do { try client.handshake(deadline: Self.deadline()) } catch { caught = error }
        #expect(caught == .closedByPeer(.handshake))
        #expect(caught?.description == "TLS handshake: the peer closed the connection")
    }

    @Test func aServerThatIsNotTLSIsAProtocolFailureWithOpenSSLsReason() throws {
        let listener = try Self.silentListener()
        defer { close(listener.fd) }
        let fd = try Self.connectLoopback(listener.port)
        defer { close(fd) }
        let server = accept(listener.fd, nil, nil)
        defer { close(server) }
        try FileIO.sendAll(server, Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8))
        var client = try TLSClient(socket: fd, serverName: "localhost")
        var caught: TLSError?
        do { try client.handshake(deadline: Self.deadline()) } catch { caught = error }
        guard case .protocolFailure(.handshake, let message) = caught else {
            Issue.record("not a protocol failure: \(String(describing: caught))")
            return
        }
        #expect(message.hasPrefix("error:") && message.hasSuffix(":wrong version number"), "\(message)")
    }

    @Test func aReadTimeoutLeavesTheConnectionUsable() throws {
        let pki = try PKI()
        let server = try Server(pki, ["-rev"])
        defer { server.stop() }
        let fd = try Self.connectLoopback(server.port)
        defer { close(fd) }
        var client = try TLSClient(socket: fd, serverName: "localhost", trust: .caBundle(path: pki.caFile))
        try client.handshake(deadline: Self.deadline())
        var caught: TLSError?
        do { _ = try client.read(upTo: 64, deadline: MonotonicClock.deadline(after: 0.2)) } catch { caught = error }
        #expect(caught == .timedOut(.read))
        try client.write(Array("momin\n".utf8), deadline: Self.deadline())
        var echoed: [UInt8] = []
        while !echoed.contains(UInt8(ascii: "\n")) {
            let more = try client.read(upTo: 64, deadline: Self.deadline())
            if more.isEmpty { break }
            echoed += more
        }
        #expect(String(decoding: echoed, as: UTF8.self) == "nimom\n")
    }

    /// The server is killed mid-stream: every call returns or throws a TLSError, and the
    /// writes that meet the reset (EPIPE) raise no SIGPIPE that kills this process, whose
    /// SIGPIPE disposition is the default, as in `momin`.
    @Test func aPeerKilledMidStreamIsAnErrorOrEndNeverACrash() throws {
        var current = sigaction()
        sigaction(SIGPIPE, nil, &current)
        #expect(current.__sigaction_handler.sa_handler == nil, "SIGPIPE is not at its default here: the test proves less")
        let pki = try PKI()
        let server = try Server(pki, ["-rev"])
        defer { server.stop() }
        let fd = try Self.connectLoopback(server.port)
        defer { close(fd) }
        var client = try TLSClient(socket: fd, serverName: "localhost", trust: .caBundle(path: pki.caFile))
        try client.write(Array("abc\n".utf8), deadline: Self.deadline())
        let reversed = try client.read(upTo: 64, deadline: Self.deadline())
        #expect(reversed == Array("cba\n".utf8))
        server.kill()
        server.stop()
        var errors: [TLSError] = []
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 16 << 10)
        for _ in 0..<20 {
            do { try client.write(chunk, deadline: Self.deadline(2)) } catch { errors.append(error) }
        }
        #expect(!errors.isEmpty)
        if let first = errors.first {
            switch first {
            // The server's FIN came first (it is reaped), so the reset our write drew is EPIPE
            // (tcp_reset in CLOSE_WAIT), and the next write raised SIGPIPE in this thread.
            case .system(.write, let cause): #expect(cause.errno == EPIPE, "\(cause)")
            default: Issue.record("unexpected \(first)")
            }
        }
        #expect(errors.dropFirst().allSatisfy { $0 == .unusable })
        // After the failure, a read is refused too, and shutdown is a no-op.
        var refused: TLSError?
        do { _ = try client.read(upTo: 64, deadline: Self.deadline(1)) } catch { refused = error }
        #expect(refused == .unusable)
        client.shutdown()
    }

    @Test func aPeerGoneWithoutCloseNotifyIsAnEndNotAnError() throws {
        let pki = try PKI()
        let server = try Server(pki, ["-rev"])
        defer { server.stop() }
        let fd = try Self.connectLoopback(server.port)
        defer { close(fd) }
        var client = try TLSClient(socket: fd, serverName: "localhost", trust: .caBundle(path: pki.caFile))
        // A round trip first, so the server has read all we sent: killed, it sends a FIN, not a
        // reset (a reset would be `.system(.read, ECONNRESET)`).
        try client.write(Array("abc\n".utf8), deadline: Self.deadline())
        let reversed = try client.read(upTo: 64, deadline: Self.deadline())
        #expect(reversed == Array("cba\n".utf8))
        server.kill()
        server.stop()
        let end = try client.read(upTo: 4096, deadline: Self.deadline(5))
        let closeNotify = client.closeNotifyReceived
        #expect(end.isEmpty)
        #expect(!closeNotify)
        let again = try client.read(upTo: 4096, deadline: Self.deadline(5))
        #expect(again.isEmpty)
    }

    @Test func setupErrorsNameWhatFailed() throws {
        #expect(throws: TLSError.self) { _ = try TLSContext(trust: .caBundle(path: "/nonexistent/ca.pem")) }
        do {
            _ = try TLSContext(trust: .caBundle(path: "/nonexistent/ca.pem"))
        } catch {
            #expect(error.description.hasPrefix("TLS setup: CA bundle /nonexistent/ca.pem: "), "\(error)")
        }
        let (fd, port) = try Self.silentListener()
        defer { close(fd) }
        let socket = try Self.connectLoopback(port)
        defer { close(socket) }
        #expect(throws: TLSError.setup("bad server name \"\"")) { _ = try TLSClient(socket: socket, serverName: "") }
    }
}
