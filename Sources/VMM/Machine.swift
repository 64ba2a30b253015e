import ACPI
import Devices
import Glibc
import GuestMemory
import KVM
import LinuxBoot
import MachineConfig
import POSIX
import Seccomp

/// Hooks through which a running machine reports to its owner (the CLI).
public struct MachineObserver: Sendable {
    /// Bytes the guest wrote to its serial console.
    public var console: any SerialOutput
    /// The guest init hit the boot timer; microseconds since `ProcessClock.start`.
    public var bootComplete: @Sendable (UInt64) -> Void
    /// The boot vCPU is about to enter the guest for the first time; microseconds since start.
    public var firstEntry: @Sendable (UInt64) -> Void

    public init(console: any SerialOutput, bootComplete: @escaping @Sendable (UInt64) -> Void = { _ in },
                firstEntry: @escaping @Sendable (UInt64) -> Void = { _ in }) {
        self.console = console
        self.bootComplete = bootComplete
        self.firstEntry = firstEntry
    }
}

/// A built microVM: KVM VM, guest RAM, vCPUs and devices, ready to run once.
public final class Machine: @unchecked Sendable {
    public let configuration: MachineConfiguration
    let vm: VirtualMachine
    let memory: GuestMemory
    let vcpus: [VCPU]
    let handler: ExitHandler
    let controller: StopController
    let observer: MachineObserver
    /// Kept alive for as long as the irqfds and ioeventfds they back are registered.
    let interruptEvents: [EventFD]
    let devices: DeviceEventLoop
    private var vcpuThreads: [POSIXThread] = []
    /// Opened by `release()`: no vCPU runs guest code before it.
    private let released = Completion()
    /// Closed (host sockets and listener) once the machine stops.
    private let vsock: VirtioVsock?
    /// Every virtio transport with the name logs give it, for `diagnostics()`.
    private let virtioTransports: [(name: String, transport: VirtioMMIOTransport)]

    /// The legacy COM1 serial port and its ISA interrupt.
    static let com1Port: UInt64 = 0x3f8
    static let com1GSI: UInt32 = 4
    /// virtio-mmio devices: one 0x200-byte register window each, 4 KiB apart from
    /// `Layout.deviceMMIOStart`, with GSIs from 5 (IOAPIC pins 5–23).
    static let virtioWindowStride: UInt64 = 0x1000
    static let firstVirtioGSI: UInt32 = 5

    /// How logs name a virtio device (virtio 1.2 §5 device IDs).
    static func deviceName(_ type: UInt32) -> String {
        switch type {
        case VirtioDeviceType.entropy: "virtio-rng"
        case VirtioDeviceType.vsock: "virtio-vsock"
        default: "virtio device \(type)"
        }
    }

    /// Creates the VM and lays out the guest from a preflighted payload. Nothing runs yet.
    public init(_ config: MachineConfiguration, payload: BootPayload, observer: MachineObserver) throws(VMMError) {
        let system: KVMSystem
        do {
            system = try KVMSystem(path: config.kvmPath)
            try system.require([.irqchip, .userMemory, .irqfd, .ioeventfd, .pit2, .extendedCPUID, .immediateExit])
        } catch { throw .kvm(error) }
        let limit = min(system.maximumVCPUs, Preflight.maximumVCPUs)
        guard config.vcpus <= limit else { throw .invalidVCPUCount(requested: config.vcpus, hostLimit: limit) }

        self.configuration = config
        self.observer = observer
        let controller = StopController()
        self.controller = controller

        do {
            memory = try GuestMemory(layout: Layout.ramRegions(bytes: config.memoryMiB << 20))
        } catch { throw .memory(error) }

        do {
            vm = try system.createVirtualMachine()
            try vm.setTSSAddress(Layout.kvmTSS)
            try vm.setIdentityMapAddress(Layout.kvmIdentityMap)
            try vm.createInterruptController()
            try vm.createProgrammableIntervalTimer()
            for (slot, region) in memory.regions.enumerated() {
                try vm.setUserMemoryRegion(slot: UInt32(slot), guestAddress: region.guestAddress,
                                           size: region.size, hostAddress: region.host)
            }
        } catch { throw .kvm(error) }

        // Devices and the buses that route exits to them.
        var portIO = Bus()
        let serialInterrupt: EventFD
        do {
            serialInterrupt = try EventFD()
            try vm.registerInterruptEvent(serialInterrupt, gsi: Self.com1GSI)
        } catch { throw .kvm(error) }
        let serial = Serial8250(output: observer.console, interrupt: EventLine(event: serialInterrupt))
        let power = PowerControl { request in controller.finish(request == .powerOff ? .poweredOff : .reset) }
        let bootComplete = observer.bootComplete
        do {
            try portIO.insert(serial, base: Self.com1Port, length: 8)
            try portIO.insert(I8042 { controller.finish(.reset) }, base: I8042.base, length: I8042.length)
            try portIO.insert(BootTimer { bootComplete(ProcessClock.microsecondsSinceStart()) },
                              base: BootTimer.port, length: 1)
            try portIO.insert(power, base: power.base, length: power.length)
        } catch { throw .bus(error) }

        // virtio-mmio devices: interrupts through irqfd, queue notifications through ioeventfd
        // (one per queue, matched on the queue index written to QueueNotify) to the device thread.
        var mmio = Bus()
        var events = [serialInterrupt]
        let eventLoop = try DeviceEventLoop()
        var virtioDescriptors: [VirtioMMIODescriptor] = []
        var transports: [(name: String, transport: VirtioMMIOTransport)] = []
        // Preflight refused seeds of the wrong size; a nil seed means the host's CSPRNG.
        var entropy: any EntropySource = SystemEntropy()
        if let seed = config.entropySeed {
            guard let seeded = SeededEntropy(seed: seed) else { throw .device("an entropy seed is \(SeededEntropy.seedSize) bytes, not \(seed.count)") }
            entropy = seeded
        }
        var virtioDevices: [any VirtioDevice] = [VirtioRNG(entropy: entropy)]
        var vsockDevice: VirtioVsock?
        if let vsock = config.vsock {
            do {
                let device = try VirtioVsock(guestCID: vsock.guestCID, socketPath: vsock.socketPath, events: eventLoop)
                virtioDevices.append(device)
                vsockDevice = device
            } catch {
                throw .device("virtio-vsock at \(vsock.socketPath): \(error)")
            }
        }
        for (index, device) in virtioDevices.enumerated() {
            let base = Layout.deviceMMIOStart + UInt64(index) * Self.virtioWindowStride
            let gsi = Self.firstVirtioGSI + UInt32(index)
            do {
                let interrupt = try EventFD()
                try vm.registerInterruptEvent(interrupt, gsi: gsi)
                events.append(interrupt)
                let name = "\(Self.deviceName(device.deviceType)) at 0x\(String(base, radix: 16))"
                let transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: EventLine(event: interrupt)) { reason in
                    controller.finish(.deviceFailed(device: name, reason: reason))
                }
                try mmio.insert(transport, base: base, length: VirtioMMIOTransport.windowSize)
                transports.append((name, transport))
                for queue in device.queueMaxSizes.indices {
                    let notify = try EventFD(nonBlocking: true)
                    try vm.registerIOEvent(notify, address: base + VirtioMMIOTransport.queueNotifyOffset, length: 4,
                                           match: UInt64(queue))
                    events.append(notify)
                    eventLoop.watch(notify) { transport.queueNotified(queue) }
                }
            } catch let error as KVMError { throw .kvm(error) } catch let error as BusError { throw .bus(error) } catch {
                fatalError("unreachable: \(error)")
            }
            virtioDescriptors.append(VirtioMMIODescriptor(base: base, size: VirtioMMIOTransport.windowSize, gsi: gsi))
        }
        interruptEvents = events
        devices = eventLoop
        self.vsock = vsockDevice
        virtioTransports = transports
        handler = ExitHandler(portIO: portIO, mmio: mmio)

        // ACPI tables (RSDP, XSDT, FADT, DSDT, MADT) in the BIOS area, then the kernel.
        var acpiConfig = ACPIConfiguration(vcpuCount: config.vcpus, virtioMMIO: virtioDescriptors)
        acpiConfig.sleepControlPort = UInt16(power.sleepControlPort)
        acpiConfig.sleepStatusPort = UInt16(power.sleepStatusPort)
        acpiConfig.resetPort = UInt16(power.resetPort)
        acpiConfig.resetValue = power.resetValue
        acpiConfig.serialPorts = [SerialPortDescriptor(port: UInt16(Self.com1Port), gsi: Self.com1GSI)]
        let tables: ACPITables
        do { tables = try ACPIBuilder.build(acpiConfig, at: Layout.acpiTables) } catch { throw .acpi(error) }
        let setup: LinuxLoader.Setup
        do { try memory.write(tables.bytes, at: tables.base) } catch { throw .memory(error) }
        var copyError: VMMError?
        let ram = memory
        do throws(BootError) {
            setup = try LinuxLoader.load(kernel: payload.kernel, initrdSize: payload.initrdFile?.size,
                                         commandLine: config.commandLine, rsdpAddress: tables.rsdpAddress,
                                         into: memory) { placement throws(GuestMemoryError) in
                // Straight from the files into guest RAM; a file error is kept and rethrown below.
                do throws(VMMError) {
                    try payload.kernelFile.copy(offset: payload.kernel.payloadOffset, count: payload.kernel.payloadSize,
                                                into: ram, at: placement.kernelPayload)
                    if let initrd = payload.initrdFile, let address = placement.initrd {
                        try initrd.copy(offset: 0, count: initrd.size, into: ram, at: address)
                    }
                } catch {
                    copyError = error
                }
            }
        } catch { throw .boot(error) }
        if let copyError { throw copyError }

        // vCPUs: all get CPUID, MSRs and LAPIC wiring; only the boot vCPU gets entry state.
        // The others wait in the in-kernel LAPIC for the guest's INIT/SIPI.
        do {
            let supported = try system.supportedCPUID()
            var made: [VCPU] = []
            for id in 0..<config.vcpus {
                let vcpu = try vm.createVCPU(id: id)
                try CPUSetup.configure(vcpu, supportedCPUID: supported, count: config.vcpus)
                made.append(vcpu)
            }
            try CPUSetup.enterLinux(made[0], state: setup.cpu)
            vcpus = made
        } catch { throw .kvm(error) }
    }

    /// Resident memory of this process outside guest RAM, in KiB.
    public func vmmResidentKiB() -> Int? {
        ResidentMemory.kibExcluding(memory.regions.map { r in
            UInt(bitPattern: r.host)..<UInt(bitPattern: r.host) + UInt(r.size)
        })
    }

    /// Runs the guest until it powers off, reboots, dies, or `timeoutSeconds` pass.
    public func run(timeoutSeconds: Double?) throws(VMMError) -> MachineExit {
        try start()
        release()
        return wait(timeoutSeconds: timeoutSeconds)
    }

    /// Starts the device thread and one thread per vCPU; returns at once. Each thread installs
    /// its seccomp filter from `confinement` first thing (a thread that cannot stops the machine
    /// instead of running unconfined); the vCPUs then wait for `release()` before their first
    /// KVM_RUN, so the caller confines its own thread before any guest instruction runs.
    public func start(confinement: Confinement = .off) throws(VMMError) {
        _ = VCPUKick.installOnce
        let controller = controller
        let deviceFilter: ThreadFilter?
        do { deviceFilter = try confinement.prepare(.devices) } catch { throw .seccomp(error) }
        try devices.start {
            do throws(SeccompError) { try deviceFilter?.install() } catch {
                controller.finish(.deviceFailed(device: "the device thread", reason: error.description))
                return false
            }
            return true
        }
        var threads: [POSIXThread] = []
        for vcpu in vcpus {
            do throws(VMMError) {
                let filter: ThreadFilter?
                do { filter = try confinement.prepare(.vcpu) } catch { throw VMMError.seccomp(error) }
                let hostCPU = configuration.hostCPUs.flatMap { $0.isEmpty ? nil : $0[vcpu.id % $0.count] }
                threads.append(try POSIXThread.vmm("vcpu\(vcpu.id)") { [self] in
                    // Pinned before the filter goes on: sched_setaffinity is not on the vCPU list.
                    if let hostCPU, let problem = POSIXThread.pinCurrentThread(to: hostCPU) {
                        controller.finish(.vcpuFailed(vcpu: vcpu.id, "cannot pin to host CPU \(hostCPU): \(problem)"))
                        return
                    }
                    do throws(SeccompError) { try filter?.install() } catch {
                        controller.finish(.vcpuFailed(vcpu: vcpu.id, error.description))
                        return
                    }
                    released.wait()
                    runLoop(vcpu)
                })
            } catch {
                controller.finish(.vcpuFailed(vcpu: vcpu.id, error.description))
                vcpuThreads = threads
                shutDown()
                throw error
            }
        }
        vcpuThreads = threads
    }

    /// Lets the vCPU threads enter the guest (once every thread, the caller's too, is confined).
    public func release() { released.signal() }

    /// Waits until the guest stops by itself or `timeoutSeconds` pass, then stops every thread.
    public func wait(timeoutSeconds: Double?) -> MachineExit {
        let exit = controller.wait(seconds: timeoutSeconds) ?? .timedOut(seconds: timeoutSeconds ?? 0)
        controller.finish(exit)
        shutDown()
        return exit
    }

    /// Asks a running machine to stop, from any thread; `wait` then returns `.stoppedByHost`.
    public func requestStop() { controller.finish(.stoppedByHost) }

    /// The devices' state, for a person looking at a VM that seems stuck (`momin-vmm` prints
    /// it on SIGUSR1): each virtio transport and its queues, and vsock's connection table.
    public func diagnostics() -> [String] {
        var lines: [String] = []
        for (name, transport) in virtioTransports {
            lines += transport.diagnostics.enumerated().map { $0.offset == 0 ? "\(name): \($0.element)" : "  \($0.element)" }
        }
        if let vsock { lines += vsock.diagnostics.map { "virtio-vsock: \($0)" } }
        return lines
    }

    /// Stops a running guest from the host side (the guest gets no say).
    public func stop() -> MachineExit {
        controller.finish(.stoppedByHost)
        return wait(timeoutSeconds: 0)
    }

    /// Knocks every vCPU out of KVM_RUN (immediate_exit covers a thread about to enter, the
    /// signal one already inside), joins the threads, then stops the device thread.
    private func shutDown() {
        released.signal()  // a vCPU still at the gate goes on to see the stop
        let threads = vcpuThreads
        vcpuThreads = []
        for (vcpu, thread) in zip(vcpus, threads) {
            vcpu.setImmediateExit(true)
            thread.kick()
        }
        // A vCPU thread that a kick cannot bring out of KVM_RUN (a hypervisor below us that
        // never gives the CPU back) must not hold the process for ever: say which, and let
        // the caller exit. Signals sent meanwhile may still land, so kick again while waiting.
        for (vcpu, thread) in zip(vcpus, threads) {
            var joined = false
            for _ in 0..<Self.stopWaitSeconds where !joined {
                joined = thread.join(seconds: 1)
                if !joined { thread.kick() }
            }
            if !joined { stuckVCPUs.append(vcpu.id) }
        }
        guard stuckVCPUs.isEmpty else { return }
        devices.stop()
        vsock?.close()
    }

    /// How long `shutDown` waits for each vCPU thread after kicking it.
    static let stopWaitSeconds = 10
    /// vCPUs whose threads did not stop when asked; the process should exit without waiting.
    public private(set) var stuckVCPUs: [Int] = []

    private func runLoop(_ vcpu: VCPU) {
        if vcpu.id == 0 { observer.firstEntry(ProcessClock.microsecondsSinceStart()) }
        while !controller.isStopped {
            let exit: VCPUExit
            do { exit = try vcpu.run() } catch {
                controller.finish(.vcpuFailed(vcpu: vcpu.id, error.description))
                return
            }
            switch handler.handle(exit) {
            case .resume(let input):
                if let input { vcpu.completeInput(input) }
            case .stop(let reason):
                controller.finish(.stopped(vcpu: vcpu.id, reason))
                return
            }
        }
    }
}

/// An interrupt line backed by an irqfd-registered eventfd.
struct EventLine: InterruptLine {
    let event: EventFD
    func trigger() { event.signal() }
}

/// Console output to a file descriptor (the CLI's stdout), written through unbuffered.
public struct FileDescriptorOutput: SerialOutput {
    let fd: Int32
    public init(fd: Int32) { self.fd = fd }

    public func write(_ bytes: [UInt8]) {
        try? FileIO.writeAll(fd, bytes)  // a closed stdout must not stop the guest
    }
}
