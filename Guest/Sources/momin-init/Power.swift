import CGuestSys
import Glibc

enum Power {
    /// Drains the console, sync(2), then reboot(2) with RB_POWER_OFF. PID 1 must never exit
    /// (the kernel would panic), so if that fails the error is printed and we wait forever.
    static func off() -> Never {
        // The tty layer sends console output from interrupts; without tcdrain(3) the last lines
        // can still be queued when the machine powers off.
        _ = tcdrain(STDOUT_FILENO)
        _ = tcdrain(STDERR_FILENO)
        sync()
        if reboot(RB_POWER_OFF) != 0 {
            Console.error("reboot(RB_POWER_OFF): \(errnoDetail(errno))")
        }
        while true { pause() }
    }

    /// Debug aid (`momin.shell=1`): replaces PID 1 with /bin/sh on the console.
    static func execShell() -> Never {
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("sh"), nil]
        execv("/bin/sh", &argv)
        Console.error("exec /bin/sh: \(errnoDetail(errno))")
        off()
    }
}
