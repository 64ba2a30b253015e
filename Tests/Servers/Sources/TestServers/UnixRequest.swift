import Glibc

/// `momin-test-server request`: one HTTP/1.1 request to a server on a Unix socket (momin serve,
/// in the rig's L2, which has no curl or Python), the answer's status and body on stdout.
enum UnixRequest {
    static let usage = """
        usage: momin-test-server request --unix SOCKET --method METHOD --path PATH
                                         [--json TEXT | --body-file FILE]

        Sends one request (Connection: close) and prints "STATUS N" on a line of its own, then
        the body, de-chunked. Exit status 0 when an answer came, 1 otherwise.

          --json TEXT           the body, as application/json
          --body-file FILE      the body, the file's bytes, as application/octet-stream
        """

    static func run(_ arguments: [String]) throws(UsageError) -> Int32 {
        let options = try Options(arguments, allowed: ["--unix", "--method", "--path", "--json", "--body-file"])
        if options.help {
            printOut(usage)
            return 0
        }
        guard let socketPath = options.unix, let method = options.method, let path = options.path else {
            throw UsageError("request needs --unix, --method and --path")
        }
        let json = options.json, bodyFile = options.bodyFile
        var body: [UInt8]?, type = "application/json"
        if let json { body = Array(json.utf8) }
        if let bodyFile {
            do { body = try readFile(bodyFile, limit: 1 << 30) } catch { throw UsageError("--body-file \(bodyFile): \(error)") }
            type = "application/octet-stream"
        }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        if let body { request += "Content-Type: \(type)\r\nContent-Length: \(body.count)\r\n" }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { printError("socket: \(String(cString: strerror(errno)))"); return 1 }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard socketPath.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { throw UsageError("--unix \(socketPath): too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8)) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { printError("connect \(socketPath): \(String(cString: strerror(errno)))"); return 1 }
        let connection = Connection(fd: dup(fd))
        do {
            try connection.write(Array((request + "\r\n").utf8) + (body ?? []))
            guard let head = try connection.readHead(limit: 64 << 10) else { printError("no answer"); return 1 }
            let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n")
            guard let statusLine = lines.first, statusLine.hasPrefix("HTTP/1.1 "), let status = Int(statusLine.dropFirst(9).prefix(3)) else {
                printError("not an HTTP/1.1 answer: \(lines.first ?? "")")
                return 1
            }
            printOut("STATUS \(status)")
            let fields = lines.dropFirst().map { $0.lowercased() }
            var out: [UInt8] = []
            if fields.contains("transfer-encoding: chunked") {
                while true {
                    let size = try connection.readLine(limit: 1024)
                    guard let count = UInt64(String(decoding: size, as: UTF8.self).split(separator: ";").first ?? "", radix: 16) else {
                        printError("a bad chunk size"); return 1
                    }
                    if count == 0 { break }
                    try connection.read(count: count) { out += $0 }
                    _ = try connection.readLine(limit: 2)
                }
            } else if let length = fields.first(where: { $0.hasPrefix("content-length: ") }).flatMap({ UInt64($0.dropFirst(16)) }) {
                try connection.read(count: length) { out += $0 }
            }
            _ = out.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
            return 0
        } catch {
            printError("request: \(error)")
            return 1
        }
    }
}
