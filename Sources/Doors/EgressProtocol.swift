/// How a guest's network traffic leaves its VM (docs/egress.md): there is no network device.
/// momin-init listens on the guest's loopback and relays each TCP connection made there, byte
/// for byte, over vsock to one of two host ports; the host reads the HTTP request at the front
/// of the stream, judges it by the agent's policy, logs it, and makes the connection itself.
///
/// - `proxyPort`: an HTTP proxy (RFC 9110 §9.3.6 `CONNECT host:port` for TLS, absolute-form
///   requests, RFC 9112 §3.2.2, for plain HTTP). momin-init listens for it at
///   `proxyAddress:proxyListenPort` and points the standard proxy variables there.
/// - `brainPort`: the Brain endpoint, an OpenAI-compatible HTTP server at `http://brain.momin/`.
///   momin-init listens for it at `brainAddress:80`, and the guest's /etc/hosts maps
///   `brainHost` to `brainAddress` (the guest has no DNS).
///
/// The guest side does not parse anything: what the caller sends is data for the host.
public enum EgressProtocol {
    /// The host port the guest's proxy connections reach (kernel parameter `momin.egress`).
    public static let proxyPort: UInt32 = 1026
    /// The host port the guest's Brain connections reach.
    public static let brainPort: UInt32 = 1027

    /// Where momin-init listens for proxy clients in the guest.
    public static let proxyAddress = "127.0.0.1"
    public static let proxyListenPort: UInt16 = 3128
    /// Where momin-init listens for Brain clients in the guest (a loopback address of its own,
    /// so that port 80 on 127.0.0.1 stays the agent's).
    public static let brainAddress = "127.0.0.2"
    public static let brainListenPort: UInt16 = 80
    /// The Brain's name in the guest; the host also treats a proxy request for it as a Brain call.
    public static let brainHost = "brain.momin"

    /// Connections momin-init relays at once; one more is closed at once.
    public static let maxGuestConnections = 256

    /// The variables momin-init sets for every process it starts when egress is on (they
    /// replace any the caller sent: no route out exists but this one, so they are not judged).
    public static var proxyEnvironment: [(name: String, value: String)] {
        let proxy = "http://\(proxyAddress):\(proxyListenPort)"
        let direct = "localhost,127.0.0.1,::1,\(brainHost)"
        return [
            ("HTTP_PROXY", proxy), ("HTTPS_PROXY", proxy), ("http_proxy", proxy), ("https_proxy", proxy),
            ("NO_PROXY", direct), ("no_proxy", direct),
        ]
    }
}
