import Doors
import Foundation
import Glibc
import GuestClient
@testable import GuestClientTestSupport
import Testing

/// Connecting through the VMM's vsock socket: CONNECT/OK, retries, deadlines, the Hello exchange.
@Suite struct HandshakeTests {
    @Test(arguments: [65_536, DoorsProtocol.maxPayload])
    func okThenHelloNegotiatesTheSession(guestLimit: Int) throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            return try peer.handshake(hello: Hello(maxPayload: UInt32(guestLimit), software: "fake-init"))
        }
        let client = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5)
        let clientHello = try guest.join()
        #expect(client.session == Session(version: DoorsProtocol.currentVersion, maxPayload: guestLimit))
        #expect(clientHello == Hello(versions: DoorsProtocol.supportedVersions, maxPayload: UInt32(DoorsProtocol.maxPayload), software: "momin"))
    }

    @Test func aRefusalOtherThanOKIsAHandshakeError() throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            try peer.acceptConnect()
            try peer.write("BUSY\n")
            try peer.expectEOF()  // the client closed its socket and sent nothing more
        }
        let error = handsError { _ = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5) }
        try guest.join()
        #expect(error?.handshakeLine == "BUSY", "got \(String(describing: error))")
    }

    @Test func okWithoutAPortIsAHandshakeError() throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            try peer.acceptConnect()
            try peer.write("OK\n")
            try peer.expectEOF()
        }
        let error = handsError { _ = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5) }
        try guest.join()
        #expect(error?.handshakeLine == "OK", "got \(String(describing: error))")
    }

    /// The VMM closes the connection when nothing in the guest listens on the port yet.
    @Test func closedRightAfterConnectIsRetriedUntilTheGuestListens() throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            for _ in 0..<2 {
                let refused = try vmm.accept()
                try refused.acceptConnect()
                refused.close()
            }
            let peer = try vmm.accept()
            try peer.handshake()
            try peer.expectEOF()
            return 3
        }
        var client: DoorsClient? = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5)
        #expect(client?.session == Session(version: DoorsProtocol.currentVersion, maxPayload: DoorsProtocol.maxPayload))
        client = nil  // closes the connection, which the fake waits for
        #expect(try guest.join() == 3)
    }

    @Test(.timeLimit(.minutes(1))) func noSocketAtAllRunsIntoTheDeadline() throws {
        let directory = try makeTempDirectory()
        defer { rmdir(directory) }
        let start = monotonic()
        let error = handsError { _ = try DoorsClient(socketPath: directory + "/absent.sock", port: testPort, seconds: 0.3) }
        let elapsed = monotonic() - start
        let notListening = try #require(error?.notListening, "got \(String(describing: error))")
        #expect(notListening.port == testPort)
        #expect(notListening.seconds == 0.3)
        #expect(elapsed >= 0.3)
    }

    /// A socket file whose VMM is gone (bound, never listening): connect is refused.
    @Test(.timeLimit(.minutes(1))) func aStaleSocketFileRunsIntoTheDeadline() throws {
        let directory = try makeTempDirectory()
        let path = directory + "/stale.sock"
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        defer {
            close(stale)
            unlink(path)
            rmdir(directory)
        }
        try #require(bound == 0)
        let start = monotonic()
        let error = handsError { _ = try DoorsClient(socketPath: path, port: testPort, seconds: 0.3) }
        let elapsed = monotonic() - start
        #expect(error?.notListening?.port == testPort, "got \(String(describing: error))")
        #expect(elapsed >= 0.3)
    }

    @Test(.timeLimit(.minutes(1))) func giveUpStopsTheRetriesAtOnce() throws {
        let directory = try makeTempDirectory()
        defer { rmdir(directory) }
        var asked = 0
        let error = handsError {
            _ = try DoorsClient(socketPath: directory + "/absent.sock", port: testPort, seconds: 30) {
                asked += 1
                return true
            }
        }
        // The VM is gone: said so, not as a deadline that was never reached.
        #expect(error?.description == "the VM stopped before its guest accepted Doors connections on vsock port \(testPort)",
                "got \(String(describing: error))")
        #expect(asked == 1)
    }

    @Test(.timeLimit(.minutes(1))) func giveUpIsAskedBeforeEachRetry() throws {
        let directory = try makeTempDirectory()
        defer { rmdir(directory) }
        var asked = 0
        let error = handsError {
            _ = try DoorsClient(socketPath: directory + "/absent.sock", port: testPort, seconds: 30) {
                asked += 1
                return asked == 3
            }
        }
        #expect(error?.description == "the VM stopped before its guest accepted Doors connections on vsock port \(testPort)",
                "got \(String(describing: error))")
        #expect(asked == 3)
    }

    /// A VMM that accepts but never answers CONNECT (its guest never took the request) must not
    /// hold the client past its deadline.
    @Test(.timeLimit(.minutes(1))) func noAnswerToConnectRunsIntoTheDeadline() throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            try peer.acceptConnect()
            try peer.expectEOF()  // silent until the client gives up and closes
        }
        let start = monotonic()
        let error = handsError { _ = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 1) }
        let elapsed = monotonic() - start
        try guest.join()
        let what = try #require(error?.timedOutWaitingFor, "got \(String(describing: error))")
        #expect(what.contains("CONNECT \(testPort)"))
        #expect(elapsed >= 0.9)
    }

    /// OK, then nothing: the guest's Hello must also come within the deadline.
    @Test(.timeLimit(.minutes(1))) func noHelloAfterOKRunsIntoTheDeadline() throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            try peer.acceptConnect()
            try peer.write("OK 1\n")
            _ = try peer.receive()  // the client's Hello
            try peer.expectEOF()
        }
        let start = monotonic()
        let error = handsError { _ = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 1) }
        let elapsed = monotonic() - start
        try guest.join()
        let what = try #require(error?.timedOutWaitingFor, "got \(String(describing: error))")
        #expect(what.contains("Hello"))
        #expect(elapsed >= 0.9)
    }

    @Test func anErrorInsteadOfHelloIsRemote() throws {
        let reply = ErrorReply(code: .unsupportedVersion, message: "no common protocol version")
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            try peer.acceptConnect()
            try peer.write(Array("OK 1\n".utf8) + FrameEncoder().encode(Frame(requestID: 0, .error(reply))))
            let hello = try peer.receive()
            try peer.expectEOF()
            return hello
        }
        let error = handsError { _ = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5) }
        let clientHello = try guest.join()
        #expect(error?.remoteReply == reply, "got \(String(describing: error))")
        #expect(clientHello.requestID == 0)
    }

    @Test func anotherFrameInsteadOfHelloIsUnexpected() throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            try peer.acceptConnect()
            try peer.write(Array("OK 1\n".utf8) + FrameEncoder().encode(Frame(requestID: 1, .ok(count: 5))))
            _ = try peer.receive()
            try peer.expectEOF()
        }
        let error = handsError { _ = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5) }
        try guest.join()
        #expect(error?.unexpectedMessage == .ok(count: 5), "got \(String(describing: error))")
    }

    @Test func aHelloWithNoCommonVersionIsAProtocolError() throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            try peer.acceptConnect()
            let hello = Hello(versions: [3, 4], software: "future-init")
            try peer.write(Array("OK 1\n".utf8) + FrameEncoder().encode(Frame(requestID: 0, .hello(hello))))
            _ = try peer.receive()
        }
        let error = handsError { _ = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5) }
        try guest.join()
        #expect(error?.doorsError == .noCommonVersion(local: [2], remote: [3, 4]), "got \(String(describing: error))")
    }

    @Test func aBadMagicInsteadOfHelloIsAProtocolError() throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            try peer.acceptConnect()
            var bytes = try FrameEncoder().encode(Frame(requestID: 0, .hello(Hello())))
            bytes[0] = 0x34
            bytes[1] = 0x12
            try peer.write(Array("OK 1\n".utf8) + bytes)
            _ = try peer.receive()
            try peer.expectEOF()
        }
        let error = handsError { _ = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5) }
        try guest.join()
        #expect(error?.doorsError == .badMagic(0x1234), "got \(String(describing: error))")
    }

    /// A handshake that fails after the socket is open must close it exactly once: a second
    /// close(2) of the same number may close a descriptor another thread has opened meanwhile.
    /// close(2) of a number that is no longer open fails with EBADF, which is what this watches.
    @Test func aFailedHelloClosesTheSocketExactlyOnce() throws {
        let vmm = try FakeVMM()
        let guest = vmm.serve { vmm in
            let peer = try vmm.accept()
            try peer.acceptConnect()
            let reply = ErrorReply(code: .busy, message: "another host connection is open")
            try peer.write(Array("OK 1\n".utf8) + FrameEncoder().encode(Frame(requestID: 0, .error(reply))))
            _ = try peer.receive()
            try peer.expectEOF()
        }
        errno = 0
        var afterwards: Int32 = -1
        do {
            _ = try DoorsClient(socketPath: vmm.socketPath, port: testPort, seconds: 5)
        } catch {
            afterwards = errno  // read before anything else can make a system call
        }
        try guest.join()
        #expect(afterwards != EBADF, "the client's socket was closed twice (close(2) failed with EBADF)")
        #expect(afterwards != -1, "the handshake did not fail")
    }
}

func monotonic() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
