import Doors
import Glibc
import GuestClient

/// Hostile bytes on fresh Doors connections. A broken header is fatal for its connection: the
/// guest must answer Error on request 0 and close. A whole frame with a bad payload costs only
/// that request: Error on its id, and the connection goes on. Either way the guest serves the
/// next client as before.
struct Garbage {
    let target: Target

    init(_ target: Target) { self.target = target }

    func run() -> Bool {
        let checks = Checklist()
        let ping = UInt8(FrameType.ping.rawValue)

        fatal(checks, "bytes that are not Doors instead of a Hello", handshake: false,
              Array("GET / HTTP/1.1\r\nHost: guest\r\n\r\n".utf8), expect: [.malformedFrame])
        fatal(checks, "a header with a bad magic", header(magic: 0x4D45, type: ping, length: 8) + [UInt8](repeating: 0, count: 8),
              expect: [.malformedFrame])
        fatal(checks, "a header announcing a 16 MiB payload", header(type: ping, length: 16 << 20), expect: [.tooLarge])
        fatal(checks, "a header with an unknown frame type", header(type: 0x7E, length: 0), expect: [.malformedFrame])
        fatal(checks, "a header with an unsupported version", header(version: 9, type: ping, length: 8) + [UInt8](repeating: 0, count: 8),
              expect: [.unsupportedVersion])
        fatal(checks, "a header with unknown flags", header(type: ping, flags: 0x8000_0000, length: 8) + [UInt8](repeating: 0, count: 8),
              expect: [.malformedFrame])
        fatal(checks, "a second Hello", encoded(Frame(requestID: 0, .hello(Hello(software: "again")))), expect: [.invalidRequest])
        fatal(checks, "a frame only the guest may send (Exit)",
              encoded(Frame(requestID: 3, .exit(ExitReport(status: .exited(code: 0))))), expect: [.invalidRequest])

        // Whole frames with bad payloads: an Error on the request, and the connection lives on.
        survivable(checks, "a Ping with a 3-byte payload", header(type: ping, id: 5, length: 3) + [1, 2, 3], id: 5)
        // Exec: argv count 0, env count 0, no cwd, no stdin, no timeout.
        survivable(checks, "an Exec with an empty argv",
                   header(type: UInt8(FrameType.exec.rawValue), id: 6, length: 11) + [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], id: 6)
        // Stat: a path of 4 bytes that are not UTF-8, then followSymlinks.
        survivable(checks, "a Stat whose path is not UTF-8",
                   header(type: UInt8(FrameType.stat.rawValue), id: 7, length: 9) + [4, 0, 0, 0, 0x2F, 0xFF, 0xFE, 0xFD, 0], id: 7)

        truncated(checks)

        // And after all that, an ordinary client.
        let after = checks.attempt("a fresh Hands connection after the garbage") { () throws(ProbeError) -> String in
            let client = try connectHands(target)
            var output: [UInt8] = []
            do throws(GuestCallError) {
                try client.ping()
                let report = try client.exec(ExecRequest(argv: ["echo", "ok"], env: ["PATH=/usr/bin:/bin"])) { isStdout, bytes in
                    if isStdout { output += bytes }
                }
                guard report.status == .exited(code: 0) else { throw GuestCallError.unexpected(.exit(report)) }
            } catch {
                throw .guest(error)
            }
            return String(decoding: output, as: UTF8.self)
        }
        if let after { checks.check("a fresh connection answers a Ping and runs `echo ok`", after == "ok\n", "stdout was '\(after)'") }
        return checks.summary("garbage")
    }

    /// Sends `bytes` (after a handshake unless told otherwise) and expects Error on request 0
    /// with one of `expect`, then the end of the stream.
    func fatal(_ checks: Checklist, _ name: String, handshake: Bool = true, _ bytes: [UInt8], expect: [ErrorCode]) {
        guard let frames = checks.attempt(name, { () throws(ProbeError) in
            let link = try DoorsLink(target, handshake: handshake)
            try link.sendRaw(bytes)
            return try framesUntilClosed(link)
        }) else { return }
        // Without our Hello the guest's own Hello comes first; it says nothing about the garbage.
        let answers = frames.filter { $0.type != .hello || handshake }
        guard answers.count == 1, answers[0].requestID == 0, case .error(let reply) = answers[0].message else {
            checks.check("\(name): Error on request 0, then closed", false, "got \(describe(answers)) before the close")
            return
        }
        checks.check("\(name): Error(0, \(reply.code)), then closed", expect.contains(reply.code),
                     "expected \(expect.map { "\($0)" }.joined(separator: " or ")): \(reply.message)")
    }

    /// Sends a whole frame with a bad payload on request `id`, expects Error on that id, and
    /// then a Ping on the same connection to be answered.
    func survivable(_ checks: Checklist, _ name: String, _ bytes: [UInt8], id: UInt32) {
        guard let reply = checks.attempt(name, { () throws(ProbeError) -> ErrorReply in
            let link = try DoorsLink(target)
            try link.sendRaw(bytes)
            guard let frame = try link.receive() else { throw .closed("instead of answering") }
            guard frame.requestID == id, case .error(let reply) = frame.message else {
                throw .unexpected("got \(describe([frame])), not Error on request \(id)")
            }
            guard case .pong(42) = try link.call(.ping(nonce: 42), id: id + 100) else { throw .unexpected("the Ping after it got no Pong") }
            return reply
        }) else { return }
        checks.check("\(name): Error(\(id), \(reply.code)), and the connection still answers a Ping",
                     reply.code == .invalidRequest || reply.code == .tooLarge, "unexpected code: \(reply.message)")
    }

    /// A header that promises 100 bytes, 10 of them, then our end of the stream: the guest
    /// must just close (an Error on request 0 is allowed, nothing else).
    func truncated(_ checks: Checklist) {
        let name = "a frame cut short by the end of the stream"
        guard let frames = checks.attempt(name, { () throws(ProbeError) in
            let link = try DoorsLink(target)
            try link.sendRaw(header(type: UInt8(FrameType.writeFile.rawValue), id: 9, length: 100) + [UInt8](repeating: 0x41, count: 10))
            link.stream.shutdownWrite()
            return try framesUntilClosed(link)
        }) else { return }
        let acceptable = frames.allSatisfy { frame in
            if frame.requestID == 0, case .error = frame.message { return true }
            return false
        }
        checks.check("\(name): the guest closes", acceptable, "got \(describe(frames)) before the close")
    }

    /// Reads frames until the guest closes. A reset counts as a close; a garbled answer
    /// or a guest that never closes is an error.
    func framesUntilClosed(_ link: DoorsLink) throws(ProbeError) -> [Frame] {
        var frames: [Frame] = []
        while true {
            do throws(ProbeError) {
                guard let frame = try link.receive() else { return frames }
                frames.append(frame)
            } catch {
                if case .system(_, let e) = error, e == ECONNRESET { return frames }
                throw error
            }
        }
    }

    /// A frame header with any field set as given (all little-endian).
    func header(magic: UInt16 = DoorsProtocol.magic, version: UInt8 = DoorsProtocol.currentVersion, type: UInt8, flags: UInt32 = 0,
                id: UInt32 = 1, length: UInt32) -> [UInt8] {
        var bytes: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        put(magic)
        put(version)
        put(type)
        put(flags)
        put(id)
        put(length)
        return bytes
    }

    /// A well-formed frame, for the misuse cases (right bytes, wrong moment or direction).
    func encoded(_ frame: Frame) -> [UInt8] {
        (try? FrameEncoder().encode(frame)) ?? []
    }

    func describe(_ frames: [Frame]) -> String {
        frames.isEmpty ? "nothing" : frames.map { "\($0.type)(\($0.requestID))" }.joined(separator: ", ")
    }
}
