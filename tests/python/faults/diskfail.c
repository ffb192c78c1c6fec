/* Loaded into a server process (LD_PRELOAD) by the fault harness, to fail
 * its disk on cue:
 *  - while the file named by FAULTS_FSYNC_FLAG exists, fsync and fdatasync
 *    fail with EIO, as on a disk that has failed;
 *  - while the file named by FAULTS_FULL_FLAG exists, writes to regular
 *    files (write, pwrite, writev, pwritev, fallocate) fail with ENOSPC, as
 *    on a full disk; sockets, pipes and the process's stdout and stderr
 *    (the server's log, kept apart from its data) are not touched.
 * Otherwise every call goes on to libc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int flag_set(const char *env) {
    const char *flag = getenv(env);
    return flag != NULL && access(flag, F_OK) == 0;
}

/* Whether the disk is full: looked up at most every 10 ms, as every write
 * to a socket asks too. */
static int disk_full(void) {
    static long checked_ms = -1000;
    static int full;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    long now_ms = now.tv_sec * 1000 + now.tv_nsec / 1000000;
    long last = __atomic_load_n(&checked_ms, __ATOMIC_RELAXED);
    if (now_ms - last >= 10) {
        __atomic_store_n(&full, flag_set("FAULTS_FULL_FLAG"), __ATOMIC_RELAXED);
        __atomic_store_n(&checked_ms, now_ms, __ATOMIC_RELAXED);
    }
    return __atomic_load_n(&full, __ATOMIC_RELAXED);
}

/* A write to `fd` that a full disk refuses. */
static int refused(int fd) {
    struct stat st;
    if (fd <= STDERR_FILENO || !disk_full() || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    errno = ENOSPC;
    return 1;
}

/* libc's own `name`, looked up once. */
#define REAL(name, type)                                                 \
    ({                                                                   \
        static __typeof__(type) real_fn;                                 \
        if (real_fn == NULL)                                             \
            real_fn = (type)dlsym(RTLD_NEXT, name);                      \
        real_fn;                                                         \
    })

/* `real` (libc's fsync or fdatasync) unless the disk has failed. */
static int sync_call(int (*real)(int), int fd) {
    if (flag_set("FAULTS_FSYNC_FLAG")) {
        errno = EIO;
        return -1;
    }
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

int fsync(int fd) { return sync_call(REAL("fsync", int (*)(int)), fd); }
int fdatasync(int fd) { return sync_call(REAL("fdatasync", int (*)(int)), fd); }

ssize_t write(int fd, const void *buf, size_t n) {
    if (refused(fd))
        return -1;
    return REAL("write", ssize_t (*)(int, const void *, size_t))(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t at) {
    if (refused(fd))
        return -1;
    return REAL("pwrite", ssize_t (*)(int, const void *, size_t, off_t))(fd, buf, n, at);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t at) {
    if (refused(fd))
        return -1;
    return REAL("pwrite64", ssize_t (*)(int, const void *, size_t, off64_t))(fd, buf, n, at);
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    if (refused(fd))
        return -1;
    return REAL("writev", ssize_t (*)(int, const struct iovec *, int))(fd, iov, count);
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t at) {
    if (refused(fd))
        return -1;
    return REAL("pwritev", ssize_t (*)(int, const struct iovec *, int, off_t))(fd, iov, count, at);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int count, off64_t at) {
    if (refused(fd))
        return -1;
    return REAL("pwritev64", ssize_t (*)(int, const struct iovec *, int, off64_t))(
        fd, iov, count, at);
}

int fallocate(int fd, int mode, off_t at, off_t len) {
    if (refused(fd))
        return -1;
    return REAL("fallocate", int (*)(int, int, off_t, off_t))(fd, mode, at, len);
}

int fallocate64(int fd, int mode, off64_t at, off64_t len) {
    if (refused(fd))
        return -1;
    return REAL("fallocate64", int (*)(int, int, off64_t, off64_t))(fd, mode, at, len);
}

int posix_fallocate(int fd, off_t at, off_t len) {
    if (refused(fd))
        return ENOSPC;
    return REAL("posix_fallocate", int (*)(int, off_t, off_t))(fd, at, len);
}

int posix_fallocate64(int fd, off64_t at, off64_t len) {
    if (refused(fd))
        return ENOSPC;
    return REAL("posix_fallocate64", int (*)(int, off64_t, off64_t))(fd, at, len);
}
