import POSIX

/// What the host has to partition: its online CPUs, its memory and its display-class PCI
/// devices (the GPUs that could be passed through). Read from sysfs and procfs.
public struct HostInventory: Sendable, Equatable {
    /// Online CPU ids, sorted.
    public var cpus: [Int]
    /// MemTotal, in MiB (rounded down).
    public var memoryMiB: Int
    /// Display controllers, sorted by address.
    public var gpus: [PCIDevice]

    public init(cpus: [Int], memoryMiB: Int, gpus: [PCIDevice]) {
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.gpus = gpus
    }

    /// Reads the host under `root` ("/" on a real host; a fake tree in tests):
    /// sys/devices/system/cpu/online, proc/meminfo and sys/bus/pci/devices/*.
    public static func read(root: String = "/") throws(InventoryError) -> HostInventory {
        let cpus = try readCPUs(root: root)
        let memory = try readMemory(root: root)
        let gpus = try readPCIDevices(root: root).filter(\.isDisplayController)
        return HostInventory(cpus: cpus, memoryMiB: memory, gpus: gpus)
    }

    static func readCPUs(root: String) throws(InventoryError) -> [Int] {
        let path = Files.join(root, "sys/devices/system/cpu/online")
        let text = try readAttribute(path)
        let cpus: [Int]
        do { cpus = try CPUList.parse(text) } catch { throw .malformed(path: path, why: error.description) }
        guard !cpus.isEmpty else { throw .malformed(path: path, why: "no CPU is online") }
        return cpus
    }

    static func readMemory(root: String) throws(InventoryError) -> Int {
        let path = Files.join(root, "proc/meminfo")
        let text = try readAttribute(path)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }) else {
            throw .malformed(path: path, why: "no \"MemTotal:\" line")
        }
        let fields = line.dropFirst("MemTotal:".count).split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 2, fields[1] == "kB", let kilobytes = Int(fields[0]), kilobytes > 0 else {
            throw .malformed(path: path, why: "\"\(line)\" is not \"MemTotal: <number> kB\"")
        }
        return kilobytes / 1024
    }

    /// Every PCI device, display or not.
    static func readPCIDevices(root: String) throws(InventoryError) -> [PCIDevice] {
        let directory = Files.join(root, "sys/bus/pci/devices")
        // A host without PCI (or a container without sysfs's bus tree) has no GPUs to give.
        guard Files.exists(directory) else { return [] }
        let names: [String]
        do { names = try FileIO.listDirectory(directory) } catch { throw .cannotRead(path: directory, why: error.reason) }
        var devices: [PCIDevice] = []
        for address in names {
            let device = Files.join(directory, address)
            let classCode = try hexAttribute(Files.join(device, "class"), bits: 24)
            let vendor = try hexAttribute(Files.join(device, "vendor"), bits: 16)
            let deviceID = try hexAttribute(Files.join(device, "device"), bits: 16)
            var group: Int?
            if let target = try link(Files.join(device, "iommu_group")) {
                guard let number = Int(target.lastPathComponent), number >= 0 else {
                    throw .malformed(path: Files.join(device, "iommu_group"), why: "links to \"\(target)\", not an IOMMU group number")
                }
                group = number
            }
            let driver = try link(Files.join(device, "driver")).map(\.lastPathComponent)
            devices.append(PCIDevice(address: address, vendorID: UInt16(vendor), deviceID: UInt16(deviceID),
                                     classCode: UInt32(classCode), iommuGroup: group, driver: driver))
        }
        return devices.sorted { $0.address < $1.address }
    }

    private static func readAttribute(_ path: String) throws(InventoryError) -> String {
        do { return try Files.readText(path) } catch { throw .cannotRead(path: path, why: error.reason) }
    }

    /// "0x030200\n" → 0x030200, at most `bits` wide.
    private static func hexAttribute(_ path: String, bits: Int) throws(InventoryError) -> UInt64 {
        let text = try readAttribute(path).trimmingWhitespace()
        guard text.hasPrefix("0x"), let value = UInt64(text.dropFirst(2), radix: 16), value >> bits == 0 else {
            throw .malformed(path: path, why: "\"\(text)\" is not a \(bits)-bit hex number such as 0x\(String(repeating: "0", count: bits / 4))")
        }
        return value
    }

    private static func link(_ path: String) throws(InventoryError) -> String? {
        do { return try Files.readLink(path) } catch { throw .cannotRead(path: path, why: error.reason) }
    }
}

/// One PCI function as sysfs describes it.
public struct PCIDevice: Sendable, Hashable {
    /// Domain:bus:device.function, the sysfs directory name ("0000:01:00.0").
    public var address: String
    public var vendorID: UInt16
    public var deviceID: UInt16
    /// Base class, subclass and programming interface (0x030200: a 3D controller).
    public var classCode: UInt32
    /// Nil when the host has no IOMMU (or it is off): such a device cannot be passed through.
    public var iommuGroup: Int?
    /// The bound driver ("nvidia", "vfio-pci"); nil when none is bound.
    public var driver: String?

    public init(address: String, vendorID: UInt16, deviceID: UInt16, classCode: UInt32, iommuGroup: Int?, driver: String?) {
        self.address = address
        self.vendorID = vendorID
        self.deviceID = deviceID
        self.classCode = classCode
        self.iommuGroup = iommuGroup
        self.driver = driver
    }

    /// PCI base class 0x03 (PCI Code and ID Assignment spec §1.4): VGA (0x0300), XGA (0x0301),
    /// 3D controller (0x0302), other display controller (0x0380).
    public var isDisplayController: Bool { classCode >> 16 == 0x03 }
}

/// Why the host inventory could not be read; each names the file.
public enum InventoryError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotRead(path: String, why: String)
    case malformed(path: String, why: String)

    public var description: String {
        switch self {
        case .cannotRead(let path, let why): "cannot read \(path): \(why)"
        case .malformed(let path, let why): "\(path): \(why)"
        }
    }
}
