import Doors
import Glibc
@testable import HandsClient
import Testing

/// The frames the Python client (Guest/python/momin_hands.py) is checked against: what this
/// codec encodes, written once to Guest/python/testdata/frames.json and compared here on every
/// run, so that the two clients cannot drift. `MOMIN_WRITE_VECTORS=1 swift test --filter
/// PythonVectors` rewrites the file after a deliberate change to the protocol.
@Suite struct PythonVectorsTests {
    static let path: String = {
        // Guest/Tests/HandsClientTests/<this file> → Guest/python/testdata/frames.json
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/python/testdata/frames.json"
    }()

    @Test func theCommittedVectorsAreWhatTheCodecEncodes() throws {
        let expected = Self.document()
        if let flag = getenv("MOMIN_WRITE_VECTORS"), String(cString: flag) == "1" {
            try write(expected, to: Self.path)
        }
        let committed = try read(Self.path)
        #expect(committed == expected, "\(Self.path) is stale: rerun with MOMIN_WRITE_VECTORS=1 and commit it with the protocol change")
    }

    // MARK: - The vectors

    /// One call: the Python client's verb, its keyword arguments (JSON), the Swift call.
    struct CallVector {
        var verb: String
        var arguments: [(String, JSON)]
        var call: HandsCall
    }

    static let policyYAML = Array("agent: analyst\ntools:\n  buckets: []\n".utf8)
    static let policyJSON = Array("{\"agent\": \"analyst\"}\n".utf8)

    static var calls: [CallVector] {
        let binary: [UInt8] = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x09] + Array("é".utf8)
        return [
            CallVector(verb: "bucket_put", arguments: [("namespace", "notes"), ("key", "k1"), ("value", .bytes(Array("hello".utf8)))],
                       call: .bucketPut(namespace: "notes", key: "k1", value: Array("hello".utf8))),
            CallVector(verb: "bucket_put", arguments: [("namespace", "cases/1/évidence"), ("key", "ключ"), ("value", .bytes(binary))],
                       call: .bucketPut(namespace: "cases/1/évidence", key: "ключ", value: binary)),
            CallVector(verb: "bucket_put", arguments: [("namespace", "n"), ("key", "empty"), ("value", .bytes([]))],
                       call: .bucketPut(namespace: "n", key: "empty", value: [])),
            CallVector(verb: "bucket_get", arguments: [("namespace", "cases/1/evidence"), ("key", "auth.log")],
                       call: .bucketGet(namespace: "cases/1/evidence", key: "auth.log")),
            CallVector(verb: "bucket_query", arguments: [("namespace", "notes")], call: .bucketQuery(namespace: "notes", keyPrefix: "")),
            CallVector(verb: "bucket_query", arguments: [("namespace", "notes"), ("prefix", "k")], call: .bucketQuery(namespace: "notes", keyPrefix: "k")),
            CallVector(verb: "door_send", arguments: [("door", "findings"), ("to", "triage"), ("message", .bytes(Array("auth.log done".utf8)))],
                       call: .doorSend(door: "findings", to: "triage", message: Array("auth.log done".utf8),
                                       timeoutMilliseconds: HandsArguments.defaultDoorTimeoutMilliseconds)),
            CallVector(verb: "door_send", arguments: [("door", "d"), ("to", "x"), ("message", .bytes([])), ("timeout", .number("1.234"))],
                       call: .doorSend(door: "d", to: "x", message: [], timeoutMilliseconds: 1234)),
            CallVector(verb: "door_receive", arguments: [("door", "inbox")],
                       call: .doorReceive(door: "inbox", timeoutMilliseconds: HandsArguments.defaultDoorTimeoutMilliseconds)),
            CallVector(verb: "door_receive", arguments: [("door", "inbox"), ("timeout", .number("0"))], call: .doorReceive(door: "inbox", timeoutMilliseconds: 0)),
            CallVector(verb: "door_receive", arguments: [("door", "inbox"), ("timeout", .number("1e12"))],
                       call: .doorReceive(door: "inbox", timeoutMilliseconds: UInt32.max)),
            CallVector(verb: "spawn", arguments: [("name", "auth"), ("policy", .bytes(policyYAML)), ("argv", .list(["/bin/sh", "-c", "true"]))],
                       call: .spawn(SpawnRequest(name: "auth", policy: policyYAML, policyFormat: "yaml", vcpus: HandsArguments.defaultVCPUs,
                                                 memoryMiB: HandsArguments.defaultMemoryMiB, argv: ["/bin/sh", "-c", "true"]))),
            CallVector(verb: "spawn",
                       arguments: [("name", "web"), ("policy", .bytes(policyJSON)), ("argv", .list(["python3", "-c", "print('hi')"])),
                                   ("env", .list(["A=1", "B=x=y"])), ("vcpus", .number("2")), ("memory_mib", .number("512")),
                                   ("disks", .list(["evidence"])), ("image", .bool(true))],
                       call: .spawn(SpawnRequest(name: "web", policy: policyJSON, policyFormat: "json", vcpus: 2, memoryMiB: 512,
                                                 argv: ["python3", "-c", "print('hi')"], env: ["A=1", "B=x=y"],
                                                 disks: ["evidence", HandsArguments.rootDisk]))),
            CallVector(verb: "wait", arguments: [("agent", "triage.auth")], call: .wait(agent: "triage.auth", timeoutMilliseconds: 0)),
            CallVector(verb: "wait", arguments: [("agent", "child"), ("timeout", .number("5"))], call: .wait(agent: "child", timeoutMilliseconds: 5000)),
            CallVector(verb: "stop", arguments: [("agent", "child")], call: .stop(agent: "child")),
            CallVector(verb: "whoami", arguments: [], call: .whoami),
            CallVector(verb: "install", arguments: [("ecosystem", "pip"), ("requirements", .list(["pefile==2024.8.26", "yara-python>=4.5"]))],
                       call: .install(ecosystem: "pip", requirements: ["pefile==2024.8.26", "yara-python>=4.5"])),
            CallVector(verb: "install_file", arguments: [("install", "3f2a-01"), ("file", .number("1")), ("offset", .number("4294967296"))],
                       call: .installFile(install: "3f2a-01", file: 1, offset: 1 << 32)),
        ]
    }

    /// Replies by name; the Python test knows what each means to its verb.
    static var replies: [(String, HandsReply)] {
        let sha = String(repeating: "ab", count: 32)
        return [
            ("empty", .ok(fields: [], data: [])),
            ("value", .ok(fields: [], data: [0, 0xff] + Array("value".utf8))),
            ("query", .ok(fields: ["k1\t5\t\(sha)", "clé\t0\t\(sha)"], data: [])),
            ("query-truncated", .ok(fields: ["k1\t5\t\(sha)"], data: Array("truncated: 1 of 2 keys shown".utf8))),
            ("sequence", .ok(fields: ["17"], data: [])),
            ("message", .ok(fields: ["triage.auth", "42"], data: Array("auth.log done".utf8))),
            ("spawned", .ok(fields: ["triage.auth"], data: [])),
            ("exited", .ok(fields: ["exited", "3", "oops\n"], data: Array("out\n".utf8))),
            ("signaled", .ok(fields: ["signaled", "9"], data: [])),
            ("identity", .ok(fields: ["triage.auth", "triage"], data: [])),
            ("root-identity", .ok(fields: ["triage", ""], data: [])),
            ("manifest", .ok(fields: ["3f2a-01", "pefile\t2024.8.26\tpefile-2024.8.26-py3-none-any.whl\t74\t\(sha)"], data: [])),
            ("piece", .ok(fields: [], data: Array("PK\u{3}\u{4}".utf8) + [0, 0xff])),
        ] + HandsFailure.allCases.map { ("\($0)", .failed($0, "\($0): déjà vu")) }
    }

    // MARK: - The document

    /// The vectors as JSON, one line per entry, keys in a fixed order: what the file must hold.
    static func document() -> String {
        var lines: [String] = ["{"]
        lines.append("  \"protocol\": " + JSON.object([
            ("magic", .int(Int(HandsCallProtocol.magic))), ("version", .int(Int(HandsCallProtocol.version))),
            ("headerSize", .int(HandsCallProtocol.headerSize)), ("maxData", .int(HandsCallProtocol.maxData)),
            ("maxPayload", .int(HandsCallProtocol.maxPayload)), ("maxFields", .int(HandsCallProtocol.maxFields)),
            ("maxNameLength", .int(HandsCallProtocol.maxNameLength)), ("maxMessageLength", .int(DoorsLimits.maxMessageLength)),
            ("maxArguments", .int(DoorsLimits.maxArguments)), ("maxArgumentLength", .int(DoorsLimits.maxArgumentLength)),
            ("maxEnvironment", .int(DoorsLimits.maxEnvironment)), ("maxDisks", .int(SpawnRequest.maxDisks)),
            ("maxEcosystemLength", .int(HandsInstall.maxEcosystemLength)), ("maxRequirements", .int(HandsInstall.maxRequirements)),
            ("maxRequirementLength", .int(HandsInstall.maxRequirementLength)), ("maxInstallIDLength", .int(HandsInstall.maxInstallIDLength)),
            ("maxInstallFiles", .int(InstallManifest.maxFiles)), ("maxInstallFileSize", .int(Int(InstallManifest.maxFileSize))),
            ("maxWheelNameLength", .int(InstallManifest.maxFileNameLength)),
        ]).text + ",")
        lines.append("  \"defaults\": " + JSON.object([
            ("doorTimeoutMilliseconds", .int(Int(HandsArguments.defaultDoorTimeoutMilliseconds))),
            ("vcpus", .int(Int(HandsArguments.defaultVCPUs))), ("memoryMiB", .int(Int(HandsArguments.defaultMemoryMiB))),
            ("rootDisk", .string(HandsArguments.rootDisk)), ("socketPath", .string(HandsConnection.defaultSocketPath)),
        ]).text + ",")
        lines.append("  \"kinds\": " + JSON.object(HandsCallKind.allCases.map { ("\($0)", .int(Int($0.rawValue))) }).text + ",")
        lines.append("  \"failures\": [")
        lines += entries(HandsFailure.allCases.map {
            JSON.object([("name", .string("\($0)")), ("code", .int(Int($0.rawValue))), ("exitStatus", .int(Int($0.exitStatus)))])
        })
        lines.append("  ],")
        lines.append("  \"calls\": [")
        lines += entries(calls.map {
            JSON.object([("verb", .string($0.verb)), ("arguments", .object($0.arguments)), ("frame", .string(hex(HandsCallCodec.encode($0.call))))])
        })
        lines.append("  ],")
        lines.append("  \"replies\": [")
        lines += entries(replies.map { name, reply in
            var object: [(String, JSON)] = [("name", .string(name))]
            switch reply {
            case .ok(let fields, let data): object += [("fields", .list(fields)), ("data", .bytes(data))]
            case .failed(let failure, let message): object += [("failure", .string("\(failure)")), ("message", .string(message))]
            }
            return JSON.object(object + [("frame", .string(hex(HandsCallCodec.encode(reply))))])
        })
        lines.append("  ],")
        // An install reply's fields, and what is wrong with them (none: a manifest).
        lines.append("  \"manifests\": [")
        lines += entries(InstallManifestTests.cases.map { fields, error in
            JSON.object([("fields", .list(fields))] + (error.map { [("error", .string($0))] } ?? []))
        })
        lines.append("  ]")
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    static func entries(_ values: [JSON]) -> [String] {
        values.enumerated().map { "    " + $1.text + ($0 == values.count - 1 ? "" : ",") }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xf)]] })
    }

    /// Just enough JSON to write the vectors (bytes as {"hex": ...}); non-ASCII text as is.
    enum JSON: ExpressibleByStringLiteral {
        case string(String)
        case int(Int)
        /// A number as written (JSON has no integer type).
        case number(String)
        case bool(Bool)
        case bytes([UInt8])
        case list([String])
        indirect case object([(String, JSON)])

        init(stringLiteral value: String) { self = .string(value) }

        var text: String {
            switch self {
            case .string(let value): Self.quoted(value)
            case .int(let value): "\(value)"
            case .number(let value): value
            case .bool(let value): value ? "true" : "false"
            case .bytes(let value): "{\"hex\": \"\(PythonVectorsTests.hex(value))\"}"
            case .list(let values): "[" + values.map(Self.quoted).joined(separator: ", ") + "]"
            case .object(let members): "{" + members.map { Self.quoted($0.0) + ": " + $0.1.text }.joined(separator: ", ") + "}"
            }
        }

        static func quoted(_ text: String) -> String {
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                    out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
    }

    // MARK: - Files

    struct FileError: Error, CustomStringConvertible {
        var description: String
    }

    func read(_ path: String) throws -> String {
        guard let file = fopen(path, "rb") else { throw FileError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            bytes += chunk[0..<n]
            if n < chunk.count { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func write(_ text: String, to path: String) throws {
        guard let file = fopen(path, "wb") else { throw FileError(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { fclose(file) }
        let bytes = Array(text.utf8)
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw FileError(description: "writing \(path) failed") }
    }
}
