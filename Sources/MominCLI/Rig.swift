import Glibc
import VMM

/// Where the default guest image lives (built by Scripts/guest-image).
struct GuestImage {
    let kernel: String
    let initrd: String

    static var `default`: GuestImage {
        let cache: String
        if let c = getenv("MOMIN_CACHE"), c.pointee != 0 { cache = String(cString: c) } else {
            let home = getenv("HOME").map { String(cString: $0) } ?? "/root"
            cache = home + "/.cache/momin"
        }
        return GuestImage(kernel: cache + "/guest/vmlinuz", initrd: cache + "/guest/initrd.cpio")
    }
}

/// Hands a command to the nested rig when this host's KVM cannot boot a stock kernel.
enum Rig {
    /// Replaces this process with `Scripts/rig --with FILE... -- momin ARGS... --no-rig`.
    static func reexec(reason: String, files: [String]) throws -> Never {
        guard let script = locateScript() else {
            throw CLIError.usage("\(reason), and the nested rig (Scripts/rig) was not found; set MOMIN_RIG to its path")
        }
        writeStandardError("momin: \(reason): booting inside the nested rig (\(script))\n")
        var argv = [script]
        for f in files { argv += ["--with", absolute(f)] }
        argv += ["--", "momin"]
        // Paths given on the command line must name the same files inside the rig. `--no-rig`
        // goes right after the subcommand, before any `--` that starts a guest command line.
        let original = CommandLine.arguments.dropFirst().map { files.contains($0) ? absolute($0) : $0 }
        argv += original.prefix(1) + ["--no-rig"] + original.dropFirst()
        // The rig carries this very binary in, so the same build runs on both sides.
        if let exe = selfPath() { setenv("MOMIN_BIN", exe, 0) }
        let cargs = argv.map { strdup($0) } + [nil]
        execv(script, cargs)
        throw CLIError.guest("cannot start \(script): \(String(cString: strerror(errno)))")
    }

    static func locateScript() -> String? {
        if let env = getenv("MOMIN_RIG"), env.pointee != 0 { return String(cString: env) }
        // Walk up from the binary (…/.build/<config>/momin) to the checkout holding Scripts/rig.
        guard var dir = selfPath() else { return nil }
        for _ in 0..<6 {
            guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { break }
            dir = String(dir[..<slash])
            let candidate = dir + "/Scripts/rig"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    static func selfPath() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let length = buffer.firstIndex(of: 0) ?? buffer.count
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
    }
}
