import Devices
import Glibc
import GuestMemory
import POSIX
import Testing

/// An `EventRegistry` that does nothing until the test asks: `poll()` runs one poll(2) round
/// over the watched descriptors and calls the handlers of those that are ready, on the test's
/// thread, the way the VMM's device loop does (hang-up and error map to `.closed`).
final class PollRegistry: EventRegistry, @unchecked Sendable {
    private struct Watch {
        var interest: Readiness
        let handler: @Sendable (Readiness) -> Void
    }

    private let lock = Lock()
    private var watches: [Int32: Watch] = [:]
    private var work: [@Sendable () -> Void] = []
    private(set) var doubleWatches = 0

    func watch(_ fd: Int32, for interest: Readiness, handler: @escaping @Sendable (Readiness) -> Void) throws {
        lock.withLock {
            if watches[fd] != nil { doubleWatches += 1 }
            watches[fd] = Watch(interest: interest, handler: handler)
        }
    }

    func change(_ fd: Int32, to interest: Readiness) throws {
        lock.withLock { watches[fd]?.interest = interest }
    }

    func unwatch(_ fd: Int32) {
        lock.withLock { _ = watches.removeValue(forKey: fd) }
    }

    func schedule(_ work: @escaping @Sendable () -> Void) {
        lock.withLock { self.work.append(work) }
    }

    /// Timers run only when the test moves the clock with `advance`.
    private var timers: [(deadline: Double, work: @Sendable () -> Void)] = []
    private var clock: Double = 0

    func schedule(after seconds: Double, _ work: @escaping @Sendable () -> Void) {
        lock.withLock { timers.append((clock + seconds, work)) }
    }

    var pendingTimers: Int { lock.withLock { timers.count } }
    /// Work handed over with `schedule(_:)`, not yet run by `poll`.
    var pendingWork: Int { lock.withLock { work.count } }

    /// Moves the registry's clock on by `seconds` and runs the timers that fell due, in
    /// deadline order, on the test's thread. Returns how many ran.
    @discardableResult
    func advance(by seconds: Double) -> Int {
        let due = lock.withLock { () -> [@Sendable () -> Void] in
            clock += seconds
            let now = clock
            let due = timers.filter { $0.deadline <= now }.sorted { $0.deadline < $1.deadline }.map(\.work)
            timers.removeAll { $0.deadline <= now }
            return due
        }
        for work in due { work() }
        return due.count
    }

    /// What each watched descriptor is watched for.
    var interests: [Int32: Readiness] { lock.withLock { watches.mapValues(\.interest) } }

    /// One round: scheduled work, then every ready descriptor's handler. Returns how many
    /// handlers ran.
    @discardableResult
    func poll(timeoutMilliseconds: Int32 = 0) -> Int {
        let (scheduled, snapshot) = lock.withLock { () -> ([@Sendable () -> Void], [(Int32, Watch)]) in
            defer { work.removeAll() }
            return (work, watches.map { ($0.key, $0.value) })
        }
        for item in scheduled { item() }
        var fds = snapshot.map { fd, w -> pollfd in
            var events: Int16 = 0
            if w.interest.contains(.readable) { events |= Int16(POLLIN) }
            if w.interest.contains(.writable) { events |= Int16(POLLOUT) }
            return pollfd(fd: fd, events: events, revents: 0)
        }
        guard !fds.isEmpty, Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds) > 0 else { return 0 }
        var ran = 0
        for p in fds where p.revents != 0 {
            // A handler may have unwatched a later descriptor in this round.
            guard let current = lock.withLock({ watches[p.fd] }) else { continue }
            var readiness: Readiness = []
            let r = Int32(p.revents)
            if r & Int32(POLLIN) != 0 { readiness.insert(.readable) }
            if r & Int32(POLLOUT) != 0 { readiness.insert(.writable) }
            if r & Int32(POLLHUP | POLLERR | POLLNVAL) != 0 { readiness.insert(.closed) }
            current.handler(readiness)
            ran += 1
        }
        return ran
    }
}

/// A fresh directory under /tmp, removed with everything in it when released.
final class TemporaryDirectory {
    let path: String
    init() throws {
        var template = Array("/tmp/vsock-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    deinit {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}

/// A host process's end of a Unix socket: non-blocking, read and written by the test.
final class HostSocket {
    let fd: Int32

    init(fd: Int32) {
        self.fd = fd
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    deinit { Glibc.close(fd) }

    static func sockaddr(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        return address
    }

    /// Connects to `path` (blocking, which for a Unix socket with backlog room is immediate).
    static func connect(to path: String) throws -> HostSocket {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr(path)
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard r == 0 else {
            let e = errno
            Glibc.close(fd)
            throw HostSocketError.connect(errno: e)
        }
        return HostSocket(fd: fd)
    }

    /// Writes what the socket takes now; returns the count.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Int {
        guard !bytes.isEmpty else { return 0 }
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        return max(n, 0)
    }

    func write(_ text: String) { #expect(write(Array(text.utf8)) == text.utf8.count) }

    /// What is readable now: nil if nothing yet, [] at EOF (or a reset).
    func read(max: Int = 1 << 20) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: max)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? nil : [] }
        return Array(buffer[0..<n])
    }

    func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }
}

enum HostSocketError: Error { case connect(errno: Int32) }

/// A host process listening where guest-initiated connections go (`<path>_<port>`).
final class HostListener {
    let fd: Int32
    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = HostSocket.sockaddr(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        try #require(listen(fd, 16) == 0)
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }
    deinit { Glibc.close(fd) }

    /// The connection the device made, if it made one.
    func accept() -> HostSocket? {
        let fd = Glibc.accept(self.fd, nil, nil)
        return fd >= 0 ? HostSocket(fd: fd) : nil
    }
}

/// A packet the guest took from its RX queue.
struct RxPacket {
    let header: VsockHeader
    let payload: [UInt8]
    var op: VsockOp? { header.operation }
}

/// A guest with RAM, a `VirtioVsock` behind a virtio-mmio transport, and a driver for its three
/// queues that posts RX buffers, writes TX packets and reads the used rings, as Linux's
/// virtio_transport.c does. Host sockets live in a temporary directory.
final class VsockGuest: MMIODriving {
    static let memorySize: UInt64 = 0x40_0000
    static let guestCID: UInt64 = 3
    /// RX buffers: one descriptor each, header plus 4 KiB (as Linux posts them).
    static let rxArea: UInt64 = 0x10_0000
    static let rxSlot: UInt64 = 0x2000
    static let rxBufferSize: UInt32 = 4096 + 44
    /// TX packets: header and payload in one slot, big enough for 64 KiB and a bit.
    static let txArea: UInt64 = 0x30_0000
    static let txSlot: UInt64 = 0x1_1000
    static let txSlots: UInt64 = 8

    let directory: TemporaryDirectory
    let path: String
    let memory: GuestMemory
    let registry = PollRegistry()
    let irq = CountingLine()
    let device: VirtioVsock
    let transport: VirtioMMIOTransport
    private(set) var rx: FakeDriver
    private(set) var tx: FakeDriver
    private(set) var event: FakeDriver

    /// The device's listening socket, as first registered.
    let listenerFD: Int32?

    private var rxAddresses: [UInt16: UInt64] = [:]
    private var rxPosted = 0
    private var rxSeen: UInt16 = 0
    private var rxNextSlot: UInt64 = 0
    private var txNextSlot: UInt64 = 0

    init(maxConnections: Int = 1023) throws {
        directory = try TemporaryDirectory()
        path = directory.path + "/v.sock"
        memory = try testMemory(size: Self.memorySize)
        device = try VirtioVsock(guestCID: Self.guestCID, socketPath: path, events: registry,
                                 maxConnections: maxConnections)
        listenerFD = registry.interests.keys.first
        transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: irq)
        rx = FakeDriver(memory: memory, size: 256, base: 0x1000)
        tx = FakeDriver(memory: memory, size: 256, base: 0x4000)
        event = FakeDriver(memory: memory, size: 256, base: 0x7000)
    }

    // MARK: Registers

    /// What the device watches its connections' host sockets for (the listener left out).
    var connectionInterests: [Int32: Readiness] { registry.interests.filter { $0.key != listenerFD } }
    var needsReset: Bool { status & Status.needsReset != 0 }

    /// Reset, features (all offered), three queues, DRIVER_OK; checks the device came up.
    func probe() {
        write(Reg.status, 0)
        // A driver sets up fresh rings after a reset.
        try! memory.zero(at: 0x1000, count: 0x9000)
        rx = FakeDriver(memory: memory, size: 256, base: 0x1000)
        tx = FakeDriver(memory: memory, size: 256, base: 0x4000)
        event = FakeDriver(memory: memory, size: 256, base: 0x7000)
        rxAddresses = [:]
        rxPosted = 0
        rxSeen = 0
        #expect(negotiate())  // every feature offered
        for (i, q) in [rx, tx, event].enumerated() { setUpQueue(i, layout: q) }
        addStatus(Status.driverOK)
        #expect(status == 0x0f)
    }

    /// A fresh guest, probed, with `rxBuffers` RX buffers posted.
    static func started(maxConnections: Int = 1023, rxBuffers: Int = 64) throws -> VsockGuest {
        let guest = try VsockGuest(maxConnections: maxConnections)
        guest.probe()
        guest.postRx(rxBuffers)
        return guest
    }

    // MARK: RX

    /// RX buffers the driver has posted and the device has not returned.
    var rxOutstanding: Int { rxPosted - Int(rx.usedIndex &- rxSeen) }

    /// Posts `count` RX buffers and notifies the RX queue.
    func postRx(_ count: Int, size: UInt32 = rxBufferSize) {
        precondition(rxPosted + count <= 256, "the fake driver reuses descriptors; keep ≤ 256 outstanding")
        for _ in 0..<count {
            let address = Self.rxArea + (rxNextSlot % 256) * Self.rxSlot
            rxNextSlot += 1
            let head = rx.addChain([.writable(address, size)])
            rxAddresses[head] = address
            rxPosted += 1
        }
        write(Reg.queueNotify, 0)
    }

    /// Packets the device has put in the RX used ring since the last call.
    func receive() -> [RxPacket] {
        var packets: [RxPacket] = []
        while rxSeen != rx.usedIndex {
            let element = rx.usedElement(rxSeen)
            rxSeen &+= 1
            rxPosted -= 1
            guard let address = rxAddresses[UInt16(element.id)] else {
                Issue.record("used RX head \(element.id) was never posted")
                continue
            }
            guard element.length >= 44, let bytes = try? memory.read(at: address, count: Int(element.length)),
                  let header = VsockHeader(decoding: bytes) else {
                Issue.record("RX packet of \(element.length) bytes")
                continue
            }
            #expect(Int(header.length) == bytes.count - 44, "used length and header len disagree")
            packets.append(RxPacket(header: header, payload: Array(bytes[44...])))
        }
        return packets
    }

    // MARK: TX

    /// A header from the guest (CID 3) to the host (CID 2).
    static func header(_ op: VsockOp, guestPort: UInt32, hostPort: UInt32, length: Int = 0, flags: UInt32 = 0,
                       bufferAllocation: UInt32 = 64 * 1024, forwardCount: UInt32 = 0) -> VsockHeader {
        VsockHeader(sourceCID: guestCID, destinationCID: Vsock.hostCID, sourcePort: guestPort, destinationPort: hostPort,
                    length: UInt32(length), op: op.rawValue, flags: flags, bufferAllocation: bufferAllocation,
                    forwardCount: forwardCount)
    }

    /// Sends `header` and `payload` as one TX chain (header descriptor, payload descriptor)
    /// and notifies the TX queue. The header goes as given: `len` is not fixed up.
    func send(_ header: VsockHeader, payload: [UInt8] = []) {
        let slot = Self.txArea + (txNextSlot % Self.txSlots) * Self.txSlot
        txNextSlot += 1
        try! memory.write(header.bytes, at: slot)
        var buffers: [Buffer] = [.readable(slot, 44)]
        if !payload.isEmpty {
            try! memory.write(payload, at: slot + 64)
            buffers.append(.readable(slot + 64, UInt32(payload.count)))
        }
        sendChain(buffers)
    }

    /// Any chain at all on the TX queue, then the notification.
    func sendChain(_ buffers: [Buffer]) {
        tx.addChain(buffers)
        write(Reg.queueNotify, 1)
    }

    /// Polls the host side until `condition` holds (at most `rounds` rounds of up to 10 ms).
    @discardableResult
    func pump(rounds: Int = 300, until condition: () -> Bool) -> Bool {
        for _ in 0..<rounds {
            if condition() { return true }
            registry.poll(timeoutMilliseconds: 10)
        }
        return condition()
    }

    /// Polls until the guest has RX packets, and returns them.
    func pumpReceive(rounds: Int = 300) -> [RxPacket] {
        var packets = receive()
        for _ in 0..<rounds where packets.isEmpty {
            registry.poll(timeoutMilliseconds: 10)
            packets = receive()
        }
        return packets
    }

    /// Reads from a host socket until `count` bytes came, EOF, or the rounds run out.
    func pumpRead(_ socket: HostSocket, count: Int, rounds: Int = 300) -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<rounds where bytes.count < count {
            if let chunk = socket.read() {
                if chunk.isEmpty { break }
                bytes += chunk
                continue
            }
            registry.poll(timeoutMilliseconds: 10)
        }
        return bytes
    }

    /// Whether the device closed its end of `socket` (EOF once any data is read).
    func pumpUntilClosed(_ socket: HostSocket, rounds: Int = 300) -> Bool {
        for _ in 0..<rounds {
            if let chunk = socket.read() {
                if chunk.isEmpty { return true }
                continue
            }
            registry.poll(timeoutMilliseconds: 10)
        }
        return false
    }

    // MARK: Connections

    /// A host-initiated connection to guest port `guestPort`, accepted by the guest: returns
    /// the host socket and the host port the device chose. The OK line is consumed.
    func connectFromHost(guestPort: UInt32, bufferAllocation: UInt32 = 64 * 1024) throws -> (HostSocket, UInt32) {
        let client = try HostSocket.connect(to: path)
        client.write("CONNECT \(guestPort)\n")
        let request = try #require(pumpReceive().first)
        #expect(request.op == .request)
        let hostPort = request.header.sourcePort
        send(Self.header(.response, guestPort: guestPort, hostPort: hostPort, bufferAllocation: bufferAllocation))
        let ok = pumpRead(client, count: "OK \(hostPort)\n".utf8.count)
        #expect(String(decoding: ok, as: UTF8.self) == "OK \(hostPort)\n")
        return (client, hostPort)
    }
}

/// Bytes that are never constant, so an offset or length slip shows.
func pattern(_ count: Int, seed: Int = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: ($0 &+ seed) &* 131 &+ ($0 >> 9) &* 7 &+ 0x21) }
}
