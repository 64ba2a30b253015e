import Devices
import Doors

/// Valid inputs for each target, made with the real encoders, so that a fuzzer starts from
/// inputs that get past the first checks (`momin-fuzz --write-seeds DIR` writes them; the
/// committed corpus is Tests/fuzz/corpus/TARGET/).
public enum Seeds {
    public static func seeds(for target: FuzzTarget) -> [[UInt8]] {
        switch target {
        case .doorsFrame:
            let frames: [Frame] = [
                Frame(requestID: 1, .ping(nonce: 7)),
                Frame(requestID: 2, .exec(ExecRequest(argv: ["/bin/echo", "hi"], env: ["PATH=/bin"], cwd: "/"))),
                Frame(requestID: 2, .stdoutData(Array("hi\n".utf8))),
                Frame(requestID: 2, .exit(ExitReport(status: .exited(code: 0)))),
                Frame(requestID: 3, .readFile(ReadFileRequest(path: "/etc/hostname"))),
                Frame(requestID: 4, .resolve(path: "/tmp/link/../x")),
                Frame(requestID: 5, .list(path: "/tmp")),
                Frame(requestID: 6, .cancel),
            ]
            let encoded = frames.compactMap { try? FrameEncoder().encode($0) }
            // One frame at a time in whole chunks, and all of them cut into 7-byte chunks.
            return encoded.map { [255] + $0 } + [[6] + encoded.flatMap { $0 }]
        case .handsCall:
            let calls: [HandsCall] = [
                .bucketPut(namespace: "cases/1", key: "a", value: [0, 1, 255]),
                .bucketQuery(namespace: "cases/1", keyPrefix: ""),
                .doorSend(door: "findings", to: "lead", message: Array("done".utf8), timeoutMilliseconds: 1000),
                .spawn(SpawnRequest(name: "a", policy: Array("version: 1\n".utf8), policyFormat: "yaml", vcpus: 1, memoryMiB: 256,
                                    argv: ["/bin/sh", "-c", "true"])),
                .wait(agent: "a", timeoutMilliseconds: 0), .stop(agent: "a"), .whoami,
            ]
            return calls.map { HandsCallCodec.encode($0) }
                + [HandsCallCodec.encode(.ok(fields: ["a", "b"], data: [1])), HandsCallCodec.encode(.failed(.denied, "no"))]
        case .virtqueue:
            return [virtqueueSeed(size: 0), virtqueueSeed(size: 2), virtqueueSeed(size: 8)]
        case .vsockConnection:
            return vsockConnectionSeeds()
        case .policy:
            return [[0] + Array(examplePolicy.utf8), [1] + Array(#"{"version": 1, "agent": "a", "tools": {"files": {"read": ["/data/**"]}}}"#.utf8)]
        case .narrowing:
            return [Array(examplePolicy.utf8) + [0] + Array(exampleChild.utf8)]
        }
    }

    /// A queue of 2^size descriptors, one 64-byte chain published: a vsock REQUEST header.
    static func virtqueueSeed(size: UInt8) -> [UInt8] {
        var memory = [UInt8](repeating: 0, count: 0x8000)
        func put(_ value: UInt64, _ bytes: Int, at address: Int) {
            for i in 0..<bytes { memory[address + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        // Descriptor 0 (§2.7.5): address 0x7000, 64 bytes, no flags.
        put(0x7000, 8, at: 0)
        put(64, 4, at: 8)
        // The available ring (§2.7.6): flags 0, idx 1, ring[0] = 0.
        put(1, 2, at: 0x4002)
        // A vsock header (§5.10.6): src_cid 3, dst_cid 2, ports, len 0, type stream, op REQUEST.
        put(3, 8, at: 0x7000)
        put(2, 8, at: 0x7008)
        put(1024, 4, at: 0x7010)
        put(1024, 4, at: 0x7014)
        put(1, 2, at: 0x701C)
        put(1, 2, at: 0x701E)
        return [size, 0] + memory
    }

    /// Connections that get somewhere: a guest-initiated one that sends, is flushed and reads,
    /// and a host-initiated one that the guest answers, then shuts down.
    static func vsockConnectionSeeds() -> [[UInt8]] {
        func u16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
        func u32(_ v: Int) -> [UInt8] { u16(v & 0xffff) + u16(v >> 16) }
        // Step 0: a guest packet (op, flags, buf_alloc, fwd_cnt, payload length, +1 byte?).
        func packet(_ op: VsockOp, flags: UInt8 = 0, length: Int = 0) -> [UInt8] {
            [0, UInt8(op.rawValue), flags] + u32(64 << 10) + u32(0) + u16(length) + [0]
        }
        let readable: [UInt8] = [2], eof: [UInt8] = [4]
        func flush(_ n: Int) -> [UInt8] { [3] + u16(n) }
        func rx(_ room: Int, read: UInt8 = 0, length: Int = 0) -> [UInt8] { [6] + u16(room) + [read] + u16(length) }
        // A 4 KiB buffer, guest-initiated with 64 KiB of credit.
        let guestFirst: [UInt8] = [4, 1] + u32(64 << 10) + u32(0) + rx(4096) + packet(.rw, length: 3000) + flush(1000)
            + packet(.rw, length: 2000) + flush(4000) + readable + rx(4096, length: 1500) + rx(8) + eof + rx(4096)
            + packet(.shutdown, flags: 3) + [7, 0]
        // Host-initiated: REQUEST out, RESPONSE back, the preamble flushed, credit asked for.
        let hostFirst: [UInt8] = [6, 0] + rx(64) + packet(.response) + flush(20) + packet(.creditRequest) + rx(64)
            + readable + rx(65535, length: 65535) + packet(.rst)
        return [guestFirst, hostFirst]
    }

    static let examplePolicy = """
        version: 1
        agent: lead
        tools:
          exec:
            - program: /usr/bin/grep
              args: { prefix: ["-[inc]"], rest: ["path:/evidence/**"], max: 8 }
              env: [LANG=C]
              cwd: [/evidence/**]
          files:
            read: [/evidence/**, /data/**]
            write: [/out/**, /tmp/*/x]
          buckets:
            - namespace: cases/**
              operations: [put, get]
          doors:
            - door: reports
              send: [boss]
              max_message_bytes: 4KiB
              log_content: true
            - door: "*"
              send: ["*"]
              receive: ["lead.*"]
        limits: { cycles: 50, wall_time: 10m, output_bytes: 1MiB }
        resources: { vcpus: 2, memory_mib: 1024, sub_agents: 2 }
        """

    static let exampleChild = """
        version: 1
        agent: lead.a
        tools:
          files:
            read: [/evidence/a/**]
          doors:
            - door: reports
              send: [boss]
              max_message_bytes: 1KiB
              queue_depth: 8
              log_content: true
        limits: { cycles: 10, wall_time: 5m, output_bytes: 64KiB }
        """
}
