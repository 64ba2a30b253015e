// glibc calls that Swift's Glibc module leaves out because they need _GNU_SOURCE.
// Only the VMM target imports this module.
#ifndef CLINUX_H
#define CLINUX_H

// Pins the calling thread to one CPU (sched_setaffinity(2), pid 0 = the calling thread).
// Returns 0, or -1 with errno set (EINVAL also for a CPU number out of cpu_set_t's range).
int clinux_pin_current_thread(int cpu);

#endif
