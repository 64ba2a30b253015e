import Glibc
import Testing

/// A fresh directory under /tmp, removed with everything in it when the value goes.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/ledger-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp: \(String(cString: strerror(errno)))")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { Self.removeTree(path) }

    /// rm -r, not following symlinks.
    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR, let directory = opendir(path) {
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(directory)
            for name in names { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// Writes `text` at `relative`, making the directories above it.
    func write(_ relative: String, _ text: String) {
        let file = makeParents(relative)
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "open \(file): \(String(cString: strerror(errno)))")
        let bytes = Array(text.utf8)
        precondition(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count)
        close(fd)
    }

    func symlink(_ relative: String, to target: String) {
        let link = makeParents(relative)
        precondition(Glibc.symlink(target, link) == 0, "symlink \(link): \(String(cString: strerror(errno)))")
    }

    func read(_ relative: String) -> String? {
        let fd = open(path + "/" + relative, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return String(decoding: out, as: UTF8.self) }
            out.append(contentsOf: buffer[..<count])
        }
    }

    private func makeParents(_ relative: String) -> String {
        var partial = path
        for component in relative.split(separator: "/").dropLast() {
            partial += "/" + component
            _ = mkdir(partial, 0o755)
        }
        return path + "/" + relative
    }
}
