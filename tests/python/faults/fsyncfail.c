/* Loaded into a server process (LD_PRELOAD) by the fault harness: while the
 * file named by FAULTS_FSYNC_FLAG exists, fsync and fdatasync fail with EIO,
 * as on a disk that has failed; otherwise they do what libc does. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int disk_failed(void) {
    const char *flag = getenv("FAULTS_FSYNC_FLAG");
    return flag != NULL && access(flag, F_OK) == 0;
}

static int pass_on(const char *name, int fd) {
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

int fsync(int fd) {
    if (disk_failed()) {
        errno = EIO;
        return -1;
    }
    return pass_on("fsync", fd);
}

int fdatasync(int fd) {
    if (disk_failed()) {
        errno = EIO;
        return -1;
    }
    return pass_on("fdatasync", fd);
}
