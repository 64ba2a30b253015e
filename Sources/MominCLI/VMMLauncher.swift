import Glibc
import VMM

/// Starts `momin-vmm`, the process that holds the microVM. It is looked for next to this
/// binary, then as $MOMIN_VMM, then on PATH.
enum VMMLauncher {
    static func executable() -> String {
        if let env = getenv("MOMIN_VMM"), env.pointee != 0 { return String(cString: env) }
        if let me = Rig.selfPath(), let slash = me.lastIndex(of: "/") {
            let sibling = String(me[..<slash]) + "/momin-vmm"
            if access(sibling, X_OK) == 0 { return sibling }
        }
        return "momin-vmm"
    }

    static func arguments(_ config: MachineConfiguration, timeout: Double, reportMemory: Bool = false,
                          newSession: Bool = false) -> [String] {
        [executable()] + VMMArguments.render(config, timeout: timeout > 0 ? timeout : nil, reportMemory: reportMemory,
                                             newSession: newSession)
    }

    /// Replaces this process with momin-vmm (`momin boot`).
    static func exec(_ config: MachineConfiguration, timeout: Double, reportMemory: Bool) throws -> Never {
        let argv = arguments(config, timeout: timeout, reportMemory: reportMemory)
        let cargs = argv.map { strdup($0) } + [nil]
        execvp(argv[0], cargs)
        throw CLIError.guest("cannot start \(argv[0]): \(String(cString: strerror(errno)))")
    }

    /// Starts momin-vmm as a child with its stdout and stderr going to `logFD` (`momin run`).
    static func spawn(_ config: MachineConfiguration, timeout: Double, logFD: Int32, newSession: Bool = false) throws -> pid_t {
        let argv = arguments(config, timeout: timeout, newSession: newSession)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)
        var pid: pid_t = 0
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, cargs, environ)
        guard rc == 0 else { throw CLIError(message: "cannot start \(argv[0]): \(String(cString: strerror(rc)))", code: 125) }
        return pid
    }
}
