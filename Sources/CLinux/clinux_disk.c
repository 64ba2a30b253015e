#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/falloc.h>

#include "clinux_disk.h"

const int CLINUX_FALLOC_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
const int CLINUX_FALLOC_ZERO_RANGE = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;

int clinux_fallocate(int fd, int mode, long long offset, long long length) {
    return fallocate(fd, mode, (off_t)offset, (off_t)length);
}
