import CGuestSys
import Glibc
import POSIX

/// Where the reaper leaves the wait statuses of one connection's children, and the pipe that
/// wakes that connection's poll loop.
final class ExitMailbox: @unchecked Sendable {
    private let lock = Lock()
    private var statuses: [(pid: Int32, status: Int32)] = []
    private let wakeRead: Descriptor
    private let wakeWrite: Descriptor

    init() throws(SystemError) {
        let wake = try makePipe()
        try wake.read.setNonBlocking()
        try wake.write.setNonBlocking()
        wakeRead = wake.read
        wakeWrite = wake.write
    }

    /// The descriptor to poll for POLLIN.
    var pollDescriptor: Int32 { wakeRead.raw }

    /// Called by the reaper, with its lock held.
    func deliver(pid: Int32, status: Int32) {
        lock.withLock { statuses.append((pid, status)) }
        var byte: UInt8 = 1
        // A full pipe (EAGAIN) already means "wake up"; nothing else can fail here.
        _ = retryingEINTR { write(wakeWrite.raw, &byte, 1) }
    }

    /// Empties the wake pipe and returns the statuses delivered so far.
    func collect() -> [(pid: Int32, status: Int32)] {
        var scratch = [UInt8](repeating: 0, count: 64)
        while let n = try? wakeRead.read(into: &scratch, count: scratch.count), n > 0 {}
        return lock.withLock {
            defer { statuses.removeAll() }
            return statuses
        }
    }
}

/// Collects every child of this process, the only place that calls wait.
///
/// As PID 1, momin-init inherits every orphan in the guest, so it must reap children it never
/// started. One thread blocks in waitid(P_ALL, WEXITED | WNOWAIT): that reports a terminated
/// child but leaves it a zombie, so its pid cannot be reused yet. Then, under the lock, the
/// thread reaps that pid and hands the status to the mailbox registered for it, if any;
/// orphans are just reaped. Spawning happens under the same lock and registers the new pid
/// before the lock is released, so a child that dies at once is still matched to its request,
/// and a pid that was reaped is never confused with a new child that got the same number.
final class ChildReaper: @unchecked Sendable {
    static let shared = ChildReaper()

    private let lock = Lock()
    private var watchers: [Int32: ExitMailbox] = [:]
    private var started = false
    /// Poked after each spawn, to wake the thread when it sleeps because there were no children.
    private var nudge: (read: Descriptor, write: Descriptor)?
    /// How long the thread sleeps between checks when this process has no children at all.
    private let idleCheckMilliseconds: Int32 = 1000

    private init() {}

    /// Starts the reaping thread once; later calls do nothing.
    func start() throws(SystemError) {
        try lock.withLock { () throws(SystemError) in
            guard !started else { return }
            let pipe = try makePipe()
            try pipe.read.setNonBlocking()
            try pipe.write.setNonBlocking()
            nudge = pipe
            try POSIXThread.detach(name: "reaper", stackSize: 256 << 10) { [self] in self.reapForever() }
            started = true
        }
    }

    /// Runs `spawn` (which returns the new pid) with the lock held and registers the pid for
    /// `mailbox` before anyone can reap it.
    func spawn(for mailbox: ExitMailbox, _ spawn: () throws(SystemError) -> Int32) throws(SystemError) -> Int32 {
        let (pid, nudge) = try lock.withLock { () throws(SystemError) in
            let pid = try spawn()
            watchers[pid] = mailbox
            return (pid, self.nudge)
        }
        if let nudge {
            var byte: UInt8 = 1
            _ = retryingEINTR { write(nudge.write.raw, &byte, 1) }
        }
        return pid
    }

    /// Sends `signal` to a registered child that has not been reaped yet (and to its process
    /// group when `group`). Returns false when the child is already gone, so a stale pid is
    /// never signalled.
    @discardableResult
    func signal(_ pid: Int32, _ signal: Int32, group: Bool) -> Bool {
        lock.withLock {
            guard watchers[pid] != nil else { return false }
            if group { _ = kill(-pid, signal) }
            _ = kill(pid, signal)
            return true
        }
    }

    /// Forgets a child whose requester has gone away: SIGKILL to it and its process group.
    /// The thread reaps it later as an orphan.
    func abandon(_ pid: Int32) {
        lock.withLock {
            guard watchers.removeValue(forKey: pid) != nil else { return }
            _ = kill(-pid, SIGKILL)
            _ = kill(pid, SIGKILL)
        }
    }

    private func reapForever() -> Never {
        while true {
            let pid = guest_wait_peek(1)
            if pid > 0 {
                reap(pid)
                continue
            }
            let error = errno
            if pid < 0 && error == EINTR { continue }
            // ECHILD: no children at all. Sleep until a spawn pokes us, or a while, in case an
            // orphan was reparented to us meanwhile.
            guard let nudge else { return sleepForever() }
            var descriptor = pollfd(fd: nudge.read.raw, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, error == ECHILD ? idleCheckMilliseconds : 10)
            var scratch = [UInt8](repeating: 0, count: 64)
            while let n = try? nudge.read.read(into: &scratch, count: scratch.count), n > 0 {}
        }
    }

    private func reap(_ pid: Int32) {
        lock.withLock {
            var status: Int32 = 0
            let reaped = retryingEINTR { waitpid(pid, &status, WNOHANG) }
            guard reaped == pid else { return }
            watchers.removeValue(forKey: pid)?.deliver(pid: pid, status: status)
        }
    }

    private func sleepForever() -> Never {
        while true { pause() }
    }
}

/// How a wait(2) status ended, in the protocol's terms.
enum WaitStatus {
    /// WIFEXITED / WEXITSTATUS and WIFSIGNALED / WTERMSIG, which Swift cannot import (macros).
    static func termination(_ status: Int32) -> (exited: Bool, value: UInt8) {
        let signal = status & 0x7F
        if signal == 0 { return (true, UInt8(truncatingIfNeeded: (status >> 8) & 0xFF)) }
        return (false, UInt8(truncatingIfNeeded: signal))
    }
}
