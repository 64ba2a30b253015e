import CGuestSys
import Doors
import GuestDoors
import Glibc

/// Serve mode: with `momin.doors[=PORT]` on the kernel command line, momin-init listens on
/// AF_VSOCK (any CID, that port) and serves the host's Doors connections instead of powering off.
enum DoorsService {
    /// The listening socket, or nil (with the error printed).
    static func listen(port: UInt32) -> Int32? {
        let fd = guest_vsock_listen(port, 64)
        guard fd >= 0 else {
            Console.error("doors: listen on vsock port \(port): \(errnoDetail(errno))")
            return nil
        }
        return fd
    }

    /// Serves connections on `listener` for as long as the machine runs; with `egress`, every
    /// process it starts gets the proxy variables.
    static func serve(listener: Int32, egress: Bool) -> Never {
        raiseDescriptorLimit()
        var configuration = DoorsServerConfiguration()
        configuration.log = { Console.error($0) }
        if egress { configuration.forcedEnvironment = EgressProtocol.proxyEnvironment }
        do {
            let server = try DoorsServer(configuration: configuration)
            server.acceptForever(listener: listener)
        } catch {
            Console.error("doors: cannot start the server: \(error)")
            Power.off()
        }
    }

    /// Each connection and each child holds a few descriptors; the kernel starts PID 1 with a
    /// soft limit of 1024, so take the hard limit.
    private static func raiseDescriptorLimit() {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(resource, &limit) != 0 {
            Console.error("setrlimit(RLIMIT_NOFILE): \(errnoDetail(errno))")
        }
    }
}
