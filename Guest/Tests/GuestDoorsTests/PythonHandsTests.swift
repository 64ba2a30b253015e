import CGuestSys
import Doors
import Glibc
@testable import GuestDoors
import POSIX
import Testing

/// The Python client (Guest/python/momin_hands.py) through the real relay: python3 runs as a
/// guest process would, started by the Doors server's exec (whose reaper owns this process's
/// children), and calls momin-init's socket; a scripted host answers over socketpairs.
extension ServerTests {
    @Suite struct PythonHandsTests {
        /// Guest/Tests/GuestDoorsTests/<this file> → Guest/python
        static let pythonDirectory: String = {
            var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
            parts.removeLast(3)
            return parts.joined(separator: "/") + "/python"
        }()

        @Test func aBucketPutAndADenialFromPython() throws {
            let scratch = try ScratchDirectory()
            defer { scratch.remove() }
            let path = scratch.path + "/hands.sock"
            let rule = "denied by policy (bucket-get): tools.buckets: namespace \"secrets\" is not allowed"
            let host = ScriptedHost { call in
                if case .bucketPut = call { return .ok(fields: [], data: []) }
                return .failed(.denied, rule)
            }
            let relay = HandsRelay(connectToHost: host.connect)
            let listener = try HandsRelay.listen(path: path)
            background {
                for _ in 0..<3 {
                    let fd = guest_accept_cloexec(listener)
                    if fd >= 0 { relay.startCall(fd) }
                }
                close(listener)
            }

            let client = try DoorsClient()
            let environment = ["MOMIN_HANDS_SOCKET=\(path)", "PYTHONPATH=\(Self.pythonDirectory)"]
            let module = Self.pythonDirectory + "/momin_hands.py"
            let put = try client.exec(ExecRequest(argv: ["/usr/bin/python3", module, "bucket", "put", "notes", "k1", "hello"], env: environment))
            #expect(put.exit == ExitReport(status: .exited(code: 0)), "\(put.stderrText)")
            #expect(host.calls.first == .bucketPut(namespace: "notes", key: "k1", value: Array("hello".utf8)))
            #expect(host.frames.first == HandsCallCodec.encode(HandsCall.bucketPut(namespace: "notes", key: "k1", value: Array("hello".utf8))))

            // The command line exits as `hands` would; the module raises Denied with the rule.
            let refused = try client.exec(ExecRequest(argv: ["/usr/bin/python3", module, "bucket", "get", "secrets", "k"], env: environment))
            #expect(refused.exit == ExitReport(status: .exited(code: 77)))
            #expect(refused.stderrText == "momin_hands: \(rule)\n")
            let script = """
                import momin_hands
                try:
                    momin_hands.bucket_get("secrets", "key")
                except momin_hands.Denied as refusal:
                    print(type(refusal).__name__, refusal.code, refusal.exit_status, refusal.message)
                """
            let raised = try client.exec(ExecRequest(argv: ["/usr/bin/python3", "-c", script], env: environment))
            #expect(raised.exit == ExitReport(status: .exited(code: 0)), "\(raised.stderrText)")
            #expect(raised.stdoutText == "Denied 1 77 \(rule)\n")
            #expect(host.calls == [.bucketPut(namespace: "notes", key: "k1", value: Array("hello".utf8)),
                                   .bucketGet(namespace: "secrets", key: "k"), .bucketGet(namespace: "secrets", key: "key")])
            #expect(eventually { relay.activeCalls == 0 })
        }
    }
}

/// A host that takes any number of relay connections, each on a socketpair of its own: it reads
/// one call frame, keeps it, and writes the reply `answer` gives.
final class ScriptedHost: @unchecked Sendable {
    private let lock = Lock()
    private var received: [[UInt8]] = []
    private let answer: @Sendable (HandsCall) -> HandsReply

    init(answer: @escaping @Sendable (HandsCall) -> HandsReply) {
        self.answer = answer
    }

    var frames: [[UInt8]] { lock.withLock { received } }
    var calls: [HandsCall] {
        frames.compactMap { frame in
            try? HandsCallCodec.decodeCall(kind: HandsCallKind(rawValue: frame[3])!, payload: Array(frame.dropFirst(HandsCallProtocol.headerSize)))
        }
    }

    var connect: @Sendable () -> Int32 {
        { [self] in
            guard let (relaySide, hostSide) = try? streamPair() else { return -1 }
            background { [self] in
                defer { close(hostSide) }
                guard let header = try? readExactly(hostSide, count: HandsCallProtocol.headerSize),
                      let (kind, length) = try? HandsCallCodec.payloadLength(header: header),
                      let payload = try? readExactly(hostSide, count: length),
                      let call = try? HandsCallCodec.decodeCall(kind: kind, payload: payload) else { return }
                lock.withLock { received.append(header + payload) }
                _ = try? writeAll(fd: hostSide, HandsCallCodec.encode(answer(call)))
            }
            return relaySide
        }
    }
}
