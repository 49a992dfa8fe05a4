/*
 * dvms-memtouch: a memory-dirtying busy loop, the stress program of dvms' Grid'5000 runs.
 *
 *   dvms-memtouch MIB RATE_MIB_S [--idle] [--seconds S]
 *
 * Allocates a buffer of MIB MiB (prefaulted, transparent huge pages refused so that the
 * buffer is tracked in 4 KiB pages, as a hypervisor's dirty log tracks guest memory) and
 * writes one byte in one 4 KiB page after another, cyclically, so that RATE_MIB_S MiB of
 * pages are dirtied per second: every 10 ms slice it touches the pages due since the start
 * (catching up after being stopped, e.g. by cpulimit's SIGSTOP, by at most one pass over
 * the buffer), then spins until the next slice (busy: it takes all the CPU it is given,
 * which is what cpulimit then caps) or sleeps (--idle). --seconds S exits after S seconds
 * (0, the default: never). Prints "dvms-memtouch PID pages N" once the buffer is ready.
 *
 * Written for dvms (Apache-2.0); C99 + POSIX, built static.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define SLICE_NS 10000000L

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_number(const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    *out = strtod(text, &end);
    return errno == 0 && end != text && *end == '\0' && *out >= 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: dvms-memtouch MIB RATE_MIB_S [--idle] [--seconds S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double mib = 0, rate = 0, seconds = 0;
    int idle = 0;
    if (argc < 3 || !parse_number(argv[1], &mib) || !parse_number(argv[2], &rate) || mib < 1)
        usage();
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--idle") == 0)
            idle = 1;
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc
                 && parse_number(argv[i + 1], &seconds))
            i++;
        else
            usage();
    }
    size_t size = (size_t)mib * 1024UL * 1024UL;
    uint64_t pages = size / PAGE;
    volatile unsigned char *buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        perror("dvms-memtouch: mmap");
        return 1;
    }
#ifdef MADV_NOHUGEPAGE
    madvise((void *)buf, size, MADV_NOHUGEPAGE);
#endif
    memset((void *)buf, 1, size);
    printf("dvms-memtouch %ld pages %llu\n", (long)getpid(), (unsigned long long)pages);
    fflush(stdout);

    double pages_per_s = rate * 1024.0 * 1024.0 / (double)PAGE;
    double start = now_s();
    uint64_t touched = 0, cursor = 0;
    volatile uint64_t spins = 0;
    for (;;) {
        double t = now_s() - start;
        uint64_t due = (uint64_t)(t * pages_per_s);
        if (due > touched + pages)
            touched = due - pages; /* long stop: one pass is enough to dirty everything */
        while (touched < due) {
            buf[cursor * PAGE] += 1;
            cursor = cursor + 1 == pages ? 0 : cursor + 1;
            touched++;
        }
        if (seconds > 0 && t >= seconds)
            break;
        if (idle) {
            struct timespec slice = {0, SLICE_NS};
            nanosleep(&slice, NULL);
        } else {
            double next = now_s() + (double)SLICE_NS / 1e9;
            while (now_s() < next)
                spins++;
        }
    }
    return 0;
}
