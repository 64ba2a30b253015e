import Glibc

/// A failed system call: which call, on what, and the errno it set. "open /etc/x: No such file
/// or directory".
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public var call: String
    public var errno: Int32
    /// What the call was about (a path, a program), for the message; may be empty.
    public var subject: String

    /// `errno` defaults to the calling thread's, so build the error right after the failed call.
    public init(_ call: String, errno: Int32 = Glibc.errno, subject: String = "") {
        self.call = call
        self.errno = errno
        self.subject = subject
    }

    /// strerror(3) of the errno.
    public var reason: String { describeErrno(errno) }

    public var description: String {
        let what = subject.isEmpty ? call : "\(call) \(subject)"
        return "\(what): \(reason)"
    }
}

/// strerror(3) of `code` (default: the calling thread's errno).
public func describeErrno(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }
