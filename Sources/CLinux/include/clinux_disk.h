// What virtio-blk's disk file needs that Swift cannot reach through Glibc: fallocate(2) and its
// FALLOC_FL_* modes sit behind _GNU_SOURCE.
#ifndef CLINUX_DISK_H
#define CLINUX_DISK_H

// FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: deallocate a range; it reads back as zeros.
extern const int CLINUX_FALLOC_PUNCH_HOLE;
// FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE: zero a range, keeping its blocks allocated.
extern const int CLINUX_FALLOC_ZERO_RANGE;

// fallocate(2). Returns 0, or -1 with errno set (EOPNOTSUPP where the file system cannot).
int clinux_fallocate(int fd, int mode, long long offset, long long length);

#endif
