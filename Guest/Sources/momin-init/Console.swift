import Glibc
import POSIX

/// Unbuffered writes to the console: the kernel gives /init fds 0, 1 and 2 on /dev/console.
enum Console {
    /// One line on stdout.
    static func print(_ line: String) {
        write(line + "\n", to: STDOUT_FILENO)
    }

    /// One line on stderr, prefixed with the program name.
    static func error(_ message: String) {
        write("momin-init: " + message + "\n", to: STDERR_FILENO)
    }

    /// If the initramfs had no /dev/console, the kernel started us with fds 0-2 closed; once
    /// devtmpfs is mounted the console node exists, so open it for all three.
    static func reopenIfClosed() {
        guard fcntl(STDOUT_FILENO, F_GETFD) == -1 else { return }
        let fd = open("/dev/console", O_RDWR | O_NOCTTY)
        guard fd >= 0 else { return }
        for target in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where target != fd {
            dup2(fd, target)
        }
        if fd > STDERR_FILENO { close(fd) }
    }

    private static func write(_ text: String, to fd: Int32) {
        try? FileIO.writeAll(fd, text.utf8)
    }
}

/// strerror(3)'s text and the number, e.g. "No such file or directory (errno 2)".
func errnoDetail(_ code: Int32) -> String {
    describeErrno(code) + " (errno \(code))"
}
