#ifndef MOMIN_GUEST_SYS_H
#define MOMIN_GUEST_SYS_H

// reboot(2) and RB_POWER_OFF: Swift's Glibc module does not include this header.
#include <sys/reboot.h>

/// finit_module(2): loads the kernel module in the open file `fd` with parameter string
/// `params`. Returns 0, or -1 with errno set.
int guest_finit_module(int fd, const char *params, int flags);

/// Writes one byte to an x86 I/O port: ioperm(2) for that port, then `outb`. Needs
/// CAP_SYS_RAWIO. Returns 0, or -1 with errno set when ioperm fails.
int guest_outb(unsigned short port, unsigned char value);

#endif
