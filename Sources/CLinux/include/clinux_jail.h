// What the jailer needs that Swift cannot reach through Glibc: pivot_root(2) and
// close_range(2) have no glibc wrapper here, prctl(2) is variadic, and unshare(2) with the
// CLONE_NEW* flags, RLIMIT_NPROC and ST_NOEXEC sit behind _GNU_SOURCE, which Swift's Glibc
// module is not built with.
#ifndef CLINUX_JAIL_H
#define CLINUX_JAIL_H

// Namespace flags for unshare(2) (namespaces(7)).
extern const int CLINUX_CLONE_NEWNS;
extern const int CLINUX_CLONE_NEWPID;
extern const int CLINUX_CLONE_NEWIPC;
extern const int CLINUX_CLONE_NEWUTS;
extern const int CLINUX_CLONE_NEWNET;
extern const int CLINUX_RLIMIT_NPROC;
extern const unsigned long CLINUX_ST_NOEXEC;

// unshare(2).
int clinux_unshare(int flags);

// pivot_root(2). Returns -1 with errno set on failure.
int clinux_pivot_root(const char *new_root, const char *put_old);

// close_range(2) with flags 0 (Linux 5.9). Returns -1 with errno ENOSYS where the kernel lacks it.
int clinux_close_range(unsigned int first, unsigned int last);

// prctl(PR_SET_NO_NEW_PRIVS, 1): execve(2) never grants privileges again (setuid bits, file caps).
int clinux_set_no_new_privs(void);

// prctl(PR_SET_PDEATHSIG, signal): the kernel sends `signal` when the parent exits.
int clinux_set_parent_death_signal(int signal);

// prctl(PR_SET_DUMPABLE, 0) and RLIMIT_CORE 0: no core file, and /proc/self no longer readable
// or ptrace-able by the process's own uid (proc(5), "Dumpable"). Returns 0, or -1 with errno.
int clinux_make_undumpable(void);

// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL).
int clinux_clear_ambient_capabilities(void);

// The read end of a liveness pipe: close-on-exec, and O_ASYNC with this process as its owner
// (F_SETOWN), so that SIGIO comes when the last writer closes (pipe(7): a hang-up wakes
// asynchronous readers). Returns 0, or -1 with errno set.
int clinux_signal_on_hangup(int fd);

// Whether the pipe's writers are all gone: 1 (POLLHUP), 0 (not yet), -1 with errno set.
int clinux_has_hung_up(int fd);

#endif
