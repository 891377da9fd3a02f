/* Many threads hammering one file handle (positioned and vectored writes
 * to disjoint regions, reads verifying all data) and many threads doing
 * batches, on both backends, also with a concurrency bound far below the
 * thread count (callers beyond it wait, they do not fail). */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "check.h"

static char dir[256];

enum { THREADS = 12, REGION = 256 * 1024, ROUNDS = 3 };

#define RWCT (RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE)

struct shared {
    rio_runtime_t *rt;
    rio_file_t *f;
    pthread_barrier_t start;
    const char *ctx;
};

struct worker {
    struct shared *s;
    int id;
    int errors;     /* failed calls */
    int mismatches; /* bad data */
};

/* Writes the thread's region with chunks of varying sizes (write_at and
 * writev_at alternately), then reads it back, then reads every other
 * thread's region while they may still be rewriting theirs with the same
 * bytes. */
static void *hammer(void *p) {
    struct worker *w = p;
    struct shared *s = w->s;
    check_ctx = s->ctx;
    uint64_t base = (uint64_t)w->id * REGION;
    unsigned char *data = malloc(REGION), *back = malloc(REGION);
    check_fill(data, REGION, (uint64_t)w->id, 0);
    pthread_barrier_wait(&s->start);

    for (int round = 0; round < ROUNDS; round++) {
        size_t pos = 0;
        int k = 0;
        while (pos < REGION) {
            size_t chunk = 1 + (size_t)((w->id * 7919 + k * 104729 + round * 31) % 16384);
            if (chunk > REGION - pos)
                chunk = REGION - pos;
            int64_t n;
            if (k % 2 == 0) {
                n = rio_file_write_at(s->f, data + pos, chunk, base + pos);
            } else {
                size_t half = chunk / 2;
                struct iovec iov[2] = {{data + pos, half}, {data + pos + half, chunk - half}};
                n = rio_file_writev_at(s->f, iov, 2, base + pos);
            }
            if (n != (int64_t)chunk) {
                w->errors++;
                fprintf(stderr, "  thread %d: write of %zu at %llu returned %lld: %s\n", w->id, chunk,
                        (unsigned long long)(base + pos), (long long)n, rio_last_error_message());
                break;
            }
            pos += chunk;
            k++;
        }
        if (round == 1 && rio_file_datasync(s->f) != 0)
            w->errors++;

        memset(back, 0, REGION);
        if (rio_file_read_at(s->f, back, REGION, base) != REGION)
            w->errors++;
        else if (memcmp(back, data, REGION) != 0) {
            w->mismatches++;
            fprintf(stderr, "  thread %d: own region differs after round %d\n", w->id, round);
        }
    }

    /* Read the other regions in pieces; they only ever hold their pattern
     * or zeros (not yet written). */
    for (int other = 0; other < THREADS; other++) {
        uint64_t obase = (uint64_t)other * REGION;
        size_t piece = 4096 + (size_t)(other * 1000);
        for (size_t pos = 0; pos + piece <= REGION; pos += piece * 7) {
            /* Short when the last region is not written yet (EOF). */
            int64_t n = rio_file_read_at(s->f, back, piece, obase + pos);
            if (n < 0 || n > (int64_t)piece) {
                w->errors++;
                continue;
            }
            /* Each byte: the pattern, or 0 where the owner has not
             * written yet (a piece may straddle a write in progress). */
            int ok = 1;
            for (size_t i = 0; i < (size_t)n; i++)
                ok &= back[i] == check_pattern((uint64_t)other, pos + i) || back[i] == 0;
            if (!ok) {
                w->mismatches++;
                fprintf(stderr, "  thread %d: region %d at %zu holds foreign bytes\n", w->id, other, pos);
            }
        }
    }
    free(data);
    free(back);
    return NULL;
}

/* Reads metrics and capabilities while the hammer runs. */
struct observer {
    rio_runtime_t *rt;
    atomic_int stop;
    int errors;
    int reads;
};

static void *observe(void *p) {
    struct observer *o = p;
    static _Thread_local char buf[1 << 16];
    while (!o->stop) {
        memset(buf, 'X', sizeof buf);
        int64_t len = rio_runtime_metrics_prometheus(o->rt, buf, sizeof buf);
        if (len <= 0)
            o->errors++;
        else if (len < (int64_t)sizeof buf && (buf[len] != '\0' || !strstr(buf, "rio_ops_total")))
            o->errors++;
        rio_capabilities_t caps = {.struct_size = sizeof(rio_capabilities_t)};
        if (rio_runtime_capabilities(o->rt, &caps) != 0 || caps.backend != rio_runtime_backend(o->rt))
            o->errors++;
        o->reads++;
    }
    return NULL;
}

static void run_hammer(rio_runtime_t *rt, const char *ctx) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s-hammer", dir, ctx);
    struct shared s = {.rt = rt, .ctx = ctx};
    CHECK_EQ(rio_file_open(rt, path, RWCT, 0644, &s.f), 0);
    if (!s.f)
        return;
    pthread_barrier_init(&s.start, NULL, THREADS);
    pthread_t t[THREADS], obs;
    struct worker w[THREADS];
    struct observer o = {.rt = rt};
    CHECK_EQ(pthread_create(&obs, NULL, observe, &o), 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.s = &s, .id = i};
        CHECK_EQ(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(w[i].errors, 0);
        CHECK_EQ(w[i].mismatches, 0);
    }
    o.stop = 1;
    pthread_join(obs, NULL);
    CHECK_EQ(o.errors, 0);
    CHECK(o.reads > 0);
    pthread_barrier_destroy(&s.start);

    /* Everything, verified from the main thread. */
    CHECK_EQ(rio_file_size(s.f), (int64_t)THREADS * REGION);
    unsigned char *all = malloc((size_t)THREADS * REGION);
    CHECK_EQ(rio_file_read_at(s.f, all, (size_t)THREADS * REGION, 0), (int64_t)THREADS * REGION);
    int ok = 1;
    for (int i = 0; i < THREADS; i++)
        ok &= check_verify(all + (size_t)i * REGION, REGION, (uint64_t)i, 0);
    CHECK(ok);
    free(all);
    CHECK_EQ(rio_file_sync(s.f), 0);
    CHECK_EQ(rio_file_close(s.f), 0);
    unlink(path);
}

/* Threads doing batches: each thread writes its region of a shared file
 * (and a file of its own) in batches of 32 ops with a datasync, then
 * reads it back in batches. */
enum { BATCH = 32, BSZ = 1024, BATCHES = 8 };

static void *batcher(void *p) {
    struct worker *w = p;
    struct shared *s = w->s;
    check_ctx = s->ctx;
    size_t region = (size_t)BATCH * BSZ * BATCHES;
    uint64_t base = (uint64_t)w->id * region;
    unsigned char *data = malloc(region), *back = calloc(1, region);
    check_fill(data, region, 1000 + (uint64_t)w->id, 0);
    char own_path[600];
    snprintf(own_path, sizeof own_path, "%s/%s-own-%d", dir, s->ctx, w->id);
    rio_file_t *own = NULL;
    if (rio_file_open(s->rt, own_path, RWCT, 0644, &own) != 0)
        w->errors++;
    pthread_barrier_wait(&s->start);

    rio_op_t ops[2 * BATCH + 1];
    for (int b = 0; b < BATCHES && own; b++) {
        int n = 0;
        for (int i = 0; i < BATCH; i++) {
            size_t off = ((size_t)b * BATCH + (size_t)i) * BSZ;
            ops[n++] = (rio_op_t){.opcode = RIO_OP_WRITE, .file = s->f, .buf = data + off, .len = BSZ,
                                  .offset = base + off, .user_data = (uint64_t)i};
            ops[n++] = (rio_op_t){.opcode = RIO_OP_WRITE, .file = own, .buf = data + off, .len = BSZ,
                                  .offset = off, .user_data = (uint64_t)i + 1000};
        }
        ops[n++] = (rio_op_t){.opcode = RIO_OP_FDATASYNC, .file = own, .user_data = 7};
        if (rio_submit_batch(s->rt, ops, (size_t)n) != n) {
            w->errors++;
            continue;
        }
        for (int i = 0; i < n - 1; i++)
            if (ops[i].result != BSZ)
                w->errors++;
        if (ops[n - 1].result != 0 || ops[n - 1].user_data != 7)
            w->errors++;
    }
    for (int b = 0; b < BATCHES && own; b++) {
        int n = 0;
        for (int i = 0; i < BATCH; i++) {
            size_t off = ((size_t)b * BATCH + (size_t)i) * BSZ;
            ops[n++] = (rio_op_t){.opcode = RIO_OP_READ, .file = (i % 2) ? s->f : own,
                                  .buf = back + off, .len = BSZ,
                                  .offset = (i % 2) ? base + off : off};
        }
        if (rio_submit_batch(s->rt, ops, (size_t)n) != n) {
            w->errors++;
            continue;
        }
        for (int i = 0; i < n; i++)
            if (ops[i].result != BSZ)
                w->errors++;
    }
    if (memcmp(back, data, region) != 0) {
        w->mismatches++;
        fprintf(stderr, "  batch thread %d: region differs\n", w->id);
    }
    if (rio_file_close(own) != 0)
        w->errors++;
    unlink(own_path);
    free(data);
    free(back);
    return NULL;
}

static void run_batchers(rio_runtime_t *rt, const char *ctx) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s-batches", dir, ctx);
    struct shared s = {.rt = rt, .ctx = ctx};
    CHECK_EQ(rio_file_open(rt, path, RWCT, 0644, &s.f), 0);
    if (!s.f)
        return;
    enum { N = 8 };
    pthread_barrier_init(&s.start, NULL, N);
    pthread_t t[N];
    struct worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){.s = &s, .id = i};
        CHECK_EQ(pthread_create(&t[i], NULL, batcher, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(w[i].errors, 0);
        CHECK_EQ(w[i].mismatches, 0);
    }
    pthread_barrier_destroy(&s.start);
    size_t region = (size_t)BATCH * BSZ * BATCHES;
    CHECK_EQ(rio_file_size(s.f), (int64_t)(N * region));
    unsigned char *all = malloc(N * region);
    CHECK_EQ(rio_file_read_at(s.f, all, N * region, 0), (int64_t)(N * region));
    int ok = 1;
    for (int i = 0; i < N; i++)
        ok &= check_verify(all + (size_t)i * region, region, 1000 + (uint64_t)i, 0);
    CHECK(ok);
    free(all);
    CHECK_EQ(rio_file_close(s.f), 0);
    unlink(path);

    int64_t len = rio_runtime_metrics_prometheus(rt, NULL, 0);
    char *text = malloc((size_t)len + 1);
    CHECK_EQ(rio_runtime_metrics_prometheus(rt, text, (size_t)len + 1), len);
    CHECK(strstr(text, "rio_ops_in_flight 0\n") != NULL);
    free(text);
}


/* Signals while calls are in flight: EINTR never reaches the caller.
 * SIGUSR1 has a handler installed without SA_RESTART, and a signaller
 * thread keeps sending it to the I/O threads (which wait in
 * io_uring_enter or on the thread pool's completion). */
enum { SIG_THREADS = 4, SIG_ITERS = 40, SIG_LEN = 1 << 20 };

static atomic_int signals_caught;
static void on_sigusr1(int sig) {
    (void)sig;
    signals_caught++;
}

struct sig_shared {
    rio_runtime_t *rt;
    rio_file_t *f;
    atomic_int done;
    const char *ctx;
};

struct sig_worker {
    struct sig_shared *s;
    int id;
    int errors;
    pthread_t tid;
};

static void *sig_io(void *p) {
    struct sig_worker *w = p;
    check_ctx = w->s->ctx;
    unsigned char *data = malloc(SIG_LEN), *back = malloc(SIG_LEN);
    check_fill(data, SIG_LEN, 50 + (uint64_t)w->id, 0);
    uint64_t base = (uint64_t)w->id * SIG_LEN;
    for (int i = 0; i < SIG_ITERS; i++) {
        int64_t n = rio_file_write_at(w->s->f, data, SIG_LEN, base);
        if (n != SIG_LEN) {
            w->errors++;
            fprintf(stderr, "  signal thread %d: write returned %lld: %s\n", w->id, (long long)n,
                    rio_last_error_message());
        }
        int rc = (i % 4 == 0) ? rio_file_datasync(w->s->f) : 0;
        if (rc != 0) {
            w->errors++;
            fprintf(stderr, "  signal thread %d: datasync returned %d: %s\n", w->id, rc, rio_last_error_message());
        }
        memset(back, 0, SIG_LEN);
        n = rio_file_read_at(w->s->f, back, SIG_LEN, base);
        if (n != SIG_LEN || memcmp(back, data, SIG_LEN) != 0) {
            w->errors++;
            fprintf(stderr, "  signal thread %d: read returned %lld: %s\n", w->id, (long long)n,
                    rio_last_error_message());
        }
        rio_op_t ops[3] = {
            {.opcode = RIO_OP_WRITE, .file = w->s->f, .buf = data, .len = 4096, .offset = base},
            {.opcode = RIO_OP_READ, .file = w->s->f, .buf = back, .len = 8192, .offset = base + 8192},
            {.opcode = RIO_OP_FDATASYNC, .file = w->s->f},
        };
        if (rio_submit_batch(w->s->rt, ops, 3) != 3 || ops[0].result != 4096 || ops[1].result != 8192 ||
            ops[2].result != 0) {
            w->errors++;
            fprintf(stderr, "  signal thread %d: batch results %lld %lld %lld\n", w->id, (long long)ops[0].result,
                    (long long)ops[1].result, (long long)ops[2].result);
        }
    }
    free(data);
    free(back);
    return NULL;
}

static void run_signals(rio_runtime_t *rt, const char *ctx) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s-signals", dir, ctx);
    struct sig_shared s = {.rt = rt, .ctx = ctx};
    CHECK_EQ(rio_file_open(rt, path, RWCT, 0644, &s.f), 0);
    if (!s.f)
        return;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupted syscalls fail with EINTR */
    sigaction(SIGUSR1, &sa, &old);
    signals_caught = 0;

    struct sig_worker w[SIG_THREADS];
    for (int i = 0; i < SIG_THREADS; i++) {
        w[i] = (struct sig_worker){.s = &s, .id = i};
        CHECK_EQ(pthread_create(&w[i].tid, NULL, sig_io, &w[i]), 0);
    }
    /* Signal from this thread until the I/O threads are done, for at most
     * 2000 rounds: under valgrind a syscall can take longer than the pause,
     * and a thread retrying EINTR (as it must) would never get through a
     * storm that does not end. */
    int finished = 0, rounds = 0;
    struct timespec pause = {0, 100 * 1000};
    while (finished < SIG_THREADS) {
        for (int i = 0; i < SIG_THREADS && rounds < 2000; i++)
            if (w[i].tid)
                pthread_kill(w[i].tid, SIGUSR1);
        rounds++;
        nanosleep(&pause, NULL);
        for (int i = 0; i < SIG_THREADS; i++) {
            if (w[i].tid && pthread_tryjoin_np(w[i].tid, NULL) == 0) {
                w[i].tid = 0;
                finished++;
                CHECK_EQ(w[i].errors, 0);
            }
        }
    }
    sigaction(SIGUSR1, &old, NULL);
    CHECK(signals_caught > 0);
    CHECK_EQ(rio_file_close(s.f), 0);
    unlink(path);
}

/* The runtime handle is closed while other threads still do I/O on files
 * opened from it: the files keep the engine alive, every call completes. */
struct orphan_worker {
    rio_file_t *f;
    pthread_barrier_t *start;
    int id;
    int errors;
    const char *ctx;
};

static void *orphan_io(void *p) {
    struct orphan_worker *w = p;
    check_ctx = w->ctx;
    enum { LEN = 256 * 1024 };
    unsigned char *data = malloc(LEN), *back = malloc(LEN);
    check_fill(data, LEN, 77 + (uint64_t)w->id, 0);
    pthread_barrier_wait(w->start);
    for (int i = 0; i < 30; i++) {
        if (rio_file_write_at(w->f, data, LEN, (uint64_t)(i % 4) * LEN) != LEN)
            w->errors++;
        memset(back, 0, LEN);
        if (rio_file_read_at(w->f, back, LEN, (uint64_t)(i % 4) * LEN) != LEN || memcmp(back, data, LEN) != 0)
            w->errors++;
        if (i % 10 == 0 && rio_file_datasync(w->f) != 0)
            w->errors++;
    }
    free(data);
    free(back);
    return NULL;
}

static void run_close_runtime_midway(uint32_t backend) {
    rio_runtime_t *rt = check_runtime_open(backend, NULL);
    if (!rt)
        return;
    const char *ctx = check_backend_name(backend);
    check_ctx = ctx;
    enum { N = 6 };
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N + 1);
    struct orphan_worker w[N];
    pthread_t t[N];
    char paths[N][512];
    for (int i = 0; i < N; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s-orphan-%d", dir, ctx, i);
        w[i] = (struct orphan_worker){.start = &start, .id = i, .ctx = ctx};
        CHECK_EQ(rio_file_open(rt, paths[i], RWCT, 0644, &w[i].f), 0);
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, orphan_io, &w[i]), 0);
    pthread_barrier_wait(&start);
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
    rio_runtime_close(rt); /* while the threads are busy */
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(w[i].errors, 0);
        CHECK_EQ(rio_file_close(w[i].f), 0);
        unlink(paths[i]);
    }
    pthread_barrier_destroy(&start);
    check_ctx = "";
}

int main(void) {
    unsetenv("RUSTFS_ENABLE_IO_URING");
    unsetenv("RUSTFS_MAX_CONCURRENT_FILE_OPS");
    check_tmpdir(dir, sizeof dir);
    for (int i = 0; i < 2; i++) {
        uint32_t b = check_backends[i];
        if (!check_backend_enabled(b))
            continue;
        char ctx[64];
        /* Default settings. */
        rio_runtime_t *rt = check_runtime_open(b, NULL);
        if (!rt)
            continue;
        snprintf(ctx, sizeof ctx, "%s", check_backend_name(b));
        check_ctx = ctx;
        run_hammer(rt, ctx);
        run_batchers(rt, ctx);
        run_signals(rt, ctx);
        check_ctx = "";
        rio_runtime_close(rt);

        /* A bound of 3 ops in flight and a tiny ring for 12 threads; batches
         * of 65 ops exceed both. */
        rio_runtime_config_t cfg;
        rio_runtime_config_default(&cfg);
        cfg.queue_depth = 4;
        cfg.max_concurrent_ops = 3;
        cfg.worker_threads = 2;
        rt = check_runtime_open(b, &cfg);
        if (!rt)
            continue;
        snprintf(ctx, sizeof ctx, "%s-bounded", check_backend_name(b));
        check_ctx = ctx;
        run_hammer(rt, ctx);
        run_batchers(rt, ctx);
        check_ctx = "";
        rio_runtime_close(rt);
    }
    for (int i = 0; i < 2; i++)
        if (check_backend_enabled(check_backends[i]))
            run_close_runtime_midway(check_backends[i]);
    check_rmtree(dir);
    return check_summary("test_threads");
}
