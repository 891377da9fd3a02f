/* rio_runtime_*: config defaults, open/close, backends, capabilities,
 * Prometheus metrics, environment variables. */
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "check.h"

static char dir[256];
/* This program's path (argv[0]), to run it again; not /proc/self/exe,
 * which is valgrind itself under valgrind. */
static const char *self_path = "/proc/self/exe";

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_config_default(void) {
    rio_runtime_config_t cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    rio_runtime_config_default(&cfg);
    CHECK_EQ(cfg.struct_size, sizeof(rio_runtime_config_t));
    CHECK_EQ(cfg.backend, RIO_BACKEND_AUTO);
    CHECK_EQ(cfg.queue_depth, 0);
    CHECK_EQ(cfg.max_concurrent_ops, 0);
    CHECK_EQ(cfg.worker_threads, 0);
    rio_runtime_config_default(NULL); /* ignored, no crash */
    CHECK(1);
}

static void test_open_basic(void) {
    rio_runtime_t *rt = (rio_runtime_t *)(uintptr_t)1;

    /* NULL cfg: defaults + environment. */
    CHECK_EQ(rio_runtime_open(NULL, &rt), 0);
    CHECK(rt != NULL);
    int b = rio_runtime_backend(rt);
    CHECK(b == RIO_BACKEND_IO_URING || b == RIO_BACKEND_THREAD_POOL);
    rio_runtime_close(rt);

    /* Explicit defaults. */
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    rt = NULL;
    CHECK_EQ(rio_runtime_open(&cfg, &rt), 0);
    CHECK(rt != NULL);
    b = rio_runtime_backend(rt);
    CHECK(b == RIO_BACKEND_IO_URING || b == RIO_BACKEND_THREAD_POOL);
    rio_runtime_close(rt);

    /* Each backend, through the helper (which checks rio_runtime_backend). */
    for (int i = 0; i < 2; i++) {
        rt = check_runtime_open(check_backends[i], NULL);
        rio_runtime_close(rt);
    }

    /* NULL out. */
    CHECK_ERR(rio_runtime_open(&cfg, NULL), -EINVAL, "rio_runtime_open");
    CHECK_ERR(rio_runtime_open(NULL, NULL), -EINVAL, "out");

    /* Invalid backend value: -EINVAL, *out cleared. */
    uint32_t bad_backends[] = {3, 7, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof bad_backends / sizeof bad_backends[0]; i++) {
        rio_runtime_config_default(&cfg);
        cfg.backend = bad_backends[i];
        rt = (rio_runtime_t *)(uintptr_t)1;
        CHECK_ERR(rio_runtime_open(&cfg, &rt), -EINVAL, "backend");
        CHECK(rt == NULL);
        CHECK_MSG("rio_runtime_open");
    }

    /* struct_size larger than the library's (a newer caller): rejected. */
    struct {
        rio_runtime_config_t cfg;
        uint64_t future_field;
    } bigger;
    rio_runtime_config_default(&bigger.cfg);
    bigger.cfg.struct_size = sizeof bigger;
    bigger.future_field = 42;
    rt = (rio_runtime_t *)(uintptr_t)1;
    CHECK_ERR(rio_runtime_open(&bigger.cfg, &rt), -EINVAL, "struct_size");
    CHECK(rt == NULL);
    rio_runtime_config_default(&cfg);
    cfg.struct_size = sizeof cfg + 1;
    CHECK_ERR(rio_runtime_open(&cfg, &rt), -EINVAL, "struct_size");
    cfg.struct_size = 0xFFFFFFFFu;
    CHECK_ERR(rio_runtime_open(&cfg, &rt), -EINVAL, "struct_size");

    /* struct_size 0 or too small to hold struct_size itself: rejected. */
    cfg.struct_size = 0;
    CHECK_ERR(rio_runtime_open(&cfg, &rt), -EINVAL, "struct_size");
    cfg.struct_size = 2;
    CHECK_ERR(rio_runtime_open(&cfg, &rt), -EINVAL, "struct_size");

    /* Smaller struct_size (an older caller that only knew struct_size and
     * backend): accepted, and the fields past struct_size are not read
     * (they hold values that would be rejected). */
    rio_runtime_config_default(&cfg);
    cfg.struct_size = offsetof(rio_runtime_config_t, queue_depth);
    cfg.backend = RIO_BACKEND_THREAD_POOL;
    cfg.queue_depth = 0xFFFFFFFFu;
    cfg.max_concurrent_ops = 0;
    cfg.worker_threads = 0xFFFFFFFFu;
    rt = NULL;
    CHECK_EQ(rio_runtime_open(&cfg, &rt), 0);
    CHECK(rt != NULL);
    if (rt) {
        CHECK_EQ(rio_runtime_backend(rt), RIO_BACKEND_THREAD_POOL);
        rio_capabilities_t caps = {.struct_size = sizeof(rio_capabilities_t)};
        CHECK_EQ(rio_runtime_capabilities(rt, &caps), 0);
        CHECK_EQ(caps.max_concurrent_ops, 1024);
        CHECK(caps.worker_threads >= 4 && caps.worker_threads <= 64);
    }
    rio_runtime_close(rt);
    /* Only struct_size: everything else defaults. */
    cfg.struct_size = sizeof(uint32_t);
    rt = NULL;
    CHECK_EQ(rio_runtime_open(&cfg, &rt), 0);
    CHECK(rt != NULL);
    rio_runtime_close(rt);

    /* Out-of-range fields. */
    rio_runtime_config_default(&cfg);
    cfg.backend = RIO_BACKEND_THREAD_POOL;
    cfg.queue_depth = 1u << 20;
    CHECK_ERR(rio_runtime_open(&cfg, &rt), -EINVAL, "queue_depth");
    rio_runtime_config_default(&cfg);
    cfg.backend = RIO_BACKEND_THREAD_POOL;
    cfg.worker_threads = 100000;
    CHECK_ERR(rio_runtime_open(&cfg, &rt), -EINVAL, "worker_threads");

    /* rio_runtime_backend(NULL), rio_runtime_close(NULL). */
    CHECK_ERR(rio_runtime_backend(NULL), -EINVAL, "rio_runtime_backend");
    rio_runtime_close(NULL);
    CHECK(1);
}

static int has_opcode(const rio_capabilities_t *c, int op) {
    return (c->io_uring_opcodes[op / 8] >> (op % 8)) & 1;
}

static void test_capabilities(void) {
    struct utsname u;
    uname(&u);
    CHECK_ERR(rio_runtime_capabilities(NULL, &(rio_capabilities_t){0}), -EINVAL, "rio_runtime_capabilities");
    for (int i = 0; i < 2; i++) {
        if (!check_backend_enabled(check_backends[i]))
            continue;
        rio_runtime_config_t cfg;
        rio_runtime_config_default(&cfg);
        cfg.queue_depth = 100;
        cfg.max_concurrent_ops = 77;
        cfg.worker_threads = 5;
        rio_runtime_t *rt = check_runtime_open(check_backends[i], &cfg);
        if (!rt)
            continue;
        check_ctx = check_backend_name(check_backends[i]);
        CHECK_ERR(rio_runtime_capabilities(rt, NULL), -EINVAL, "rio_runtime_capabilities");

        rio_capabilities_t c;
        memset(&c, 0xCD, sizeof c);
        c.struct_size = sizeof c;
        CHECK_EQ(rio_runtime_capabilities(rt, &c), 0);
        CHECK_EQ(c.struct_size, sizeof c);
        CHECK_EQ(c.backend, (int)check_backends[i]);
        CHECK_EQ(c.max_concurrent_ops, 77);
        CHECK_EQ(c.worker_threads, 5);
        CHECK(memchr(c.kernel_release, 0, sizeof c.kernel_release) != NULL);
        CHECK(memchr(c.ring_setup, 0, sizeof c.ring_setup) != NULL);
        CHECK(memchr(c.io_uring_unavailable_reason, 0, sizeof c.io_uring_unavailable_reason) != NULL);
        CHECK(c.kernel_release[0] != '\0');
        CHECK(strcmp(c.kernel_release, u.release) == 0);
        if (check_backends[i] == RIO_BACKEND_IO_URING) {
            CHECK(c.io_uring_available);
            CHECK_EQ(c.io_uring_unavailable_reason[0], '\0');
            CHECK(has_opcode(&c, 22)); /* IORING_OP_READ */
            CHECK(has_opcode(&c, 23)); /* IORING_OP_WRITE */
            CHECK(has_opcode(&c, 3));  /* IORING_OP_FSYNC */
            CHECK_EQ(c.sq_entries, 128); /* 100 rounded up to a power of two */
            CHECK(c.cq_entries >= c.sq_entries);
            CHECK(c.ring_setup[0] != '\0');
        } else {
            CHECK(c.io_uring_unavailable_reason[0] != '\0');
            CHECK_EQ(c.sq_entries, 0);
            CHECK_EQ(c.cq_entries, 0);
        }
        check_ctx = "";
        rio_runtime_close(rt);
    }
}

/* The value of the sample line starting with `series ` in Prometheus text, or -1. */
static long long metric_value(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atoll(p + n + 1);
    }
    return -1;
}

/* Returns a malloc'ed copy of the runtime's metrics text. */
static char *metrics_text(rio_runtime_t *rt) {
    int64_t len = rio_runtime_metrics_prometheus(rt, NULL, 0);
    CHECK(len > 0);
    if (len <= 0)
        return NULL;
    char *buf = malloc((size_t)len + 1);
    CHECK_EQ(rio_runtime_metrics_prometheus(rt, buf, (size_t)len + 1), len);
    return buf;
}

static void test_metrics(rio_runtime_t *rt) {
    CHECK_ERR(rio_runtime_metrics_prometheus(NULL, NULL, 0), -EINVAL, "rio_runtime_metrics_prometheus");
    CHECK_ERR(rio_runtime_metrics_prometheus(rt, NULL, 16), -EINVAL, "buf");

    int64_t len = rio_runtime_metrics_prometheus(rt, NULL, 0);
    CHECK(len > 0);
    if (len <= 0)
        return;
    char *buf = malloc((size_t)len + 16);
    /* Too small, including cap == len (no room for the NUL): length
     * returned, nothing written. */
    size_t small[] = {1, 2, (size_t)len / 2, (size_t)len - 1, (size_t)len};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        memset(buf, 'X', (size_t)len + 16);
        CHECK_EQ(rio_runtime_metrics_prometheus(rt, buf, small[i]), len);
        int untouched = 1;
        for (int64_t j = 0; j < len + 16; j++)
            if (buf[j] != 'X')
                untouched = 0;
        CHECK(untouched);
    }
    /* cap == len + 1: the whole text, NUL-terminated, nothing past it. */
    memset(buf, 'X', (size_t)len + 16);
    CHECK_EQ(rio_runtime_metrics_prometheus(rt, buf, (size_t)len + 1), len);
    CHECK_EQ(buf[len], '\0');
    CHECK_EQ((int64_t)strlen(buf), len);
    CHECK_EQ(buf[len + 1], 'X');
    CHECK(strstr(buf, "# TYPE") != NULL);
    CHECK(strstr(buf, "# HELP") != NULL);
    CHECK(len > 0 && buf[len - 1] == '\n');
    /* Larger cap: same text. */
    char *big = malloc((size_t)len + 1000);
    CHECK_EQ(rio_runtime_metrics_prometheus(rt, big, (size_t)len + 1000), len);
    CHECK(strcmp(big, buf) == 0);
    free(big);
    free(buf);

    /* Counters rise after I/O. */
    char *before = metrics_text(rt);
    char path[512];
    check_path(path, sizeof path, dir, "metrics.dat");
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE,
                           0644, &f), 0);
    char data[4096];
    check_fill(data, sizeof data, 1, 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(rio_file_write_at(f, data, sizeof data, (uint64_t)i * sizeof data), sizeof data);
    CHECK_EQ(rio_file_read_at(f, data, sizeof data, 0), sizeof data);
    CHECK_EQ(rio_file_sync(f), 0);
    CHECK_EQ(rio_file_close(f), 0);
    char *after = metrics_text(rt);
    if (before && after) {
        long long w0 = metric_value(before, "rio_ops_total{op=\"write\"}");
        long long w1 = metric_value(after, "rio_ops_total{op=\"write\"}");
        long long r0 = metric_value(before, "rio_ops_total{op=\"read\"}");
        long long r1 = metric_value(after, "rio_ops_total{op=\"read\"}");
        long long b0 = metric_value(before, "rio_op_bytes_total{op=\"write\"}");
        long long b1 = metric_value(after, "rio_op_bytes_total{op=\"write\"}");
        CHECK(w0 >= 0 && r0 >= 0 && b0 >= 0);
        CHECK_EQ(w1 - w0, 3);
        CHECK_EQ(r1 - r0, 1);
        CHECK_EQ(b1 - b0, 3 * (long long)sizeof data);
        long long f0 = metric_value(before, "rio_ops_total{op=\"fsync\"}");
        long long f1 = metric_value(after, "rio_ops_total{op=\"fsync\"}");
        CHECK_EQ(f1 - f0, 1);
        long long s1 = metric_value(after, "rio_io_uring_sqes_submitted_total");
        long long s0 = metric_value(before, "rio_io_uring_sqes_submitted_total");
        long long d1 = metric_value(after, "rio_io_uring_direct_ops_total");
        long long d0 = metric_value(before, "rio_io_uring_direct_ops_total");
        if (rio_runtime_backend(rt) == RIO_BACKEND_IO_URING) {
            /* Lone buffered ops and syncs are direct syscalls (the ring
             * would hand them to a kernel worker): 3 writes, 1 read, 1 fsync. */
            CHECK_EQ(d1 - d0, 5);
            CHECK_EQ(s1 - s0, 0);
            CHECK_EQ(metric_value(after, "rio_backend_info{backend=\"io_uring\"}"), 1);
        } else {
            CHECK_EQ(s1, 0);
            CHECK_EQ(metric_value(after, "rio_backend_info{backend=\"thread_pool\"}"), 1);
        }
    }
    free(before);
    free(after);
    unlink(path);
}

/* Opens with cfg (NULL = defaults + env) and returns rc; the backend in *backend. */
static int open_with_env(const rio_runtime_config_t *cfg, int *backend, rio_capabilities_t *caps) {
    rio_runtime_t *rt = (rio_runtime_t *)(uintptr_t)1;
    int rc = rio_runtime_open(cfg, &rt);
    if (rc == 0) {
        *backend = rio_runtime_backend(rt);
        if (caps)
            rio_runtime_capabilities(rt, caps);
        rio_runtime_close(rt);
    } else {
        CHECK(rt == NULL);
        *backend = -1;
    }
    return rc;
}

static void test_env(void) {
    int backend;
    rio_capabilities_t caps = {.struct_size = sizeof(rio_capabilities_t)};
    rio_runtime_config_t cfg;
    int uring_ok;
    {
        rio_runtime_config_default(&cfg);
        cfg.backend = RIO_BACKEND_IO_URING;
        uring_ok = open_with_env(&cfg, &backend, NULL) == 0;
    }

    /* RUSTFS_ENABLE_IO_URING=false: never io_uring, and the reason says so. */
    setenv("RUSTFS_ENABLE_IO_URING", "false", 1);
    CHECK_EQ(open_with_env(NULL, &backend, &caps), 0);
    CHECK_EQ(backend, RIO_BACKEND_THREAD_POOL);
    CHECK(caps.io_uring_unavailable_reason[0] != '\0');
    rio_runtime_config_default(&cfg);
    CHECK_EQ(open_with_env(&cfg, &backend, NULL), 0);
    CHECK_EQ(backend, RIO_BACKEND_THREAD_POOL);
    /* An explicit cfg.backend wins over the variable. */
    if (uring_ok) {
        cfg.backend = RIO_BACKEND_IO_URING;
        CHECK_EQ(open_with_env(&cfg, &backend, NULL), 0);
        CHECK_EQ(backend, RIO_BACKEND_IO_URING);
    }
    setenv("RUSTFS_ENABLE_IO_URING", "FALSE", 1);
    CHECK_EQ(open_with_env(NULL, &backend, NULL), 0);
    CHECK_EQ(backend, RIO_BACKEND_THREAD_POOL);

    /* =true: io_uring, or fail with the reason when it is unavailable. */
    setenv("RUSTFS_ENABLE_IO_URING", "true", 1);
    if (uring_ok) {
        CHECK_EQ(open_with_env(NULL, &backend, NULL), 0);
        CHECK_EQ(backend, RIO_BACKEND_IO_URING);
    } else {
        CHECK_ERR(open_with_env(NULL, &backend, NULL), -EOPNOTSUPP, "io_uring");
    }
    rio_runtime_config_default(&cfg);
    cfg.backend = RIO_BACKEND_THREAD_POOL;
    CHECK_EQ(open_with_env(&cfg, &backend, NULL), 0);
    CHECK_EQ(backend, RIO_BACKEND_THREAD_POOL);

    /* Garbage: an error naming the variable, never a silent default, even
     * when cfg.backend is explicit. */
    const char *garbage[] = {"yes-please", "", "2", "truee", " maybe "};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        setenv("RUSTFS_ENABLE_IO_URING", garbage[i], 1);
        CHECK_ERR(open_with_env(NULL, &backend, NULL), -EINVAL, "RUSTFS_ENABLE_IO_URING");
        CHECK_MSG("rio_runtime_open");
    }
    setenv("RUSTFS_ENABLE_IO_URING", "garbage", 1);
    rio_runtime_config_default(&cfg);
    cfg.backend = RIO_BACKEND_THREAD_POOL;
    CHECK_ERR(open_with_env(&cfg, &backend, NULL), -EINVAL, "RUSTFS_ENABLE_IO_URING");
    unsetenv("RUSTFS_ENABLE_IO_URING");

    /* RUSTFS_MAX_CONCURRENT_FILE_OPS. */
    setenv("RUSTFS_MAX_CONCURRENT_FILE_OPS", "7", 1);
    CHECK_EQ(open_with_env(NULL, &backend, &caps), 0);
    CHECK_EQ(caps.max_concurrent_ops, 7);
    rio_runtime_config_default(&cfg);
    cfg.backend = RIO_BACKEND_THREAD_POOL;
    cfg.max_concurrent_ops = 9; /* explicit field wins */
    CHECK_EQ(open_with_env(&cfg, &backend, &caps), 0);
    CHECK_EQ(caps.max_concurrent_ops, 9);
    const char *bad_counts[] = {"garbage", "0", "-5", "", "12abc", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_counts / sizeof bad_counts[0]; i++) {
        setenv("RUSTFS_MAX_CONCURRENT_FILE_OPS", bad_counts[i], 1);
        CHECK_ERR(open_with_env(NULL, &backend, NULL), -EINVAL, "RUSTFS_MAX_CONCURRENT_FILE_OPS");
        CHECK_ERR(open_with_env(&cfg, &backend, NULL), -EINVAL, "RUSTFS_MAX_CONCURRENT_FILE_OPS");
    }
    unsetenv("RUSTFS_MAX_CONCURRENT_FILE_OPS");
    CHECK_EQ(open_with_env(NULL, &backend, &caps), 0);
    CHECK_EQ(caps.max_concurrent_ops, 1024);
}

/* Files keep working after their runtime handle is closed. */
static void test_close_runtime_first(void) {
    for (int i = 0; i < 2; i++) {
        if (!check_backend_enabled(check_backends[i]))
            continue;
        rio_runtime_t *rt = check_runtime_open(check_backends[i], NULL);
        if (!rt)
            continue;
        check_ctx = check_backend_name(check_backends[i]);
        char path[512];
        check_path(path, sizeof path, dir, "orphan.dat");
        rio_file_t *f = NULL, *g = NULL;
        CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE,
                               0644, &f), 0);
        CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ, 0, &g), 0);
        rio_runtime_close(rt);
        if (f && g) {
            char data[8192], back[8192];
            check_fill(data, sizeof data, 7, 0);
            CHECK_EQ(rio_file_write_at(f, data, sizeof data, 0), sizeof data);
            CHECK_EQ(rio_file_sync(f), 0);
            CHECK_EQ(rio_file_datasync(f), 0);
            CHECK_EQ(rio_file_size(f), sizeof data);
            CHECK_EQ(rio_file_close(f), 0);
            memset(back, 0, sizeof back);
            CHECK_EQ(rio_file_read_at(g, back, sizeof back, 0), sizeof back);
            CHECK(memcmp(data, back, sizeof data) == 0);
            CHECK_EQ(rio_file_close(g), 0); /* the engine goes away here */
        }
        unlink(path);
        check_ctx = "";
    }
}

/* Opening and closing many runtimes leaks no descriptors (rings, eventfds). */
static void test_no_fd_leak(void) {
    int before = count_fds();
    for (int i = 0; i < 2; i++) {
        if (!check_backend_enabled(check_backends[i]))
            continue;
        for (int k = 0; k < 20; k++) {
            rio_runtime_t *rt = check_runtime_open(check_backends[i], NULL);
            if (!rt)
                break;
            rio_runtime_close(rt);
        }
    }
    CHECK_EQ(count_fds(), before);
}


/* In a child process, blocks io_uring_setup with a seccomp filter that
 * returns EPERM (as Docker's default profile does): auto falls back to the
 * thread pool and says why, an explicit io_uring backend (or
 * RUSTFS_ENABLE_IO_URING=true) fails with -EOPNOTSUPP and the reason, and
 * files work on the fallback. The child's check counts come back through
 * a pipe. */
static void seccomp_child(void) {
    if (check_block_io_uring() != 0)
        return;
    check_ctx = "seccomp";
    /* The filter works: io_uring_setup now fails with EPERM. */
    CHECK_EQ(syscall(__NR_io_uring_setup, 8, &(char[120]){0}), -1);
    CHECK_EQ(errno, EPERM);

    /* Auto (NULL cfg and default cfg): the thread pool, with the reason. */
    rio_runtime_t *rt = NULL;
    CHECK_EQ(rio_runtime_open(NULL, &rt), 0);
    CHECK_EQ(rio_runtime_backend(rt), RIO_BACKEND_THREAD_POOL);
    rio_capabilities_t caps = {.struct_size = sizeof(rio_capabilities_t)};
    CHECK_EQ(rio_runtime_capabilities(rt, &caps), 0);
    CHECK(!caps.io_uring_available);
    CHECK_EQ(caps.backend, RIO_BACKEND_THREAD_POOL);
    CHECK(strstr(caps.io_uring_unavailable_reason, "EPERM") != NULL);
    CHECK(strstr(caps.io_uring_unavailable_reason, "seccomp") != NULL);
    CHECK_EQ(caps.sq_entries, 0);

    /* Files work on the fallback. */
    char path[512];
    check_path(path, sizeof path, dir, "seccomp.dat");
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE, 0644, &f), 0);
    if (f) {
        char data[5000], back[5000];
        check_fill(data, sizeof data, 3, 0);
        CHECK_EQ(rio_file_write_at(f, data, sizeof data, 100), sizeof data);
        CHECK_EQ(rio_file_read_at(f, back, sizeof back, 100), sizeof back);
        CHECK(memcmp(data, back, sizeof data) == 0);
        rio_op_t ops[2] = {{.opcode = RIO_OP_WRITE, .file = f, .buf = data, .len = 10, .offset = 0},
                           {.opcode = RIO_OP_FDATASYNC, .file = f}};
        CHECK_EQ(rio_submit_batch(rt, ops, 2), 2);
        CHECK_EQ(ops[0].result, 10);
        CHECK_EQ(ops[1].result, 0);
        CHECK_EQ(rio_file_close(f), 0);
    }
    unlink(path);
    rio_runtime_close(rt);

    /* io_uring required: -EOPNOTSUPP with the reason in the message. */
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.backend = RIO_BACKEND_IO_URING;
    rt = (rio_runtime_t *)(uintptr_t)1;
    CHECK_ERR(rio_runtime_open(&cfg, &rt), -EOPNOTSUPP, "EPERM");
    CHECK(rt == NULL);
    CHECK_MSG("rio_runtime_open");
    setenv("RUSTFS_ENABLE_IO_URING", "true", 1);
    CHECK_ERR(rio_runtime_open(NULL, &rt), -EOPNOTSUPP, "seccomp");
    /* ...but an explicit thread_pool backend still opens. */
    cfg.backend = RIO_BACKEND_THREAD_POOL;
    CHECK_EQ(rio_runtime_open(&cfg, &rt), 0);
    rio_runtime_close(rt);
    unsetenv("RUSTFS_ENABLE_IO_URING");
}

static void test_seccomp_fallback(void) {
    check_in_child(seccomp_child);
}

/* Issue 13: when the kernel refuses to register rio_buf_alloc memory with a
 * ring (RLIMIT_MEMLOCK binds once CAP_IPC_LOCK is dropped), I/O still works
 * and the capabilities report counts the refusals and says why. */
static void memlock_child(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    CHECK_EQ(syscall(SYS_capget, &h, d), 0);
    d[0].effective &= ~(1u << CAP_IPC_LOCK);
    d[0].permitted &= ~(1u << CAP_IPC_LOCK);
    CHECK_EQ(syscall(SYS_capset, &h, d), 0);
    /* Room for the ring itself, not for pinning a 2 MiB buffer. */
    struct rlimit lim = {512 << 10, 512 << 10};
    CHECK_EQ(setrlimit(RLIMIT_MEMLOCK, &lim), 0);
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.backend = RIO_BACKEND_IO_URING;
    rio_runtime_t *rt = NULL;
    CHECK_EQ(rio_runtime_open(&cfg, &rt), 0);
    if (!rt)
        return;
    rio_capabilities_t c;
    memset(&c, 0xff, sizeof c);
    c.struct_size = sizeof c;
    CHECK_EQ(rio_runtime_capabilities(rt, &c), 0);
    CHECK_EQ(c.buffer_registration_failures, 0);
    CHECK_EQ(c.buffer_registration_failure_reason[0], '\0');
    char path[512];
    check_path(path, sizeof path, dir, "memlock.dat");
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_DIRECT, 0644, &f), 0);
    size_t len = 2 << 20;
    unsigned char *buf = rio_buf_alloc(len);
    if (f && buf) {
        memset(buf, 0x5a, len);
        CHECK_EQ(rio_file_write_at(f, buf, len, 0), (int64_t)len);
        memset(buf, 0, len);
        CHECK_EQ(rio_file_read_at(f, buf, len, 0), (int64_t)len);
        CHECK_EQ(buf[0], 0x5a);
        CHECK_EQ(buf[len - 1], 0x5a);
    }
    c.struct_size = sizeof c;
    CHECK_EQ(rio_runtime_capabilities(rt, &c), 0);
    CHECK(c.buffer_registration_failures > 0);
    CHECK(strstr(c.buffer_registration_failure_reason, "RLIMIT_MEMLOCK") != NULL);
    rio_buf_free(buf);
    rio_file_close(f);
    unlink(path);
    rio_runtime_close(rt);
}

static void test_memlock_refusal_reported(void) {
    check_in_child(memlock_child);
}

/* RIO_LOG (DESIGN.md, Environment): a tracing filter for stderr logging,
 * off by default. Runs this program again (so the library starts fresh
 * with the variable set) with stderr on a pipe. */
static void rio_log_child(void) {
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.backend = RIO_BACKEND_THREAD_POOL;
    rio_runtime_t *rt = NULL;
    if (rio_runtime_open(&cfg, &rt) != 0)
        _exit(3);
    char path[512];
    check_path(path, sizeof path, getenv("RIO_CTEST_DIR"), "log.dat");
    rio_file_t *f = NULL;
    if (rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE, 0644, &f) == 0) {
        rio_file_write_at(f, "x", 1, 0);
        rio_file_close(f);
    }
    unlink(path);
    rio_runtime_close(rt);
}

/* Runs `self --rio-log-child` with RIO_LOG = value (NULL: unset); returns
 * the length of its stderr, copied into out. */
static ssize_t run_log_child(const char *mode, const char *value, char *out, size_t cap) {
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        if (value)
            setenv("RIO_LOG", value, 1);
        else
            unsetenv("RIO_LOG");
        setenv("RIO_CTEST_DIR", dir, 1);
        execl(self_path, "test_runtime", mode, (char *)NULL);
        _exit(4);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(fds[0], out + got, cap - 1 - got)) > 0 && got < cap - 1)
        got += (size_t)n;
    out[got] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return (ssize_t)got;
}

static void test_rio_log(void) {
    static char out[1 << 16];
    /* Unset or off: the library writes nothing to stderr. */
    CHECK_EQ(run_log_child("--rio-log-child", NULL, out, sizeof out), 0);
    if (out[0])
        fprintf(stderr, "    unexpected stderr without RIO_LOG: %.200s\n", out);
    CHECK_EQ(run_log_child("--rio-log-child", "off", out, sizeof out), 0);
    /* A filter: log lines on stderr (the runtime being opened at least). */
    ssize_t n = run_log_child("--rio-log-child", "debug", out, sizeof out);
    CHECK(n > 0);
    n = run_log_child("--rio-log-child", "rio=debug", out, sizeof out);
    CHECK(n > 0);
    if (n <= 0)
        fprintf(stderr, "    RIO_LOG=rio=debug produced no log output\n");
    CHECK(strstr(out, "runtime opened") != NULL);
    /* An invalid filter is an error naming the variable (checked in the child). */
    run_log_child("--rio-log-invalid", "rio=[[", out, sizeof out);
}

int main(int argc, char **argv) {
    if (argc > 0 && argv[0] && strchr(argv[0], '/'))
        self_path = argv[0];
    if (argc > 1 && strcmp(argv[1], "--rio-log-child") == 0) {
        rio_log_child();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--rio-log-invalid") == 0) {
        /* An invalid filter: rio_runtime_open fails naming the variable. */
        rio_runtime_t *rt = NULL;
        int rc = rio_runtime_open(NULL, &rt);
        rio_runtime_close(rt);
        return rc == -EINVAL && strstr(rio_last_error_message(), "RIO_LOG") ? 0 : 5;
    }
    unsetenv("RUSTFS_ENABLE_IO_URING");
    unsetenv("RUSTFS_MAX_CONCURRENT_FILE_OPS");
    check_tmpdir(dir, sizeof dir);
    test_config_default();
    test_open_basic();
    test_capabilities();
    check_for_each_backend(test_metrics);
    test_env();
    test_close_runtime_first();
    test_no_fd_leak();
    test_memlock_refusal_reported();
#if defined(__x86_64__)
    test_seccomp_fallback();
#endif
    test_rio_log();
    check_rmtree(dir);
    return check_summary("test_runtime");
}
