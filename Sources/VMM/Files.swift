import Glibc

/// Reads a whole regular file, with errors that name the file and what was wrong with it.
func readWholeFile(_ path: String, role: String) throws(VMMError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        throw .fileUnreadable(role: role, path: path, reason: String(cString: strerror(errno)))
    }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
        throw .fileUnreadable(role: role, path: path, reason: String(cString: strerror(errno)))
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        throw .fileUnreadable(role: role, path: path, reason: "not a regular file")
    }
    let size = Int(st.st_size)
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            throw .fileUnreadable(role: role, path: path, reason: n == 0 ? "file shrank while reading" : String(cString: strerror(errno)))
        }
        done += n
    }
    return bytes
}
