import Devices
import Glibc
import GuestMemory
import Testing

/// virtio-vsock end to end: a fake driver on the three queues plays the guest, real Unix
/// sockets in a temporary directory play the host processes, and the test decides when the
/// event loop runs.
@Suite struct VsockDeviceTests {
    // MARK: Identity and configuration

    @Test func identityQueuesAndGuestCID() throws {
        let guest = try VsockGuest()
        #expect(guest.read(Reg.deviceID) == 19)
        guest.write(Reg.deviceFeaturesSel, 0)
        #expect(guest.read(Reg.deviceFeatures) == 1 << 29)  // EVENT_IDX, no device bits
        // §5.10.4: le64 guest_cid, read in any naturally aligned width.
        #expect(guest.read(Reg.config) == 3)
        #expect(guest.read(Reg.config + 4) == 0)
        var byte = [UInt8](repeating: 0xaa, count: 1)
        guest.transport.read(offset: Reg.config, into: &byte)
        #expect(byte == [3])
    }

    @Test func reservedGuestCIDsAndBadPathsAreRefused() throws {
        let dir = try TemporaryDirectory()
        for cid: UInt64 in [0, 1, 2, 1 << 32] {
            #expect(throws: VsockError.invalidGuestCID(cid)) {
                try VirtioVsock(guestCID: cid, socketPath: dir.path + "/a", events: PollRegistry())
            }
        }
        let long = dir.path + "/" + String(repeating: "x", count: 120)
        #expect(throws: VsockError.socketPathTooLong(path: long)) {
            try VirtioVsock(guestCID: 3, socketPath: long, events: PollRegistry())
        }
        let missing = dir.path + "/no/such/dir/v.sock"
        do {
            _ = try VirtioVsock(guestCID: 3, socketPath: missing, events: PollRegistry())
            Issue.record("bound in a missing directory")
        } catch let error as VsockError {
            #expect(String(describing: error).contains(missing))
        }
        // A regular file in the way is reported, not deleted.
        let file = dir.path + "/file"
        let fd = open(file, O_CREAT | O_WRONLY, 0o600)
        Glibc.close(fd)
        #expect(throws: VsockError.notASocket(path: file)) {
            try VirtioVsock(guestCID: 3, socketPath: file, events: PollRegistry())
        }
        #expect(access(file, F_OK) == 0)
    }

    @Test func aStaleSocketFileIsReplacedAndCloseRemovesIt() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/v.sock"
        let first = try VirtioVsock(guestCID: 3, socketPath: path, events: PollRegistry())
        _ = first  // a crashed VMM leaves its socket file behind; the next one must bind anyway
        let registry = PollRegistry()
        let second = try VirtioVsock(guestCID: 3, socketPath: path, events: registry)
        #expect(registry.interests.count == 1)  // the listener
        _ = try HostSocket.connect(to: path)
        second.close()
        #expect(access(path, F_OK) != 0)
        #expect(registry.interests.isEmpty)
    }

    // MARK: Host-initiated

    @Test func hostConnectRequestsTheGuestPortAndRelaysBothWays() throws {
        let guest = try VsockGuest.started()
        let client = try HostSocket.connect(to: guest.path)
        client.write("CONNECT 5000\n")
        let request = try #require(guest.pumpReceive().first)
        #expect(request.op == .request)
        #expect(request.header.sourceCID == 2 && request.header.destinationCID == 3)
        #expect(request.header.destinationPort == 5000)
        #expect(request.header.sourcePort >= 1 << 30)
        #expect(request.header.type == 1 && request.header.length == 0)
        #expect(request.header.bufferAllocation == 256 * 1024 && request.header.forwardCount == 0)
        let hostPort = request.header.sourcePort

        // Nothing reaches the host until the guest accepts.
        guest.registry.poll()
        #expect(client.read() == nil)
        guest.send(VsockGuest.header(.response, guestPort: 5000, hostPort: hostPort))
        #expect(guest.pumpRead(client, count: 14) == Array("OK \(hostPort)\n".utf8))

        // Host → guest.
        let toGuest = pattern(3000)
        client.write(toGuest)
        let packets = guest.pumpReceive()
        #expect(packets.count == 1)
        #expect(packets.first?.op == .rw)
        #expect(packets.first?.header.sourcePort == hostPort && packets.first?.header.destinationPort == 5000)
        #expect(packets.first?.payload == toGuest)

        // Guest → host.
        let toHost = pattern(5000, seed: 9)
        guest.send(VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: toHost.count), payload: toHost)
        #expect(guest.pumpRead(client, count: toHost.count) == toHost)
        #expect(guest.device.connectionCount == 1)
        #expect(!guest.needsReset)

        // The state dump names the connection and its credit both ways.
        let lines = guest.device.diagnostics
        #expect(lines.first?.hasPrefix("active true, holding an RX buffer ") == true)
        #expect(lines.count == 3)
        #expect(lines[1].hasPrefix("1 connections, 0 host sockets before CONNECT"))
        #expect(lines[2].hasPrefix("  host \(hostPort) guest 5000: established, credit to guest"))
        #expect(lines[2].contains("queued for host 0"))
    }

    @Test func bytesSentAfterTheConnectLineAreTheFirstData() throws {
        let guest = try VsockGuest.started()
        let client = try HostSocket.connect(to: guest.path)
        client.write("CONN")
        guest.registry.poll()
        guest.registry.poll()
        #expect(guest.receive().isEmpty)
        client.write("ECT 77\nearly bytes")  // the line arrives in pieces, data right behind it
        let request = try #require(guest.pumpReceive().first)
        #expect(request.op == .request && request.header.destinationPort == 77)
        guest.send(VsockGuest.header(.response, guestPort: 77, hostPort: request.header.sourcePort))
        let data = guest.pumpReceive()
        #expect(data.first?.op == .rw)
        #expect(data.first?.payload == Array("early bytes".utf8))
    }

    @Test func hostPortsAreUniqueAmongLiveConnections() throws {
        let guest = try VsockGuest.started()
        var ports: Set<UInt32> = []
        var clients: [HostSocket] = []
        for i in 0..<5 {
            let client = try HostSocket.connect(to: guest.path)
            client.write("CONNECT \(100 + i)\n")
            clients.append(client)
            let request = try #require(guest.pumpReceive().first)
            ports.insert(request.header.sourcePort)
        }
        #expect(ports.count == 5)
        #expect(ports.allSatisfy { $0 >= 1 << 30 })
    }

    @Test func guestRefusingTheRequestClosesTheHostSocket() throws {
        let guest = try VsockGuest.started()
        let client = try HostSocket.connect(to: guest.path)
        client.write("CONNECT 6000\n")
        let request = try #require(guest.pumpReceive().first)
        guest.send(VsockGuest.header(.rst, guestPort: 6000, hostPort: request.header.sourcePort))
        #expect(guest.pumpUntilClosed(client))
        #expect(guest.device.connectionCount == 0)
        #expect(guest.receive().isEmpty)  // an RST is never answered
    }

    @Test func hostGivingUpBeforeTheGuestAnswersResetsTheGuest() throws {
        let guest = try VsockGuest.started()
        var client: HostSocket? = try HostSocket.connect(to: guest.path)
        client?.write("CONNECT 6001\n")
        let request = try #require(guest.pumpReceive().first)
        client = nil  // closed
        let rst = try #require(guest.pumpReceive().first)
        #expect(rst.op == .rst && rst.header.sourcePort == request.header.sourcePort)
        #expect(guest.device.connectionCount == 0)
    }

    @Test func malformedConnectLinesCloseTheSocket() throws {
        let guest = try VsockGuest.started()
        let lines = ["HELLO 5\n", "CONNECT\n", "CONNECT x\n", "CONNECT 4294967296\n", "CONNECT 5 6\n",
                     String(repeating: "A", count: 40)]
        for line in lines {
            let client = try HostSocket.connect(to: guest.path)
            client.write(line)
            #expect(guest.pumpUntilClosed(client), "\(line.debugDescription) was not refused")
        }
        #expect(guest.receive().isEmpty)
        #expect(guest.device.connectionCount == 0)
        // A client that hangs up before finishing its line is dropped too.
        let quitter = try HostSocket.connect(to: guest.path)
        quitter.write("CONNE")
        quitter.shutdownWrite()
        #expect(guest.pumpUntilClosed(quitter))
    }

    @Test func hostConnectionsWhileTheDriverIsDownAreClosed() throws {
        let guest = try VsockGuest()
        let client = try HostSocket.connect(to: guest.path)
        #expect(guest.pumpUntilClosed(client))
    }

    // MARK: Guest-initiated

    @Test func guestConnectReachesTheListenerAtPathUnderscorePort() throws {
        let guest = try VsockGuest.started()
        let listener = try HostListener(path: guest.path + "_5000")
        guest.send(VsockGuest.header(.request, guestPort: 7777, hostPort: 5000, bufferAllocation: 32 * 1024))
        let response = try #require(guest.receive().first)
        #expect(response.op == .response)
        #expect(response.header.sourceCID == 2 && response.header.destinationCID == 3)
        #expect(response.header.sourcePort == 5000 && response.header.destinationPort == 7777)
        #expect(response.header.bufferAllocation == 256 * 1024)
        let server = try #require(listener.accept())

        let toHost = pattern(1000)
        guest.send(VsockGuest.header(.rw, guestPort: 7777, hostPort: 5000, length: toHost.count), payload: toHost)
        #expect(guest.pumpRead(server, count: 1000) == toHost)  // no OK line on this side
        let toGuest = pattern(2000, seed: 3)
        server.write(toGuest)
        let packets = guest.pumpReceive()
        #expect(packets.first?.op == .rw && packets.first?.payload == toGuest)
        #expect(packets.first?.header.sourcePort == 5000 && packets.first?.header.destinationPort == 7777)
    }

    @Test func guestConnectToAPortNobodyListensOnIsReset() throws {
        let guest = try VsockGuest.started()
        guest.send(VsockGuest.header(.request, guestPort: 7778, hostPort: 5001))
        let rst = try #require(guest.receive().first)
        #expect(rst.op == .rst)
        #expect(rst.header.sourceCID == 2 && rst.header.destinationCID == 3)
        #expect(rst.header.sourcePort == 5001 && rst.header.destinationPort == 7778)
        #expect(guest.device.connectionCount == 0)
    }

    @Test func packetsForUnknownConnectionsAreReset() throws {
        let guest = try VsockGuest.started()
        for op: VsockOp in [.rw, .response, .shutdown, .creditUpdate, .creditRequest] {
            guest.send(VsockGuest.header(op, guestPort: 1, hostPort: 4242, length: op == .rw ? 3 : 0),
                       payload: op == .rw ? [1, 2, 3] : [])
            let rst = try #require(guest.receive().first, "no RST for \(op)")
            #expect(rst.op == .rst)
            #expect(rst.header.sourcePort == 4242 && rst.header.destinationPort == 1)
        }
        guest.send(VsockGuest.header(.rst, guestPort: 1, hostPort: 4242))
        #expect(guest.receive().isEmpty)  // an RST is never answered
    }

    @Test func seqpacketIsRefusedWithAMatchingReset() throws {
        let guest = try VsockGuest.started()
        let listener = try HostListener(path: guest.path + "_5002")
        var request = VsockGuest.header(.request, guestPort: 9, hostPort: 5002)
        request.type = Vsock.typeSeqpacket
        guest.send(request)
        let rst = try #require(guest.receive().first)
        #expect(rst.op == .rst && rst.header.type == Vsock.typeSeqpacket)
        #expect(listener.accept() == nil)
    }

    // MARK: Limits

    @Test func connectionsBeyondTheCapAreRefusedOnBothSides() throws {
        let guest = try VsockGuest.started(maxConnections: 2)
        let listener = try HostListener(path: guest.path + "_5000")
        for port: UInt32 in [1, 2] {
            guest.send(VsockGuest.header(.request, guestPort: port, hostPort: 5000))
            #expect(guest.receive().first?.op == .response)
        }
        guest.send(VsockGuest.header(.request, guestPort: 3, hostPort: 5000))
        #expect(guest.receive().first?.op == .rst)
        #expect(guest.device.connectionCount == 2)
        let client = try HostSocket.connect(to: guest.path)
        #expect(guest.pumpUntilClosed(client))
        #expect(guest.receive().isEmpty)

        // Room again once one ends.
        guest.send(VsockGuest.header(.rst, guestPort: 1, hostPort: 5000))
        #expect(guest.device.connectionCount == 1)
        guest.send(VsockGuest.header(.request, guestPort: 4, hostPort: 5000))
        #expect(guest.receive().first?.op == .response)
        _ = listener
    }

    // MARK: Flow control

    /// 1 MiB guest → host, four times our buffer, while the host reads nothing at first: the
    /// device queues up to its buf_alloc, watches for writable only while it holds bytes, and
    /// lets the guest go on with CREDIT_UPDATEs as the host drains.
    @Test func guestToHostTransferBiggerThanTheBuffer() throws {
        let guest = try VsockGuest.started()
        let (client, hostPort) = try guest.connectFromHost(guestPort: 5000)
        let data = pattern(1 << 20, seed: 5)
        var sent = 0
        var deviceBuffer: UInt32 = 256 * 1024
        var deviceForwarded: UInt32 = 0
        var received: [UInt8] = []
        var hostReads = false
        var updates = 0
        var sawWritable = false
        for _ in 0..<20_000 where received.count < data.count {
            let credit = Int(deviceBuffer) - (sent - Int(deviceForwarded))
            if sent < data.count, credit > 0 {
                let n = min(credit, 16 * 1024, data.count - sent)
                guest.send(VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: n),
                           payload: Array(data[sent..<sent + n]))
                sent += n
            } else {
                hostReads = true  // the guest is out of credit: now let the host drain
            }
            if guest.connectionInterests.values.contains(where: { $0.contains(.writable) }) { sawWritable = true }
            if hostReads, let chunk = client.read() { received += chunk }
            guest.registry.poll()
            if received.count == sent {
                // Nothing queued: the socket must not be watched for writable.
                #expect(!guest.connectionInterests.values.contains { $0.contains(.writable) })
            }
            for p in guest.receive() {
                #expect(p.op == .creditUpdate, "unexpected \(String(describing: p.op))")
                #expect(p.header.bufferAllocation == 256 * 1024)
                deviceBuffer = p.header.bufferAllocation
                deviceForwarded = p.header.forwardCount
                updates += 1
            }
            if guest.rxOutstanding < 16 { guest.postRx(32) }
        }
        #expect(received == data)
        #expect(updates > 0)
        #expect(sawWritable)
        #expect(!guest.needsReset)
    }

    /// 1 MiB host → guest into a guest buffer of 64 KiB and few RX buffers at a time: the
    /// device never sends beyond the guest's credit, stops reading while it has none or no RX
    /// buffer, and resumes on CREDIT_UPDATE and on RX refills.
    @Test func hostToGuestTransferRespectsGuestCreditAndRxBuffers() throws {
        let guest = try VsockGuest.started(rxBuffers: 0)
        let guestBuffer: UInt32 = 64 * 1024
        guest.postRx(8)
        let (client, hostPort) = try guest.connectFromHost(guestPort: 5000, bufferAllocation: guestBuffer)
        let data = pattern(1 << 20, seed: 11)
        var written = 0
        var received: [UInt8] = []
        var consumed = 0  // the guest application's reads: its fwd_cnt
        var reported = 0
        var starvedRounds = 0
        var creditRequests = 0
        func absorb(_ packets: [RxPacket]) {
            for p in packets {
                switch p.op {
                case .rw:
                    received += p.payload
                    #expect(received.count - reported <= Int(guestBuffer), "device overran the guest's credit")
                case .creditRequest:
                    creditRequests += 1
                    guest.send(VsockGuest.header(.creditUpdate, guestPort: 5000, hostPort: hostPort,
                                                 bufferAllocation: guestBuffer, forwardCount: UInt32(consumed)))
                    reported = consumed
                default:
                    Issue.record("unexpected \(String(describing: p.op))")
                }
            }
        }
        for round in 0..<20_000 where received.count < data.count {
            if written < data.count { written += client.write(Array(data[written..<min(written + 100_000, data.count)])) }
            guest.registry.poll()
            absorb(guest.receive())
            // The application reads slowly, and tells the device every 32 KiB.
            if round % 3 == 0 { consumed = min(received.count, consumed + 8192) }
            if consumed - reported >= 32 * 1024 {
                guest.send(VsockGuest.header(.creditUpdate, guestPort: 5000, hostPort: hostPort,
                                             bufferAllocation: guestBuffer, forwardCount: UInt32(consumed)))
                reported = consumed
            }
            // What the updates above let through (answering those may let more through).
            while case let packets = guest.receive(), !packets.isEmpty { absorb(packets) }
            if guest.rxOutstanding == 0 {
                if written > received.count {
                    // Starved with bytes waiting: another round must not read the host socket.
                    guest.registry.poll()
                    #expect(guest.receive().count == 0)
                    #expect(!guest.connectionInterests.values.contains { $0.contains(.readable) },
                            "watching the host socket for reading with no RX buffer")
                    starvedRounds += 1
                }
                guest.postRx(8)
            }
        }
        #expect(received == data)
        #expect(starvedRounds > 0)
        #expect(!guest.needsReset)
    }

    /// A guest buffer of 5000 bytes against 4 KiB RX buffers: the device sends 4096 + 904,
    /// asks for credit, and sends nothing more until the guest's fwd_cnt moves.
    @Test func hostToGuestStopsAtTheExactCredit() throws {
        let guest = try VsockGuest.started()
        let (client, hostPort) = try guest.connectFromHost(guestPort: 5000, bufferAllocation: 5000)
        let data = pattern(20_000)
        #expect(client.write(data) == data.count)
        var packets: [RxPacket] = []
        guest.pump { packets += guest.receive(); return packets.count >= 3 }
        #expect(packets.map(\.op) == [.rw, .rw, .creditRequest])
        #expect(packets.map(\.payload.count) == [4096, 904, 0])
        for _ in 0..<5 { guest.registry.poll(timeoutMilliseconds: 5) }
        #expect(guest.receive().isEmpty)  // out of credit, and already asked
        #expect(!guest.connectionInterests.values.contains { $0.contains(.readable) })
        // The guest read 3000 bytes: exactly 3000 more may come.
        guest.send(VsockGuest.header(.creditUpdate, guestPort: 5000, hostPort: hostPort, bufferAllocation: 5000,
                                     forwardCount: 3000))
        packets = []
        guest.pump { packets += guest.receive(); return packets.contains { $0.op == .creditRequest } }
        #expect(packets.filter { $0.op == .rw }.map(\.payload.count).reduce(0, +) == 3000)
        #expect(packets.flatMap(\.payload) == Array(data[5000..<8000]))
    }

    // MARK: Shutdown and reset

    @Test func hostCloseSendsShutdownAndTheGuestsShutdownEndsIt() throws {
        let guest = try VsockGuest.started()
        var (client, hostPort) = try guest.connectFromHost(guestPort: 5000)
        client.write(Array("last words".utf8))
        client.shutdownWrite()
        var packets: [RxPacket] = []
        guest.pump { packets += guest.receive(); return packets.count >= 2 }
        #expect(packets.map(\.op) == [.rw, .shutdown])
        #expect(packets.first?.payload == Array("last words".utf8))
        #expect(packets.last?.header.flags == Vsock.shutdownSend)
        // Half-closed: the guest can still send to the host.
        guest.send(VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: 2), payload: [4, 2])
        #expect(guest.pumpRead(client, count: 2) == [4, 2])
        // The guest closes its end: both directions are done, the device resets and forgets it.
        guest.send(VsockGuest.header(.shutdown, guestPort: 5000, hostPort: hostPort, flags: 3))
        let rst = try #require(guest.pumpReceive().first)
        #expect(rst.op == .rst)
        #expect(guest.pumpUntilClosed(client))
        #expect(guest.device.connectionCount == 0)
        client = try HostSocket.connect(to: guest.path)  // the listener is still there
    }

    /// A host that closes its socket entirely (not a half-close) while the guest stays silent
    /// ends the connection: SHUTDOWN for the EOF, then an RST, and the slot is free.
    @Test func hostCloseWhileTheGuestIsSilentEndsTheConnection() throws {
        let guest = try VsockGuest.started()
        var client: HostSocket? = try guest.connectFromHost(guestPort: 5000).0
        #expect(guest.device.connectionCount == 1)
        client = nil  // close(2): the host process is gone
        var packets: [RxPacket] = []
        #expect(guest.pump { packets += guest.receive(); return packets.contains { $0.op == .rst } })
        #expect(packets.last?.op == .rst)
        #expect(packets.dropLast().allSatisfy { $0.op == .shutdown })
        #expect(guest.device.connectionCount == 0)
        #expect(guest.connectionInterests.isEmpty)
        _ = client
    }

    @Test func guestShutdownSendShutsTheHostWriteSideAfterFlushing() throws {
        let guest = try VsockGuest.started()
        let (client, hostPort) = try guest.connectFromHost(guestPort: 5000)
        let bytes = pattern(10_000)
        guest.send(VsockGuest.header(.rw, guestPort: 5000, hostPort: hostPort, length: bytes.count), payload: bytes)
        guest.send(VsockGuest.header(.shutdown, guestPort: 5000, hostPort: hostPort, flags: Vsock.shutdownSend))
        #expect(guest.pumpRead(client, count: bytes.count) == bytes)
        #expect(guest.pumpUntilClosed(client))  // EOF on the host's read side
        // The other direction still works.
        client.write(Array("still here".utf8))
        #expect(guest.pumpReceive().first?.payload == Array("still here".utf8))
    }

    // MARK: Timers

    /// A guest that never answers a host's REQUEST: after the request timeout the guest gets an
    /// RST and the host socket closes without `OK`; an answer that comes later is refused.
    @Test func anUnansweredRequestIsResetAfterTheTimeout() throws {
        let guest = try VsockGuest.started()
        let client = try HostSocket.connect(to: guest.path)
        client.write("CONNECT 5000\n")
        let request = try #require(guest.pumpReceive().first)
        #expect(request.op == .request)
        let hostPort = request.header.sourcePort
        #expect(guest.registry.pendingTimers == 1)

        #expect(guest.registry.advance(by: VirtioVsock.requestTimeout - 0.5) == 0)
        #expect(guest.device.connectionCount == 1)
        #expect(guest.registry.advance(by: 0.5) == 1)
        let reset = try #require(guest.pumpReceive().first)
        #expect(reset.op == .rst)
        #expect(reset.header.sourcePort == hostPort && reset.header.destinationPort == 5000)
        #expect(guest.pumpUntilClosed(client))  // EOF, no OK line before it
        #expect(guest.device.connectionCount == 0)

        guest.send(VsockGuest.header(.response, guestPort: 5000, hostPort: hostPort))
        #expect(guest.pumpReceive().first?.op == .rst)
        #expect(guest.device.connectionCount == 0)
    }

    @Test func anAnsweredRequestOutlivesItsTimer() throws {
        let guest = try VsockGuest.started()
        let (client, hostPort) = try guest.connectFromHost(guestPort: 5000)
        #expect(guest.registry.advance(by: VirtioVsock.requestTimeout * 3) == 1)
        #expect(guest.receive().isEmpty)
        #expect(guest.device.connectionCount == 1)
        client.write(Array("still open".utf8))
        let packet = try #require(guest.pumpReceive().first)
        #expect(packet.op == .rw && packet.header.sourcePort == hostPort)
        #expect(packet.payload == Array("still open".utf8))
    }

    @Test func guestResetClosesTheHostSocketAtOnce() throws {
        let guest = try VsockGuest.started()
        let (client, hostPort) = try guest.connectFromHost(guestPort: 5000)
        guest.send(VsockGuest.header(.rst, guestPort: 5000, hostPort: hostPort))
        #expect(client.read() == [])  // closed synchronously, before any poll
        #expect(guest.device.connectionCount == 0)
        #expect(guest.receive().isEmpty)
    }

    @Test func deviceResetClosesConnectionsAndKeepsTheListener() throws {
        let guest = try VsockGuest.started()
        let listener = try HostListener(path: guest.path + "_5000")
        let (client, _) = try guest.connectFromHost(guestPort: 5000)
        guest.send(VsockGuest.header(.request, guestPort: 8, hostPort: 5000))
        let server = try #require(listener.accept())
        #expect(guest.device.connectionCount == 2)
        guest.write(Reg.status, 0)
        #expect(guest.device.connectionCount == 0)
        #expect(client.read() == [])
        #expect(server.read() == [])
        #expect(guest.registry.interests.count == 1)  // the listener alone

        guest.probe()
        guest.postRx(8)
        let again = try HostSocket.connect(to: guest.path)
        again.write("CONNECT 5\n")
        #expect(guest.pumpReceive().first?.op == .request)
    }
}
