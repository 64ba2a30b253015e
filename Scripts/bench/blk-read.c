/* The guest side of Scripts/bench/blk: reads a block device with O_DIRECT (no guest page
 * cache) and prints what it moved and how long it took, by CLOCK_MONOTONIC.
 *
 *   blk-read seq DEVICE BYTES BLOCK   sequential reads of BLOCK bytes from offset 0
 *   blk-read rand DEVICE COUNT        COUNT reads of 4 KiB at aligned offsets drawn from a
 *                                     fixed seed over the whole device (the same on every run)
 *
 * Output, one line: "seq bytes=N ns=T first=HEX" or "rand ops=N ns=T". One request in flight
 * at a time (queue depth 1). Built static (cc -O2 -static) into the benchmark's initramfs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* xorshift64*: a fixed sequence, so both VMMs read the same offsets. */
static uint64_t next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int usage(void) {
    fprintf(stderr, "usage: blk-read seq DEVICE BYTES BLOCK | blk-read rand DEVICE COUNT\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 4) return usage();
    int fd = open(argv[2], O_RDONLY | O_DIRECT);
    if (fd < 0) { perror(argv[2]); return 1; }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 4096) { fprintf(stderr, "%s: too small (%lld bytes)\n", argv[2], (long long)size); return 1; }

    if (strcmp(argv[1], "seq") == 0 && argc == 5) {
        uint64_t bytes = strtoull(argv[3], NULL, 0), block = strtoull(argv[4], NULL, 0);
        if (block == 0 || block % 4096 || bytes % block || bytes > (uint64_t)size) return usage();
        void *buffer;
        if (posix_memalign(&buffer, 4096, block)) { perror("posix_memalign"); return 1; }
        unsigned char first[8];
        uint64_t start = now_ns();
        for (uint64_t offset = 0; offset < bytes; offset += block) {
            ssize_t n = pread(fd, buffer, block, (off_t)offset);
            if (n != (ssize_t)block) { fprintf(stderr, "pread at %llu: %zd\n", (unsigned long long)offset, n); return 1; }
            if (offset == 0) memcpy(first, buffer, sizeof first);
        }
        uint64_t elapsed = now_ns() - start;
        printf("seq bytes=%llu ns=%llu first=", (unsigned long long)bytes, (unsigned long long)elapsed);
        for (unsigned i = 0; i < sizeof first; i++) printf("%02x", first[i]);
        printf("\n");
        return 0;
    }
    if (strcmp(argv[1], "rand") == 0 && argc == 4) {
        uint64_t count = strtoull(argv[3], NULL, 0), blocks = (uint64_t)size / 4096, state = 0x9E3779B97F4A7C15ULL;
        if (count == 0) return usage();
        void *buffer;
        if (posix_memalign(&buffer, 4096, 4096)) { perror("posix_memalign"); return 1; }
        uint64_t start = now_ns();
        for (uint64_t i = 0; i < count; i++) {
            off_t offset = (off_t)(next(&state) % blocks) * 4096;
            if (pread(fd, buffer, 4096, offset) != 4096) { fprintf(stderr, "pread at %lld failed\n", (long long)offset); return 1; }
        }
        uint64_t elapsed = now_ns() - start;
        printf("rand ops=%llu ns=%llu\n", (unsigned long long)count, (unsigned long long)elapsed);
        return 0;
    }
    return usage();
}
