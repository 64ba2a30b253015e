import Glibc
import GuestMemory
import KVM
import Testing

/// Tier 2: the real /dev/kvm of this host with hand-made 16-bit guest code. Each test fails,
/// never skips, when /dev/kvm is missing.
@Suite(.serialized) struct KVMDirectTests {
    @Test func systemSpeaksAPI12AndHasTheCapabilitiesTheVMMNeeds() throws {
        let kvm = try KVMSystem()
        try kvm.require([.irqchip, .userMemory, .irqfd, .ioeventfd, .pit2, .extendedCPUID, .immediateExit])
        #expect(kvm.maximumVCPUs >= 2)
        let cpuid = try kvm.supportedCPUID()
        #expect(cpuid.contains { $0.function == 0 })
        #expect(cpuid.contains { $0.function == 1 })
    }

    @Test func openErrorsNameTheDeviceAndTheErrno() {
        #expect(throws: KVMError.openDevice(path: "/nonexistent/kvm", Errno(ENOENT))) {
            try KVMSystem(path: "/nonexistent/kvm")
        }
        // /dev/null opens but is no KVM: the first ioctl fails and says which one.
        #expect(throws: KVMError.ioctl("KVM_GET_API_VERSION", Errno(ENOTTY))) { try KVMSystem(path: "/dev/null") }
    }

    @Test func portOutputAndInputExitToTheVMM() throws {
        let guest = try RealModeGuest()
        try guest.load([
            0xba, 0xf8, 0x03,   // mov dx, 0x3f8
            0xb0, 0x41,         // mov al, 'A'
            0xee,               // out dx, al
            0xec,               // in al, dx
            0xa2, 0x00, 0x05,   // mov [0x500], al
            0xf4,               // hlt
        ], at: 0x1000)
        let vcpu = try guest.addVCPU(entry: 0x1000)
        let exits = try guest.runToHalt(vcpu) { _ in [0x5a] }
        #expect(exits == [.ioOut(port: 0x3f8, size: 1, data: [0x41]), .ioIn(port: 0x3f8, size: 1, count: 1), .halt])
        // The byte the VMM answered reached guest memory.
        #expect(try guest.memory.read(at: 0x500, count: 1) == [0x5a])
    }

    @Test func wideAndStringPortOutput() throws {
        let guest = try RealModeGuest()
        try guest.load([1, 2, 3], at: 0x600)
        try guest.load([
            0xba, 0x40, 0x04,         // mov dx, 0x440
            0xb8, 0x34, 0x12,         // mov ax, 0x1234
            0xef,                     // out dx, ax
            0xbe, 0x00, 0x06,         // mov si, 0x600
            0xb9, 0x03, 0x00,         // mov cx, 3
            0xfc,                     // cld
            0xf3, 0x6e,               // rep outsb
            0xf4,                     // hlt
        ], at: 0x1000)
        let vcpu = try guest.addVCPU(entry: 0x1000)
        let exits = try guest.runToHalt(vcpu)
        #expect(exits.first == .ioOut(port: 0x440, size: 2, data: [0x34, 0x12]))
        // KVM may batch string I/O into one exit or split it; the bytes are the same either way.
        let stringBytes = exits.dropFirst().flatMap { exit -> [UInt8] in
            if case .ioOut(0x440, 1, let data) = exit { return data }
            return []
        }
        #expect(stringBytes == [1, 2, 3])
        #expect(exits.last == .halt)
    }

    @Test func accessesOutsideRAMAreMMIOExits() throws {
        let guest = try RealModeGuest(memorySize: 0x10000)
        try guest.load([
            0xb8, 0x00, 0x20,               // mov ax, 0x2000
            0x8e, 0xd8,                     // mov ds, ax        (ds base 0x20000: no RAM)
            0xc6, 0x06, 0x00, 0x00, 0x99,   // mov byte [0], 0x99
            0xa0, 0x10, 0x00,               // mov al, [0x10]
            0x31, 0xc9,                     // xor cx, cx
            0x8e, 0xd9,                     // mov ds, cx
            0xa2, 0x00, 0x05,               // mov [0x500], al
            0xf4,                           // hlt
        ], at: 0x1000)
        let vcpu = try guest.addVCPU(entry: 0x1000)
        let exits = try guest.runToHalt(vcpu) { _ in [0x77] }
        #expect(exits == [.mmioWrite(address: 0x20000, data: [0x99]), .mmioRead(address: 0x20010, size: 1), .halt])
        #expect(try guest.memory.read(at: 0x500, count: 1) == [0x77])
    }

    @Test func guestWritesLandInGuestMemoryAndRegistersRoundTrip() throws {
        let guest = try RealModeGuest()
        try guest.load([
            0xc7, 0x06, 0x00, 0x07, 0xef, 0xbe,   // mov word [0x700], 0xbeef
            0x40,                                 // inc ax
            0xf4,                                 // hlt
        ], at: 0x1000)
        let vcpu = try guest.addVCPU(entry: 0x1000)
        var r = try vcpu.registers()
        r.rax = 41
        r.rbx = 0xdead_beef
        try vcpu.setRegisters(r)
        #expect(try guest.runToHalt(vcpu) == [.halt])
        #expect(try guest.memory.load(UInt16.self, at: 0x700) == 0xbeef)
        let after = try vcpu.registers()
        #expect(after.rax == 42)
        #expect(after.rbx == 0xdead_beef)
        #expect(after.rip == 0x1008)  // just past the HLT
    }

    @Test func twoVCPUsRunConcurrentlyOnTheirOwnThreads() throws {
        let guest = try RealModeGuest()
        // Each vCPU announces itself on its own port, then halts.
        try guest.load([0xb0, 0x00, 0xe6, 0x10, 0xf4], at: 0x1000)  // mov al,0; out 0x10,al; hlt
        try guest.load([0xb0, 0x01, 0xe6, 0x11, 0xf4], at: 0x1100)  // mov al,1; out 0x11,al; hlt
        let first = try guest.addVCPU(entry: 0x1000)
        let second = try guest.addVCPU(entry: 0x1100)
        let results = ResultBox()
        var threads: [pthread_t] = []
        for vcpu in [first, second] {
            let context = Unmanaged.passRetained(ThreadContext(vcpu: vcpu, guest: guest, results: results)).toOpaque()
            var thread = pthread_t()
            #expect(pthread_create(&thread, nil, { raw in
                let context = Unmanaged<ThreadContext>.fromOpaque(raw!).takeRetainedValue()
                let exits = (try? context.guest.runToHalt(context.vcpu)) ?? []
                context.results.set(context.vcpu.id, exits)
                return nil
            }, context) == 0)
            threads.append(thread)
        }
        for t in threads { pthread_join(t, nil) }
        #expect(results.get(0) == [.ioOut(port: 0x10, size: 1, data: [0]), .halt])
        #expect(results.get(1) == [.ioOut(port: 0x11, size: 1, data: [1]), .halt])
    }

    @Test func immediateExitReturnsWithoutRunningTheGuest() throws {
        let guest = try RealModeGuest()
        try guest.load([0xf4], at: 0x1000)
        let vcpu = try guest.addVCPU(entry: 0x1000)
        vcpu.setImmediateExit(true)
        #expect(try vcpu.run() == .interrupted)
        #expect(try vcpu.registers().rip == 0x1000)
        vcpu.setImmediateExit(false)
        #expect(try vcpu.run() == .halt)
    }

    @Test func eventFDCountsSignals() throws {
        let event = try EventFD(nonBlocking: true)
        #expect(event.drain() == 0)
        event.signal()
        event.signal(2)
        #expect(event.drain() == 3)
        #expect(event.drain() == 0)
    }
}

final class ThreadContext {
    let vcpu: VCPU
    let guest: RealModeGuest
    let results: ResultBox
    init(vcpu: VCPU, guest: RealModeGuest, results: ResultBox) { self.vcpu = vcpu; self.guest = guest; self.results = results }
}

final class ResultBox: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var values: [Int: [VCPUExit]] = [:]
    init() { pthread_mutex_init(&mutex, nil) }
    func set(_ id: Int, _ exits: [VCPUExit]) { pthread_mutex_lock(&mutex); values[id] = exits; pthread_mutex_unlock(&mutex) }
    func get(_ id: Int) -> [VCPUExit]? { pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }; return values[id] }
}
