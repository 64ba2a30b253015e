import Glibc

/// Bad input on the command line or in a script: one line on stderr, exit status 2.
public struct UsageError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum Usage {
    public static let main = """
        usage: momin-test-server http [--listen HOST:PORT] [--root DIR] [--ready-file FILE]
               momin-test-server static --root DIR [--listen HOST:PORT] [--ready-file FILE]
                                        [--log FILE]
               momin-test-server openai --script FILE [--listen HOST:PORT] [--key KEY]
                                        [--ready-file FILE] [--log FILE]
               momin-test-server request --unix SOCKET --method METHOD --path PATH [--json TEXT]
               momin-test-server (http|static|openai|request) --help

        Loopback servers for MominAI's egress, Brain and package tests: a plain HTTP/1.1
        server, a static site (a package index), and a scripted OpenAI-compatible Chat
        Completions server. They run until killed. And one client: a request to a server on a
        Unix socket (momin serve in the rig).
        """

    public static let http = """
        usage: momin-test-server http [--listen HOST:PORT] [--root DIR] [--ready-file FILE]

        An HTTP/1.1 server (RFC 9112), a thread per connection, persistent connections,
        Content-Length and chunked request bodies, header sections up to 64 KiB (431 past it).

          GET|HEAD /PATH        the file DIR/PATH (no escape from DIR); 404 otherwise
          ANY /echo[/...]       JSON: method, target, path, query, version, headers
                                ([name, value] in order), body_length, body_sha256,
                                body_framing, trailers; ?body=1 adds body (first 64 KiB)
          GET /big?bytes=N      N bytes, byte i = i % 251, with Content-Length
          GET /slow?ms=N        waits N ms (at most 600000), then answers "slept N ms"

          --listen HOST:PORT    an IPv4 address and port (default 127.0.0.1:0: a free port)
          --root DIR            the directory files are served from (none: no files)
          --ready-file FILE     written once listening: the port, one line
        """

    public static let `static` = """
        usage: momin-test-server static --root DIR [--listen HOST:PORT] [--ready-file FILE]
                                        [--log FILE]

        A static site, as a package index (PEP 503) is served, over the same HTTP/1.1 server.

          GET|HEAD /PATH        the regular file DIR/PATH (percent-escapes decoded)
          GET|HEAD /PATH/       DIR/PATH/index.html
          GET|HEAD /PATH        where DIR/PATH is a directory: 301 to /PATH/
                                anything else, or outside DIR (.., a symlink out): 404

          --root DIR            the directory served (required)
          --listen HOST:PORT    an IPv4 address and port (default 127.0.0.1:0: a free port)
          --ready-file FILE     written once listening: the port, one line
          --log FILE            one JSON line per request: method, path (as sent), status,
                                bytes (the body bytes sent; 0 for HEAD)
        """

    public static let openai = """
        usage: momin-test-server openai --script FILE [--listen HOST:PORT] [--key KEY]
                                        [--ready-file FILE] [--log FILE]

        A scripted OpenAI-compatible server: POST /v1/chat/completions answers the script's
        next turn (stream: true gives Server-Sent Events ending in data: [DONE], with a usage
        chunk when stream_options.include_usage is true); GET /v1/models lists its models.

          --script FILE         {"models": [...], "turns": [TURN, ...]}, or just [TURN, ...]
                                TURN: content and/or tool_calls [{id, name, arguments}],
                                or error {status, message, type, code}; usage {prompt_tokens,
                                completion_tokens}; finish_reason; chunks; delay_ms;
                                expect {model, message_count, last_role,
                                last_content_contains, tool_call_id, system_contains,
                                any_content_contains, stream, max_tokens, tool_names}:
                                a failed check answers 400 expectation_failed
          --key KEY             require Authorization: Bearer KEY (401 otherwise)
          --listen HOST:PORT    an IPv4 address and port (default 127.0.0.1:0: a free port)
          --ready-file FILE     written once listening: the port, one line
          --log FILE            one JSON line per request: method, path, authorization
                                (present or not), model, messages, max_tokens,
                                max_completion_tokens, stream, include_usage, tools, turn,
                                status, expect_failed
        """
}

/// What a subcommand's arguments ask for.
public struct Options: Equatable {
    public var listen = ListenAddress("127.0.0.1:0")!
    public var root: String?
    public var readyFile: String?
    public var script: String?
    public var key: String?
    public var log: String?
    /// `request`'s: the socket, method, path and body.
    public var unix: String?
    public var method: String?
    public var path: String?
    public var json: String?
    public var bodyFile: String?
    public var help = false

    /// Parses `arguments` (after the subcommand); `allowed` is the subcommand's options.
    public init(_ arguments: [String], allowed: Set<String>) throws(UsageError) {
        var rest = arguments[...]
        while let option = rest.popFirst() {
            if option == "--help" || option == "-h" {
                help = true
                continue
            }
            guard allowed.contains(option) else { throw UsageError("unknown option '\(option)'") }
            guard let value = rest.popFirst() else { throw UsageError("\(option) needs a value") }
            switch option {
            case "--listen":
                guard let address = ListenAddress(value) else { throw UsageError("--listen \(value): expected IPv4:PORT, such as 127.0.0.1:8080") }
                listen = address
            case "--root": root = value
            case "--ready-file": readyFile = value
            case "--script": script = value
            case "--key": key = value
            case "--log": log = value
            case "--unix": unix = value
            case "--method": method = value
            case "--path": path = value
            case "--json": json = value
            case "--body-file": bodyFile = value
            default: throw UsageError("unknown option '\(option)'")
            }
        }
    }
}

/// The command line's entry: runs a server, or prints help; returns an exit status only when
/// it does not serve.
public func runCommandLine(_ arguments: [String]) -> Int32 {
    signal(SIGPIPE, SIG_IGN)
    guard let command = arguments.first else {
        printError(Usage.main)
        return 2
    }
    do {
        switch command {
        case "--help", "-h", "help":
            printOut(Usage.main)
            return 0
        case "http":
            let options = try Options(Array(arguments.dropFirst()), allowed: ["--listen", "--root", "--ready-file"])
            if options.help {
                printOut(Usage.http)
                return 0
            }
            let handler = try OriginServer(root: options.root)
            serve(handler, options, name: "http")
        case "static":
            let options = try Options(Array(arguments.dropFirst()), allowed: ["--listen", "--root", "--ready-file", "--log"])
            if options.help {
                printOut(Usage.static)
                return 0
            }
            guard let root = options.root else { throw UsageError("static needs --root DIR") }
            let log = try options.log.map { path throws(SystemError) in try LineLog(path: path) }
            serve(try StaticServer(root: root, log: log), options, name: "static")
        case "openai":
            let options = try Options(Array(arguments.dropFirst()),
                                      allowed: ["--listen", "--script", "--key", "--ready-file", "--log"])
            if options.help {
                printOut(Usage.openai)
                return 0
            }
            guard let path = options.script else { throw UsageError("openai needs --script FILE") }
            let json: JSON
            do {
                json = try JSON.parse(try readFile(path, limit: 16 << 20))
            } catch {
                throw UsageError("--script \(path): \(error)")
            }
            let script: ChatScript
            do {
                script = try ChatScript.load(json)
            } catch {
                throw UsageError("--script \(path): \(error)")
            }
            let log = try options.log.map { path throws(SystemError) in try LineLog(path: path) }
            serve(ChatServer(script: script, key: options.key, log: log), options, name: "openai")
        case "request":
            return try UnixRequest.run(Array(arguments.dropFirst()))
        default:
            throw UsageError("unknown subcommand '\(command)' (http, static, openai or request)")
        }
    } catch {
        printError("momin-test-server: \(error)")
        return 2
    }
}

/// Listens, writes the ready file, and serves until killed.
func serve(_ handler: any HTTPHandler, _ options: Options, name: String) -> Never {
    do {
        let listener = try Listener(options.listen)
        if let ready = options.readyFile { try writeFileAtomically(ready, "\(listener.port)\n") }
        printOut("momin-test-server \(name): listening on \(options.listen.host):\(listener.port)")
        HTTPServer(listener: listener, handler: handler).run()
    } catch {
        printError("momin-test-server: \(error)")
        exit(1)
    }
}

/// One line on stdout, written at once (no stdio buffer to flush).
func printOut(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}
