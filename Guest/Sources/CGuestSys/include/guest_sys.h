#ifndef MOMIN_GUEST_SYS_H
#define MOMIN_GUEST_SYS_H

// reboot(2) and RB_POWER_OFF: Swift's Glibc module does not include this header.
#include <sys/reboot.h>
#include <spawn.h>
#include <sys/types.h>

/// finit_module(2): loads the kernel module in the open file `fd` with parameter string
/// `params`. Returns 0, or -1 with errno set.
int guest_finit_module(int fd, const char *params, int flags);

/// Writes one byte to an x86 I/O port: ioperm(2) for that port, then `outb`. Needs
/// CAP_SYS_RAWIO. Returns 0, or -1 with errno set when ioperm fails.
int guest_outb(unsigned short port, unsigned char value);

// The rest are GNU or Linux calls that Swift's Glibc module hides (it is built without
// _GNU_SOURCE) or that need headers it leaves out. Each returns what the call returns, with
// errno set on failure.

/// pipe2(fds, O_CLOEXEC): both ends close on exec, so no child inherits another's pipes.
int guest_pipe_cloexec(int fds[2]);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC).
int guest_accept_cloexec(int fd);

/// posix_spawn_file_actions_addfchdir_np(3): the child changes to the directory open as `fd`
/// before exec.
int guest_spawn_addfchdir(posix_spawn_file_actions_t *actions, int fd);

/// O_PATH (a GNU flag Swift's Glibc module hides): a descriptor that names a file without
/// opening it for reading or writing.
extern const int guest_o_path;

/// openat2(2) with RESOLVE_NO_SYMLINKS (glibc 2.36 has no wrapper): opens `path` under `dirfd`
/// (AT_FDCWD for an absolute path) without following a symlink anywhere in it; with O_NOFOLLOW
/// and O_PATH in `flags`, a final symlink is opened as itself. `mode` counts only with O_CREAT.
/// Returns the descriptor, or -1 with errno (ELOOP where a symlink is met).
int guest_open_no_symlinks(int dirfd, const char *path, int flags, unsigned int mode);

/// An AF_VSOCK stream socket bound to (VMADDR_CID_ANY, port) and listening, close-on-exec.
/// Returns the descriptor, or -1.
int guest_vsock_listen(unsigned int port, int backlog);

/// An AF_VSOCK stream socket connected to (cid, port), close-on-exec. Returns the descriptor,
/// or -1 (ECONNRESET or ECONNREFUSED when nothing listens there).
int guest_vsock_connect(unsigned int cid, unsigned int port);

/// An AF_UNIX stream socket listening at `path`, close-on-exec. A socket file already at the
/// path (left from before) is removed first; anything else there is left, and bind fails with
/// EADDRINUSE. The new file gets `mode` with chmod(2), so the umask does not narrow it.
/// Returns the descriptor, or -1 (ENAMETOOLONG when the path does not fit sun_path).
int guest_unix_listen(const char *path, unsigned int mode, int backlog);

/// An AF_UNIX stream socket connected to `path`, close-on-exec. Returns the descriptor, or -1
/// (ENAMETOOLONG when the path does not fit sun_path).
int guest_unix_connect(const char *path);

/// An AF_INET stream socket bound to `address` (dotted IPv4, e.g. "127.0.0.1") and `port`
/// and listening, close-on-exec, with SO_REUSEADDR (a restarted listener need not wait out
/// TIME_WAIT). Port 0 takes a free port (guest_socket_port says which). Returns the
/// descriptor, or -1 (EINVAL for an address that is not dotted IPv4).
int guest_tcp4_listen(const char *address, unsigned short port, int backlog);

/// An AF_INET stream socket connected to `address`:`port`, close-on-exec. Returns the
/// descriptor, or -1 (ECONNREFUSED when nothing listens there).
int guest_tcp4_connect(const char *address, unsigned short port);

/// The local port of a bound AF_INET socket (getsockname(2)), or -1.
int guest_socket_port(int fd);

/// Sets IFF_UP on the network interface `name` (SIOCGIFFLAGS, then SIOCSIFFLAGS; netdevice(7)),
/// unless it is up already: then nothing is changed and no privilege is needed. Returns 0, or
/// -1 (ENODEV: no such interface; EPERM without CAP_NET_ADMIN).
int guest_interface_up(const char *name);

/// waitid(P_ALL, 0, &info, WEXITED | WNOWAIT [| WNOHANG]): the pid of a child that has
/// terminated, left a zombie so its pid cannot be reused yet; 0 when `block` is 0 and no
/// child has terminated; -1 with errno (ECHILD: no children at all).
pid_t guest_wait_peek(int block);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are reparented to this process
/// instead of PID 1. Tests use it to stand in for PID 1.
int guest_become_subreaper(void);

#endif
