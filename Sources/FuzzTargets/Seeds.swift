import Devices
import Doors
import ImageLayers

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
            let manifest = ["3f2a-01", "pefile\t2024.8.26\tpefile-2024.8.26-py3-none-any.whl\t74\t" + String(repeating: "ab", count: 32)]
            return calls.map { HandsCallCodec.encode($0) }
                + [HandsCallCodec.encode(.ok(fields: ["a", "b"], data: [1])), HandsCallCodec.encode(.failed(.denied, "no"))]
                + [HandsCallCodec.encode(.install(ecosystem: "pip", requirements: ["pefile==2024.8.26", "yara-python>=4.5"])),
                   HandsCallCodec.encode(.installFile(install: "3f2a-01", file: 1, offset: 1 << 32)),
                   HandsCallCodec.encode(.ok(fields: manifest, data: []))]
        case .virtqueue:
            return [virtqueueSeed(size: 0), virtqueueSeed(size: 2), virtqueueSeed(size: 8)]
        case .vsockConnection:
            return vsockConnectionSeeds()
        case .virtioBlock:
            return virtioBlockSeeds()
        case .policy:
            return [[0] + Array(examplePolicy.utf8), [1] + Array(#"{"version": 1, "agent": "a", "tools": {"files": {"read": ["/data/**"]}}}"#.utf8)]
        case .narrowing:
            return [Array(examplePolicy.utf8) + [0] + Array(exampleChild.utf8)]
        case .tar:
            return tarSeeds()
        case .httpHead:
            return [
                "GET http://docs.example.com:8080/docs/a?q=1 HTTP/1.1\r\nHost: docs.example.com\r\nAccept: */*\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\n",
                "CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\nProxy-Authorization: Basic eA==\r\n\r\n",
                "POST http://[2001:db8::1]/up HTTP/1.0\r\nContent-Length: 4\r\n\r\nbody",
                "POST /v1/chat/completions HTTP/1.1\r\nHost: brain.momin\r\nTransfer-Encoding: chunked\r\n\r\n",
            ].map { Array($0.utf8) }
        case .brainWire:
            return brainWireSeeds()
        case .packageIndex:
            return packageIndexSeeds()
        }
    }

    /// One input per parser of the package-index target (the first byte picks it): a version
    /// with every part, a specifier set, a requirement with extras and a marker, a METADATA, a
    /// wheel's filename, and a project page as HTML and as JSON.
    static func packageIndexSeeds() -> [[UInt8]] {
        let metadata = """
            Metadata-Version: 2.1
            Name: requests
            Version: 2.31.0
            Summary: Python HTTP for Humans.
            Requires-Python: >=3.7
            License: Apache 2.0
            Requires-Dist: charset-normalizer (<4,>=2)
            Requires-Dist: idna (<4,>=2.5)
            Requires-Dist: urllib3 (<3,>=1.21.1)
            Requires-Dist: certifi (>=2017.4.17)
            Provides-Extra: security
            Provides-Extra: socks
            Requires-Dist: PySocks (!=1.5.7,>=1.5.6) ; extra == 'socks'
            Provides-Extra: use_chardet_on_py3
            Requires-Dist: chardet (<6,>=3.0.2) ; extra == 'use_chardet_on_py3'

            # Requests

            """
        let html = """
            <!DOCTYPE html>
            <html><head><meta name="pypi:repository-version" content="1.1"><title>Links for demo</title></head>
            <body><h1>Links for demo</h1>
            <a href="https://files.example.org/packages/demo-1.0-py3-none-any.whl#sha256=\(String(repeating: "ab", count: 32))" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=\(String(repeating: "cd", count: 32))" data-core-metadata="sha256=\(String(repeating: "cd", count: 32))">demo-1.0-py3-none-any.whl</a><br />
            <a href="../../packages/demo-0.9.tar.gz#md5=\(String(repeating: "0f", count: 16))" data-yanked="broken &amp; old">demo-0.9.tar.gz</a><br />
            <!-- <a href="x">x</a> -->
            </body></html>
            """
        let json = """
            {"meta": {"api-version": "1.1", "_last-serial": 7}, "name": "demo", "versions": ["0.9", "1.0"],
             "files": [{"filename": "demo-1.0-py3-none-any.whl", "url": "https://files.example.org/packages/demo-1.0-py3-none-any.whl",
                        "hashes": {"sha256": "\(String(repeating: "ab", count: 32))"}, "requires-python": ">=3.8", "yanked": false,
                        "core-metadata": {"sha256": "\(String(repeating: "cd", count: 32))"}, "size": 1024},
                       {"filename": "demo-0.9.tar.gz", "url": "../../packages/demo-0.9.tar.gz", "hashes": {}, "yanked": "broken \\u0026 old"}]}
            """
        return [
            [0] + Array("v1!2.0RC1-r3-dev4+Ubuntu_1.7".utf8),
            [1] + Array(" ~=1.4.5a4, !=1.4.7.*, <2 ,>=1!0.1.post2".utf8),
            [2] + Array(#"requests [security,socks] >=2.8.1, ==2.8.* ; python_version < "2.7" and (os_name == 'posix' or extra == "x")"#.utf8),
            [3] + Array(metadata.utf8),
            [4] + Array("numpy-1.26.4-1local-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl".utf8),
            [5, 0] + Array(html.utf8),
            [5, 1] + Array(json.utf8),
        ]
    }

    /// A streamed chat request with tools (mode 2, a cap of 4000), the stream that answers it
    /// with usage in its last chunk (mode 3, pieces of 7), that stream as a chunked body (mode
    /// 1, pieces of 5), and two response heads (mode 0: chunked to a GET, a length to a HEAD).
    static func brainWireSeeds() -> [[UInt8]] {
        let request = #"""
            {"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Weather in Z\u00fcrich? \ud83c\udf26"}],
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
             "temperature":0.2,"stream":true,"stream_options":{"include_usage":false}}
            """#
        let stream = """
            : keep-alive\r
            \r
            data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\r
            \r
            data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Z\u{fc}rich\\"}"}}]}}]}\r
            \r
            data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\r
            \r
            data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}\r
            \r
            data: [DONE]\r
            \r

            """
        let events = Array(stream.utf8)
        var chunked: [UInt8] = []
        var start = 0
        for size in [1, 200, 0x3FF, events.count] where start < events.count {
            let end = min(start + size, events.count)
            chunked += Array("\(String(end - start, radix: 16));ext=1\r\n".utf8) + events[start..<end] + [0x0D, 0x0A]
            start = end
        }
        chunked += Array("0\r\nX-Trailer: 1\r\n\r\n".utf8)
        let streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        let headHead = "HTTP/1.0 200 \r\nContent-Type: application/json\r\nContent-Length: 312, 312\r\n\r\n"
        return [[2, 4] + Array(request.utf8), [3, 6] + events, [1, 4] + chunked, [0, 0] + Array(streamHead.utf8), [0, 1] + Array(headHead.utf8)]
    }

    /// A layer of each kind of entry with a whiteout and an opaque marker (PAX long names), the
    /// same with GNU long names and a base-256 size, and a hostile one (`..`, an absolute path,
    /// a device node, a setuid file).
    static func tarSeeds() -> [[UInt8]] {
        var seeds: [[UInt8]] = []
        for style in [TarWriter.LongNames.pax, .gnu] {
            var tar = TarWriter(longNames: style)
            tar.add("etc/", type: "5", mode: 0o755)
            tar.add("etc/hostname", data: Array("momin\n".utf8), base256Size: style == .gnu)
            tar.add("etc/link", type: "2", link: "hostname")
            tar.add("etc/hard", type: "1", link: "etc/hostname")
            tar.add("usr/" + String(repeating: "long/", count: 30) + "file", data: [1, 2, 3])
            tar.add("var/.wh..wh..opq")
            tar.add("var/.wh.old")
            seeds.append(tar.finish())
        }
        var hostile = TarWriter()
        hostile.add("../escape", data: [0])
        hostile.add("/etc/passwd", data: Array("root::0:0::/:/bin/sh\n".utf8))
        hostile.add("dev/sda", type: "4")
        hostile.add("bin/su", data: [0x7f], mode: 0o4755)
        seeds.append(hostile.finish())
        return seeds
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

    /// One virtio-blk request as Linux lays it out: header, data, status.
    struct BlockSeedRequest {
        var type: UInt32
        var sector: UInt64 = 0
        /// Device-readable bytes after the header (OUT data, a range table).
        var payload: [UInt8] = []
        /// Device-writable data bytes before the status (IN, GET_ID).
        var writable = 0
    }

    /// Requests of each type (IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES) alone, then all of
    /// them with an unknown type in one queue, on a writable and on a read-only 64-sector disk.
    static func virtioBlockSeeds() -> [[UInt8]] {
        func range(_ sector: UInt64, _ sectors: UInt32, _ flags: UInt32) -> [UInt8] {
            (0..<8).map { UInt8(truncatingIfNeeded: sector >> (8 * UInt64($0))) }
                + (0..<4).map { UInt8(truncatingIfNeeded: sectors >> (8 * UInt32($0))) }
                + (0..<4).map { UInt8(truncatingIfNeeded: flags >> (8 * UInt32($0))) }
        }
        let each: [BlockSeedRequest] = [
            BlockSeedRequest(type: 0, sector: 2, writable: 1024),
            BlockSeedRequest(type: 1, sector: 3, payload: [UInt8](repeating: 0x5a, count: 512)),
            BlockSeedRequest(type: 4),
            BlockSeedRequest(type: 8, writable: 20),
            BlockSeedRequest(type: 11, payload: range(8, 8, 0) + range(32, 1, 0)),
            BlockSeedRequest(type: 13, payload: range(1, 2, 1)),
        ]
        let all = each + [BlockSeedRequest(type: 2, writable: 512)]
        return each.map { virtioBlockSeed(readOnly: false, [$0]) } + [virtioBlockSeed(readOnly: false, all), virtioBlockSeed(readOnly: true, all)]
    }

    /// The target's input for `requests` on a queue of 256 with indirect descriptors and event
    /// idx, DISCARD and WRITE_ZEROES negotiated, 64 sectors (see `VirtioBlockTarget`).
    static func virtioBlockSeed(readOnly: Bool, _ requests: [BlockSeedRequest]) -> [UInt8] {
        var memory = [UInt8](repeating: 0, count: 0x3000)
        func put(_ value: UInt64, _ bytes: Int, at address: Int) {
            if memory.count < address + bytes { memory += [UInt8](repeating: 0, count: address + bytes - memory.count) }
            for i in 0..<bytes { memory[address + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        var descriptor = 0
        var data = 0x3000
        for (slot, request) in requests.enumerated() {
            // Buffers: (address, length, device-writable).
            var buffers = [(data, 16, false)]
            put(UInt64(request.type), 4, at: data)
            put(request.sector, 8, at: data + 8)
            data += 16
            if !request.payload.isEmpty {
                for (i, byte) in request.payload.enumerated() { put(UInt64(byte), 1, at: data + i) }
                buffers.append((data, request.payload.count, false))
                data += request.payload.count
            }
            if request.writable > 0 {
                buffers.append((data, request.writable, true))
                data += request.writable
            }
            buffers.append((data, 1, true))
            data += 16
            // The chain (§2.7.5), its head in the available ring (§2.7.6).
            for (i, (address, length, writable)) in buffers.enumerated() {
                let last = i == buffers.count - 1
                put(UInt64(address), 8, at: 16 * descriptor)
                put(UInt64(length), 4, at: 16 * descriptor + 8)
                put((writable ? 2 : 0) | (last ? 0 : 1), 2, at: 16 * descriptor + 12)
                put(UInt64(last ? 0 : descriptor + 1), 2, at: 16 * descriptor + 14)
                if i == 0 { put(UInt64(descriptor), 2, at: 0x1004 + 2 * slot) }
                descriptor += 1
            }
        }
        put(UInt64(requests.count), 2, at: 0x1002)
        let flags: UInt8 = 1 | 2 | 8 | 16 | (readOnly ? 4 : 0)
        return [8, flags] + (0..<8).map { UInt8(truncatingIfNeeded: UInt64(64) >> (8 * UInt64($0))) } + memory
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
        network:
          egress:
            - host: "**.example.com"
            - host: example.com
              scheme: http
              ports: [80, 8000-8099]
              methods: [GET, HEAD]
              paths: [/docs/**]
              log_content: true
            - host: 10.0.0.0/24
              scheme: any
          limits: { connections: 8, bytes_per_session: 64MiB }
        brain:
          base_url: https://api.example.com/v1
          models: ["claude-*"]
          max_tokens_per_call: 8192
          max_requests: 100
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
        network:
          egress:
            - host: api.example.com
            - host: 10.0.0.5
              ports: [443]
          limits: { connections: 2, bytes_per_session: 1MiB }
        brain:
          base_url: https://api.example.com/v1/
          models: [claude-3]
          max_tokens_per_call: 1024
          max_requests: 10
        """
}
