import Glibc
import Hands
import POSIX
import VMM

/// Long-lived microVMs by name: one directory each under the runtime directory, holding the
/// momin-vmm pid, its vsock socket, its console log and what it was started with. A VM whose
/// momin-vmm is gone (crashed, killed) leaves a stale directory, which is detected and cleaned.
struct VMRegistry {
    let root: String

    /// $MOMIN_RUNTIME_DIR, else $XDG_RUNTIME_DIR/momin/vms, else /run/momin/vms for root, else
    /// /tmp/momin-UID/vms; created mode 0700.
    static func open() throws -> VMRegistry {
        let root: String
        if let dir = getenv("MOMIN_RUNTIME_DIR"), dir.pointee != 0 { root = String(cString: dir) }
        else if let dir = getenv("XDG_RUNTIME_DIR"), dir.pointee != 0 { root = String(cString: dir) + "/momin/vms" }
        else if getuid() == 0 { root = "/run/momin/vms" }
        else { root = "/tmp/momin-\(getuid())/vms" }
        try makeDirectories(root)
        return VMRegistry(root: root)
    }

    static func makeDirectories(_ path: String) throws {
        var partial = ""
        for component in path.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, 0o700) != 0 && errno != EEXIST {
                throw CLIError(message: "cannot create \(partial): \(String(cString: strerror(errno)))", code: 1)
            }
        }
    }

    /// Names are what a directory entry and a log line can hold safely.
    static func validate(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f || c == 0x2e
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed, name.first != ".", name.first != "-" else {
            throw CLIError.usage("VM name '\(name)' is invalid: use 1–64 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
        }
    }

    func directory(_ name: String) -> String { root + "/" + name }
    /// Where the VM's vsock socket lives: a directory of its own, which its jail sees as /run/momin.
    func socketDirectory(_ name: String) -> String { directory(name) + "/sock" }
    func socketPath(_ name: String) -> String { socketDirectory(name) + "/vsock.sock" }
    func logPath(_ name: String) -> String { directory(name) + "/console.log" }

    enum State: Equatable { case running(pid: pid_t), stale(String), absent }

    /// Running only if the recorded pid is alive and is this VM's momin-vmm or jailer (its
    /// command line names this VM's socket or socket directory), so a reused pid is not mistaken
    /// for the VM.
    func state(_ name: String) -> State {
        guard access(directory(name), F_OK) == 0 else { return .absent }
        guard let text = readSmallFile(directory(name) + "/pid"), let pid = pid_t(text.trimmingNewline()) else {
            return .stale("no pid recorded")
        }
        guard let cmdline = readSmallFile("/proc/\(pid)/cmdline") else { return .stale("momin-vmm (pid \(pid)) is gone") }
        let args = cmdline.split(separator: "\0").map(String.init)
        let vmm = args.first.map({ $0.hasSuffix("momin-vmm") }) == true && args.contains(socketPath(name))
        let jailer = args.first.map({ $0.hasSuffix("momin-jailer") }) == true
            && args.contains(where: { $0.hasPrefix(socketDirectory(name) + ":") })
        guard vmm || jailer else {
            return .stale("pid \(pid) is no longer its momin-vmm")
        }
        return .running(pid: pid)
    }

    func names() -> [String] {
        guard let dir = opendir(root) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes a VM's directory and what is in it.
    func remove(_ name: String) {
        RuntimeDirectory(path: directory(name)).remove()
    }

    /// The VM a sub-agent was started under (its `parent` file), or nil.
    func parent(of name: String) -> String? { readSmallFile(directory(name) + "/parent")?.trimmingNewline() }

    /// Every VM under `name`, each after its own descendants: the order to stop them in.
    func descendants(of name: String) -> [String] {
        let parents = Dictionary(uniqueKeysWithValues: names().map { ($0, parent(of: $0)) })
        var order: [String] = []
        func visit(_ vm: String) {
            for child in parents.keys.sorted() where parents[child] == vm {
                visit(child)
                order.append(child)
            }
        }
        visit(name)
        return order
    }

    func info(_ name: String) -> String { readSmallFile(directory(name) + "/info")?.trimmingNewline() ?? "" }
}

func readSmallFile(_ path: String, limit: Int = 65536) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: limit)
    var total = 0
    while total < limit {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, limit - total) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        total += n
    }
    return String(decoding: bytes[..<total], as: UTF8.self)
}

func writeSmallFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0, (try? FileIO.writeAll(fd, Array(text.utf8))) != nil else {
        throw CLIError(message: "cannot write \(path): \(String(cString: strerror(errno)))", code: 1)
    }
    close(fd)
}

extension String {
    func trimmingNewline() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == " " { s = s.dropLast() }
        return String(s)
    }
}
