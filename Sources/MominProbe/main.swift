// momin-probe: measures and tortures a running microVM's vsock path from the host, through the
// VMM's vsock Unix socket (`momin start NAME` keeps it at $MOMIN_RUNTIME_DIR/NAME/vsock.sock).
//
//   rtt, throughput        raw vsock, against momin-init's baseline services (momin.baseline=PORT)
//   doors-rtt, -throughput the same through Doors, with GuestClient's DoorsClient
//   stress, garbage        hostile and crashing clients; exit 0 only if every check passed
//
// Figures go to stdout as `name: value` lines; problems to stderr. Exit status: 0 done (or
// every check passed), 1 a check failed or the guest misbehaved, 2 bad arguments.
import Glibc

let usage = """
    usage: momin-probe COMMAND --socket PATH [OPTIONS]
      rtt --port P [--count N] [--bytes B]
                                         B-byte (1) round trips to the baseline echo on port P
      doors-rtt [--count N]              Doors Ping, exec of `true`, read of a 4 KiB file (through
                                         GuestClient), and Ping on the probe's own minimal client
      throughput --port P [--mib M]      raw MiB/s: host->guest (sink P+1), guest->host (source P+2)
      doors-throughput [--mib M] [--through file|devices]
                                         Doors writeFile and readFile of M MiB: a guest file,
                                         or /dev/null and /dev/zero (no guest page-cache copy)
      stress [--connections N] [--kib K] N concurrent Doors transfers of K KiB, half dropped mid-way
      garbage                            malformed frames; the guest must answer and stay up
    common: --doors-port P (1024), --io-timeout SECONDS (120) for any one wait on the guest,
            --deadline SECONDS (1200) for the whole run: past it, say what was still going on, exit 1
    """

func fail(_ error: ProbeError) -> Never {
    if case .usage(let text) = error {
        writeError("momin-probe: \(text)\n\(usage)\n")
        exit(2)
    }
    writeError("momin-probe: \(error)\n")
    exit(1)
}

func writeError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// Prints at once: the rig relays stdout through a serial port, and a probe that dies should
/// leave what it measured.
func say(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
}

func main() throws(ProbeError) {
    let words = CommandLine.arguments.dropFirst()
    guard let command = words.first else { throw .usage("no command given") }
    if command == "-h" || command == "--help" || command == "help" {
        say(usage)
        return
    }
    var arguments = try Arguments(words.dropFirst())
    var target = Target(socketPath: try arguments.string("socket"))
    target.doorsPort = try arguments.integer("doors-port", default: 1024, range: 0...UInt32.max - 1)
    target.ioSeconds = try arguments.seconds("io-timeout", default: 120)
    try Watchdog.start(seconds: try arguments.seconds("deadline", default: 1200))
    switch command {
    case "rtt":
        let port: UInt32 = try arguments.integer("port", range: 0...UInt32.max - 1)
        let count = try arguments.integer("count", default: 2000, range: 1...10_000_000)
        let bytes = try arguments.integer("bytes", default: 1, range: 1...65536)
        try arguments.finish()
        try RoundTrips.raw(target, port: port, count: count, bytes: bytes)
    case "doors-rtt":
        let count = try arguments.integer("count", default: 2000, range: 1...10_000_000)
        try arguments.finish()
        try RoundTrips.doors(target, count: count)
    case "throughput":
        let port: UInt32 = try arguments.integer("port", range: 0...UInt32.max - 3)
        let mib = try arguments.integer("mib", default: 64, range: 1...65536)
        try arguments.finish()
        try Throughput.raw(target, port: port, mib: mib)
    case "doors-throughput":
        let mib = try arguments.integer("mib", default: 64, range: 1...65536)
        let through = try arguments.string("through", default: "file")
        guard let end = Throughput.GuestEnd(rawValue: through) else { throw .usage("--through is file or devices, not \(through)") }
        try arguments.finish()
        try Throughput.doors(target, mib: mib, through: end)
    case "stress":
        let connections = try arguments.integer("connections", default: 100, range: 4...120)
        let kib = try arguments.integer("kib", default: 1024, range: 4...65536)
        try arguments.finish()
        guard Stress(target, connections: connections, bytes: kib << 10).run() else { exit(1) }
    case "garbage":
        try arguments.finish()
        guard Garbage(target).run() else { exit(1) }
    default:
        throw .usage("unknown command '\(command)'")
    }
}

do throws(ProbeError) { try main() } catch { fail(error) }
