import Doors

/// A request that outlives the frame that started it, with what it holds open.
enum Job {
    case exec(ExecJob)
    case write(WriteJob)
    case read(ReadJob)
    case list(ListJob)

    var name: String {
        switch self {
        case .exec: "Exec"
        case .write: "WriteFile"
        case .read: "ReadFile"
        case .list: "List"
        }
    }
}

/// A running (or exited but not yet drained) child of an Exec request.
final class ExecJob {
    let pid: Int32
    /// Write end of the child's stdin; nil when stdin is /dev/null or has been closed.
    var stdin: Descriptor?
    /// Stdin bytes from the host that the pipe has not taken yet, from `stdinHead` on.
    var stdinBuffer: [UInt8] = []
    var stdinHead = 0
    /// StdinEnd arrived: close the pipe once the buffer is written.
    var stdinEndRequested = false
    var stdout: Descriptor?
    var stderr: Descriptor?
    /// The wait(2) status, once the reaper has collected the child.
    var waitStatus: Int32?
    /// Output bytes read since the child was reaped (bounded: descendants may keep writing).
    var drainedAfterExit = 0
    /// CLOCK_MONOTONIC nanoseconds at which the timeout kills the child.
    var deadline: UInt64?
    var timedOut = false

    init(_ launched: LaunchedProcess) {
        pid = launched.pid
        stdin = launched.stdin
        stdout = launched.stdout
        stderr = launched.stderr
    }

    var pendingStdin: Int { stdinBuffer.count - stdinHead }

    /// Both output pipes are closed and the child is reaped: time for Exit.
    var isFinished: Bool { waitStatus != nil && stdout == nil && stderr == nil }
}

/// A WriteFile request between its request frame and FileEnd.
final class WriteJob {
    let file: Descriptor
    let path: String
    var written: UInt64 = 0

    init(file: Descriptor, path: String) {
        self.file = file
        self.path = path
    }
}

/// A ReadFile request that is streaming FileData.
final class ReadJob {
    let file: Descriptor
    let path: String
    var offset: Int64
    /// Bytes still to send; nil means to the end of the file.
    var remaining: UInt64?

    init(file: Descriptor, path: String, offset: Int64, remaining: UInt64?) {
        self.file = file
        self.path = path
        self.offset = offset
        self.remaining = remaining
    }
}

/// A List request that is streaming ListEntries.
final class ListJob {
    let reader: DirectoryReader
    /// Batches read from the directory and not yet sent.
    var batches: [[DirectoryEntry]] = []

    init(reader: DirectoryReader) {
        self.reader = reader
    }
}
