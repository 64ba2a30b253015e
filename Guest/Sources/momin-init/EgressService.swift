import CGuestSys
import Glibc
import GuestDoors

/// Governed egress (docs/egress.md): with `momin.egress` on the kernel command line (serve mode
/// only), momin-init brings up the loopback interface, names `brain.momin` in /etc/hosts, and
/// relays each TCP connection made to its two loopback listeners to the host over vsock. The
/// guest has no network device: this is the only way out, and the host judges every request.
enum EgressService {
    /// Starts what the command line asks for; true when egress was asked (the Doors server then
    /// sets the proxy variables for what it starts, even where a listener failed: nothing else
    /// leads out). Any failure is printed and the boot goes on.
    static func startIfAsked(commandLine: [String]) -> Bool {
        let (on, problem) = EgressParameter.parse(commandLine: commandLine)
        if let problem { Console.error(problem) }
        guard on else { return false }

        // The kernel leaves `lo` down, and with it 127.0.0.0/8 (netdevice(7) SIOCSIFFLAGS).
        if guest_interface_up("lo") != 0 {
            Console.error("egress: cannot bring up lo: \(errnoDetail(errno))")
        }
        // After any root switch: the file must be in the root that processes see.
        do {
            try EgressHosts.install()
        } catch {
            Console.error("egress: \(EgressHosts.path): \(error)")
        }

        var configuration = EgressRelayConfiguration()
        configuration.log = { Console.error($0) }
        let relay = EgressRelay(configuration: configuration)
        for route in [EgressRoute.proxy, EgressRoute.brain] {
            let listener: Int32
            do {
                listener = try EgressRelay.listen(address: route.address, port: route.listenPort)
            } catch {
                Console.error("egress \(route.name): \(error)")
                continue
            }
            do {
                try relay.startAccepting(listener: listener, route: route)
            } catch {
                Console.error("egress \(route.name): cannot start the accept thread: \(error)")
                close(listener)
            }
        }
        return true
    }
}
