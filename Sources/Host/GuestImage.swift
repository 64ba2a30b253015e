import Glibc

/// Where the default guest image lives (built by Scripts/guest-image): $MOMIN_CACHE/guest, or
/// ~/.cache/momin/guest.
public struct GuestImage: Sendable {
    public let kernel: String
    public let initrd: String

    public static var `default`: GuestImage {
        let cache: String
        if let c = getenv("MOMIN_CACHE"), c.pointee != 0 { cache = String(cString: c) } else {
            let home = getenv("HOME").map { String(cString: $0) } ?? "/root"
            cache = home + "/.cache/momin"
        }
        return GuestImage(kernel: cache + "/guest/vmlinuz", initrd: cache + "/guest/initrd.cpio")
    }
}
