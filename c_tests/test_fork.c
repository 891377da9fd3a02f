/* fork(): a child keeps using the runtime and files it inherited while 8
 * parent threads have rings and large O_DIRECT reads in flight and 4 more
 * append to a WAL; both backends, many rounds (RIO_FORK_ROUNDS; `make
 * stress` runs hundreds). The child never touches the parent's WAL (it
 * belongs to the parent); the parent reads every appended entry back at
 * the end. The child opens a WAL and a queue of its own and uses them from
 * 4 threads: their locks must not be the parent's, inherited mid-use from
 * a thread that was parked or waking at the fork (parking_lot's global
 * parking table was).
 *
 * The child reads, writes and batches (buffered and O_DIRECT) and checks
 * the data. Its reads go into "canary" buffers that exist at the same
 * addresses in the parent: if a child's SQE ever reached the parent's ring
 * (issue 11, bug 1: the child pushed into the inherited ring and the
 * parent's next submit ran it), the read would land in the parent's canary.
 * The parent checks its canaries, its own threads' data, and its in-flight
 * accounting afterwards. On the thread pool the child's batches need
 * workers the child does not have: the old code hung there (caught by a
 * deadline, then reported as a failure). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "check.h"

#define BIG (1u << 20)
#define DIRECT_BLOCKS 8
#define THREADS 8
#define APPENDERS 4
#define CANARY 0xAA
#define CHILD_DEADLINE_MS 20000

static char dir[256];
static rio_runtime_t *rt;
static rio_file_t *direct;
static atomic_int stop, parent_errors, parent_batches;
static rio_wal_t *wal;
static uint64_t appended[APPENDERS];
/* Read targets of the child; in the parent they must stay CANARY. */
static unsigned char *canary[2];

static rio_op_t op(uint32_t opcode, rio_file_t *f, void *buf, uint64_t len, uint64_t off) {
    return check_op(opcode, f, buf, len, off, 0);
}

/* n batched O_DIRECT reads of BIG bytes from block `first` on, checked. */
static int direct_reads_ok(int first, int n, unsigned char **bufs) {
    rio_op_t ops[4];
    for (int i = 0; i < n; i++)
        ops[i] = op(RIO_OP_READ, direct, bufs[i], BIG, (uint64_t)((first + i) % DIRECT_BLOCKS) * BIG);
    if (rio_submit_batch(rt, ops, (size_t)n) != n)
        return 0;
    for (int i = 0; i < n; i++) {
        uint64_t at = (uint64_t)((first + i) % DIRECT_BLOCKS) * BIG;
        if (ops[i].result != BIG || !check_verify(bufs[i], BIG, 77, at))
            return 0;
    }
    return 1;
}

/* Lone and batched buffered I/O on a file of its own, checked; batch reads
 * go into `into` (two buffers of 4096 bytes). */
static int file_io_ok(const char *name, uint64_t seed, unsigned char **into) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s-%s", dir, check_ctx, name);
    rio_file_t *f = NULL;
    if (rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE, 0644, &f) != 0)
        return 0;
    int ok = 1;
    static _Thread_local unsigned char lone[100000], back[100000], blocks[4][4096];
    check_fill(lone, sizeof lone, seed, 0);
    ok = ok && rio_file_write_at(f, lone, sizeof lone, 0) == (int64_t)sizeof lone;
    ok = ok && rio_file_read_at(f, back, sizeof back, 0) == (int64_t)sizeof back && memcmp(lone, back, sizeof lone) == 0;
    rio_op_t w[5];
    for (int i = 0; i < 4; i++) {
        check_fill(blocks[i], 4096, seed + 1 + i, 0);
        w[i] = op(RIO_OP_WRITE, f, blocks[i], 4096, 200000 + (uint64_t)i * 4096);
    }
    w[4] = op(RIO_OP_FDATASYNC, f, NULL, 0, 0);
    ok = ok && rio_submit_batch(rt, w, 5) == 5;
    for (int i = 0; ok && i < 5; i++)
        ok = w[i].result == (i < 4 ? 4096 : 0);
    rio_op_t r[2] = {op(RIO_OP_READ, f, into[0], 4096, 200000), op(RIO_OP_READ, f, into[1], 4096, 200000 + 2 * 4096)};
    ok = ok && rio_submit_batch(rt, r, 2) == 2 && r[0].result == 4096 && r[1].result == 4096;
    ok = ok && memcmp(into[0], blocks[0], 4096) == 0 && memcmp(into[1], blocks[2], 4096) == 0;
    return rio_file_close(f) == 0 && ok;
}

static void *parent_thread(void *arg) {
    int t = (int)(intptr_t)arg;
    unsigned char *bufs[3], *small[2];
    for (int i = 0; i < 3; i++)
        bufs[i] = rio_buf_alloc(BIG);
    for (int i = 0; i < 2; i++)
        small[i] = rio_buf_alloc(4096);
    char name[32];
    snprintf(name, sizeof name, "parent-%d", t);
    for (int i = t; !atomic_load(&stop); i++) {
        if (!direct_reads_ok(i, 3, bufs) || !file_io_ok(name, (uint64_t)t * 10, small))
            atomic_fetch_add(&parent_errors, 1);
        atomic_fetch_add(&parent_batches, 1);
    }
    for (int i = 0; i < 3; i++)
        rio_buf_free(bufs[i]);
    for (int i = 0; i < 2; i++)
        rio_buf_free(small[i]);
    return NULL;
}

/* WAL entry i of appender t: (t, i) then a pattern of i % 300 bytes. */
static size_t wal_entry(unsigned char *buf, uint64_t t, uint64_t i) {
    memcpy(buf, &t, 8);
    memcpy(buf + 8, &i, 8);
    check_fill(buf + 16, i % 300, t * 1000003 + i, 0);
    return 16 + i % 300;
}

static void *appender_thread(void *arg) {
    uint64_t t = (uint64_t)(intptr_t)arg;
    unsigned char buf[400];
    while (!atomic_load(&stop)) {
        size_t len = wal_entry(buf, t, appended[t]);
        if (rio_wal_append(wal, buf, len, NULL) != 0) {
            atomic_fetch_add(&parent_errors, 1);
            break;
        }
        appended[t]++;
    }
    return NULL;
}

/* Every appended entry is in the log, intact, in each appender's order. */
static void check_wal_entries(void) {
    rio_wal_reader_t *r = NULL;
    CHECK_EQ(rio_wal_reader_open(wal, 1, &r), 0);
    if (!r)
        return;
    uint64_t next[APPENDERS] = {0}, seq, t, i;
    const uint8_t *data;
    size_t len;
    unsigned char want[400];
    int bad = 0;
    while (rio_wal_reader_next(r, &seq, &data, &len) == 1) {
        memcpy(&t, data, 8);
        memcpy(&i, data + 8, 8);
        if (t >= APPENDERS || i != next[t] || len != wal_entry(want, t, i) || memcmp(data, want, len) != 0) {
            bad++;
            continue;
        }
        next[t]++;
    }
    rio_wal_reader_close(r);
    CHECK_EQ(bad, 0);
    for (int k = 0; k < APPENDERS; k++)
        CHECK_EQ(next[k], appended[k]);
}

#define CHILD_APPENDS 8
static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static rio_wal_t *child_wal;

/* A child thread: blocking appends (even t) or async appends then one wait
 * (odd t), and a queue of its own kept 4 deep with O_DIRECT reads. */
static void *child_thread(void *arg) {
    intptr_t t = (intptr_t)arg;
    unsigned char buf[400];
    uint64_t seq = 0;
    for (uint64_t i = 0; i < CHILD_APPENDS; i++) {
        size_t len = wal_entry(buf, (uint64_t)t, i);
        int rc = t % 2 ? rio_wal_append_async(child_wal, buf, len, &seq) : rio_wal_append(child_wal, buf, len, &seq);
        if (rc != 0)
            return (void *)1;
    }
    if (t % 2 && rio_wal_wait(child_wal, seq, -1) != 0)
        return (void *)1;
    rio_queue_t *q = NULL;
    if (rio_queue_open(rt, 4, &q) != 0)
        return (void *)1;
    unsigned char *bufs[4];
    rio_op_t ops[4], done[4];
    for (int i = 0; i < 4; i++) {
        bufs[i] = rio_buf_alloc(4096);
        ops[i] = op(RIO_OP_READ, direct, bufs[i], 4096, (uint64_t)((t + i) % DIRECT_BLOCKS) * BIG);
    }
    int ok = rio_queue_push(q, ops, 4) == 4 && rio_queue_submit(q) >= 0;
    for (int got = 0; ok && got < 4;) {
        int n = rio_queue_reap(q, done, 4, 1, -1);
        ok = n > 0;
        for (int k = 0; ok && k < n; k++)
            ok = done[k].result == 4096 && check_verify(done[k].buf, 4096, 77, done[k].offset);
        got += n > 0 ? n : 0;
    }
    ok = rio_queue_close(q) == 0 && ok;
    for (int i = 0; i < 4; i++)
        rio_buf_free(bufs[i]);
    return ok ? NULL : (void *)1;
}

/* The child's own WAL and queues, used from 4 threads, then replayed. */
static int child_wal_ok(int round) {
    char wal_dir[512];
    snprintf(wal_dir, sizeof wal_dir, "%s/%s-child-wal-%d", dir, check_ctx, round);
    if (rio_wal_open(rt, wal_dir, NULL, &child_wal) != 0)
        return 0;
    pthread_t threads[4];
    int ok = 1;
    for (intptr_t t = 0; t < 4; t++)
        ok = pthread_create(&threads[t], NULL, child_thread, (void *)t) == 0 && ok;
    for (int t = 0; t < 4; t++) {
        void *failed = NULL;
        pthread_join(threads[t], &failed);
        ok = ok && failed == NULL;
    }
    rio_wal_reader_t *r = NULL;
    uint64_t seq, count = 0;
    const uint8_t *data;
    size_t len;
    ok = ok && rio_wal_reader_open(child_wal, 1, &r) == 0;
    while (ok && rio_wal_reader_next(r, &seq, &data, &len) == 1)
        count++;
    if (r)
        rio_wal_reader_close(r);
    ok = ok && count == 4 * CHILD_APPENDS;
    return rio_wal_close(child_wal) == 0 && ok;
}

/* The child's work on the inherited runtime; its exit status. */
static int child_work(int round) {
    unsigned char *bufs[4];
    for (int i = 0; i < 4; i++)
        bufs[i] = rio_buf_alloc(BIG);
    char name[32];
    snprintf(name, sizeof name, "child-%d", round);
    int ok = file_io_ok(name, 1000 + (uint64_t)round, canary) && direct_reads_ok(round, 4, bufs) && child_wal_ok(round);
    rio_metrics_t m;
    m.struct_size = sizeof m;
    ok = ok && rio_runtime_metrics(rt, &m) == 0 && m.ops_in_flight == 0;
    for (int i = 0; i < 4; i++)
        rio_buf_free(bufs[i]);
    return ok ? 0 : 1;
}


/* Waits for the child; a child still running at the deadline is hung. */
static int wait_child(pid_t pid) {
    long long until = now_ms() + CHILD_DEADLINE_MS;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "  [%s] child hung\n", check_ctx);
            return -1;
        }
        usleep(2000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Forks a child that runs child_work(round) and exits with its verdict. */
static pid_t fork_child(int round) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        _exit(child_work(round));
    }
    CHECK(pid > 0);
    return pid;
}

static int canaries_intact(void) {
    for (int c = 0; c < 2; c++)
        for (size_t i = 0; i < 4096; i++)
            if (canary[c][i] != CANARY)
                return 0;
    return 1;
}

static void test_fork_rounds(rio_runtime_t *runtime) {
    rt = runtime;
    char path[512];
    snprintf(path, sizeof path, "%s/%s-direct", dir, check_ctx);
    unsigned char *content = malloc((size_t)DIRECT_BLOCKS * BIG);
    check_fill(content, (size_t)DIRECT_BLOCKS * BIG, 77, 0);
    FILE *fp = fopen(path, "w");
    CHECK(fp && fwrite(content, 1, (size_t)DIRECT_BLOCKS * BIG, fp) == (size_t)DIRECT_BLOCKS * BIG);
    if (fp)
        fclose(fp);
    free(content);
    direct = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_DIRECT, 0, &direct), 0);
    if (!direct)
        return;

    const char *env = getenv("RIO_FORK_ROUNDS");
    int rounds = env && atoi(env) > 0 ? atoi(env) : 10;
    atomic_store(&stop, 0);
    atomic_store(&parent_errors, 0);
    atomic_store(&parent_batches, 0);
    char wal_dir[512];
    snprintf(wal_dir, sizeof wal_dir, "%s/%s-wal", dir, check_ctx);
    wal = NULL;
    CHECK_EQ(rio_wal_open(rt, wal_dir, NULL, &wal), 0);
    if (!wal)
        return;
    pthread_t threads[THREADS], appenders[APPENDERS];
    for (int t = 0; t < THREADS; t++)
        CHECK_EQ(pthread_create(&threads[t], NULL, parent_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < APPENDERS; t++) {
        appended[t] = 0;
        CHECK_EQ(pthread_create(&appenders[t], NULL, appender_thread, (void *)(intptr_t)t), 0);
    }
    unsigned char *mine[4];
    for (int i = 0; i < 4; i++)
        mine[i] = rio_buf_alloc(BIG);
    for (int round = 0; round < rounds; round++) {
        memset(canary[0], CANARY, 4096);
        memset(canary[1], CANARY, 4096);
        /* The forking thread has a ring (and ring history) of its own. */
        CHECK(direct_reads_ok(round, 2, mine));
        int rc = wait_child(fork_child(round));
#ifdef __SANITIZE_ADDRESS__
        if (rc == -1) {
            /* gcc 12's libasan has no fork interceptor: its allocator's locks
             * are not taken across fork(), so a child can deadlock inside
             * ASan's malloc when a parent thread was allocating at that
             * instant (LLVM 17's libasan locks them). Such a hang is retried
             * once, visibly; a second one in the same round fails. The plain
             * build never retries. */
            fprintf(stderr, "  [%s] round %d: child hung under ASan; retrying once\n", check_ctx, round);
            rc = wait_child(fork_child(round));
        }
#endif
        CHECK_EQ(rc, 0);
        /* The parent's next submissions on this thread run only its own SQEs. */
        CHECK(direct_reads_ok(round + 1, 4, mine));
        unsigned char *small[2] = {mine[0], mine[1]};
        CHECK(file_io_ok("forker", (uint64_t)round, small));
        CHECK(canaries_intact());
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    uint64_t entries = 0;
    for (int t = 0; t < APPENDERS; t++) {
        pthread_join(appenders[t], NULL);
        entries += appended[t];
    }
    check_wal_entries();
    CHECK_EQ(rio_wal_close(wal), 0);
    for (int i = 0; i < 4; i++)
        rio_buf_free(mine[i]);
    CHECK_EQ(atomic_load(&parent_errors), 0);
    CHECK(atomic_load(&parent_batches) > 0);
    rio_metrics_t m;
    m.struct_size = sizeof m;
    CHECK_EQ(rio_runtime_metrics(rt, &m), 0);
    CHECK_EQ(m.ops_in_flight, 0);
    for (int k = 0; k < RIO_METRIC_OPS; k++)
        CHECK_EQ(m.ops[k].errors, 0);
    printf("  %s: %d forks, %d parent batches and %llu WAL entries verified\n", check_ctx, rounds,
           atomic_load(&parent_batches), (unsigned long long)entries);
    CHECK_EQ(rio_file_close(direct), 0);
}

int main(void) {
    check_tmpdir(dir, sizeof dir);
    canary[0] = rio_buf_alloc(4096);
    canary[1] = rio_buf_alloc(4096);
    check_for_each_backend(test_fork_rounds);
    rio_buf_free(canary[0]);
    rio_buf_free(canary[1]);
    check_rmtree(dir);
    return check_summary("test_fork");
}
