import Glibc
import Host
import MachineConfig

/// Hands a command to the nested rig when this host's KVM cannot boot a stock kernel.
enum Rig {
    /// Goes through the rig (re-executing this command there) when this host's KVM cannot boot
    /// stock kernels, or refuses with `noRig`. `outputs` names files the command writes (an
    /// audit log, a record): the rig's L2 is a throwaway machine whose files never come back, so
    /// such a command is refused there rather than have its output silently lost. `drives` are
    /// disk images that reach L2 as read-only drives; `files` are carried besides the machine's.
    static func check(_ config: MachineConfiguration, noRig: Bool, outputs: [String] = [], drives: [String] = [],
                      files: [String] = []) throws {
        guard let reason = KVMHost.needsRig(kvmPath: config.kvmPath) else { return }
        if noRig { throw CLIError.usage("\(reason); it cannot boot stock kernels (drop --no-rig to use the nested rig)") }
        if let output = outputs.first {
            throw CLIError.usage("\(reason), and \(output) would be written inside the nested rig and lost; "
                                 + "run the whole job inside it instead (Scripts/rig -- momin ...)")
        }
        try reexec(reason: reason, files: config.files.map(\.path) + files, drives: drives)
    }

    /// Replaces this process with `Scripts/rig --with FILE... --drive IMAGE... -- momin ARGS... --no-rig`.
    static func reexec(reason: String, files: [String], drives: [String] = []) throws -> Never {
        guard let script = locateScript() else {
            throw CLIError.usage("\(reason), and the nested rig (Scripts/rig) was not found; set MOMIN_RIG to its path")
        }
        writeStandardError("momin: \(reason): booting inside the nested rig (\(script))\n")
        var argv = [script]
        for f in files { argv += ["--with", Paths.absolute(f)] }
        for d in drives { argv += ["--drive", Paths.absolute(d)] }
        argv += ["--", "momin"]
        // Paths given on the command line must name the same files inside the rig. `--no-rig`
        // goes right after the subcommand, before any `--` that starts a guest command line.
        let original = CommandLine.arguments.dropFirst().map { files.contains($0) ? Paths.absolute($0) : $0 }
        argv += original.prefix(1) + ["--no-rig"] + original.dropFirst()
        // The rig carries this very binary in, so the same build runs on both sides.
        if let exe = Paths.ownExecutable() { setenv("MOMIN_BIN", exe, 0) }
        let cargs = argv.map { strdup($0) } + [nil]
        execv(script, cargs)
        throw CLIError("cannot start \(script): \(String(cString: strerror(errno)))", .failure)
    }

    static func locateScript() -> String? {
        if let env = getenv("MOMIN_RIG"), env.pointee != 0 { return String(cString: env) }
        // Walk up from the binary (…/.build/<config>/momin) to the checkout holding Scripts/rig.
        guard var dir = Paths.ownExecutable() else { return nil }
        for _ in 0..<6 {
            guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { break }
            dir = String(dir[..<slash])
            let candidate = dir + "/Scripts/rig"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
