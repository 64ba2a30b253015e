#define _GNU_SOURCE
#include "guest_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/openat2.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
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

int guest_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int guest_accept_cloexec(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC);
}

int guest_spawn_addfchdir(posix_spawn_file_actions_t *actions, int fd) {
    return posix_spawn_file_actions_addfchdir_np(actions, fd);
}

const int guest_o_path = O_PATH;

int guest_open_no_symlinks(int dirfd, const char *path, int flags, unsigned int mode) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(unsigned int)flags;
    // openat2 refuses a mode without O_CREAT or O_TMPFILE (EINVAL).
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        how.mode = mode;
    how.resolve = RESOLVE_NO_SYMLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int guest_vsock_listen(unsigned int port, int backlog) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_vm address;
    memset(&address, 0, sizeof address);
    address.svm_family = AF_VSOCK;
    address.svm_cid = VMADDR_CID_ANY;
    address.svm_port = port;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, backlog) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int guest_vsock_connect(unsigned int cid, unsigned int port) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_vm address;
    memset(&address, 0, sizeof address);
    address.svm_family = AF_VSOCK;
    address.svm_cid = cid;
    address.svm_port = port;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/// Fills `address` for `path`; -1 with ENAMETOOLONG when it does not fit (with its NUL).
static int unix_address(struct sockaddr_un *address, const char *path) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(address->sun_path, path);
    return 0;
}

int guest_unix_listen(const char *path, unsigned int mode, int backlog) {
    struct sockaddr_un address;
    if (unix_address(&address, path) != 0)
        return -1;
    struct stat existing;
    if (lstat(path, &existing) == 0 && S_ISSOCK(existing.st_mode) && unlink(path) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (chmod(path, mode) != 0 || listen(fd, backlog) != 0) {
        int saved = errno;
        close(fd);
        unlink(path);
        errno = saved;
        return -1;
    }
    return fd;
}

int guest_unix_connect(const char *path) {
    struct sockaddr_un address;
    if (unix_address(&address, path) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/// Fills `out` for `address`:`port`; -1 with EINVAL when `address` is not dotted IPv4.
static int ipv4_address(struct sockaddr_in *out, const char *address, unsigned short port) {
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons(port);
    if (inet_pton(AF_INET, address, &out->sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int guest_tcp4_listen(const char *address, unsigned short port, int backlog) {
    struct sockaddr_in local;
    if (ipv4_address(&local, address, port) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0
        || bind(fd, (struct sockaddr *)&local, sizeof local) != 0 || listen(fd, backlog) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int guest_tcp4_connect(const char *address, unsigned short port) {
    struct sockaddr_in remote;
    if (ipv4_address(&remote, address, port) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&remote, sizeof remote) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int guest_socket_port(int fd) {
    struct sockaddr_in local;
    socklen_t length = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &length) != 0)
        return -1;
    if (local.sin_family != AF_INET) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return ntohs(local.sin_port);
}

int guest_interface_up(const char *name) {
    struct ifreq request;
    memset(&request, 0, sizeof request);
    if (strlen(name) >= sizeof request.ifr_name) {
        errno = ENODEV;
        return -1;
    }
    strcpy(request.ifr_name, name);
    // Any socket will do for the interface ioctls (netdevice(7)).
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int result = ioctl(fd, SIOCGIFFLAGS, &request);
    if (result == 0 && !(request.ifr_flags & IFF_UP)) {
        request.ifr_flags |= IFF_UP;
        result = ioctl(fd, SIOCSIFFLAGS, &request);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

pid_t guest_wait_peek(int block) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int options = WEXITED | WNOWAIT | (block ? 0 : WNOHANG);
    if (waitid(P_ALL, 0, &info, options) != 0)
        return -1;
    return info.si_pid;
}

int guest_become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}
