/* rio_wal_*: config defaults and versioning, open/append/append_batch/sync/
 * last_seq/truncate_before/readers/close, recovery of a torn tail in both
 * recovery modes, concurrent appenders, poisoning through fault injection,
 * and the bad inputs of every function, on both backends. */
#include <dirent.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char dir[256];

/* A log directory inside the scratch dir, unique per backend. */
static const char *wpath(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s-%s", dir, check_ctx, name);
    return buf;
}

static rio_wal_t *open_ok(rio_runtime_t *rt, const char *path, const rio_wal_config_t *cfg) {
    rio_wal_t *w = NULL;
    CHECK_EQ(rio_wal_open(rt, path, cfg, &w), 0);
    CHECK(w != NULL);
    return w;
}

/* Counts the segment files (*.wal) of a log; the newest one's path goes to `last`. */
static int count_segments(const char *path, char *last, size_t cap) {
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    char newest[256] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".wal") == 0) {
            n++;
            if (strcmp(e->d_name, newest) > 0)
                snprintf(newest, sizeof newest, "%s", e->d_name);
        }
    }
    closedir(d);
    if (last)
        snprintf(last, cap, "%s/%s", path, newest);
    return n;
}

/* Reads every entry from `from`; checks each has the pattern of its seq
 * and `len_of(seq)` bytes; returns how many were read. */
static uint64_t replay_check(rio_wal_t *w, uint64_t from, size_t (*len_of)(uint64_t), uint64_t *first) {
    rio_wal_reader_t *r = NULL;
    CHECK_EQ(rio_wal_reader_open(w, from, &r), 0);
    if (!r)
        return 0;
    uint64_t n = 0, seq = 0, prev = 0;
    const uint8_t *data = NULL;
    size_t len = 0;
    int rc, ok = 1;
    while ((rc = rio_wal_reader_next(r, &seq, &data, &len)) == 1) {
        if (n == 0 && first)
            *first = seq;
        ok &= (n == 0 || seq == prev + 1) && len == len_of(seq) && check_verify(data, len, seq, 0);
        prev = seq;
        n++;
    }
    CHECK_EQ(rc, 0);
    CHECK(ok);
    rio_wal_reader_close(r);
    return n;
}

static size_t len_by_seq(uint64_t seq) { return (size_t)(seq * 37 % 500); }

static int append_pattern(rio_wal_t *w, uint64_t seq) {
    char buf[512];
    size_t len = len_by_seq(seq);
    check_fill(buf, len, seq, 0);
    uint64_t got = 0;
    int rc = rio_wal_append(w, buf, len, &got);
    return rc == 0 ? (got == seq ? 0 : -1000) : rc;
}

static void test_config(void) {
    rio_wal_config_t cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    rio_wal_config_default(&cfg);
    CHECK_EQ(cfg.struct_size, sizeof(rio_wal_config_t));
    CHECK_EQ(cfg.batch_size, 256);
    CHECK_EQ(cfg.flush_timeout_us, 100);
    CHECK(cfg.sync_after_batch == true);
    CHECK_EQ(cfg.buffer_size, 4u << 20);
    CHECK_EQ(cfg.segment_size, 64u << 20);
    CHECK_EQ(cfg.recovery_mode, RIO_WAL_RECOVER_TOLERATE_TAIL);
    rio_wal_config_default(NULL); /* ignored */
    CHECK_EQ(RIO_WAL_MAX_ENTRY, 64 << 20);
}

static void test_open_errors(rio_runtime_t *rt) {
    char path[512], file[512];
    wpath(path, sizeof path, "open-errors");
    rio_wal_config_t cfg;
    rio_wal_t *w = (rio_wal_t *)(uintptr_t)1;

    CHECK_ERR(rio_wal_open(rt, path, NULL, NULL), -EINVAL, "out");
    CHECK_ERR(rio_wal_open(NULL, path, NULL, &w), -EINVAL, "rt");
    CHECK(w == NULL);
    w = (rio_wal_t *)(uintptr_t)1;
    CHECK_ERR(rio_wal_open(rt, NULL, NULL, &w), -EINVAL, "dir");
    CHECK(w == NULL);

    /* struct_size: too small, larger than ours. */
    uint32_t sizes[] = {0, 2, sizeof(rio_wal_config_t) + 8, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        rio_wal_config_default(&cfg);
        cfg.struct_size = sizes[i];
        CHECK_ERR(rio_wal_open(rt, path, &cfg, &w), -EINVAL, "struct_size");
        CHECK(w == NULL);
    }
    /* Unknown recovery modes. */
    uint32_t modes[] = {2, 7, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        rio_wal_config_default(&cfg);
        cfg.recovery_mode = modes[i];
        CHECK_ERR(rio_wal_open(rt, path, &cfg, &w), -EINVAL, "recovery_mode");
        CHECK_MSG("rio_wal_open");
    }
    /* Out-of-range fields, each named. */
    rio_wal_config_default(&cfg);
    cfg.batch_size = 0;
    CHECK_ERR(rio_wal_open(rt, path, &cfg, &w), -EINVAL, "batch_size");
    rio_wal_config_default(&cfg);
    cfg.segment_size = 100;
    CHECK_ERR(rio_wal_open(rt, path, &cfg, &w), -EINVAL, "segment_size");
    rio_wal_config_default(&cfg);
    cfg.buffer_size = 0;
    CHECK_ERR(rio_wal_open(rt, path, &cfg, &w), -EINVAL, "buffer_size");
    rio_wal_config_default(&cfg);
    cfg.flush_timeout_us = 5000000;
    CHECK_ERR(rio_wal_open(rt, path, &cfg, &w), -EINVAL, "flush_timeout_us");
    /* A bool byte that is neither 0 nor 1. */
    rio_wal_config_default(&cfg);
    ((unsigned char *)&cfg)[offsetof(rio_wal_config_t, sync_after_batch)] = 2;
    CHECK_ERR(rio_wal_open(rt, path, &cfg, &w), -EINVAL, "sync_after_batch");

    /* A regular file where the directory should be. */
    wpath(file, sizeof file, "plain-file");
    FILE *fp = fopen(file, "w");
    if (fp)
        fclose(fp);
    CHECK_ERR(rio_wal_open(rt, file, NULL, &w), -ENOTDIR, "plain-file");

    /* An older caller's shorter struct: the missing fields take defaults. */
    rio_wal_config_default(&cfg);
    cfg.struct_size = offsetof(rio_wal_config_t, buffer_size);
    cfg.batch_size = 8;
    w = open_ok(rt, path, &cfg);
    /* The same log twice at once: -EBUSY naming the directory. */
    rio_wal_t *again = (rio_wal_t *)(uintptr_t)1;
    CHECK_ERR(rio_wal_open(rt, path, NULL, &again), -EBUSY, path);
    CHECK(again == NULL);
    CHECK_EQ(rio_wal_close(w), 0);
    CHECK_EQ(rio_wal_close(NULL), 0);
}

static void test_append_and_replay(rio_runtime_t *rt) {
    char path[512];
    wpath(path, sizeof path, "append");
    rio_wal_t *w = open_ok(rt, path, NULL);
    if (!w)
        return;
    CHECK_EQ(rio_wal_last_seq(w), 0);
    for (uint64_t seq = 1; seq <= 20; seq++)
        CHECK_EQ(append_pattern(w, seq), 0);
    CHECK_EQ(rio_wal_last_seq(w), 20);

    /* Bad inputs: nothing is appended, *seq_out is untouched. */
    char byte = 1;
    uint64_t seq = 77;
    CHECK_ERR(rio_wal_append(NULL, &byte, 1, &seq), -EINVAL, "w");
    CHECK_ERR(rio_wal_append(w, NULL, 5, &seq), -EINVAL, "data");
    CHECK_ERR(rio_wal_append(w, &byte, (size_t)RIO_WAL_MAX_ENTRY + 1, &seq), -EINVAL, "RIO_WAL_MAX_ENTRY");
    CHECK_ERR(rio_wal_append(w, &byte, SIZE_MAX, &seq), -EINVAL, "rio_wal_append");
    CHECK_EQ(seq, 77);
    CHECK_EQ(rio_wal_last_seq(NULL), 0);
    CHECK_EQ(rio_wal_last_seq(w), 20);

    /* Replay: from 0 (= 1), from the middle, past the end. */
    uint64_t first = 0;
    CHECK_EQ(replay_check(w, 0, len_by_seq, &first), 20);
    CHECK_EQ(first, 1);
    CHECK_EQ(replay_check(w, 15, len_by_seq, &first), 6);
    CHECK_EQ(first, 15);
    CHECK_EQ(replay_check(w, 21, len_by_seq, NULL), 0);

    /* seq_out may be NULL; an empty entry is an entry (data may be NULL). */
    CHECK_EQ(rio_wal_append(w, NULL, 0, NULL), 0);
    CHECK_EQ(rio_wal_last_seq(w), 21);
    rio_wal_reader_t *r = NULL;
    CHECK_EQ(rio_wal_reader_open(w, 21, &r), 0);
    const uint8_t *data = NULL;
    size_t len = 99;
    CHECK_EQ(rio_wal_reader_next(r, &seq, &data, &len), 1);
    CHECK(seq == 21 && len == 0);
    rio_wal_reader_close(r);

    CHECK_EQ(rio_wal_sync(w), 0);
    CHECK_ERR(rio_wal_sync(NULL), -EINVAL, "rio_wal_sync");
    CHECK_EQ(rio_wal_close(w), 0);

    /* Reopen: the sequence continues. */
    w = open_ok(rt, path, NULL);
    if (!w)
        return;
    CHECK_EQ(rio_wal_last_seq(w), 21);
    CHECK_EQ(append_pattern(w, 22), 0);
    CHECK_EQ(replay_check(w, 22, len_by_seq, NULL), 1);
    CHECK_EQ(rio_wal_close(w), 0);
}

static void test_append_batch(rio_runtime_t *rt) {
    char path[512];
    wpath(path, sizeof path, "batch");
    rio_wal_t *w = open_ok(rt, path, NULL);
    if (!w)
        return;
    CHECK_EQ(append_pattern(w, 1), 0);
    char bufs[5][512];
    rio_slice_t slices[5];
    for (uint64_t i = 0; i < 5; i++) {
        uint64_t seq = i + 2;
        check_fill(bufs[i], len_by_seq(seq), seq, 0);
        slices[i].data = bufs[i];
        slices[i].len = len_by_seq(seq);
    }
    uint64_t first = 0;
    CHECK_EQ(rio_wal_append_batch(w, slices, 5, &first), 0);
    CHECK_EQ(first, 2);
    CHECK_EQ(rio_wal_last_seq(w), 6);
    CHECK_EQ(rio_wal_append_batch(w, slices, 1, NULL), 0); /* first_seq_out may be NULL */
    CHECK_EQ(rio_wal_last_seq(w), 7);

    /* Bad inputs: nothing is appended. */
    first = 99;
    CHECK_ERR(rio_wal_append_batch(NULL, slices, 5, &first), -EINVAL, "w");
    CHECK_ERR(rio_wal_append_batch(w, NULL, 5, &first), -EINVAL, "entries");
    CHECK_ERR(rio_wal_append_batch(w, slices, 0, &first), -EINVAL, "n is 0");
    rio_slice_t bad[2] = {{bufs[0], 3}, {NULL, 4}};
    CHECK_ERR(rio_wal_append_batch(w, bad, 2, &first), -EINVAL, "entries[1].data");
    rio_slice_t huge[1] = {{bufs[0], (size_t)RIO_WAL_MAX_ENTRY + 1}};
    CHECK_ERR(rio_wal_append_batch(w, huge, 1, &first), -EINVAL, "entries[0]");
    CHECK_EQ(first, 99);
    CHECK_EQ(rio_wal_last_seq(w), 7);
    /* An empty entry with a NULL pointer is fine inside a batch too. */
    rio_slice_t empty[2] = {{NULL, 0}, {bufs[0], 0}};
    CHECK_EQ(rio_wal_append_batch(w, empty, 2, &first), 0);
    CHECK_EQ(first, 8);
    CHECK_EQ(rio_wal_close(w), 0);
}

static void test_reader(rio_runtime_t *rt) {
    char path[512];
    wpath(path, sizeof path, "reader");
    rio_wal_t *w = open_ok(rt, path, NULL);
    if (!w)
        return;
    rio_wal_reader_t *r = (rio_wal_reader_t *)(uintptr_t)1;
    CHECK_ERR(rio_wal_reader_open(w, 1, NULL), -EINVAL, "out");
    CHECK_ERR(rio_wal_reader_open(NULL, 1, &r), -EINVAL, "w");
    CHECK(r == NULL);
    CHECK_EQ(rio_wal_reader_open(w, 1, &r), 0);
    uint64_t seq = 0;
    const uint8_t *data = NULL;
    size_t len = 0;
    /* Empty log: the end. Then entries appear, and the same reader sees them. */
    CHECK_EQ(rio_wal_reader_next(r, &seq, &data, &len), 0);
    for (uint64_t s = 1; s <= 3; s++)
        CHECK_EQ(append_pattern(w, s), 0);
    for (uint64_t s = 1; s <= 3; s++) {
        CHECK_EQ(rio_wal_reader_next(r, &seq, &data, &len), 1);
        CHECK_EQ(seq, s);
        CHECK(len == len_by_seq(s) && check_verify(data, len, s, 0));
    }
    CHECK_EQ(rio_wal_reader_next(r, &seq, &data, &len), 0);
    /* Bad inputs. */
    CHECK_ERR(rio_wal_reader_next(NULL, &seq, &data, &len), -EINVAL, "r");
    CHECK_ERR(rio_wal_reader_next(r, NULL, &data, &len), -EINVAL, "seq");
    CHECK_ERR(rio_wal_reader_next(r, &seq, NULL, &len), -EINVAL, "data");
    CHECK_ERR(rio_wal_reader_next(r, &seq, &data, NULL), -EINVAL, "len");
    rio_wal_reader_close(NULL); /* no-op */
    /* A reader may outlive its log handle. */
    CHECK_EQ(append_pattern(w, 4), 0);
    CHECK_EQ(rio_wal_close(w), 0);
    CHECK_EQ(rio_wal_reader_next(r, &seq, &data, &len), 1);
    CHECK_EQ(seq, 4);
    CHECK_EQ(rio_wal_reader_next(r, &seq, &data, &len), 0);
    rio_wal_reader_close(r);
}

static void test_truncate_before(rio_runtime_t *rt) {
    char path[512];
    wpath(path, sizeof path, "truncate");
    rio_wal_config_t cfg;
    rio_wal_config_default(&cfg);
    cfg.segment_size = 8192;
    rio_wal_t *w = open_ok(rt, path, &cfg);
    if (!w)
        return;
    for (uint64_t seq = 1; seq <= 100; seq++)
        CHECK_EQ(append_pattern(w, seq), 0);
    int before = count_segments(path, NULL, 0);
    CHECK(before >= 4);
    CHECK_ERR(rio_wal_truncate_before(NULL, 5), -EINVAL, "w");
    CHECK_ERR(rio_wal_truncate_before(w, 102), -EINVAL, "102");
    CHECK_EQ(rio_wal_truncate_before(w, 0), 0);
    CHECK_EQ(rio_wal_truncate_before(w, 80), 0);
    int after = count_segments(path, NULL, 0);
    CHECK(after < before && after >= 1);
    /* Entries >= 80 are kept; a reader from 1 starts at the first kept one. */
    uint64_t first = 0;
    uint64_t n = replay_check(w, 1, len_by_seq, &first);
    CHECK(first > 1 && first <= 80);
    CHECK_EQ(n, 100 - first + 1);
    CHECK_EQ(rio_wal_last_seq(w), 100);
    CHECK_EQ(rio_wal_truncate_before(w, 101), 0);
    CHECK_EQ(count_segments(path, NULL, 0), 1);
    CHECK_EQ(rio_wal_close(w), 0);
    w = open_ok(rt, path, &cfg);
    if (!w)
        return;
    CHECK_EQ(rio_wal_last_seq(w), 100);
    CHECK_EQ(append_pattern(w, 101), 0);
    CHECK_EQ(rio_wal_close(w), 0);
}

static void test_torn_tail(rio_runtime_t *rt) {
    char path[512], seg[600];
    wpath(path, sizeof path, "torn");
    rio_wal_t *w = open_ok(rt, path, NULL);
    if (!w)
        return;
    for (uint64_t seq = 1; seq <= 5; seq++)
        CHECK_EQ(append_pattern(w, seq), 0);
    CHECK_EQ(rio_wal_close(w), 0);
    /* Cut the last record in half: records are 32-byte headers plus
     * payloads padded to 8, after a 64-byte segment header. */
    uint64_t end = 64;
    for (uint64_t seq = 1; seq <= 5; seq++)
        end += (32 + len_by_seq(seq) + 7) / 8 * 8;
    CHECK_EQ(count_segments(path, seg, sizeof seg), 1);
    CHECK_EQ(truncate(seg, (off_t)(end - 20)), 0);

    rio_wal_config_t strict;
    rio_wal_config_default(&strict);
    strict.recovery_mode = RIO_WAL_RECOVER_STRICT;
    rio_wal_t *bad = (rio_wal_t *)(uintptr_t)1;
    CHECK_ERR(rio_wal_open(rt, path, &strict, &bad), -EBADMSG, ".wal: offset");
    CHECK(bad == NULL);
    w = open_ok(rt, path, NULL);
    if (!w)
        return;
    CHECK_EQ(rio_wal_last_seq(w), 4);
    CHECK_EQ(replay_check(w, 1, len_by_seq, NULL), 4);
    CHECK_EQ(append_pattern(w, 5), 0);
    CHECK_EQ(rio_wal_close(w), 0);
    /* The torn tail was cleaned up: strict recovery is happy now. */
    w = open_ok(rt, path, &strict);
    CHECK_EQ(rio_wal_close(w), 0);

    /* Corruption before the tail is never tolerated. */
    FILE *fp = fopen(seg, "r+");
    if (fp) {
        fseek(fp, 64 + 32 + 3, SEEK_SET);
        fputc(0x5A ^ fgetc(fp), fp);
        fclose(fp);
    }
    bad = (rio_wal_t *)(uintptr_t)1;
    CHECK_ERR(rio_wal_open(rt, path, NULL, &bad), -EBADMSG, "offset 64");
    CHECK(bad == NULL);
}

enum { THREADS = 8, PER_THREAD = 50 };

static void *appender(void *arg) {
    rio_wal_t *w = arg;
    int failures = 0;
    for (int i = 0; i < PER_THREAD; i++) {
        char buf[100];
        memset(buf, i, sizeof buf);
        uint64_t seq = 0;
        failures += rio_wal_append(w, buf, sizeof buf, &seq) != 0 || seq == 0;
    }
    return (void *)(intptr_t)failures;
}

static void test_threads(rio_runtime_t *rt) {
    char path[512];
    wpath(path, sizeof path, "threads");
    rio_wal_t *w = open_ok(rt, path, NULL);
    if (!w)
        return;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, appender, w), 0);
    for (int i = 0; i < THREADS; i++) {
        void *failures = NULL;
        pthread_join(t[i], &failures);
        CHECK_EQ((intptr_t)failures, 0);
    }
    CHECK_EQ(rio_wal_last_seq(w), THREADS * PER_THREAD);
    CHECK_EQ(rio_wal_close(w), 0);
}

static void test_poisoned(uint32_t backend) {
    rio_runtime_config_t rcfg;
    rio_runtime_config_default(&rcfg);
    rcfg.fault_injection = true;
    rio_runtime_t *rt = check_runtime_open(backend, &rcfg);
    if (!rt)
        return;
    char path[512];
    wpath(path, sizeof path, "poisoned");
    rio_wal_t *w = open_ok(rt, path, NULL);
    if (w) {
        CHECK_EQ(append_pattern(w, 1), 0);
        rio_fault_t fault;
        rio_fault_default(&fault);
        fault.target = RIO_FAULT_ON_FDATASYNC;
        fault.error = EIO;
        CHECK_EQ(rio_runtime_add_fault(rt, &fault), 0);
        CHECK_ERR(append_pattern(w, 2), -EIO, "rio_wal_append");
        /* Poisoned: never "retry and pretend". */
        CHECK_ERR(append_pattern(w, 2), -EIO, "poisoned");
        CHECK_ERR(rio_wal_sync(w), -EIO, "poisoned");
        CHECK_EQ(rio_wal_last_seq(w), 1);
        CHECK_ERR(rio_wal_close(w), -EIO, "rio_wal_close");
    }
    rio_runtime_close(rt);
}

static void run_all(rio_runtime_t *rt) {
    test_open_errors(rt);
    test_append_and_replay(rt);
    test_append_batch(rt);
    test_reader(rt);
    test_truncate_before(rt);
    test_torn_tail(rt);
    test_threads(rt);
    test_poisoned((uint32_t)rio_runtime_backend(rt));
}

int main(void) {
    unsetenv("RUSTFS_ENABLE_IO_URING");
    unsetenv("RUSTFS_MAX_CONCURRENT_FILE_OPS");
    check_tmpdir(dir, sizeof dir);
    test_config();
    check_for_each_backend(run_all);
    check_rmtree(dir);
    return check_summary("test_wal");
}
