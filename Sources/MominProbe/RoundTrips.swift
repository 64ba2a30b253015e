import Doors
import Glibc
import GuestClient
import POSIX

/// Round-trip latency: raw vsock (1 byte to the baseline echo and back) against Doors requests
/// made by GuestClient's DoorsClient, the code path `momin exec` and `momin cp` use.
enum RoundTrips {
    /// Round trips before timing starts, on both paths alike.
    static let warmup = 20

    /// `bytes` out to the echo and back per round trip (1 by default; a Doors Ping frame is 24).
    static func raw(_ target: Target, port: UInt32, count: Int, bytes: Int) throws(ProbeError) {
        let stream = try VsockStream(target, port: port)
        var message = [UInt8](repeating: 0x5a, count: bytes)
        var echoed = [UInt8](repeating: 0, count: bytes)
        var samples: [UInt64] = []
        samples.reserveCapacity(count)
        for i in 0..<(warmup + count) {
            message[0] = UInt8(truncatingIfNeeded: i)
            let start = MonotonicClock.nanoseconds()
            try stream.send(message)
            var filled = 0
            while filled < bytes {
                let n = try stream.receive(into: &echoed, at: filled)
                if n == 0 { throw .closed("by the echo after \(filled) of \(bytes) bytes") }
                filled += n
            }
            let elapsed = MonotonicClock.nanoseconds() - start
            guard echoed == message else { throw .unexpected("the echo sent back other bytes than it got") }
            if i >= warmup { samples.append(elapsed) }
        }
        report("raw-rtt", Latency(nanoseconds: samples))
        say("raw-rtt-bytes: \(bytes)")
    }

    static func doors(_ target: Target, count: Int) throws(ProbeError) {
        let client = try connectHands(target)
        let pipe = try makePipe()
        do throws(GuestCallError) {
            let ping = try time(count) { () throws(GuestCallError) in try client.ping() }
            report("doors-ping-rtt", ping)

            let request = ExecRequest(argv: ["true"], env: ["PATH=/usr/bin:/bin:/usr/sbin:/sbin"], cwd: "/")
            let exec = try time(count) { () throws(GuestCallError) in
                let report = try client.exec(request) { _, _ in }
                guard report.status == .exited(code: 0) else { throw GuestCallError.unexpected(.exit(report)) }
            }
            report("doors-exec-true-rtt", exec)

            // The file to read: 4 KiB written through Doors first, from a pipe that holds it all.
            let path = "/tmp/momin-probe-4k"
            let content = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
            _ = content.withUnsafeBytes { write(pipe.write, $0.baseAddress, $0.count) }
            close(pipe.write)
            let written = try client.writeFile(WriteFileRequest(path: path), from: pipe.read)
            close(pipe.read)
            guard written == 4096 else { throw GuestCallError.unexpected(.ok(count: written)) }
            let sink = open("/dev/null", O_WRONLY | O_CLOEXEC)
            defer { close(sink) }
            let read = try time(count) { () throws(GuestCallError) in
                let got = try client.readFile(ReadFileRequest(path: path), to: sink)
                guard got == 4096 else { throw GuestCallError.unexpected(.ok(count: got)) }
            }
            report("doors-read-4k-rtt", read)
        } catch {
            throw .guest(error)
        }
        try leanPing(target, count: count)
    }

    /// Ping/Pong again, on the probe's own minimal client: one encoded frame sent over and over,
    /// no allocation per round trip. Against `doors-ping-rtt` it shows what GuestClient's DoorsClient
    /// itself adds; against `raw-rtt`, what is left for the guest's server and the framing.
    static func leanPing(_ target: Target, count: Int) throws(ProbeError) {
        let link = try DoorsLink(target)
        var frame: [UInt8] = []
        try link.encode(Frame(requestID: 1, .ping(nonce: 0x1234)), into: &frame)
        var samples: [UInt64] = []
        samples.reserveCapacity(count)
        for i in 0..<(warmup + count) {
            let start = MonotonicClock.nanoseconds()
            try link.sendRaw(frame)
            guard let answer = try link.receive() else { throw .closed("instead of a Pong") }
            let elapsed = MonotonicClock.nanoseconds() - start
            guard answer.requestID == 1, case .pong(0x1234) = answer.message else { throw .unexpected("got \(answer.type), not Pong") }
            if i >= warmup { samples.append(elapsed) }
        }
        report("doors-ping-lean-rtt", Latency(nanoseconds: samples))
    }

    /// Runs `body` `warmup + count` times and keeps the last `count` durations.
    static func time(_ count: Int, _ body: () throws(GuestCallError) -> Void) throws(GuestCallError) -> Latency {
        var samples: [UInt64] = []
        samples.reserveCapacity(count)
        for i in 0..<(warmup + count) {
            let start = MonotonicClock.nanoseconds()
            try body()
            let elapsed = MonotonicClock.nanoseconds() - start
            if i >= warmup { samples.append(elapsed) }
        }
        return Latency(nanoseconds: samples)
    }

    static func report(_ name: String, _ latency: Latency) {
        say("\(name)-median-us: \(fixed(latency.median))")
        say("\(name)-p99-us: \(fixed(latency.p99))")
        say("\(name)-count: \(latency.count)")
    }
}

/// GuestClient's DoorsClient on the guest's Doors port.
func connectHands(_ target: Target) throws(ProbeError) -> DoorsClient {
    do { return try DoorsClient(socketPath: target.socketPath, port: target.doorsPort, seconds: 10) } catch { throw .guest(error) }
}

func makePipe() throws(ProbeError) -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw .system("pipe", errno: errno) }
    return (fds[0], fds[1])
}
