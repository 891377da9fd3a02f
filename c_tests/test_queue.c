/* rio_queue_*: asynchronous queues on both backends. Push/submit/reap,
 * -EAGAIN when full, nothing starts before submit, fd readiness with
 * poll(), EOF reads, one failing op among good ones, sync ops ignoring
 * buf/len/offset, the max_concurrent_ops bound, close with ops in flight,
 * four threads with a queue each, a queue moved between threads, bad input,
 * a queue inherited through fork, and all of it again in a child where
 * seccomp blocks io_uring (the thread-pool fallback). */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"

static char dir[256];

#define RWCT (RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE)

static const char *fpath(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s-%s", dir, check_ctx, name);
    return buf;
}

#define op_rw check_op

static rio_file_t *open_ok(rio_runtime_t *rt, const char *name, uint32_t flags) {
    char path[512];
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, fpath(path, sizeof path, name), flags, 0644, &f), 0);
    return f;
}

static rio_queue_t *queue_ok(rio_runtime_t *rt, uint32_t depth) {
    rio_queue_t *q = NULL;
    CHECK_EQ(rio_queue_open(rt, depth, &q), 0);
    return q;
}

static int readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* Reaps until `n` ops came back (each waited for with no time limit). */
static int reap_all(rio_queue_t *q, rio_op_t *out, int n) {
    int got = 0;
    while (got < n) {
        int r = rio_queue_reap(q, out + got, (size_t)(n - got), 1, -1);
        CHECK(r >= 1);
        if (r < 1)
            break;
        got += r;
    }
    return got;
}

static void test_push_submit_reap(rio_runtime_t *rt) {
    rio_file_t *f = open_ok(rt, "basic", RWCT);
    rio_queue_t *q = queue_ok(rt, 32);
    if (!f || !q)
        goto out;
    static char data[8][4096], back[8][4096];
    rio_op_t ops[8], done[8];
    for (int i = 0; i < 8; i++) {
        check_fill(data[i], 4096, (uint64_t)i, 0);
        ops[i] = op_rw(RIO_OP_WRITE, f, data[i], 4096, (uint64_t)i * 4096, 1000 + (uint64_t)i);
    }
    CHECK_EQ(rio_queue_push(q, ops, 8), 8);
    CHECK_EQ(rio_queue_pending(q), 8);
    CHECK_EQ(rio_queue_submit(q), 8);
    CHECK_EQ(reap_all(q, done, 8), 8);
    CHECK_EQ(rio_queue_pending(q), 0);
    int seen = 0;
    for (int i = 0; i < 8; i++) {
        int k = (int)(done[i].user_data - 1000);
        CHECK(k >= 0 && k < 8);
        if (k < 0 || k >= 8)
            continue;
        seen |= 1 << k;
        /* Handed back as pushed, with the result set. */
        CHECK_EQ(done[i].result, 4096);
        CHECK(done[i].file == f && done[i].buf == data[k] && done[i].opcode == RIO_OP_WRITE);
        CHECK_EQ(done[i].offset, (uint64_t)k * 4096);
    }
    CHECK_EQ(seen, 0xff);
    for (int i = 0; i < 8; i++)
        ops[i] = op_rw(RIO_OP_READ, f, back[i], 4096, (uint64_t)i * 4096, (uint64_t)i);
    CHECK_EQ(rio_queue_push(q, ops, 4), 4);
    CHECK_EQ(rio_queue_push(q, ops + 4, 4), 4);
    CHECK_EQ(rio_queue_submit(q), 8);
    CHECK_EQ(rio_queue_submit(q), 0);
    CHECK_EQ(reap_all(q, done, 8), 8);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(done[i].result, 4096);
        CHECK(check_verify(back[i], 4096, (uint64_t)i, 0));
    }
out:
    CHECK_EQ(rio_queue_close(q), 0);
    if (f)
        rio_file_close(f);
}

static void test_nothing_starts_before_submit(rio_runtime_t *rt) {
    rio_file_t *f = open_ok(rt, "late", RWCT);
    rio_queue_t *q = queue_ok(rt, 4);
    if (!f || !q)
        goto out;
    char data[512];
    check_fill(data, sizeof data, 9, 0);
    rio_op_t op = op_rw(RIO_OP_WRITE, f, data, sizeof data, 0, 1), done;
    CHECK_EQ(rio_queue_push(q, &op, 1), 1);
    nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
    CHECK_EQ(rio_file_size(f), 0);
    CHECK_ERR(rio_queue_reap(q, &done, 1, 1, 0), -ETIMEDOUT, "rio_queue_reap");
    CHECK_ERR(rio_queue_reap(q, &done, 1, 1, 2000), -ETIMEDOUT, "rio_queue_reap");
    /* Waiting without a limit for ops never submitted would hang: refused. */
    CHECK_ERR(rio_queue_reap(q, &done, 1, 1, -1), -EINVAL, "rio_queue_submit");
    CHECK_EQ(rio_file_size(f), 0);
    CHECK_EQ(rio_queue_submit(q), 1);
    CHECK_EQ(rio_queue_reap(q, &done, 1, 1, -1), 1);
    CHECK_EQ(done.result, (int64_t)sizeof data);
    CHECK_EQ(rio_file_size(f), (int64_t)sizeof data);
out:
    rio_queue_close(q);
    if (f)
        rio_file_close(f);
}

static void test_full(rio_runtime_t *rt) {
    rio_file_t *f = open_ok(rt, "full", RWCT);
    rio_queue_t *q = queue_ok(rt, 4);
    if (!f || !q)
        goto out;
    char data[4][100];
    rio_op_t ops[4], done[4];
    for (int i = 0; i < 4; i++) {
        check_fill(data[i], 100, (uint64_t)i, 0);
        ops[i] = op_rw(RIO_OP_WRITE, f, data[i], 100, (uint64_t)i * 100, (uint64_t)i);
    }
    CHECK_EQ(rio_queue_push(q, ops, 3), 3);
    CHECK_ERR(rio_queue_push(q, ops + 2, 2), -EAGAIN, "full");
    CHECK_EQ(rio_queue_pending(q), 3);
    CHECK_EQ(rio_queue_push(q, ops + 3, 1), 1);
    CHECK_ERR(rio_queue_push(q, ops, 1), -EAGAIN, "rio_queue_push");
    /* Started ops still hold their slots until reaped. */
    CHECK_EQ(rio_queue_submit(q), 4);
    CHECK_ERR(rio_queue_push(q, ops, 1), -EAGAIN, "rio_queue_push");
    CHECK_EQ(reap_all(q, done, 4), 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(done[i].result, 100);
    CHECK_EQ(rio_queue_push(q, ops, 4), 4);
    CHECK_EQ(rio_queue_submit(q), 4);
    CHECK_EQ(reap_all(q, done, 4), 4);
    CHECK_EQ(rio_file_size(f), 400);
out:
    rio_queue_close(q);
    if (f)
        rio_file_close(f);
}

static void test_fd_readiness(rio_runtime_t *rt) {
    rio_file_t *f = open_ok(rt, "fd", RWCT);
    rio_queue_t *q = queue_ok(rt, 8);
    if (!f || !q)
        goto out;
    static char data[4096], back[3][4096];
    check_fill(data, sizeof data, 4, 0);
    CHECK_EQ(rio_file_write_at(f, data, sizeof data, 0), 4096);
    int fd = rio_queue_fd(q);
    CHECK(fd >= 0);
    CHECK_EQ(rio_queue_fd(q), fd);
    /* A poll-reap with nothing complete leaves the fd quiet. */
    CHECK_EQ(rio_queue_reap(q, NULL, 0, 0, 0), 0);
    CHECK(!readable(fd, 0));
    rio_op_t ops[3], done;
    for (int i = 0; i < 3; i++)
        ops[i] = op_rw(RIO_OP_READ, f, back[i], 4096, 0, (uint64_t)i);
    CHECK_EQ(rio_queue_push(q, ops, 3), 3);
    CHECK(!readable(fd, 20)); /* pushed, not submitted: nothing can complete */
    CHECK_EQ(rio_queue_submit(q), 3);
    int got = 0;
    for (int rounds = 0; got < 3 && rounds < 1000; rounds++) {
        CHECK(readable(fd, 5000));
        /* One at a time: the fd must stay readable while more wait. */
        int r = rio_queue_reap(q, &done, 1, 0, 0);
        CHECK(r == 0 || r == 1);
        if (r == 1) {
            CHECK_EQ(done.result, 4096);
            CHECK(check_verify(done.buf, 4096, 4, 0));
            got++;
        }
    }
    CHECK_EQ(got, 3);
    CHECK(!readable(fd, 0));
out:
    rio_queue_close(q);
    if (f)
        rio_file_close(f);
}

static void test_eof_error_and_syncs(rio_runtime_t *rt) {
    rio_file_t *f = open_ok(rt, "eof", RWCT);
    rio_file_t *w = open_ok(rt, "wonly", RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE);
    rio_queue_t *q = queue_ok(rt, 8);
    if (!f || !w || !q)
        goto out;
    static char data[1000], a[4096], b[100], c[100], d[1000];
    check_fill(data, sizeof data, 5, 0);
    CHECK_EQ(rio_file_write_at(f, data, sizeof data, 0), 1000);
    rio_op_t ops[6] = {
        op_rw(RIO_OP_READ, f, a, sizeof a, 0, 0),     /* short: end of file */
        op_rw(RIO_OP_READ, f, b, sizeof b, 5000, 1),  /* beyond the end: 0 */
        op_rw(RIO_OP_READ, w, c, sizeof c, 0, 2),     /* write-only: -EBADF */
        op_rw(RIO_OP_READ, f, d, sizeof d, 0, 3),     /* unaffected by op 2 */
        /* Syncs ignore buf, len and offset, whatever they hold. */
        op_rw(RIO_OP_FSYNC, f, (void *)(uintptr_t)1, 12345, UINT64_MAX, 4),
        op_rw(RIO_OP_FDATASYNC, f, NULL, 77, 3, 5),
    }, done[6];
    CHECK_EQ(rio_queue_push(q, ops, 6), 6);
    CHECK_EQ(rio_queue_submit(q), 6);
    CHECK_EQ(reap_all(q, done, 6), 6);
    int64_t want[6] = {1000, 0, -EBADF, 1000, 0, 0};
    for (int i = 0; i < 6; i++) {
        uint64_t k = done[i].user_data;
        CHECK(k < 6);
        if (k < 6)
            CHECK_EQ(done[i].result, want[k]);
    }
    CHECK(check_verify(a, 1000, 5, 0));
    CHECK(check_verify(d, 1000, 5, 0));
out:
    rio_queue_close(q);
    if (w)
        rio_file_close(w);
    if (f)
        rio_file_close(f);
}

/* Many ops in flight at close: it must wait for all of them before the
 * buffers (freed right after) can go; ASan and valgrind would see a late
 * write into freed memory. */
static void test_close_in_flight(rio_runtime_t *rt) {
    rio_file_t *f = open_ok(rt, "close", RWCT);
    if (!f)
        return;
    char *data = malloc(1 << 20);
    check_fill(data, 1 << 20, 6, 0);
    CHECK_EQ(rio_file_write_at(f, data, 1 << 20, 0), 1 << 20);
    for (int round = 0; round < 20; round++) {
        rio_queue_t *q = queue_ok(rt, 64);
        if (!q)
            break;
        char *bufs = malloc(64 * 16384);
        rio_op_t ops[64];
        for (int i = 0; i < 64; i++) {
            uint32_t op = (i % 4 == 3) ? RIO_OP_WRITE : RIO_OP_READ;
            ops[i] = op_rw(op, f, bufs + i * 16384, 16384, (uint64_t)(i % 64) * 16384, (uint64_t)i);
            if (op == RIO_OP_WRITE)
                memcpy(bufs + i * 16384, data + (i % 64) * 16384, 16384);
        }
        CHECK_EQ(rio_queue_push(q, ops, 64), 64);
        CHECK_EQ(rio_queue_submit(q), 64);
        CHECK_EQ(rio_queue_pending(q), 64);
        if (round % 2) {
            rio_op_t some[5];
            CHECK(rio_queue_reap(q, some, 5, 0, 0) >= 0);
        }
        /* Pushed but never submitted ops are discarded too. */
        if (round % 3 == 0) {
            /* Whether a slot is free, read before the push fills it (it
             * may take the last one). Completions free no slot; reaps do. */
            int room = rio_queue_pending(q) < 64;
            CHECK_EQ(rio_queue_push(q, ops, 1), room ? 1 : -EAGAIN);
        }
        CHECK_EQ(rio_queue_close(q), 0);
        free(bufs);
    }
    /* The writes put back what was there: the file is unchanged. */
    char *back = malloc(1 << 20);
    CHECK_EQ(rio_file_read_at(f, back, 1 << 20, 0), 1 << 20);
    CHECK(memcmp(back, data, 1 << 20) == 0);
    free(back);
    free(data);
    rio_file_close(f);
}

static void test_max_concurrent_ops(uint32_t backend) {
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.max_concurrent_ops = 2;
    rio_runtime_t *rt = check_runtime_open(backend, &cfg);
    if (!rt)
        return;
    rio_file_t *f = open_ok(rt, "limit", RWCT);
    rio_queue_t *q = queue_ok(rt, 16);
    if (f && q) {
        static char data[16][1000];
        rio_op_t ops[16], done[16];
        for (int i = 0; i < 16; i++) {
            check_fill(data[i], 1000, (uint64_t)i, 0);
            ops[i] = op_rw(RIO_OP_WRITE, f, data[i], 1000, (uint64_t)i * 1000, (uint64_t)i);
        }
        CHECK_EQ(rio_queue_push(q, ops, 16), 16);
        int started = rio_queue_submit(q);
        CHECK(started >= 0 && started <= 2);
        /* The rest start as permits come back, in later submits or reaps. */
        CHECK_EQ(reap_all(q, done, 16), 16);
        for (int i = 0; i < 16; i++)
            CHECK_EQ(done[i].result, 1000);
        char back[1000];
        for (int i = 0; i < 16; i++) {
            CHECK_EQ(rio_file_read_at(f, back, 1000, (uint64_t)i * 1000), 1000);
            CHECK(check_verify(back, 1000, (uint64_t)i, 0));
        }
    }
    rio_queue_close(q);
    if (f)
        rio_file_close(f);
    rio_runtime_close(rt);
}

struct worker {
    rio_runtime_t *rt;
    rio_file_t *f;
    rio_queue_t *q; /* for the moved queue */
    int id;
    const char *ctx;
};

static void *own_queue_worker(void *arg) {
    struct worker *w = arg;
    check_ctx = w->ctx;
    rio_queue_t *q = queue_ok(w->rt, 8);
    if (!q)
        return NULL;
    static _Thread_local char data[8][2048], back[8][2048];
    uint64_t base = (uint64_t)w->id * 8 * 2048;
    for (int round = 0; round < 20; round++) {
        rio_op_t ops[8], done[8];
        for (int i = 0; i < 8; i++) {
            check_fill(data[i], 2048, (uint64_t)(w->id * 1000 + round * 8 + i), 0);
            ops[i] = op_rw(RIO_OP_WRITE, w->f, data[i], 2048, base + (uint64_t)i * 2048, (uint64_t)i);
        }
        CHECK_EQ(rio_queue_push(q, ops, 8), 8);
        CHECK_EQ(rio_queue_submit(q), 8);
        CHECK_EQ(reap_all(q, done, 8), 8);
        for (int i = 0; i < 8; i++)
            ops[i] = op_rw(RIO_OP_READ, w->f, back[i], 2048, base + (uint64_t)i * 2048, (uint64_t)i);
        CHECK_EQ(rio_queue_push(q, ops, 8), 8);
        CHECK_EQ(rio_queue_submit(q), 8);
        CHECK_EQ(reap_all(q, done, 8), 8);
        for (int i = 0; i < 8; i++) {
            CHECK_EQ(done[i].result, 2048);
            CHECK(check_verify(back[i], 2048, (uint64_t)(w->id * 1000 + round * 8 + i), 0));
        }
    }
    CHECK_EQ(rio_queue_close(q), 0);
    return NULL;
}

static void test_four_threads(rio_runtime_t *rt) {
    rio_file_t *f = open_ok(rt, "threads", RWCT);
    if (!f)
        return;
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.rt = rt, .f = f, .id = i, .ctx = check_ctx};
        CHECK_EQ(pthread_create(&t[i], NULL, own_queue_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    rio_file_close(f);
}

static void *submit_there(void *arg) {
    struct worker *w = arg;
    check_ctx = w->ctx;
    CHECK_EQ(rio_queue_submit(w->q), 8);
    return NULL;
}

static void *reap_there(void *arg) {
    struct worker *w = arg;
    check_ctx = w->ctx;
    rio_op_t done[8];
    CHECK_EQ(reap_all(w->q, done, 8), 8);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(done[i].result, 512);
    return NULL;
}

/* Pushed on this thread, submitted on a second, reaped on a third (as a Go
 * or Python caller may do), then used here again. */
static void test_moved_between_threads(rio_runtime_t *rt) {
    rio_file_t *f = open_ok(rt, "moved", RWCT);
    rio_queue_t *q = queue_ok(rt, 8);
    if (!f || !q)
        goto out;
    static char data[8][512], back[512];
    rio_op_t ops[8];
    for (int i = 0; i < 8; i++) {
        check_fill(data[i], 512, (uint64_t)i, 0);
        ops[i] = op_rw(RIO_OP_WRITE, f, data[i], 512, (uint64_t)i * 512, (uint64_t)i);
    }
    CHECK_EQ(rio_queue_push(q, ops, 8), 8);
    struct worker w = {.q = q, .ctx = check_ctx};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, submit_there, &w), 0);
    pthread_join(t, NULL);
    CHECK_EQ(pthread_create(&t, NULL, reap_there, &w), 0);
    pthread_join(t, NULL);
    rio_op_t op = op_rw(RIO_OP_READ, f, back, sizeof back, 3 * 512, 0), done;
    CHECK_EQ(rio_queue_push(q, &op, 1), 1);
    CHECK_EQ(rio_queue_submit(q), 1);
    CHECK_EQ(rio_queue_reap(q, &done, 1, 1, -1), 1);
    CHECK(check_verify(back, sizeof back, 3, 0));
out:
    rio_queue_close(q);
    if (f)
        rio_file_close(f);
}

static void test_bad_input(rio_runtime_t *rt) {
    rio_queue_t *q = (rio_queue_t *)(uintptr_t)1;
    CHECK_ERR(rio_queue_open(NULL, 8, &q), -EINVAL, "rt");
    CHECK(q == NULL);
    CHECK_ERR(rio_queue_open(rt, 8, NULL), -EINVAL, "out");
    CHECK_ERR(rio_queue_open(rt, RIO_QUEUE_MAX_DEPTH + 1, &q), -EINVAL, "depth");
    CHECK(q == NULL);
    CHECK_EQ(rio_queue_open(rt, RIO_QUEUE_MAX_DEPTH, &q), 0);
    rio_queue_close(q);
    q = NULL;
    CHECK_EQ(rio_queue_open(rt, 0, &q), 0); /* the runtime's queue_depth */
    if (!q)
        return;
    CHECK_ERR(rio_queue_push(NULL, NULL, 1), -EINVAL, "q");
    CHECK_ERR(rio_queue_submit(NULL), -EINVAL, "q");
    CHECK_ERR(rio_queue_reap(NULL, NULL, 0, 0, 0), -EINVAL, "q");
    CHECK_ERR(rio_queue_pending(NULL), -EINVAL, "q");
    CHECK_ERR(rio_queue_fd(NULL), -EINVAL, "q");
    CHECK_EQ(rio_queue_close(NULL), 0);
    CHECK_ERR(rio_queue_push(q, NULL, 1), -EINVAL, "ops");
    CHECK_EQ(rio_queue_push(q, NULL, 0), 0);

    rio_file_t *f = open_ok(rt, "bad", RWCT);
    char buf[64];
    rio_op_t good = op_rw(RIO_OP_READ, f, buf, sizeof buf, 0, 0);
    rio_op_t ops[3] = {good, good, good};
    ops[1].opcode = 99;
    CHECK_ERR(rio_queue_push(q, ops, 3), -EINVAL, "ops[1].opcode");
    ops[1] = good;
    ops[2].flags = 4;
    CHECK_ERR(rio_queue_push(q, ops, 3), -EINVAL, "ops[2].flags");
    ops[2] = good;
    ops[0].buf = NULL;
    CHECK_ERR(rio_queue_push(q, ops, 3), -EINVAL, "ops[0].buf");
    ops[0] = good;
    ops[1].file = NULL;
    CHECK_ERR(rio_queue_push(q, ops, 3), -EINVAL, "ops[1].file");
    ops[1] = good;
    ops[2].offset = (uint64_t)INT64_MAX + 1;
    CHECK_ERR(rio_queue_push(q, ops, 3), -EINVAL, "ops[2]");
    CHECK_EQ(rio_queue_pending(q), 0); /* rejected pushes queued nothing */

    /* O_DIRECT misalignment names the op. */
    rio_file_t *d = open_ok(rt, "bad-direct", RWCT | RIO_OPEN_DIRECT);
    char *abuf = rio_buf_alloc(8192);
    if (d && abuf) {
        rio_op_t dops[2] = {op_rw(RIO_OP_WRITE, d, abuf, 4096, 0, 0), op_rw(RIO_OP_WRITE, d, abuf + 1, 4096, 0, 1)};
        CHECK_ERR(rio_queue_push(q, dops, 2), -EINVAL, "ops[1]");
        CHECK_MSG("O_DIRECT");
        dops[1] = op_rw(RIO_OP_READ, d, abuf + 4096, 100, 0, 1);
        CHECK_ERR(rio_queue_push(q, dops, 2), -EINVAL, "ops[1]");
        CHECK_EQ(rio_queue_pending(q), 0);
    }

    /* Reap: min above pending, NULL out, bad timeout. */
    CHECK_ERR(rio_queue_reap(q, NULL, 0, 1, 0), -EINVAL, "min");
    CHECK_EQ(rio_queue_push(q, &good, 1), 1);
    rio_op_t out[2];
    CHECK_ERR(rio_queue_reap(q, out, 2, 2, -1), -EINVAL, "min 2");
    CHECK_ERR(rio_queue_reap(q, NULL, 1, 0, 0), -EINVAL, "out");
    CHECK_ERR(rio_queue_reap(q, out, 1, 0, -2), -EINVAL, "timeout_us");
    CHECK_EQ(rio_queue_submit(q), 1);
    CHECK_EQ(rio_queue_reap(q, out, 2, 1, -1), 1);
    CHECK_EQ(out[0].result, 0); /* empty file */

    /* A full queue: a bad op is still reported as the bad op. */
    rio_queue_t *small = queue_ok(rt, 1);
    if (small) {
        CHECK_EQ(rio_queue_push(small, &good, 1), 1);
        ops[0] = good;
        ops[1] = good;
        ops[1].opcode = 7;
        CHECK_ERR(rio_queue_push(small, ops, 2), -EINVAL, "ops[1].opcode");
        CHECK_ERR(rio_queue_push(small, ops, 1), -EAGAIN, "rio_queue_push");
        rio_queue_close(small);
    }
    rio_buf_free(abuf);
    if (d)
        rio_file_close(d);
    rio_file_close(f);
    rio_queue_close(q);
}

/* A queue inherited through fork() belongs to the parent: every call in
 * the child is -EBUSY except close, which frees it without touching the
 * parent's ring or workers. The parent's queue keeps working. */
static rio_queue_t *fork_q;
static rio_file_t *fork_f;

static void inherited_queue_child(void) {
    rio_op_t op = op_rw(RIO_OP_FSYNC, fork_f, NULL, 0, 0, 0);
    CHECK_ERR(rio_queue_push(fork_q, &op, 1), -EBUSY, "fork");
    CHECK_ERR(rio_queue_submit(fork_q), -EBUSY, "rio_queue_submit");
    CHECK_ERR(rio_queue_reap(fork_q, &op, 1, 0, 0), -EBUSY, "rio_queue_reap");
    CHECK_ERR(rio_queue_pending(fork_q), -EBUSY, "rio_queue_pending");
    CHECK_ERR(rio_queue_fd(fork_q), -EBUSY, "rio_queue_fd");
    CHECK_EQ(rio_queue_close(fork_q), 0);
}

static void test_fork(rio_runtime_t *rt) {
    fork_f = open_ok(rt, "fork", RWCT);
    fork_q = queue_ok(rt, 4);
    if (!fork_f || !fork_q)
        goto out;
    static char data[4096];
    check_fill(data, sizeof data, 8, 0);
    rio_op_t op = op_rw(RIO_OP_WRITE, fork_f, data, sizeof data, 0, 5), done;
    CHECK_EQ(rio_queue_push(fork_q, &op, 1), 1);
    CHECK_EQ(rio_queue_submit(fork_q), 1);
    check_in_child_ex(inherited_queue_child, 1);
    CHECK_EQ(rio_queue_reap(fork_q, &done, 1, 1, -1), 1);
    CHECK_EQ(done.result, 4096);
    CHECK_EQ(done.user_data, 5);
out:
    rio_queue_close(fork_q);
    if (fork_f)
        rio_file_close(fork_f);
}

static void run_queue_tests(rio_runtime_t *rt) {
    test_push_submit_reap(rt);
    test_nothing_starts_before_submit(rt);
    test_full(rt);
    test_fd_readiness(rt);
    test_eof_error_and_syncs(rt);
    test_close_in_flight(rt);
    test_four_threads(rt);
    test_moved_between_threads(rt);
    test_bad_input(rt);
}

#if defined(__x86_64__)
/* The same tests where io_uring_setup is blocked: auto is the fallback. */
static void seccomp_child(void) {
    if (check_block_io_uring() != 0)
        return;
    check_ctx = "seccomp";
    rio_runtime_t *rt = NULL;
    CHECK_EQ(rio_runtime_open(NULL, &rt), 0);
    if (!rt)
        return;
    CHECK_EQ(rio_runtime_backend(rt), RIO_BACKEND_THREAD_POOL);
    run_queue_tests(rt);
    rio_runtime_close(rt);
}
#endif

int main(void) {
    check_tmpdir(dir, sizeof dir);
#if defined(__x86_64__)
    if (check_backend_enabled(RIO_BACKEND_THREAD_POOL))
        check_in_child(seccomp_child);
#endif
    check_for_each_backend(run_queue_tests);
    check_for_each_backend(test_fork);
    for (int i = 0; i < 2; i++) {
        if (!check_backend_enabled(check_backends[i]))
            continue;
        check_ctx = check_backend_name(check_backends[i]);
        test_max_concurrent_ops(check_backends[i]);
        check_ctx = "";
    }
    check_rmtree(dir);
    return check_summary("test_queue");
}
