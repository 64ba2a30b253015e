import ACPI
import Devices
import GuestMemory
import KVM
import LinuxBoot
import MachineConfig

/// Builds a machine in small steps, in the order a boot needs them (Firecracker's
/// `builder.rs`): the VM and its RAM, the legacy devices, each virtio device through one
/// `attach`, the ACPI tables that describe them, the kernel, then the vCPUs. A new device is one
/// more `attach…` step; nothing here runs guest code.
struct MachineBuilder {
    let configuration: MachineConfiguration
    let observer: MachineObserver
    let system: KVMSystem
    let vm: VirtualMachine
    let memory: GuestMemory
    let controller = StopController()
    let eventLoop: DeviceEventLoop
    private(set) var portIO = Bus()
    private(set) var mmio = Bus()
    /// Kept alive for as long as the irqfds and ioeventfds they back are registered.
    private(set) var interruptEvents: [EventFD] = []
    private(set) var transports: [(name: String, transport: VirtioMMIOTransport)] = []
    private(set) var vsock: VirtioVsock?
    /// The disks' devices, in the guest's order, with the names logs give them (vda, vdb...).
    private(set) var blockDevices: [(name: String, device: VirtioBlock)] = []
    private var slots = DeviceSlots()
    private var virtioDescriptors: [VirtioMMIODescriptor] = []
    private var power: PowerControl?

    /// The legacy COM1 serial port and its ISA interrupt.
    static let com1Port: UInt64 = 0x3f8
    static let com1GSI: UInt32 = 4

    /// Creates the VM, with its interrupt controller, PIT and RAM.
    init(_ config: MachineConfiguration, observer: MachineObserver) throws(VMMError) {
        do {
            system = try KVMSystem(path: config.kvmPath)
            try system.require([.irqchip, .userMemory, .irqfd, .ioeventfd, .pit2, .extendedCPUID, .immediateExit])
        } catch { throw .kvm(error) }
        let limit = min(system.maximumVCPUs, Preflight.maximumVCPUs)
        guard config.vcpus <= limit else { throw .invalidVCPUCount(requested: config.vcpus, hostLimit: limit) }
        configuration = config
        self.observer = observer
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
        eventLoop = try DeviceEventLoop()
    }

    /// The port-I/O devices: the COM1 UART (its interrupt an irqfd on GSI 4), the i8042 reset
    /// line, the boot timer and the ACPI power registers.
    mutating func attachLegacyDevices() throws(VMMError) {
        let serialInterrupt: EventFD
        do {
            serialInterrupt = try EventFD()
            try vm.registerInterruptEvent(serialInterrupt, gsi: Self.com1GSI)
        } catch { throw .kvm(error) }
        interruptEvents.append(serialInterrupt)
        let controller = controller
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
        self.power = power
    }

    /// virtio-rng (virtio 1.2 §5.4): from the host's CSPRNG, or from the configuration's seed so
    /// a recorded session can be replayed.
    mutating func attachEntropyDevice() throws(VMMError) {
        var entropy: any EntropySource = SystemEntropy()
        if let seed = configuration.entropySeed {
            // Preflight refused seeds of the wrong size; this is the last word on it.
            guard let seeded = SeededEntropy(seed: seed) else {
                throw .device("an entropy seed is \(SeededEntropy.seedSize) bytes, not \(seed.count)")
            }
            entropy = seeded
        }
        try attach(VirtioRNG(entropy: entropy))
    }

    /// virtio-vsock (virtio 1.2 §5.10), when the configuration asks for the host to talk to the
    /// guest: its Unix socket is made here, before the filters go on.
    mutating func attachVsockDevice() throws(VMMError) {
        guard let settings = configuration.vsock else { return }
        let device: VirtioVsock
        do { device = try VirtioVsock(guestCID: settings.guestCID, socketPath: settings.socketPath, events: eventLoop) } catch {
            throw .device("virtio-vsock at \(settings.socketPath): \(error)")
        }
        try attach(device)
        vsock = device
    }

    /// virtio-blk (virtio 1.2 §5.2), one per configured disk, over the descriptors preflight
    /// opened. Attached in order after the other virtio devices, so the guest's driver, probing
    /// the DSDT's devices in order, names the first /dev/vda.
    mutating func attachBlockDevices(_ files: [DiskFile]) throws(VMMError) {
        guard files.count == configuration.disks.count else {
            throw .device("\(configuration.disks.count) disks configured, \(files.count) opened")
        }
        for (index, (disk, file)) in zip(configuration.disks, files).enumerated() {
            let device: VirtioBlock
            do {
                device = try VirtioBlock(storage: file, readOnly: disk.readOnly, serial: Array((disk.serial ?? "").utf8),
                                         bytesPerSecond: disk.bytesPerSecond.map { .init(perSecond: $0.perSecond, burst: $0.burst) },
                                         operationsPerSecond: disk.operationsPerSecond.map { .init(perSecond: $0.perSecond, burst: $0.burst) },
                                         events: eventLoop)
            } catch { throw .device("\(disk.path): \(error)") }
            try attach(device)
            blockDevices.append((Self.guestDiskName(index), device))
        }
    }

    /// Linux's name for the `index`-th virtio disk: vda … vdz, then vdaa (sd_format_disk_name).
    static func guestDiskName(_ index: Int) -> String {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        var name = ""
        var n = index
        repeat {
            name = String(letters[n % 26]) + name
            n = n / 26 - 1
        } while n >= 0
        return "vd" + name
    }

    /// One virtio-mmio device (virtio 1.2 §4.2): a register window and a GSI from `DeviceSlots`,
    /// its interrupt through an irqfd, each queue's notifications through an ioeventfd (matched on
    /// the queue index written to QueueNotify) to the device thread, and a DSDT entry.
    mutating func attach(_ device: any VirtioDevice) throws(VMMError) {
        let slot = try slots.allocate(size: VirtioMMIOTransport.windowSize)
        let name = "\(Self.deviceName(device.deviceType)) at 0x\(String(slot.base, radix: 16))"
        let controller = controller
        do {
            let interrupt = try EventFD()
            try vm.registerInterruptEvent(interrupt, gsi: slot.gsi)
            interruptEvents.append(interrupt)
            // Activation and reset run on the device thread, not on the vCPU that wrote Status.
            let eventLoop = eventLoop
            let transport = VirtioMMIOTransport(
                device: device, memory: memory, interrupt: EventLine(event: interrupt),
                onFailure: { reason in controller.finish(.deviceFailed(device: name, reason: reason)) },
                deviceWork: { eventLoop.schedule($0) })
            do { try mmio.insert(transport, base: slot.base, length: VirtioMMIOTransport.windowSize) } catch { throw VMMError.bus(error) }
            transports.append((name, transport))
            for queue in device.queueMaxSizes.indices {
                let notify = try EventFD(nonBlocking: true)
                try vm.registerIOEvent(notify, address: slot.base + VirtioMMIOTransport.queueNotifyOffset, length: 4,
                                       match: UInt64(queue))
                interruptEvents.append(notify)
                eventLoop.watch(notify) { transport.queueNotified(queue) }
            }
        } catch let error as KVMError { throw .kvm(error) } catch let error as VMMError { throw error } catch {
            fatalError("unreachable: \(error)")
        }
        virtioDescriptors.append(VirtioMMIODescriptor(base: slot.base, size: VirtioMMIOTransport.windowSize, gsi: slot.gsi))
    }

    /// How logs name a virtio device (virtio 1.2 §5 device IDs).
    static func deviceName(_ type: UInt32) -> String {
        switch type {
        case VirtioDeviceType.entropy: "virtio-rng"
        case VirtioDeviceType.vsock: "virtio-vsock"
        case VirtioDeviceType.block: "virtio-blk"
        default: "virtio device \(type)"
        }
    }

    /// The ACPI tables (RSDP, XSDT, FADT, DSDT, MADT) for what is attached, in the BIOS area;
    /// returns the RSDP's address.
    func writeACPITables() throws(VMMError) -> UInt64 {
        var acpi = ACPIConfiguration(vcpuCount: configuration.vcpus, virtioMMIO: virtioDescriptors)
        if let power {
            acpi.sleepControlPort = UInt16(power.sleepControlPort)
            acpi.sleepStatusPort = UInt16(power.sleepStatusPort)
            acpi.resetPort = UInt16(power.resetPort)
            acpi.resetValue = power.resetValue
        }
        acpi.serialPorts = [SerialPortDescriptor(port: UInt16(Self.com1Port), gsi: Self.com1GSI)]
        let tables: ACPITables
        do { tables = try ACPIBuilder.build(acpi, at: Layout.acpiTables) } catch { throw .acpi(error) }
        do { try memory.write(tables.bytes, at: tables.base) } catch { throw .memory(error) }
        return tables.rsdpAddress
    }

    /// The kernel, command line, initrd and zero page (Linux boot protocol), copied straight
    /// from the preflighted files into guest RAM.
    func loadKernel(_ payload: BootPayload, rsdpAddress: UInt64) throws(VMMError) -> LinuxLoader.Setup {
        var copyError: VMMError?
        let ram = memory
        let setup: LinuxLoader.Setup
        do throws(BootError) {
            setup = try LinuxLoader.load(kernel: payload.kernel, initrdSize: payload.initrdFile?.size,
                                         commandLine: configuration.commandLine, rsdpAddress: rsdpAddress,
                                         into: memory) { placement throws(GuestMemoryError) in
                // A file error is kept and rethrown below.
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
        return setup
    }

    /// The vCPUs: all get CPUID, MSRs and LAPIC wiring; only the boot vCPU gets `entry`. The
    /// others wait in the in-kernel LAPIC for the guest's INIT/SIPI.
    func createVCPUs(entry: BootCPUState) throws(VMMError) -> [VCPU] {
        do {
            let supported = try system.supportedCPUID()
            var made: [VCPU] = []
            for id in 0..<configuration.vcpus {
                let vcpu = try vm.createVCPU(id: id)
                try CPUSetup.configure(vcpu, supportedCPUID: supported, count: configuration.vcpus)
                made.append(vcpu)
            }
            try CPUSetup.enterLinux(made[0], state: entry)
            return made
        } catch { throw .kvm(error) }
    }
}
