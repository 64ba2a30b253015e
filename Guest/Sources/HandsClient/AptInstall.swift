import Doors

/// `hands install apt` (docs/hands.md, "Installing packages"): one `install` call in which the
/// host judges and logs each name and answers with the policy's mirrors; then the guest's own
/// apt-get, with its own sources and keys, through the egress proxy, which lets apt reach only
/// those mirrors and judges and logs each `.deb` by name. apt checks the archive's signature.
public struct AptInstall {
    public var socketPath: String
    /// The egress proxy apt goes through (`proxy(environment:)`).
    public var proxy: String
    /// apt-get: a path, or a name looked up on PATH.
    public var aptGet: String
    /// A line for stderr, without the `hands: ` before it.
    public var say: (String) -> Void

    public static let defaultAptGet = "apt-get"

    public init(socketPath: String, proxy: String, aptGet: String = defaultAptGet, say: @escaping (String) -> Void) {
        self.socketPath = socketPath
        self.proxy = proxy
        self.aptGet = aptGet
        self.say = say
    }

    /// `$http_proxy` when it is set and not empty (momin-init sets it), else momin-init's proxy.
    public static func proxy(environment value: String?) -> String {
        guard let value, !value.isEmpty else {
            return "http://\(EgressProtocol.proxyAddress):\(EgressProtocol.proxyListenPort)"
        }
        return value
    }

    /// Installs `packages`; apt-get's exit status (update's when it failed; 128 + a signal
    /// that ended it), or the status of what stopped the install before apt (its line said).
    public func run(packages: [String]) -> Int32 {
        do throws(HandsClientError) {
            return try install(packages)
        } catch {
            say(error.message)
            return error.exitStatus
        }
    }

    func install(_ packages: [String]) throws(HandsClientError) -> Int32 {
        let (mirrors, _) = try HandsConnection.ok(.install(ecosystem: "apt", requirements: packages), socketPath: socketPath)
        for mirror in mirrors { say("apt may reach \(mirror)") }
        let environment = Self.environment()
        let update = try ChildProgram.run(Self.updateArguments(aptGet: aptGet, proxy: proxy), environment: environment)
        guard update == 0 else { return update }
        return try ChildProgram.run(Self.installArguments(aptGet: aptGet, proxy: proxy, packages: packages), environment: environment)
    }

    /// Every request through the proxy, one at a time (it answers one request per connection),
    /// and no retry of what it refused.
    static func options(proxy: String) -> [String] {
        ["-o", "Acquire::http::Proxy=\(proxy)", "-o", "Acquire::http::Pipeline-Depth=0", "-o", "Acquire::Retries=0"]
    }

    static func updateArguments(aptGet: String, proxy: String) -> [String] {
        [aptGet] + options(proxy: proxy) + ["update"]
    }

    static func installArguments(aptGet: String, proxy: String, packages: [String]) -> [String] {
        [aptGet] + options(proxy: proxy) + ["install", "-y", "--no-install-recommends"] + packages
    }

    /// This process's environment, apt told not to ask questions, and without `no_proxy`:
    /// apt goes direct to a host `no_proxy` names even when Acquire::http::Proxy is set, and
    /// momin-init's names 127.0.0.1, where a mirror on the host's loopback may be.
    static func environment() -> [String] {
        ChildProgram.environment(adding: [("DEBIAN_FRONTEND", "noninteractive")], removing: ["no_proxy", "NO_PROXY"])
    }
}
