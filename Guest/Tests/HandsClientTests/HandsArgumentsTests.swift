import Doors
@testable import HandsClient
import Testing

/// Standard input and files for the parser, and how often standard input was read.
final class FakeInput {
    var standardInput: [UInt8]
    var files: [String: [UInt8]]
    private(set) var standardInputReads = 0

    init(standardInput: [UInt8] = [], files: [String: [UInt8]] = [:]) {
        self.standardInput = standardInput
        self.files = files
    }

    var input: HandsInput {
        HandsInput(
            standardInput: { (limit) throws(HandsClientError) in
                self.standardInputReads += 1
                return Array(self.standardInput.prefix(limit))
            },
            file: { (path, limit) throws(HandsClientError) in
                guard let bytes = self.files[path] else { throw .noInput("cannot read \(path): No such file or directory") }
                return Array(bytes.prefix(limit))
            })
    }
}

func parse(_ line: String, _ fake: FakeInput = FakeInput()) throws(HandsClientError) -> HandsCommand {
    try HandsArguments.parse(line.split(separator: " ").map(String.init), input: fake.input)
}

/// The error `body` throws, or nil.
func failure(_ body: () throws(HandsClientError) -> HandsCommand) -> HandsClientError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

@Suite struct HandsArgumentsTests {
    @Test func help() throws {
        for line in ["--help", "-h", "help", "bucket --help", "door -h", "door recv inbox --help", "wait --help", "spawn --help"] {
            #expect(try parse(line) == .help, "\(line)")
        }
        #expect(HandsArguments.usage.contains("hands spawn --name NAME --policy FILE"))
    }

    @Test func bucketPutTakesTheValueFromTheArgumentOrStandardInput() throws {
        #expect(try parse("bucket put notes k1 hello") == .call(.bucketPut(namespace: "notes", key: "k1", value: Array("hello".utf8)), .nothing))
        for line in ["bucket put notes k1", "bucket put notes k1 -"] {
            let fake = FakeInput(standardInput: Array("from stdin".utf8))
            #expect(try parse(line, fake) == .call(.bucketPut(namespace: "notes", key: "k1", value: Array("from stdin".utf8)), .nothing))
            #expect(fake.standardInputReads == 1)
        }
        let fake = FakeInput(standardInput: [1])
        _ = try parse("bucket put notes k1 word", fake)
        #expect(fake.standardInputReads == 0)
        // A value that starts with dashes, after --.
        #expect(try parse("bucket put notes k1 -- --flag") == .call(.bucketPut(namespace: "notes", key: "k1", value: Array("--flag".utf8)), .nothing))
    }

    @Test func valuesAreLimited() throws {
        let exact = FakeInput(standardInput: [UInt8](repeating: 1, count: HandsCallProtocol.maxData))
        guard case .call(.bucketPut(_, _, let value), _) = try parse("bucket put n k", exact) else {
            Issue.record("expected a bucket put")
            return
        }
        #expect(value.count == HandsCallProtocol.maxData)

        let over = FakeInput(standardInput: [UInt8](repeating: 1, count: HandsCallProtocol.maxData + 1))
        let error = failure { () throws(HandsClientError) in try parse("bucket put n k", over) }
        #expect(error == .unsendable("VALUE from standard input is over the 1048576-byte limit"))
        #expect(error?.exitStatus == 64 && error?.showsUsage == false)
        let message = failure { () throws(HandsClientError) in try parse("door send d bob", over) }
        #expect(message?.message == "MESSAGE from standard input is over the 1048576-byte limit")
    }

    @Test func bucketGetAndQuery() throws {
        #expect(try parse("bucket get notes k1") == .call(.bucketGet(namespace: "notes", key: "k1"), .data))
        #expect(try parse("bucket query notes") == .call(.bucketQuery(namespace: "notes", keyPrefix: ""), .fieldLines))
        #expect(try parse("bucket query notes run-") == .call(.bucketQuery(namespace: "notes", keyPrefix: "run-"), .fieldLines))
    }

    @Test func bucketMistakes() {
        let cases: [(String, String)] = [
            ("bucket", "bucket needs put, get or query"),
            ("bucket drop notes", "unknown command \"bucket drop\" (bucket put, get or query)"),
            ("bucket get notes", "bucket get needs KEY (hands bucket get NAMESPACE KEY)"),
            ("bucket get notes k1 extra", "bucket get takes NAMESPACE KEY, not also \"extra\""),
            ("bucket put notes k1 v extra", "bucket put takes NAMESPACE KEY [VALUE], not also \"extra\""),
            ("bucket query", "bucket query needs NAMESPACE (hands bucket query NAMESPACE [KEY-PREFIX])"),
            ("bucket get notes k1 --timeout 3", "bucket get has no option --timeout"),
        ]
        for (line, message) in cases {
            let error = failure { () throws(HandsClientError) in try parse(line) }
            #expect(error == .usage(message), "\(line)")
            #expect(error?.exitStatus == 64 && error?.showsUsage == true)
        }
        let control = failure { () throws(HandsClientError) in
            try HandsArguments.parse(["bucket", "get", "notes", "a\tb"], input: FakeInput().input)
        }
        #expect(control == .usage("KEY holds a control character"))
        let empty = failure { () throws(HandsClientError) in
            try HandsArguments.parse(["bucket", "get", "", "k"], input: FakeInput().input)
        }
        #expect(empty == .usage("NAMESPACE is empty"))
        let long = failure { () throws(HandsClientError) in
            try HandsArguments.parse(["bucket", "get", "n", String(repeating: "k", count: 256)], input: FakeInput().input)
        }
        #expect(long == .usage("KEY is 256 bytes, at most 255"))
    }

    @Test func doorSendAndReceive() throws {
        #expect(try parse("door send inbox bob hi") == .call(.doorSend(door: "inbox", to: "bob", message: Array("hi".utf8), timeoutMilliseconds: 30_000), .nothing))
        #expect(try parse("door send inbox bob hi --timeout 1.5") == .call(.doorSend(door: "inbox", to: "bob", message: Array("hi".utf8), timeoutMilliseconds: 1500), .nothing))
        let fake = FakeInput(standardInput: Array("piped".utf8))
        #expect(try parse("door send --timeout=2 inbox bob", fake) == .call(.doorSend(door: "inbox", to: "bob", message: Array("piped".utf8), timeoutMilliseconds: 2000), .nothing))
        #expect(try parse("door recv inbox") == .call(.doorReceive(door: "inbox", timeoutMilliseconds: 30_000), .data))
        #expect(try parse("door recv inbox --from --timeout 0") == .call(.doorReceive(door: "inbox", timeoutMilliseconds: 0), .senderAndData))
        // Seconds clamp to what a UInt32 of milliseconds holds.
        #expect(try parse("door recv inbox --timeout 99999999999") == .call(.doorReceive(door: "inbox", timeoutMilliseconds: UInt32.max), .data))
    }

    @Test func doorMistakes() {
        let cases: [(String, String)] = [
            ("door", "door needs send or recv"),
            ("door open inbox", "unknown command \"door open\" (door send or recv)"),
            ("door send inbox", "door send needs TO (hands door send DOOR TO [MESSAGE])"),
            ("door recv inbox --timeout", "--timeout needs a value"),
            ("door recv inbox --timeout -1", "--timeout needs a number of seconds (0 or more), not \"-1\""),
            ("door recv inbox --timeout soon", "--timeout needs a number of seconds (0 or more), not \"soon\""),
            ("door recv inbox --timeout nan", "--timeout needs a number of seconds (0 or more), not \"nan\""),
            ("door recv inbox --from=yes", "--from takes no value"),
            ("door send inbox bob hi --from", "door send has no option --from"),
        ]
        for (line, message) in cases {
            #expect(failure { () throws(HandsClientError) in try parse(line) } == .usage(message), "\(line)")
        }
    }

    @Test func spawn() throws {
        let policy = Array("allow:\n  - bucket: notes\n".utf8)
        let fake = FakeInput(files: ["child.yaml": policy, "child.json": Array("{}".utf8)])
        let line = "spawn --name worker --policy child.yaml --vcpus 2 --memory 512 --env A=1 --env B=x=y -- python3 -m worker --fast"
        let expected = SpawnRequest(name: "worker", policy: policy, policyFormat: "yaml", vcpus: 2, memoryMiB: 512,
                                    argv: ["python3", "-m", "worker", "--fast"], env: ["A=1", "B=x=y"])
        #expect(try parse(line, fake) == .call(.spawn(expected), .firstField))

        // Defaults, JSON, and a command without "--": its own options stay its own.
        let json = SpawnRequest(name: "w", policy: Array("{}".utf8), policyFormat: "json", vcpus: 1, memoryMiB: 256,
                                argv: ["ls", "--name", "x"])
        #expect(try parse("spawn --name w --policy=child.json ls --name x", fake) == .call(.spawn(json), .firstField))

        // The caller's disks by name, and its root image.
        let disks = SpawnRequest(name: "w", policy: Array("{}".utf8), policyFormat: "json", vcpus: 1, memoryMiB: 256,
                                 argv: ["python3"], disks: ["case1", "tools", "momin-root"])
        #expect(try parse("spawn --name w --policy child.json --disk case1 --image --disk tools -- python3", fake)
                == .call(.spawn(disks), .firstField))
    }

    @Test func spawnMistakes() {
        let fake = FakeInput(files: ["p.yaml": Array("x".utf8), "big.yaml": [UInt8](repeating: 0x20, count: HandsCallProtocol.maxData + 1)])
        let cases: [(String, HandsClientError)] = [
            ("spawn --policy p.yaml -- true", .usage("spawn needs --name NAME")),
            ("spawn --name w -- true", .usage("spawn needs --policy FILE")),
            ("spawn --name w --policy p.yaml", .usage("spawn needs a command after --")),
            ("spawn --name w --policy p.yaml --", .usage("spawn needs a command after --")),
            ("spawn --name w --policy p.yaml --vcpus 0 -- true", .usage("--vcpus needs a whole number from 1, not \"0\"")),
            ("spawn --name w --policy p.yaml --memory lots -- true", .usage("--memory needs a whole number from 1, not \"lots\"")),
            ("spawn --name w --policy p.yaml --env NOEQUALS -- true", .usage("--env needs NAME=VALUE, not \"NOEQUALS\"")),
            ("spawn --name w --policy p.yaml --env =v -- true", .usage("--env needs NAME=VALUE, not \"=v\"")),
            ("spawn --name w --policy p.yaml --gpu x -- true", .usage("spawn has no option --gpu")),
            ("spawn --name w --policy p.yaml \((0...8).map { "--disk d\($0)" }.joined(separator: " ")) -- true", .usage("spawn takes at most 8 disks")),
            ("spawn --name w --policy missing.yaml -- true", .noInput("cannot read missing.yaml: No such file or directory")),
            ("spawn --name w --policy big.yaml -- true", .unsendable("policy big.yaml is over the 1048576-byte limit")),
        ]
        for (line, expected) in cases {
            #expect(failure { () throws(HandsClientError) in try parse(line, fake) } == expected, "\(line)")
        }
        #expect(HandsClientError.noInput("x").exitStatus == 66)

        // What the codec refuses (an argument over Linux's MAX_ARG_STRLEN) is refused here.
        let huge = String(repeating: "a", count: DoorsLimits.maxArgumentLength + 1)
        let error = failure { () throws(HandsClientError) in
            try HandsArguments.parse(["spawn", "--name", "w", "--policy", "p.yaml", "--", "echo", huge], input: fake.input)
        }
        #expect(error?.message.hasPrefix("the call cannot be sent: spawn call: field ") == true)
        #expect(error?.exitStatus == 64)
    }

    @Test func waitStopAndWhoami() throws {
        #expect(try parse("wait worker") == .call(.wait(agent: "worker", timeoutMilliseconds: 0), .childStatus))
        #expect(try parse("wait worker --timeout 10") == .call(.wait(agent: "worker", timeoutMilliseconds: 10_000), .childStatus))
        #expect(try parse("stop worker") == .call(.stop(agent: "worker"), .nothing))
        #expect(try parse("whoami") == .call(.whoami, .identity))
        let cases: [(String, String)] = [
            ("wait", "wait needs NAME (hands wait NAME)"),
            ("stop a b", "stop takes NAME, not also \"b\""),
            ("whoami me", "whoami takes no arguments, not also \"me\""),
            ("", "no command given"),
            ("launch x", "unknown command \"launch\""),
        ]
        for (line, message) in cases {
            #expect(failure { () throws(HandsClientError) in try parse(line) } == .usage(message), "\(line)")
        }
    }

    @Test func installPip() throws {
        #expect(try parse("install pip pefile==2024.8.26")
                == .install(ecosystem: "pip", requirements: ["pefile==2024.8.26"], python: "python3"))
        #expect(try parse("install pip --python /usr/bin/python3.11 pefile yara-python>=4.5")
                == .install(ecosystem: "pip", requirements: ["pefile", "yara-python>=4.5"], python: "/usr/bin/python3.11"))
        // Options anywhere; a requirement as PEP 508 writes it, spaces, extras and markers included.
        let marker = "requests[socks] >=2.31 ; python_version >= \"3.8\""
        #expect(try HandsArguments.parse(["install", "pip", marker, "--python=/opt/py/bin/python", "PyYAML"], input: FakeInput().input)
                == .install(ecosystem: "pip", requirements: [marker, "PyYAML"], python: "/opt/py/bin/python"))
        let most = Array(repeating: String(repeating: "r", count: HandsInstall.maxRequirementLength), count: HandsInstall.maxRequirements)
        #expect(try HandsArguments.parse(["install", "pip"] + most, input: FakeInput().input)
                == .install(ecosystem: "pip", requirements: most, python: "python3"))
        for line in ["install --help", "install pip --help", "install pip pefile --help"] {
            #expect(try parse(line) == .help, "\(line)")
        }
        #expect(HandsArguments.usage.contains("hands install pip [--python PATH] REQUIREMENT..."))
    }

    @Test func installApt() throws {
        #expect(try parse("install apt binwalk") == .installApt(packages: ["binwalk"]))
        #expect(try parse("install apt libstdc++6 python3.11 g++-12 0ad") == .installApt(packages: ["libstdc++6", "python3.11", "g++-12", "0ad"]))
        #expect(try parse("install apt -- xz-utils") == .installApt(packages: ["xz-utils"]))
        let most = (0..<HandsInstall.maxRequirements).map { "p\($0)" }
        #expect(try HandsArguments.parse(["install", "apt"] + most, input: FakeInput().input) == .installApt(packages: most))
        #expect(try parse("install apt binwalk --help") == .help)
        #expect(HandsArguments.usage.contains("hands install apt NAME..."))
    }

    @Test func installMistakes() {
        let usage = "(hands install pip REQUIREMENT... or hands install apt NAME...)"
        let debian = "(lower case letters, digits, + - ., at least 2, starting with a letter or digit)"
        let cases: [([String], String)] = [
            (["install"], "install needs pip or apt \(usage)"),
            (["install", "apt"], "install apt needs a NAME \(usage)"),
            (["install", "apt", "--python", "python3", "binwalk"], "install apt has no option --python"),
            (["install", "apt", "--allow-unauthenticated", "binwalk"], "install has no option --allow-unauthenticated"),
            (["install", "apt", "-o", "binwalk"], "NAME \"-o\" is not a Debian package name \(debian)"),
            (["install", "apt", "Binwalk"], "NAME \"Binwalk\" is not a Debian package name \(debian)"),
            (["install", "apt", "b"], "NAME \"b\" is not a Debian package name \(debian)"),
            (["install", "apt", ".hidden"], "NAME \".hidden\" is not a Debian package name \(debian)"),
            (["install", "apt", "binwalk=2.3.4"], "NAME \"binwalk=2.3.4\" is not a Debian package name \(debian)"),
            (["install", "apt", "binwalk:amd64"], "NAME \"binwalk:amd64\" is not a Debian package name \(debian)"),
            (["install", "apt", "./binwalk_2.3.4_all.deb"], "NAME \"./binwalk_2.3.4_all.deb\" is not a Debian package name \(debian)"),
            (["install", "apt", "xz\nutils"], "NAME \"xz\nutils\" is not a Debian package name \(debian)"),
            (["install", "apt", String(repeating: "r", count: 1025)], "NAME is 1025 bytes, at most 1024"),
            (["install", "apt"] + Array(repeating: "rr", count: 65), "install apt takes at most 64 names, not 65"),
            (["install", "npm", "left-pad"], "unknown ecosystem \"npm\" \(usage)"),
            (["install", "pip"], "install pip needs a REQUIREMENT \(usage)"),
            (["install", "pip", "--python", "/usr/bin/python3"], "install pip needs a REQUIREMENT \(usage)"),
            (["install", "pip", "--index-url", "http://x", "pefile"], "install has no option --index-url"),
            (["install", "pip", "pefile", "--python"], "--python needs a value"),
            (["install", "pip", "--python=", "pefile"], "--python is empty"),
            (["install", "pip", "-e", "."], "REQUIREMENT \"-e\" does not start with a project name (PEP 508)"),
            (["install", "pip", "./pefile-1-py3-none-any.whl"], "REQUIREMENT \"./pefile-1-py3-none-any.whl\" does not start with a project name (PEP 508)"),
            (["install", "pip", "pefile", ""], "REQUIREMENT is empty"),
            (["install", "pip", "pefile\n--index-url=http://x"], "REQUIREMENT holds a control character"),
            (["install", "pip", String(repeating: "r", count: 1025)], "REQUIREMENT is 1025 bytes, at most 1024"),
            (["install", "pip"] + Array(repeating: "r", count: 65), "install pip takes at most 64 requirements, not 65"),
        ]
        for (words, message) in cases {
            let error = failure { () throws(HandsClientError) in try HandsArguments.parse(words, input: FakeInput().input) }
            #expect(error == .usage(message), "\(words.prefix(4))")
        }
    }

    @Test func socketPath() {
        #expect(HandsConnection.socketPath(environment: nil) == "/run/momin/hands.sock")
        #expect(HandsConnection.socketPath(environment: "") == "/run/momin/hands.sock")
        #expect(HandsConnection.socketPath(environment: "/tmp/h.sock") == "/tmp/h.sock")
    }
}

@Suite struct HandsOutcomeTests {
    @Test func failuresExitWithTheirCodesStatus() {
        let statuses: [(HandsFailure, Int32)] = [(.denied, 77), (.notFound, 2), (.invalid, 64), (.timedOut, 124), (.noRoom, 75), (.failed, 70)]
        for (code, status) in statuses {
            let outcome = HandsOutcome.of(.failed(code, "no \(code)"), output: .data)
            #expect(outcome == HandsOutcome(errorLine: "no \(code)", exitStatus: status))
        }
    }

    @Test func okRepliesAsEachCallShowsThem() {
        let reply = HandsReply.ok(fields: ["alice", "root"], data: Array("bytes".utf8))
        #expect(HandsOutcome.of(reply, output: .nothing) == HandsOutcome())
        #expect(HandsOutcome.of(reply, output: .data) == HandsOutcome(standardOutput: Array("bytes".utf8)))
        #expect(HandsOutcome.of(reply, output: .senderAndData) == HandsOutcome(standardOutput: Array("alice\nbytes".utf8)))
        // Data beside field lines is the host's marker that the list was cut short.
        #expect(HandsOutcome.of(reply, output: .fieldLines) == HandsOutcome(standardOutput: Array("alice\nroot\n".utf8), errorLine: "bytes"))
        #expect(HandsOutcome.of(reply, output: .firstField) == HandsOutcome(standardOutput: Array("alice\n".utf8)))
        #expect(HandsOutcome.of(reply, output: .identity) == HandsOutcome(standardOutput: Array("alice\nparent root\n".utf8)))
        let orphan = HandsReply.ok(fields: ["root", ""], data: [])
        #expect(HandsOutcome.of(orphan, output: .identity) == HandsOutcome(standardOutput: Array("root\n".utf8)))
        #expect(HandsOutcome.of(.ok(fields: [], data: []), output: .fieldLines) == HandsOutcome())
        // A list the host cut short: the lines it sent, and its marker on stderr; still exit 0.
        #expect(HandsOutcome.of(.ok(fields: ["a"], data: Array("truncated: 1 of 9 keys shown".utf8)), output: .fieldLines)
                == HandsOutcome(standardOutput: Array("a\n".utf8), errorLine: "truncated: 1 of 9 keys shown"))
        #expect(HandsOutcome.of(.ok(fields: [], data: []), output: .firstField).exitStatus == 70)
    }

    @Test func waitExitsAsTheChildDid() {
        let output = Array("child stdout\n".utf8)
        #expect(HandsOutcome.of(.ok(fields: ["exited", "0"], data: output), output: .childStatus) == HandsOutcome(standardOutput: output))
        #expect(HandsOutcome.of(.ok(fields: ["exited", "3"], data: output), output: .childStatus) == HandsOutcome(standardOutput: output, exitStatus: 3))
        #expect(HandsOutcome.of(.ok(fields: ["signaled", "9"], data: []), output: .childStatus).exitStatus == 137)
        // The host's third field is the child's stderr, passed on as it is.
        #expect(HandsOutcome.of(.ok(fields: ["exited", "1", "oops\n"], data: output), output: .childStatus)
                == HandsOutcome(standardOutput: output, standardError: Array("oops\n".utf8), exitStatus: 1))
        for fields in [["exited"], ["exited", "256"], ["signaled", "0"], ["stopped", "1"], ["exited", "x"]] {
            let outcome = HandsOutcome.of(.ok(fields: fields, data: output), output: .childStatus)
            #expect(outcome.exitStatus == 70, "\(fields)")
            #expect(outcome.standardOutput.isEmpty)
            #expect(outcome.errorLine?.hasPrefix("the host's reply to wait is not understood") == true)
        }
    }
}
