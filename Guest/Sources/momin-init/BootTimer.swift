import CGuestSys
import Glibc

/// The VMM's boot timer: one byte, 123, written to I/O port 0x440 says "boot complete"; the VMM
/// prints the time since it started the vCPUs. The stock Debian kernel has no /dev/port
/// (CONFIG_DEVPORT is off), so the write is a plain `outb` after ioperm(2).
enum BootTimer {
    static let port: UInt16 = 0x440
    static let bootCompleteValue: UInt8 = 123

    static func signalBootComplete() {
        if guest_outb(port, bootCompleteValue) != 0 {
            Console.error("boot timer: ioperm(0x440): \(errnoDetail(errno))")
        }
    }
}
