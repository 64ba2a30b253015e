import MachineConfig

/// What a long-lived VM's agent host needs to start sub-agents as `momin start` would have
/// started them, kept in the VM's registry directory (`host`: one `key value` line each).
public struct HostSettings: Equatable, Sendable {
    public var kernel: String
    public var initrd: String?
    public var commandLine: String
    public var kvm: String
    public var jail: VMJail.Mode
    public var buckets: String?

    public init(kernel: String, initrd: String?, commandLine: String, kvm: String, jail: VMJail.Mode, buckets: String?) {
        self.kernel = kernel
        self.initrd = initrd
        self.commandLine = commandLine
        self.kvm = kvm
        self.jail = jail
        self.buckets = buckets
    }

    /// The settings of a VM started from `config` (paths made absolute, as the agent host runs
    /// elsewhere).
    public init(_ config: MachineConfiguration, jail: VMJail.Mode, buckets: String?) {
        self.init(kernel: Paths.absolute(config.kernelPath), initrd: config.initrdPath.map(Paths.absolute),
                  commandLine: config.commandLine, kvm: config.kvmPath, jail: jail, buckets: buckets.map(Paths.absolute))
    }

    public static func save(_ settings: HostSettings, in directory: String) throws(HostError) {
        var lines = ["kernel \(settings.kernel)", "cmdline \(settings.commandLine)", "kvm \(settings.kvm)",
                     "jail \(settings.jail == .jailed ? "yes" : "no")"]
        if let initrd = settings.initrd { lines.append("initrd \(initrd)") }
        if let buckets = settings.buckets { lines.append("buckets \(buckets)") }
        try SmallFiles.write(directory + "/host", lines.joined(separator: "\n") + "\n")
    }

    public static func load(from directory: String, name: String) throws(HostError) -> HostSettings {
        guard let text = SmallFiles.read(directory + "/host") else {
            throw .failed("VM \(name): \(directory)/host is missing")
        }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { throw .failed("VM \(name): \(directory)/host is damaged") }
            fields[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        guard let kernel = fields["kernel"], let commandLine = fields["cmdline"], let kvm = fields["kvm"], let jail = fields["jail"] else {
            throw .failed("VM \(name): \(directory)/host lacks a field")
        }
        return HostSettings(kernel: kernel, initrd: fields["initrd"], commandLine: commandLine, kvm: kvm,
                            jail: jail == "yes" ? .jailed : .unjailed, buckets: fields["buckets"])
    }

    /// The machine a sub-agent starts from: the VM's kernel, image and command line.
    public var configuration: MachineConfiguration {
        MachineConfiguration(kernelPath: kernel, initrdPath: initrd, commandLine: commandLine, vcpus: 1, memoryMiB: 256, kvmPath: kvm)
    }
}
