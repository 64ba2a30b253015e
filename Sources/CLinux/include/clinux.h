// CLinux: Linux and glibc calls that Swift's Glibc module leaves out (no wrapper, variadic, or
// behind _GNU_SOURCE). Imported by Jail (the jailer's steps), VMM (thread pinning, the seccomp self-test)
// and Devices (virtio-blk's fallocate) only.
#ifndef CLINUX_H
#define CLINUX_H

#include "clinux_disk.h"
#include "clinux_jail.h"

// Pins the calling thread to one CPU (sched_setaffinity(2), pid 0 = the calling thread).
// Returns 0, or -1 with errno set (EINVAL also for a CPU number out of cpu_set_t's range).
int clinux_pin_current_thread(int cpu);

// getrandom(2) with no flags (<sys/random.h> is not in Swift's Glibc module): the seccomp
// self-test's probe. Returns the byte count, or -1 with errno set.
long clinux_getrandom(void *buffer, unsigned long length);

#endif
