#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <sys/random.h>

#include "clinux.h"

int clinux_pin_current_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

long clinux_getrandom(void *buffer, unsigned long length) {
    return getrandom(buffer, length, 0);
}
