import Ledger
import Testing

@Suite struct InventoryTests {
    /// A host with CPUs 0-3 and 6, 16000 MiB, a 3D controller behind an IOMMU bound to
    /// vfio-pci, a VGA device with neither, and a SATA controller that is not a GPU.
    static func fakeHost() -> TemporaryDirectory {
        let root = TemporaryDirectory()
        root.write("sys/devices/system/cpu/online", "0-3,6\n")
        root.write("proc/meminfo", "MemTotal:       16384000 kB\nMemFree:         8000000 kB\n")
        let nvidia = "sys/bus/pci/devices/0000:41:00.0/"
        root.write(nvidia + "class", "0x030200\n")
        root.write(nvidia + "vendor", "0x10de\n")
        root.write(nvidia + "device", "0x2330\n")
        root.symlink(nvidia + "iommu_group", to: "../../../kernel/iommu_groups/17")
        root.symlink(nvidia + "driver", to: "../../../bus/pci/drivers/vfio-pci")
        let vga = "sys/bus/pci/devices/0000:00:02.0/"
        root.write(vga + "class", "0x030000\n")
        root.write(vga + "vendor", "0x1234\n")
        root.write(vga + "device", "0x1111\n")
        let sata = "sys/bus/pci/devices/0000:00:1f.2/"
        root.write(sata + "class", "0x010601\n")
        root.write(sata + "vendor", "0x8086\n")
        root.write(sata + "device", "0x2922\n")
        root.symlink(sata + "driver", to: "../../../bus/pci/drivers/ahci")
        return root
    }

    @Test func readsAFakeHost() throws {
        let root = Self.fakeHost()
        let inventory = try HostInventory.read(root: root.path)
        #expect(inventory.cpus == [0, 1, 2, 3, 6])
        #expect(inventory.memoryMiB == 16000)
        #expect(inventory.gpus == [
            PCIDevice(address: "0000:00:02.0", vendorID: 0x1234, deviceID: 0x1111, classCode: 0x030000, iommuGroup: nil, driver: nil),
            PCIDevice(address: "0000:41:00.0", vendorID: 0x10de, deviceID: 0x2330, classCode: 0x030200, iommuGroup: 17, driver: "vfio-pci"),
        ])
    }

    @Test func aRootWithATrailingSlashReadsTheSame() throws {
        let root = Self.fakeHost()
        #expect(try HostInventory.read(root: root.path + "/") == HostInventory.read(root: root.path))
    }

    @Test func aHostWithoutPCIHasNoGPUs() throws {
        let root = TemporaryDirectory()
        root.write("sys/devices/system/cpu/online", "0\n")
        root.write("proc/meminfo", "MemTotal: 1024 kB\n")
        #expect(try HostInventory.read(root: root.path) == HostInventory(cpus: [0], memoryMiB: 1, gpus: []))
    }

    @Test func aMissingFileIsNamed() {
        let root = TemporaryDirectory()
        #expect(throws: InventoryError.cannotRead(path: root.path + "/sys/devices/system/cpu/online", why: "No such file or directory")) {
            try HostInventory.read(root: root.path)
        }
    }

    @Test func malformedFilesSayWhatIsWrong() {
        let root = Self.fakeHost()
        root.write("sys/devices/system/cpu/online", "0-3,\n")
        #expect(throws: InventoryError.malformed(path: root.path + "/sys/devices/system/cpu/online",
                                                 why: "cpulist \"0-3,\": item \"\" is empty (two commas, or a comma at an end)")) {
            try HostInventory.read(root: root.path)
        }
        root.write("sys/devices/system/cpu/online", "0-3\n")
        root.write("proc/meminfo", "MemFree: 10 kB\n")
        #expect(throws: InventoryError.malformed(path: root.path + "/proc/meminfo", why: "no \"MemTotal:\" line")) {
            try HostInventory.read(root: root.path)
        }
        root.write("proc/meminfo", "MemTotal: 10 MB\n")
        #expect(throws: InventoryError.malformed(path: root.path + "/proc/meminfo", why: "\"MemTotal: 10 MB\" is not \"MemTotal: <number> kB\"")) {
            try HostInventory.read(root: root.path)
        }
        root.write("proc/meminfo", "MemTotal: 1024 kB\n")
        root.write("sys/bus/pci/devices/0000:00:02.0/class", "VGA\n")
        #expect(throws: InventoryError.malformed(path: root.path + "/sys/bus/pci/devices/0000:00:02.0/class",
                                                 why: "\"VGA\" is not a 24-bit hex number such as 0x000000")) {
            try HostInventory.read(root: root.path)
        }
    }

    @Test func aDisplayControllerIsBaseClass3() {
        func device(_ code: UInt32) -> PCIDevice {
            PCIDevice(address: "0000:00:00.0", vendorID: 0, deviceID: 0, classCode: code, iommuGroup: nil, driver: nil)
        }
        #expect(device(0x030000).isDisplayController)
        #expect(device(0x030200).isDisplayController)
        #expect(device(0x038000).isDisplayController)
        #expect(!device(0x040300).isDisplayController)
        #expect(!device(0x020000).isDisplayController)
    }

    @Test func thePoolLeavesTheReserveToTheHost() throws {
        let inventory = HostInventory(cpus: [0, 1, 2, 3, 6], memoryMiB: 16000, gpus: [
            PCIDevice(address: "0000:41:00.0", vendorID: 0x10de, deviceID: 0x2330, classCode: 0x030200, iommuGroup: 17, driver: nil),
        ])
        #expect(try HostPool(inventory: inventory, reserveCPUs: 2, reserveMiB: 1000)
            == HostPool(cpus: [2, 3, 6], memoryMiB: 15000, gpus: ["0000:41:00.0"]))
        #expect(throws: LedgerError.reserveTooLarge("a host reserve of 5 CPUs leaves none of the 5 online (cpus 0-3,6)")) {
            try HostPool(inventory: inventory, reserveCPUs: 5, reserveMiB: 0)
        }
        #expect(throws: LedgerError.reserveTooLarge("a host reserve of 16000 MiB leaves none of the host's 16000 MiB")) {
            try HostPool(inventory: inventory, reserveCPUs: 1, reserveMiB: 16000)
        }
    }
}
