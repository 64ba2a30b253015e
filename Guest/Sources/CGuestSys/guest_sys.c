#include "guest_sys.h"

#include <stdlib.h>
#include <sys/io.h>
#include <sys/syscall.h>
#include <unistd.h>

// Before main, a static constructor in the Swift runtime (crash-backtracer setup) looks for the
// runtime's own file with dladdr(3) to find a helper program beside it. In a static executable
// that lookup needs /proc, which PID 1 has not mounted yet, and the runtime aborts ("Unable to
// obtain Swift runtime path"). Naming the Swift root in the environment skips the lookup; the
// helper is not in the guest, so backtracing just stays off. Priority 101 runs this before all
// constructors of default priority, the runtime's included.
__attribute__((constructor(101)))
static void guest_name_swift_root(void) {
    if (access("/proc/self/exe", F_OK) != 0)
        setenv("SWIFT_ROOT", "/", 0);
}

int guest_finit_module(int fd, const char *params, int flags) {
    return (int)syscall(SYS_finit_module, fd, params, flags);
}

int guest_outb(unsigned short port, unsigned char value) {
    if (ioperm(port, 1, 1) != 0)
        return -1;
    outb(value, port);
    return 0;
}
