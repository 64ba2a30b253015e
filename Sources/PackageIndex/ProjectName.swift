/// Project names: which are valid (core metadata "Name", https://packaging.python.org/en/latest/specifications/name-normalization/:
/// ASCII letters and digits, with `.`, `_` and `-` inside) and their normalized form (PEP 503
/// "Normalized Names": runs of `-`, `_` and `.` become one `-`, letters lowercase), under which
/// two spellings name one project.
public enum ProjectName {
    /// The longest name accepted.
    public static let maximumBytes = 256

    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, let last = bytes.last, bytes.count <= maximumBytes else { return false }
        return ASCII.isAlphanumeric(first) && ASCII.isAlphanumeric(last) && bytes.allSatisfy { ASCII.isAlphanumeric($0) || isPunctuation($0) }
    }

    /// `re.sub(r"[-_.]+", "-", name).lower()`, for ASCII.
    public static func normalize(_ name: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(name.utf8.count)
        var inRun = false
        for byte in name.utf8 {
            if isPunctuation(byte) {
                if !inRun { out.append(UInt8(ascii: "-")) }
                inRun = true
            } else {
                out.append(ASCII.lower(byte))
                inRun = false
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A valid name, or an error naming what is wrong with it.
    static func validate(_ name: String, what: String, subject: PackageIndexError.Subject) throws(PackageIndexError) {
        guard !name.isEmpty else { throw PackageIndexError(subject, "the \(what) is empty") }
        guard name.utf8.count <= maximumBytes else { throw PackageIndexError(subject, "the \(what) is longer than \(maximumBytes) bytes") }
        guard isValid(name) else {
            throw PackageIndexError(subject, "the \(what) \(ASCII.quote(name)) is not ASCII letters and digits with \".\", \"_\" or \"-\" inside")
        }
    }

    static func isPunctuation(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
    }
}
