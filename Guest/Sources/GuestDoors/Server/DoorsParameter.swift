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
}
