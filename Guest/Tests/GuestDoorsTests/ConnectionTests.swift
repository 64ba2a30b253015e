import CGuestSys
import Doors
import Glibc
@testable import GuestDoors
import Testing

/// All server tests, one at a time: they share one process-wide reaper, and the zombie and
/// connection-count checks look at the whole process.
@Suite(.serialized) struct ServerTests {
    @Suite struct Connections {
        @Test func handshakeThenPing() throws {
            let client = try DoorsClient()
            #expect(client.serverHello?.software == "momin-init")
            #expect(client.serverHello?.versions == DoorsProtocol.supportedVersions)
            #expect(client.session == Session(version: DoorsProtocol.currentVersion, maxPayload: DoorsProtocol.maxPayload))
            #expect(try client.call(.ping(nonce: 0x1122_3344_5566_7788)) == .pong(nonce: 0x1122_3344_5566_7788))
        }

        @Test func smallerPayloadLimitIsHonoured() throws {
            let client = try DoorsClient(handshake: false)
            let local = Hello(maxPayload: UInt32(DoorsProtocol.minimumMaxPayload))
            try client.send(Frame(requestID: 0, .hello(local)))
            let hello = try client.receive()
            guard case .hello(let remote) = hello.message else {
                Issue.record("expected Hello, got \(hello)")
                return
            }
            let session = try Session.negotiate(local: local, remote: remote)
            var encoder = FrameEncoder(session: session)
            encoder.maxPayload = session.maxPayload
            try client.sendRaw(encoder.encode(Frame(requestID: 1, .exec(ExecRequest(argv: ["head", "-c", "300000", "/dev/zero"])))))
            // The client's decoder still accepts 256 KiB; check the sizes by hand.
            var total = 0
            while true {
                let frame = try client.receive()
                if case .stdoutData(let bytes) = frame.message {
                    #expect(bytes.count <= DoorsProtocol.minimumMaxPayload)
                    total += bytes.count
                }
                if frame.type == .exit { break }
            }
            #expect(total == 300_000)
        }

        @Test func requestBeforeHelloClosesTheConnection() throws {
            let client = try DoorsClient(handshake: false)
            try client.send(Frame(requestID: 1, .ping(nonce: 1)))
            let frames = try client.receiveUntilClosed()
            #expect(frames.first?.type == .hello)
            #expect(frames.last?.requestID == 0)
            #expect(frames.last?.message.errorReply?.code == .invalidRequest)
        }

        @Test func noCommonVersionIsRefused() throws {
            let client = try DoorsClient(handshake: false)
            try client.send(Frame(requestID: 0, .hello(Hello(versions: [9]))))
            let frames = try client.receiveUntilClosed()
            #expect(frames.last?.message.errorReply?.code == .unsupportedVersion)
        }

        @Test func garbageGetsAnErrorAndOnlyThatConnectionCloses() throws {
            let bystander = try DoorsClient()
            let id = bystander.newID()
            try bystander.send(Frame(requestID: id, .exec(ExecRequest(argv: ["sleep", "1"]))))

            let garbage = try DoorsClient()
            try garbage.sendRaw(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            let frames = try garbage.receiveUntilClosed()
            #expect(frames.count == 1)
            #expect(frames.first?.requestID == 0)
            #expect(frames.first?.message.errorReply?.code == .malformedFrame)

            // Garbage before the handshake too.
            let early = try DoorsClient(handshake: false)
            try early.sendRaw([UInt8](repeating: 0xFF, count: 64))
            let earlyFrames = try early.receiveUntilClosed()
            #expect(earlyFrames.first?.type == .hello)
            #expect(earlyFrames.last?.message.errorReply?.code == .malformedFrame)

            let outcome = try bystander.collectExec(id)
            #expect(outcome.exit == ExitReport(status: .exited(code: 0)))
            #expect(try bystander.call(.ping(nonce: 2)) == .pong(nonce: 2))
        }

        @Test func oversizedFrameIsFatal() throws {
            let client = try DoorsClient()
            // A FileData header announcing 1 MiB: over the limit, refused from the header alone.
            var header: [UInt8] = [0x4D, 0x44, DoorsProtocol.currentVersion, FrameType.fileData.rawValue, 0, 0, 0, 0, 1, 0, 0, 0]
            withUnsafeBytes(of: UInt32(1 << 20).littleEndian) { header += $0 }
            try client.sendRaw(header)
            let frames = try client.receiveUntilClosed()
            #expect(frames.count == 1)
            #expect(frames.first?.message.errorReply?.code == .tooLarge)
        }

        @Test func badPayloadCostsOnlyItsRequest() throws {
            let client = try DoorsClient()
            // A Stat whose path is relative: a whole frame with a bad payload.
            var payload: [UInt8] = []
            withUnsafeBytes(of: UInt32(3).littleEndian) { payload += $0 }
            payload += Array("etc".utf8) + [0]
            var frame: [UInt8] = [0x4D, 0x44, DoorsProtocol.currentVersion, FrameType.stat.rawValue, 0, 0, 0, 0, 9, 0, 0, 0]
            withUnsafeBytes(of: UInt32(payload.count).littleEndian) { frame += $0 }
            try client.sendRaw(frame + payload)
            let answer = try client.receive()
            #expect(answer.requestID == 9)
            #expect(answer.message.errorReply?.code == .invalidRequest)

            // An invalid frame for a request in flight ends that request (Error is terminal).
            let id = client.newID()
            try client.send(Frame(requestID: id, .exec(ExecRequest(argv: ["sleep", "30"]))))
            guard case .started(let pid) = try client.receive().message else {
                Issue.record("expected Started")
                return
            }
            let badKill: [UInt8] = [0x4D, 0x44, DoorsProtocol.currentVersion, FrameType.kill.rawValue, 0, 0, 0, 0] + littleEndian(id) + littleEndian(UInt32(1)) + [99]
            try client.sendRaw(badKill)
            let error = try client.receive()
            #expect(error.requestID == id)
            #expect(error.message.errorReply?.code == .invalidRequest)
            #expect(eventually { !processExists(pid) }, "the abandoned child \(pid) is still there")
            #expect(try client.call(.ping(nonce: 3)) == .pong(nonce: 3))
        }

        @Test func reusingAnIDInFlightClosesTheConnection() throws {
            let client = try DoorsClient()
            let id = client.newID()
            try client.send(Frame(requestID: id, .exec(ExecRequest(argv: ["sleep", "30"]))))
            guard case .started(let pid) = try client.receive().message else {
                Issue.record("expected Started")
                return
            }
            try client.send(Frame(requestID: id, .ping(nonce: 1)))
            let frames = try client.receiveUntilClosed()
            #expect(frames.last?.requestID == 0)
            #expect(frames.last?.message.errorReply?.code == .busy)
            #expect(eventually { !processExists(pid) })
        }

        @Test func guestOnlyFramesAndWrongKindsAreRefused() throws {
            let client = try DoorsClient()
            // Kill aimed at a ReadFile: that request ends with an Error, the connection lives.
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            #expect(try client.writeFile(scratch.path + "/f", [[UInt8]](repeating: [1], count: 1)) == .ok(count: 1))
            let write = client.newID()
            try client.send(Frame(requestID: write, .writeFile(WriteFileRequest(path: scratch.path + "/g"))))
            try client.send(Frame(requestID: write, .stdinData([1, 2])))
            let mismatch = try client.receive()
            #expect(mismatch.requestID == write && mismatch.message.errorReply?.code == .invalidRequest)
            // Ids from 0x80000000 belong to the guest.
            #expect(try client.call(.ping(nonce: 1)) == .pong(nonce: 1))
            try client.send(Frame(requestID: 0x8000_0001, .ping(nonce: 1)))
            let guestRange = try client.receive()
            #expect(guestRange.requestID == 0x8000_0001 && guestRange.message.errorReply?.code == .invalidRequest)

            try client.send(Frame(requestID: 5, .started(pid: 1)))
            let frames = try client.receiveUntilClosed()
            #expect(frames.last?.requestID == 0 && frames.last?.message.errorReply?.code == .invalidRequest)
        }

        @Test func disconnectMidExecKillsTheChild() throws {
            var pid: Int32 = 0
            do {
                let client = try DoorsClient()
                let id = client.newID()
                try client.send(Frame(requestID: id, .exec(ExecRequest(argv: ["sh", "-c", "sleep 60 & yes"]))))
                guard case .started(let started) = try client.receive().message else {
                    Issue.record("expected Started")
                    return
                }
                pid = started
                _ = try client.receive()  // some output: the transfer is under way
            }  // the client closes its socket here
            #expect(eventually { !processExists(pid) }, "child \(pid) survived its connection")
            // Its process group went too: nothing of ours is left running `sleep 60`.
            #expect(eventually { processGroupIsEmpty(pid) })
        }

        @Test func hundredConnectionsHalfDropMidTransfer() throws {
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let big = scratch.path + "/big"
            var generator = ByteGenerator(seed: 3)
            do {
                let setup = try DoorsClient()
                #expect(try setup.writeFile(big, (0..<16).map { _ in generator.next(256 << 10) }) == .ok(count: 4 << 20))
            }
            #expect(eventually { sharedServer.activeConnections == 0 })
            let descriptorsBefore = openDescriptorCount()

            var clients: [DoorsClient?] = []
            for _ in 0..<100 { clients.append(try DoorsClient()) }
            #expect(sharedServer.activeConnections == 100)

            // The odd ones start a transfer and vanish in the middle of it.
            var droppedPIDs: [Int32] = []
            for index in stride(from: 1, to: 100, by: 2) {
                guard let client = clients[index] else { continue }
                let id = client.newID()
                switch index % 3 {
                case 0:
                    // A child that does not die of a closed pipe: only the server can stop it.
                    try client.send(Frame(requestID: id, .exec(ExecRequest(argv: ["sh", "-c", "echo started; exec sleep 60"]))))
                    if case .started(let pid) = try client.receive().message { droppedPIDs.append(pid) }
                    _ = try client.receive()
                case 1:
                    try client.send(Frame(requestID: id, .writeFile(WriteFileRequest(path: scratch.path + "/partial-\(index)"))))
                    try client.send(Frame(requestID: id, .fileData(generator.next(100_000))))
                case _:
                    try client.send(Frame(requestID: id, .readFile(ReadFileRequest(path: big))))
                    _ = try client.receive()
                }
            }
            // The even ones each start an exec and a read; all in flight at once.
            for index in stride(from: 0, to: 100, by: 2) {
                try clients[index]?.send(Frame(requestID: 1, .exec(ExecRequest(argv: ["sh", "-c", "echo \(index); sleep 0.2"]))))
            }
            // Drop the odd ones: their sockets close with their transfers under way.
            for index in stride(from: 1, to: 100, by: 2) { clients[index] = nil }

            for index in stride(from: 0, to: 100, by: 2) {
                guard let client = clients[index] else { continue }
                let outcome = try client.collectExec(1)
                #expect(outcome.stdoutText == "\(index)\n")
                #expect(outcome.exit == ExitReport(status: .exited(code: 0)))
                var sum = Checksum()
                let read = try client.readFile(big) { sum.add($0) }
                #expect(read.error == nil && sum.count == 4 << 20)
            }
            clients.removeAll()

            #expect(droppedPIDs.count == 17)
            for pid in droppedPIDs {
                #expect(eventually { !processExists(pid) }, "child \(pid) of a dropped connection survived")
            }
            #expect(eventually { sharedServer.activeConnections == 0 }, "\(sharedServer.activeConnections) connections left")
            // Every socket, pipe and file of the dropped transfers is closed again.
            #expect(eventually { openDescriptorCount() == descriptorsBefore }, "\(openDescriptorCount()) open, \(descriptorsBefore) before")
            let fresh = try DoorsClient()
            #expect(try fresh.call(.ping(nonce: 42)) == .pong(nonce: 42))
            #expect(try fresh.exec(ExecRequest(argv: ["true"])).exit == ExitReport(status: .exited(code: 0)))
        }

        @Test func listenerAcceptsConnectionsOnThreads() throws {
            let path = "/tmp/guest-doors-test-\(getpid()).sock"
            unlink(path)
            let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            #expect(listener >= 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            #expect(bound == 0)
            #expect(listen(listener, 16) == 0)
            defer { unlink(path) }
            background { sharedServer.acceptForever(listener: listener) }

            var connections: [Int32] = []
            for _ in 0..<3 {
                let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
                #expect(connected == 0)
                connections.append(fd)
            }
            // All three are served at once: each answers while the others stay open.
            let clients = try connections.map { try DoorsClient(adopting: $0) }
            for (index, client) in clients.enumerated().reversed() {
                #expect(try client.call(.ping(nonce: UInt64(index))) == .pong(nonce: UInt64(index)))
            }
        }

        @Test func connectionAndRequestLimits() throws {
            var configuration = DoorsServerConfiguration()
            configuration.maxConnections = 2
            configuration.maxRequestsPerConnection = 3
            let server = try DoorsServer(configuration: configuration)
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }

            let first = try DoorsClient(server: server)
            let second = try DoorsClient(server: server)
            let third = try DoorsClient(server: server, handshake: false)
            let refused = try third.receiveUntilClosed()
            #expect(refused.first?.type == .hello)
            #expect(refused.last?.requestID == 0 && refused.last?.message.errorReply?.code == .busy)

            // Three open writes fill the connection; a fourth is refused, a Ping still answered.
            for id in 1...4 as ClosedRange<UInt32> {
                try first.send(Frame(requestID: id, .writeFile(WriteFileRequest(path: scratch.path + "/f\(id)"))))
            }
            let busy = try first.receive()
            #expect(busy.requestID == 4 && busy.message.errorReply?.code == .busy)
            try first.send(Frame(requestID: 9, .ping(nonce: 9)))
            #expect(try first.receive() == Frame(requestID: 9, .pong(nonce: 9)))
            try first.send(Frame(requestID: 1, .fileEnd))
            #expect(try first.receive() == Frame(requestID: 1, .ok(count: 0)))
            #expect(try second.call(.ping(nonce: 2)) == .pong(nonce: 2))
        }

        @Test func errorOnConnectionFromHostClosesIt() throws {
            let client = try DoorsClient()
            let id = client.newID()
            try client.send(Frame(requestID: id, .exec(ExecRequest(argv: ["sleep", "30"]))))
            guard case .started(let pid) = try client.receive().message else {
                Issue.record("expected Started")
                return
            }
            try client.send(Frame(requestID: 0, .error(ErrorReply(code: .internal, message: "host going away"))))
            #expect(try client.receiveUntilClosed().isEmpty)
            #expect(eventually { !processExists(pid) })
        }
    }
}

@Suite struct DoorsParameterTests {
    @Test func absentBareAndNumbered() {
        #expect(DoorsParameter.port(commandLine: ["console=ttyS0", "quiet"]) == nil)
        #expect(DoorsParameter.port(commandLine: ["momin.doorsx=5"]) == nil)
        #expect(DoorsParameter.port(commandLine: ["quiet", "momin.doors"])?.port == 1024)
        #expect(DoorsParameter.port(commandLine: ["momin.doors="])?.port == 1024)
        let numbered = DoorsParameter.port(commandLine: ["momin.doors=5000"])
        #expect(numbered?.port == 5000 && numbered?.problem == nil)
        #expect(DoorsParameter.port(commandLine: ["momin.doors=5000", "momin.doors=6000"])?.port == 6000)
    }

    @Test func badValuesFallBackToTheDefaultWithAProblem() {
        for word in ["momin.doors=abc", "momin.doors=-1", "momin.doors=4294967295", "momin.doors=99999999999"] {
            let parsed = DoorsParameter.port(commandLine: [word])
            #expect(parsed?.port == 1024)
            #expect(parsed?.problem != nil)
        }
    }
}

func littleEndian(_ value: UInt32) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// How many descriptors this process has open.
func openDescriptorCount() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while readdir(directory) != nil { count += 1 }
    return count
}

/// Whether no process is left in process group `group`.
func processGroupIsEmpty(_ group: Int32) -> Bool {
    kill(-group, 0) != 0 && errno == ESRCH
}
