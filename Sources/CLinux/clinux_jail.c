#define _GNU_SOURCE
#include "clinux_jail.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

const int CLINUX_CLONE_NEWNS = CLONE_NEWNS;
const int CLINUX_CLONE_NEWPID = CLONE_NEWPID;
const int CLINUX_CLONE_NEWIPC = CLONE_NEWIPC;
const int CLINUX_CLONE_NEWUTS = CLONE_NEWUTS;
const int CLINUX_CLONE_NEWNET = CLONE_NEWNET;
const int CLINUX_RLIMIT_NPROC = RLIMIT_NPROC;
const unsigned long CLINUX_ST_NOEXEC = ST_NOEXEC;

int clinux_unshare(int flags) { return unshare(flags); }

int clinux_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int clinux_close_range(unsigned int first, unsigned int last) {
#ifdef SYS_close_range
    return (int)syscall(SYS_close_range, first, last, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int clinux_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }

int clinux_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0); }

int clinux_clear_ambient_capabilities(void) {
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

int clinux_signal_on_hangup(int fd) {
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || fcntl(fd, F_SETOWN, getpid()) != 0)
        return -1;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, flags | O_ASYNC);
}

int clinux_has_hung_up(int fd) {
    struct pollfd entry = { .fd = fd, .events = POLLIN };
    int ready = poll(&entry, 1, 0);
    if (ready < 0)
        return -1;
    return ready > 0 && (entry.revents & POLLHUP) ? 1 : 0;
}

int clinux_make_undumpable(void) {
    struct rlimit none = { 0, 0 };
    if (setrlimit(RLIMIT_CORE, &none) != 0)
        return -1;
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
