import Doors

/// The kernel command-line parameter that turns on serve mode: `momin.doors` (port 1024) or
/// `momin.doors=PORT`.
public enum DoorsParameter {
    public static let name = "momin.doors"
    /// The vsock port when the parameter has no value.
    public static let defaultPort: UInt32 = 1024

    /// What the command line asks for: nil when it does not mention the parameter, else the
    /// port. The last mention wins, as for kernel parameters. A value that is not a usable port
    /// (not a number, or `VMADDR_PORT_ANY`, 0xFFFFFFFF) gives the default port and a problem
    /// to report.
    public static func port(commandLine words: [String]) -> (port: UInt32, problem: String?)? {
        vsockPort(named: name, defaultPort: defaultPort, commandLine: words)
    }
}

/// The kernel command-line parameter that turns on the hands relay in serve mode: `momin.hands`
/// (the host's port `HandsCallProtocol.port`, 1025) or `momin.hands=PORT`, read as
/// `momin.doors` is.
public enum HandsParameter {
    public static let name = "momin.hands"
    /// The host's vsock port when the parameter has no value.
    public static let defaultPort = HandsCallProtocol.port

    /// nil when the command line does not mention the parameter, else the host's port (and a
    /// problem to report when the value was not a usable port), as `DoorsParameter.port`.
    public static func port(commandLine words: [String]) -> (port: UInt32, problem: String?)? {
        vsockPort(named: name, defaultPort: defaultPort, commandLine: words)
    }
}

/// The kernel command-line flag that turns on egress in serve mode (docs/egress.md): momin-init
/// listens at `EgressRoute.proxy` and `EgressRoute.brain` and relays to the host's ports 1026 and
/// 1027. `momin.egress`, `momin.egress=` and `momin.egress=1` turn it on, `momin.egress=0` off;
/// the last mention wins.
public enum EgressParameter {
    public static let name = "momin.egress"

    /// Whether the command line turns egress on, and a problem to report for a value other than
    /// 0 or 1 (taken as on: whoever wrote it wanted egress).
    public static func parse(commandLine words: [String]) -> (on: Bool, problem: String?) {
        var result: (on: Bool, problem: String?) = (false, nil)
        for word in words {
            if word == name {
                result = (true, nil)
                continue
            }
            guard word.hasPrefix(name + "=") else { continue }
            switch word.dropFirst(name.count + 1) {
            case "", "1": result = (true, nil)
            case "0": result = (false, nil)
            default: result = (true, "\(word): not 0 or 1, taken as \(name)")
            }
        }
        return result
    }
}

/// `NAME`, `NAME=` or `NAME=PORT` on the kernel command line; the last mention wins.
private func vsockPort(named name: String, defaultPort: UInt32, commandLine words: [String]) -> (port: UInt32, problem: String?)? {
    var result: (port: UInt32, problem: String?)?
    for word in words {
        if word == name {
            result = (defaultPort, nil)
            continue
        }
        guard word.hasPrefix(name + "=") else { continue }
        let value = word.dropFirst(name.count + 1)
        if value.isEmpty {
            result = (defaultPort, nil)
        } else if let number = UInt32(value), number != UInt32.max {
            result = (number, nil)
        } else {
            result = (defaultPort, "\(word): not a vsock port, using \(defaultPort)")
        }
    }
    return result
}
