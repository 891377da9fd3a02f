/* Tiny test harness for the C test programs: CHECK records a pass or a
 * failure (with file:line and the library's last error message), and
 * check_summary() prints "N passed, N failed" and gives the exit status.
 *
 * Helpers for running one test function on both backends:
 *   check_for_each_backend(fn)   opens one runtime per enabled backend and
 *                                calls fn(rt) with check_ctx naming it;
 *   check_backend_enabled(b)     honours RIO_CTEST_BACKENDS, a comma list of
 *                                "io_uring" / "thread_pool" (default: both;
 *                                the valgrind run uses thread_pool only);
 *   check_runtime_open(b, cfg)   opens a runtime on backend b (cfg may be
 *                                NULL); returns NULL and prints SKIP when
 *                                io_uring is unavailable on this machine,
 *                                unless RIO_CTEST_REQUIRE_IO_URING=1.
 *   check_in_child(fn)           runs fn() in a forked child and adds the
 *                                child's check counts to ours;
 *   check_block_io_uring()       installs a seccomp filter that makes
 *                                io_uring_setup fail with EPERM, as Docker's
 *                                default profile does (x86-64 only).
 * Counters are atomic so CHECK may be used from several threads. */
#ifndef RIO_CHECK_H
#define RIO_CHECK_H

#include <dirent.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rio.h"

static atomic_int check_passed, check_failed;

/* Names the backend (or phase) a failure happened in; set by the helpers. */
static _Thread_local const char *check_ctx = "";

#define CHECK_FAIL_PRINT_(fmt, ...)                                              \
    fprintf(stderr, "  FAIL %s:%d%s%s%s: " fmt " (last error: %s)\n", __FILE__,  \
            __LINE__, check_ctx[0] ? " [" : "", check_ctx, check_ctx[0] ? "]" : "", \
            __VA_ARGS__, rio_last_error_message())

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            check_passed++;                                                      \
        } else {                                                                 \
            check_failed++;                                                      \
            CHECK_FAIL_PRINT_("%s", #cond);                                      \
        }                                                                        \
    } while (0)

/* CHECK that `expr` (an int or int64_t result) equals `want`, printing both. */
#define CHECK_EQ(expr, want)                                                     \
    do {                                                                         \
        long long got_ = (long long)(expr), want_ = (long long)(want);           \
        if (got_ == want_) {                                                     \
            check_passed++;                                                      \
        } else {                                                                 \
            check_failed++;                                                      \
            CHECK_FAIL_PRINT_("%s == %lld, want %lld", #expr, got_, want_);      \
        }                                                                        \
    } while (0)

/* CHECK that the last error message mentions `needle`. */
#define CHECK_MSG(needle) CHECK(strstr(rio_last_error_message(), (needle)) != NULL)

/* CHECK that `expr` fails with `want` (a -errno) and that the message then
 * mentions `needle` (e.g. the function name or the path). */
#define CHECK_ERR(expr, want, needle)                                            \
    do {                                                                         \
        long long got_ = (long long)(expr), want_ = (long long)(want);           \
        const char *msg_ = rio_last_error_message();                             \
        if (got_ == want_ && msg_ && strstr(msg_, (needle)) != NULL) {           \
            check_passed++;                                                      \
        } else {                                                                 \
            check_failed++;                                                      \
            CHECK_FAIL_PRINT_("%s == %lld, want %lld with a message naming \"%s\"", \
                              #expr, got_, want_, (needle));                     \
        }                                                                        \
    } while (0)

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, atomic_load(&check_passed),
           atomic_load(&check_failed));
    return atomic_load(&check_failed) == 0 ? 0 : 1;
}

/* Makes a fresh scratch directory; returns its path in buf. */
static inline const char *check_tmpdir(char *buf, size_t cap) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, cap, "%s/rio-ctest-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        exit(2);
    }
    return buf;
}

static inline int check_rm_entry_(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    int rc = (type == FTW_DP) ? rmdir(path) : unlink(path);
    if (rc != 0)
        perror(path);
    return 0;
}

/* Removes a scratch directory and everything in it. */
static inline void check_rmtree(const char *dir) {
    nftw(dir, check_rm_entry_, 16, FTW_DEPTH | FTW_PHYS);
}

/* Joins dir and name into buf (for file paths inside a scratch directory). */
static inline const char *check_path(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static inline const char *check_backend_name(uint32_t backend) {
    switch (backend) {
    case RIO_BACKEND_IO_URING: return "io_uring";
    case RIO_BACKEND_THREAD_POOL: return "thread_pool";
    case RIO_BACKEND_AUTO: return "auto";
    default: return "unknown";
    }
}

/* Whether RIO_CTEST_BACKENDS (default "io_uring,thread_pool") enables `backend`. */
static inline int check_backend_enabled(uint32_t backend) {
    const char *list = getenv("RIO_CTEST_BACKENDS");
    if (!list || !list[0])
        return 1;
    const char *name = check_backend_name(backend);
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n) {
        int starts = (p == list || p[-1] == ',');
        int ends = (p[n] == '\0' || p[n] == ',');
        if (starts && ends)
            return 1;
    }
    return 0;
}

/* Opens a runtime on `backend` with `cfg` (NULL: defaults). Returns NULL
 * (after printing why) when io_uring is unavailable and not required;
 * any other failure is a test failure. */
static inline rio_runtime_t *check_runtime_open(uint32_t backend, const rio_runtime_config_t *cfg) {
    rio_runtime_config_t c;
    if (cfg) {
        c = *cfg;
    } else {
        rio_runtime_config_default(&c);
    }
    c.backend = backend;
    rio_runtime_t *rt = NULL;
    int rc = rio_runtime_open(&c, &rt);
    if (rc == -EOPNOTSUPP && backend == RIO_BACKEND_IO_URING) {
        const char *req = getenv("RIO_CTEST_REQUIRE_IO_URING");
        if (req && strcmp(req, "1") == 0) {
            CHECK_EQ(rc, 0);
        } else {
            printf("  SKIP io_uring backend: %s\n", rio_last_error_message());
        }
        return NULL;
    }
    CHECK_EQ(rc, 0);
    if (rc == 0)
        CHECK_EQ(rio_runtime_backend(rt), backend);
    return rt;
}

/* The open(2) flags (octal "flags:" of /proc/self/fdinfo) of a descriptor
 * this process has open on `path`, or -1. */
static inline long check_fd_flags(const char *path) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    long flags = -1;
    while ((e = readdir(d)) != NULL) {
        char link[300], target[600];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path) != 0)
            continue;
        char info[300];
        snprintf(info, sizeof info, "/proc/self/fdinfo/%s", e->d_name);
        FILE *fp = fopen(info, "r");
        if (!fp)
            continue;
        char line[200];
        while (fgets(line, sizeof line, fp))
            if (sscanf(line, "flags: %lo", &flags) == 1)
                break;
        fclose(fp);
        break;
    }
    closedir(d);
    return flags;
}

/* What check_op leaves in `result`, so a test sees whether it was set. */
#define CHECK_OP_SENTINEL ((int64_t)-12345)

/* A rio_op_t with every field given (flags 0, result CHECK_OP_SENTINEL). */
static inline rio_op_t check_op(uint32_t opcode, rio_file_t *f, void *buf, uint64_t len, uint64_t off, uint64_t ud) {
    rio_op_t op;
    memset(&op, 0, sizeof op);
    op.opcode = opcode;
    op.file = f;
    op.buf = buf;
    op.len = len;
    op.offset = off;
    op.result = CHECK_OP_SENTINEL;
    op.user_data = ud;
    return op;
}

static const uint32_t check_backends[2] = {RIO_BACKEND_IO_URING, RIO_BACKEND_THREAD_POOL};

/* Runs fn(rt) once per enabled backend, each on a fresh default runtime. */
static inline void check_for_each_backend(void (*fn)(rio_runtime_t *rt)) {
    for (int i = 0; i < 2; i++) {
        if (!check_backend_enabled(check_backends[i]))
            continue;
        rio_runtime_t *rt = check_runtime_open(check_backends[i], NULL);
        if (!rt)
            continue;
        check_ctx = check_backend_name(check_backends[i]);
        fn(rt);
        check_ctx = "";
        rio_runtime_close(rt);
    }
}

/* A deterministic byte pattern: byte i of stream `seed`. */
static inline unsigned char check_pattern(uint64_t seed, uint64_t i) {
    uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull + i;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (unsigned char)x;
}

static inline void check_fill(void *buf, size_t len, uint64_t seed, uint64_t start) {
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = check_pattern(seed, start + i);
}

/* Whether buf holds the pattern of `seed` from `start`. */
static inline int check_verify(const void *buf, size_t len, uint64_t seed, uint64_t start) {
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != check_pattern(seed, start + i))
            return 0;
    return 1;
}

/* Runs fn() in a forked child; the child's check counts come back through
 * a pipe and are added to ours. With `threads_inherited` (the parent had
 * threads running, e.g. a thread-pool runtime), the child ends by exec'ing
 * /bin/true: the memory of the parent's threads, which do not exist in the
 * child, is unreachable there, and valgrind would report it as leaked. */
static inline void check_in_child_ex(void (*fn)(void), int threads_inherited) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        check_failed++;
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        fn();
        int counts[2] = {atomic_load(&check_passed), atomic_load(&check_failed)};
        if (write(fds[1], counts, sizeof counts) != (ssize_t)sizeof counts)
            _exit(2);
        fflush(stdout);
        fflush(stderr);
        if (threads_inherited)
            execl("/bin/true", "true", (char *)NULL);
        _exit(0);
    }
    close(fds[1]);
    int before[2] = {atomic_load(&check_passed), atomic_load(&check_failed)};
    int counts[2] = {0, 0};
    ssize_t n = read(fds[0], counts, sizeof counts);
    close(fds[0]);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(n, sizeof counts);
    /* The child's counters started as copies of ours: add what it added. */
    if (n == (ssize_t)sizeof counts) {
        check_passed += counts[0] - before[0];
        check_failed += counts[1] - before[1];
    }
}

static inline void check_in_child(void (*fn)(void)) {
    check_in_child_ex(fn, 0);
}

/* Makes io_uring_setup fail with EPERM in this process from now on (a
 * seccomp filter, as Docker's default profile); 0 on success. The filter
 * matches x86-64 only: call it only there. */
static inline int check_block_io_uring(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), /* other arches: not filtered */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("seccomp");
        check_failed++;
        return -1;
    }
    return 0;
}

#endif
