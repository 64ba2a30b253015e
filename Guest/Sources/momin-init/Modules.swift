import CGuestSys
import Glibc

/// Loads each module listed in `orderFile` (one path per line; blank lines and lines starting
/// with '#' are skipped) with finit_module(2). A module that is already loaded (EEXIST) counts
/// as loaded; any other failure is printed and the next module is tried.
func loadModules(listedIn orderFile: String) {
    guard let list = readFile(orderFile) else { return }
    for line in list.split(separator: "\n") {
        let path = line.trimmingSpaces()
        if path.isEmpty || path.hasPrefix("#") { continue }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            Console.error("module \(path): open: \(errnoDetail(errno))")
            continue
        }
        if guest_finit_module(fd, "", 0) != 0 && errno != EEXIST {
            Console.error("module \(path): finit_module: \(errnoDetail(errno))")
        }
        close(fd)
    }
}

extension Substring {
    /// The line without leading and trailing blanks (and a stray CR).
    fileprivate func trimmingSpaces() -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !blank($0) }),
              let last = lastIndex(where: { !blank($0) }) else { return "" }
        return String(self[first...last])
    }
}
