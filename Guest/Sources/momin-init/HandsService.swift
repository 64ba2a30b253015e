import GuestDoors
import Glibc

/// The hands relay: with `momin.hands[=PORT]` on the kernel command line (serve mode only),
/// momin-init listens on /run/momin/hands.sock and relays each call made there to the host's
/// hands port over vsock (docs/hands.md). One accept thread; each call on a thread of its own.
enum HandsService {
    /// Starts the listener and its accept thread when the command line asks for them. Any
    /// failure is printed and the boot goes on without the relay.
    static func startIfAsked(commandLine: [String]) {
        guard let (port, problem) = HandsParameter.port(commandLine: commandLine) else { return }
        if let problem { Console.error(problem) }
        var configuration = HandsRelayConfiguration()
        configuration.log = { Console.error($0) }
        let relay = HandsRelay(port: port, configuration: configuration)
        let listener: Int32
        do {
            listener = try HandsRelay.listen(path: HandsRelay.socketPath)
        } catch {
            Console.error("hands: \(error)")
            return
        }
        do {
            try relay.startAccepting(listener: listener)
        } catch {
            Console.error("hands: cannot start the accept thread: \(error)")
            close(listener)
            unlink(HandsRelay.socketPath)
        }
    }
}
