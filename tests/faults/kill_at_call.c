/* Preloaded into a CLI run by test_kills.py: SIGKILL the process at the N-th call of one
 * libc function that writes (pwrite64, writev, write, fsync or rename), before the call,
 * the way a power cut or the OOM killer would stop it.
 *
 *   KILL_CALL=pwrite64 KILL_AT=7 LD_PRELOAD=./kill_at_call.so python -m ...
 *   KILL_COUNT_FILE=n.txt LD_PRELOAD=./kill_at_call.so python -m ...   (count every call)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *const NAMES[] = {"pwrite64", "writev", "write", "fsync", "rename"};
#define N_NAMES (sizeof NAMES / sizeof NAMES[0])
static const char *kill_call;
static long kill_at = -1;
static long calls[N_NAMES];

__attribute__((constructor)) static void setup(void) {
    kill_call = getenv("KILL_CALL");
    const char *at = getenv("KILL_AT");
    if (at) kill_at = atol(at);
}

/* with KILL_COUNT_FILE set, write "name count" per function at exit */
__attribute__((destructor)) static void report(void) {
    const char *path = getenv("KILL_COUNT_FILE");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    for (size_t i = 0; i < N_NAMES; i++) fprintf(f, "%s %ld\n", NAMES[i], calls[i]);
    fclose(f);
}

static void count(size_t which) {
    long n = ++calls[which];
    if (kill_call && strcmp(NAMES[which], kill_call) == 0 && n == kill_at) raise(SIGKILL);
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t offset) {
    count(0);
    return REAL(pwrite64)(fd, buf, n, offset);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset) {
    count(0);
    return REAL(pwrite)(fd, buf, n, offset);
}

ssize_t write(int fd, const void *buf, size_t n) {
    count(2);
    return REAL(write)(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
    count(1);
    return REAL(writev)(fd, iov, n);
}

int fsync(int fd) {
    count(3);
    return REAL(fsync)(fd);
}

int rename(const char *old, const char *new) {
    count(4);
    return REAL(rename)(old, new);
}
