/* rio_wal_append_async / rio_wal_wait / rio_wal_durable_seq on both
 * backends: bad input, ordering and durability, timeouts (a slow sync via
 * the fault API), poisoning (every waiter of the failed batch and after
 * gets -EIO, nothing after it is acknowledged), several threads appending
 * and waiting, the RIO_WAL_MAX_BATCH bound, and a handle inherited through
 * fork (-EBUSY in the child, close frees it, the parent keeps the log). */
#include <pthread.h>
#include <sys/wait.h>

#include "check.h"

static char dir[256];
static unsigned counter;

#define PATH_CAP 300

/* Opens a log in a new directory, whose path goes into `path` (PATH_CAP
 * bytes); NULL (a failed check) when it cannot. */
static rio_wal_t *open_fresh(rio_runtime_t *rt, char *path) {
    snprintf(path, PATH_CAP, "%s/wal%u", dir, counter++);
    rio_wal_t *w = NULL;
    CHECK_EQ(rio_wal_open(rt, path, NULL, &w), 0);
    return w;
}

static rio_runtime_t *faulty_runtime(uint32_t backend) {
    rio_runtime_config_t rcfg;
    rio_runtime_config_default(&rcfg);
    rcfg.fault_injection = true;
    return check_runtime_open(backend, &rcfg);
}

static void add_fault(rio_runtime_t *rt, uint32_t target, uint32_t action, int error, uint64_t delay_us) {
    rio_fault_t f;
    rio_fault_default(&f);
    f.target = target;
    f.action = action;
    f.error = error;
    f.delay_us = delay_us;
    CHECK_EQ(rio_runtime_add_fault(rt, &f), 0);
}

static void test_bad_input(rio_runtime_t *rt) {
    char path[PATH_CAP];
    uint64_t seq = 99;
    CHECK_ERR(rio_wal_append_async(NULL, "x", 1, &seq), -EINVAL, "rio_wal_append_async");
    CHECK_ERR(rio_wal_wait(NULL, 1, -1), -EINVAL, "rio_wal_wait");
    CHECK_EQ(rio_wal_durable_seq(NULL), 0);
    rio_wal_t *w = open_fresh(rt, path);
    if (!w)
        return;
    CHECK_ERR(rio_wal_append_async(w, NULL, 5, &seq), -EINVAL, "data");
    CHECK_ERR(rio_wal_append_async(w, "x", (size_t)RIO_WAL_MAX_ENTRY + 1, &seq), -EINVAL, "RIO_WAL_MAX_ENTRY");
    CHECK_ERR(rio_wal_wait(w, 0, -1), -EINVAL, "never assigned");
    CHECK_ERR(rio_wal_wait(w, 1, -1), -EINVAL, "never assigned");
    CHECK_EQ(rio_wal_append_async(w, "x", 1, &seq), 0);
    CHECK_EQ(seq, 1);
    CHECK_ERR(rio_wal_wait(w, 2, 0), -EINVAL, "never assigned");
    CHECK_ERR(rio_wal_wait(w, 1, -2), -EINVAL, "timeout_us");
    CHECK_ERR(rio_wal_wait(w, 1, INT64_MIN), -EINVAL, "timeout_us");
    CHECK_EQ(rio_wal_wait(w, 1, RIO_WAL_WAIT_FOREVER), 0);
    CHECK_EQ(rio_wal_append_async(w, NULL, 0, NULL), 0); /* empty entry, no seq_out */
    CHECK_EQ(rio_wal_wait(w, 2, 10 * 1000 * 1000), 0);
    /* The batch bound: checked before the entries are read. */
    rio_slice_t one = {"e", 1};
    CHECK_ERR(rio_wal_append_batch(w, &one, (size_t)RIO_WAL_MAX_BATCH + 1, &seq), -EINVAL, "RIO_WAL_MAX_BATCH");
    CHECK_EQ(rio_wal_last_seq(w), 2);
    CHECK_EQ(rio_wal_close(w), 0);
}

static void test_async_order_and_durability(rio_runtime_t *rt) {
    char path[PATH_CAP];
    rio_wal_t *w = open_fresh(rt, path);
    if (!w)
        return;
    enum { N = 2000 };
    uint64_t seq = 0, last = 0;
    int bad = 0;
    for (uint64_t i = 1; i <= N; i++) {
        char buf[64];
        int len = snprintf(buf, sizeof buf, "entry %llu", (unsigned long long)i);
        if (rio_wal_append_async(w, buf, (size_t)len, &seq) != 0 || seq != i)
            bad++;
        last = seq;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(rio_wal_wait(w, N / 2, -1), 0);
    CHECK(rio_wal_durable_seq(w) >= N / 2);
    CHECK_EQ(rio_wal_wait(w, last, -1), 0);
    CHECK_EQ(rio_wal_durable_seq(w), N);
    CHECK_EQ(rio_wal_last_seq(w), N);
    CHECK_EQ(rio_wal_close(w), 0);
    /* Everything acknowledged is there after reopening, in order. */
    CHECK_EQ(rio_wal_open(rt, path, NULL, &w), 0);
    if (!w)
        return;
    rio_wal_reader_t *r = NULL;
    CHECK_EQ(rio_wal_reader_open(w, 1, &r), 0);
    uint64_t s, want = 1;
    const uint8_t *data;
    size_t len;
    bad = 0;
    while (r && rio_wal_reader_next(r, &s, &data, &len) == 1) {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "entry %llu", (unsigned long long)want);
        if (s != want || len != (size_t)n || memcmp(buf, data, len) != 0)
            bad++;
        want++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(want - 1, N);
    rio_wal_reader_close(r);
    CHECK_EQ(rio_wal_close(w), 0);
}

static void test_timeout(uint32_t backend) {
    rio_runtime_t *rt = faulty_runtime(backend);
    if (!rt)
        return;
    char path[PATH_CAP];
    rio_wal_t *w = open_fresh(rt, path);
    if (w) {
        add_fault(rt, RIO_FAULT_ON_FDATASYNC, RIO_FAULT_DELAY, 0, 400 * 1000);
        uint64_t seq = 0;
        CHECK_EQ(rio_wal_append_async(w, "slow", 4, &seq), 0);
        CHECK_ERR(rio_wal_wait(w, seq, 20 * 1000), -ETIMEDOUT, "not acknowledged");
        CHECK_ERR(rio_wal_wait(w, seq, 0), -ETIMEDOUT, "rio_wal_wait");
        CHECK(rio_wal_durable_seq(w) < seq);
        CHECK_EQ(rio_wal_wait(w, seq, -1), 0);
        CHECK_EQ(rio_wal_durable_seq(w), seq);
        CHECK_EQ(rio_wal_close(w), 0);
    }
    rio_runtime_close(rt);
}

static void test_poisoned(uint32_t backend, uint32_t target) {
    rio_runtime_t *rt = faulty_runtime(backend);
    if (!rt)
        return;
    char path[PATH_CAP];
    rio_wal_t *w = open_fresh(rt, path);
    if (w) {
        uint64_t good = 0, seq = 0, last = 0;
        CHECK_EQ(rio_wal_append_async(w, "good", 4, &good), 0);
        CHECK_EQ(rio_wal_wait(w, good, -1), 0);
        add_fault(rt, target, RIO_FAULT_ERROR, EIO, 0);
        for (int i = 0; i < 300; i++)
            if (rio_wal_append_async(w, "doomed", 6, &seq) == 0)
                last = seq;
        CHECK(last > good);
        int not_eio = 0;
        for (uint64_t s = good + 1; s <= last; s++)
            if (rio_wal_wait(w, s, -1) != -EIO)
                not_eio++;
        CHECK_EQ(not_eio, 0);
        CHECK_ERR(rio_wal_wait(w, last, 1000), -EIO, "Input/output error");
        CHECK_EQ(rio_wal_wait(w, good, -1), 0); /* acknowledged before the failure */
        CHECK_EQ(rio_wal_durable_seq(w), good);
        CHECK_EQ(rio_wal_last_seq(w), good);
        CHECK_ERR(rio_wal_append_async(w, "more", 4, &seq), -EIO, "poisoned");
        CHECK_ERR(rio_wal_close(w), -EIO, "rio_wal_close");
    }
    rio_runtime_close(rt);
}

struct worker {
    rio_wal_t *w;
    int failures;
};

static void *append_and_wait(void *arg) {
    struct worker *wk = arg;
    uint64_t seq = 0;
    for (int i = 0; i < 400; i++) {
        if (rio_wal_append_async(wk->w, "threaded", 8, &seq) != 0)
            wk->failures++;
        if (i % 50 == 49 && (rio_wal_wait(wk->w, seq, -1) != 0 || rio_wal_durable_seq(wk->w) < seq))
            wk->failures++;
    }
    if (rio_wal_wait(wk->w, seq, -1) != 0)
        wk->failures++;
    return NULL;
}

static void test_threads(rio_runtime_t *rt) {
    char path[PATH_CAP];
    rio_wal_t *w = open_fresh(rt, path);
    if (!w)
        return;
    enum { T = 4 };
    pthread_t th[T];
    struct worker wk[T];
    for (int i = 0; i < T; i++) {
        wk[i] = (struct worker){w, 0};
        pthread_create(&th[i], NULL, append_and_wait, &wk[i]);
    }
    int failures = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        failures += wk[i].failures;
    }
    CHECK_EQ(failures, 0);
    CHECK_EQ(rio_wal_durable_seq(w), T * 400);
    CHECK_EQ(rio_wal_close(w), 0);
}

static void test_fork(rio_runtime_t *rt) {
    char path[PATH_CAP];
    rio_wal_t *w = open_fresh(rt, path);
    if (!w)
        return;
    uint64_t seq = 0;
    CHECK_EQ(rio_wal_append_async(w, "parent", 6, &seq), 0); /* the flusher runs */
    CHECK_EQ(rio_wal_wait(w, seq, -1), 0);
    rio_wal_reader_t *r = NULL;
    CHECK_EQ(rio_wal_reader_open(w, 1, &r), 0);
    /* The child reports through a pipe, not its exit status: under valgrind
     * a forked child exits with the error code for what it must leak (the
     * parent's WAL state and pool workers, which it may not touch). */
    int report[2];
    CHECK_EQ(pipe(report), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        int ok = 1;
        const uint8_t *data;
        size_t len;
        uint64_t s;
        rio_slice_t one = {"c", 1};
        ok &= rio_wal_append(w, "child", 5, &s) == -EBUSY;
        ok &= strstr(rio_last_error_message(), "fork") != NULL;
        ok &= rio_wal_append_async(w, "child", 5, &s) == -EBUSY;
        ok &= rio_wal_append_batch(w, &one, 1, &s) == -EBUSY;
        ok &= rio_wal_wait(w, seq, -1) == -EBUSY;
        ok &= rio_wal_sync(w) == -EBUSY;
        ok &= rio_wal_truncate_before(w, 1) == -EBUSY;
        ok &= rio_wal_last_seq(w) == 0 && rio_wal_durable_seq(w) == 0;
        ok &= rio_wal_reader_next(r, &s, &data, &len) == -EBUSY;
        rio_wal_reader_t *r2 = NULL;
        ok &= rio_wal_reader_open(w, 1, &r2) == -EBUSY && r2 == NULL;
        rio_wal_reader_close(r);
        ok &= rio_wal_close(w) == 0; /* frees without touching the log */
        char verdict = ok ? 'Y' : 'N';
        (void)!write(report[1], &verdict, 1);
        _exit(ok ? 0 : 1);
    }
    close(report[1]);
    char verdict = 0;
    CHECK_EQ(read(report[0], &verdict, 1), 1);
    close(report[0]);
    CHECK_EQ(verdict, 'Y');
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    /* The parent still owns the log and its lock. */
    rio_wal_t *again = NULL;
    CHECK_EQ(rio_wal_open(rt, path, NULL, &again), -EBUSY);
    CHECK_EQ(rio_wal_append(w, "after", 5, &seq), 0);
    CHECK_EQ(seq, 2);
    rio_wal_reader_close(r);
    CHECK_EQ(rio_wal_close(w), 0);
}

static void run_all(rio_runtime_t *rt) {
    uint32_t backend = (uint32_t)rio_runtime_backend(rt);
    test_bad_input(rt);
    test_async_order_and_durability(rt);
    test_threads(rt);
    test_fork(rt);
    test_timeout(backend);
    test_poisoned(backend, RIO_FAULT_ON_FDATASYNC);
    test_poisoned(backend, RIO_FAULT_ON_WRITE);
}

int main(void) {
    unsetenv("RUSTFS_ENABLE_IO_URING");
    unsetenv("RUSTFS_MAX_CONCURRENT_FILE_OPS");
    check_tmpdir(dir, sizeof dir);
    check_for_each_backend(run_all);
    check_rmtree(dir);
    return check_summary("test_wal_async");
}
