#define _GNU_SOURCE
#include "cjail.h"
#include <errno.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

const int CJAIL_CLONE_NEWNS = CLONE_NEWNS;
const int CJAIL_CLONE_NEWPID = CLONE_NEWPID;
const int CJAIL_CLONE_NEWIPC = CLONE_NEWIPC;
const int CJAIL_CLONE_NEWUTS = CLONE_NEWUTS;
const int CJAIL_CLONE_NEWNET = CLONE_NEWNET;
const int CJAIL_RLIMIT_NPROC = RLIMIT_NPROC;
const unsigned long CJAIL_ST_NOEXEC = ST_NOEXEC;

int cjail_unshare(int flags) { return unshare(flags); }

int cjail_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

int cjail_close_range(unsigned int first, unsigned int last) {
#ifdef SYS_close_range
    return (int)syscall(SYS_close_range, first, last, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int cjail_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }

int cjail_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0); }

int cjail_clear_ambient_capabilities(void) {
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}
