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
    /// The disks (vda, vdb...); their descriptors are the only ones the device thread may read and write.
    private let blockDevices: [(name: String, device: VirtioBlock)]
    private let diskDescriptors: [DiskDescriptor]

    /// Creates the VM and lays out the guest from a preflighted payload, one builder step at a
    /// time (`MachineBuilder`). Nothing runs yet.
    public init(_ config: MachineConfiguration, payload: BootPayload, observer: MachineObserver) throws(VMMError) {
        var builder = try MachineBuilder(config, observer: observer)
        try builder.attachLegacyDevices()
        try builder.attachEntropyDevice()
        try builder.attachVsockDevice()
        try builder.attachBlockDevices(payload.disks)
        let rsdp = try builder.writeACPITables()
        let setup = try builder.loadKernel(payload, rsdpAddress: rsdp)
        vcpus = try builder.createVCPUs(entry: setup.cpu)
        configuration = config
        self.observer = observer
        vm = builder.vm
        memory = builder.memory
        controller = builder.controller
        interruptEvents = builder.interruptEvents
        devices = builder.eventLoop
        vsock = builder.vsock
        virtioTransports = builder.transports
        blockDevices = builder.blockDevices
        diskDescriptors = payload.disks.map { DiskDescriptor(fd: $0.fd, writable: $0.isWritable) }
        handler = ExitHandler(portIO: builder.portIO, mmio: builder.mmio)
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
        var confinement = confinement
        confinement.disks = diskDescriptors
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
    /// it on SIGUSR1): each virtio transport and its queues, vsock's connection table, and each
    /// disk's counters and rate limiter.
    public func diagnostics() -> [String] {
        var lines: [String] = []
        for (name, transport) in virtioTransports {
            lines += transport.diagnostics.enumerated().map { $0.offset == 0 ? "\(name): \($0.element)" : "  \($0.element)" }
        }
        if let vsock { lines += vsock.diagnostics.map { "virtio-vsock: \($0)" } }
        for (name, device) in blockDevices { lines += device.diagnostics.map { "virtio-blk \(name): \($0)" } }
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
