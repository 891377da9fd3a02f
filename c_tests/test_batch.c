/* rio_submit_batch: reads, writes, fsync and fdatasync across files,
 * per-op results, malformed batches rejected whole, batches larger than
 * the queue depth, per-op errors, on both backends. */
#include <stdint.h>
#include <sys/stat.h>

#include "check.h"

static char dir[256];

static const char *fpath(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s-%s", dir, check_ctx, name);
    return buf;
}

#define RWCT (RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE)
#define SENTINEL CHECK_OP_SENTINEL

#define op_rw check_op

static rio_op_t op_sync(uint32_t opcode, rio_file_t *f, uint64_t ud) {
    return op_rw(opcode, f, NULL, 0, 0, ud);
}

static rio_file_t *open_ok(rio_runtime_t *rt, const char *path, uint32_t flags) {
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, flags, 0644, &f), 0);
    return f;
}

static void test_basic(rio_runtime_t *rt) {
    char pa[512], pb[512];
    rio_file_t *a = open_ok(rt, fpath(pa, sizeof pa, "a"), RWCT);
    rio_file_t *b = open_ok(rt, fpath(pb, sizeof pb, "b"), RWCT);
    if (!a || !b)
        goto out;

    char wa0[4096], wa1[4096], wb0[1000], wb1[3000];
    check_fill(wa0, sizeof wa0, 1, 0);
    check_fill(wa1, sizeof wa1, 2, 0);
    check_fill(wb0, sizeof wb0, 3, 0);
    check_fill(wb1, sizeof wb1, 4, 0);
    uint64_t uds[] = {0, UINT64_MAX, 0xdeadbeefcafef00dull, 42, 7, 8};

    /* Writes to two files. */
    rio_op_t w[4] = {
        op_rw(RIO_OP_WRITE, a, wa0, sizeof wa0, 0, uds[0]),
        op_rw(RIO_OP_WRITE, a, wa1, sizeof wa1, 8192, uds[1]),
        op_rw(RIO_OP_WRITE, b, wb0, sizeof wb0, 0, uds[2]),
        op_rw(RIO_OP_WRITE, b, wb1, sizeof wb1, 5000, uds[3]),
    };
    rio_op_t copy[4];
    memcpy(copy, w, sizeof w);
    CHECK_EQ(rio_submit_batch(rt, w, 4), 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(w[i].result, (int64_t)w[i].len);
        /* Everything but result untouched. */
        CHECK_EQ(w[i].user_data, uds[i]);
        CHECK(w[i].opcode == copy[i].opcode && w[i].flags == 0 && w[i].file == copy[i].file &&
              w[i].buf == copy[i].buf && w[i].len == copy[i].len && w[i].offset == copy[i].offset);
    }
    CHECK_EQ(rio_file_size(a), 8192 + 4096);
    CHECK_EQ(rio_file_size(b), 8000);

    /* Syncs and reads, including a short read at EOF and reads past it.
     * Sync ops ignore buf/len/offset. */
    char ra0[4096], ra1[4096], rb0[1000], rb1[3000], tail[4096], past[64];
    memset(tail, 0, sizeof tail);
    rio_op_t r[9] = {
        op_sync(RIO_OP_FSYNC, a, uds[4]),
        op_sync(RIO_OP_FDATASYNC, b, uds[5]),
        op_rw(RIO_OP_READ, a, ra0, sizeof ra0, 0, 100),
        op_rw(RIO_OP_READ, a, ra1, sizeof ra1, 8192, 101),
        op_rw(RIO_OP_READ, b, rb0, sizeof rb0, 0, 102),
        op_rw(RIO_OP_READ, b, rb1, sizeof rb1, 5000, 103),
        op_rw(RIO_OP_READ, b, tail, sizeof tail, 7000, 104),
        op_rw(RIO_OP_READ, b, past, sizeof past, 8000, 105),
        op_rw(RIO_OP_READ, a, past, sizeof past, (uint64_t)1 << 40, 106),
    };
    r[0].len = 123; /* ignored for syncs */
    r[0].offset = 999;
    CHECK_EQ(rio_submit_batch(rt, r, 9), 9);
    CHECK_EQ(r[0].result, 0);
    CHECK_EQ(r[1].result, 0);
    CHECK_EQ(r[0].user_data, uds[4]);
    CHECK_EQ(r[1].user_data, uds[5]);
    CHECK_EQ(r[2].result, 4096);
    CHECK_EQ(r[3].result, 4096);
    CHECK_EQ(r[4].result, 1000);
    CHECK_EQ(r[5].result, 3000);
    CHECK_EQ(r[6].result, 1000); /* short: b is 8000 bytes */
    CHECK_EQ(r[7].result, 0);
    CHECK_EQ(r[8].result, 0);
    for (int i = 2; i < 9; i++)
        CHECK_EQ(r[i].user_data, 100 + (uint64_t)i - 2);
    CHECK(memcmp(ra0, wa0, sizeof ra0) == 0);
    CHECK(memcmp(ra1, wa1, sizeof ra1) == 0);
    CHECK(memcmp(rb0, wb0, sizeof rb0) == 0);
    CHECK(memcmp(rb1, wb1, sizeof rb1) == 0);
    CHECK(memcmp(tail, wb1 + 2000, 1000) == 0);

    /* Zero-length reads and writes (NULL buffers allowed). */
    rio_op_t z[3] = {
        op_rw(RIO_OP_READ, a, NULL, 0, 0, 1),
        op_rw(RIO_OP_WRITE, a, NULL, 0, 0, 2),
        op_rw(RIO_OP_WRITE, b, wb0, 0, 100000, 3),
    };
    CHECK_EQ(rio_submit_batch(rt, z, 3), 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(z[i].result, 0);
    CHECK_EQ(rio_file_size(b), 8000);

    /* A single op, and one large (8 MiB) write + read. */
    size_t big = 8u << 20;
    char *bw = malloc(big), *br = malloc(big);
    check_fill(bw, big, 5, 0);
    rio_op_t one = op_rw(RIO_OP_WRITE, a, bw, big, 4096, 9);
    CHECK_EQ(rio_submit_batch(rt, &one, 1), 1);
    CHECK_EQ(one.result, (int64_t)big);
    one = op_rw(RIO_OP_READ, a, br, big, 4096, 9);
    CHECK_EQ(rio_submit_batch(rt, &one, 1), 1);
    CHECK_EQ(one.result, (int64_t)big);
    CHECK(memcmp(bw, br, big) == 0);
    free(bw);
    free(br);

out:
    CHECK_EQ(rio_file_close(a), 0);
    CHECK_EQ(rio_file_close(b), 0);
    unlink(pa);
    unlink(pb);
}

static void test_bad_args(rio_runtime_t *rt) {
    char pa[512], pb[512], pd[512];
    rio_file_t *a = open_ok(rt, fpath(pa, sizeof pa, "bad-a"), RWCT);
    rio_file_t *b = open_ok(rt, fpath(pb, sizeof pb, "bad-b"), RWCT);
    rio_file_t *d = NULL;
    CHECK_EQ(rio_file_open(rt, fpath(pd, sizeof pd, "bad-direct"), RWCT | RIO_OPEN_DIRECT, 0644, &d), 0);
    if (!a || !b)
        goto out;

    /* n == 0: nothing to do, ops may be NULL. */
    rio_op_t op = op_rw(RIO_OP_WRITE, a, "x", 1, 0, 0);
    CHECK_EQ(rio_submit_batch(rt, NULL, 0), 0);
    CHECK_EQ(rio_submit_batch(rt, &op, 0), 0);
    CHECK_EQ(op.result, SENTINEL);
    CHECK_EQ(rio_file_size(a), 0);
    /* NULL runtime; NULL ops with n > 0. */
    CHECK_ERR(rio_submit_batch(NULL, &op, 1), -EINVAL, "rio_submit_batch");
    CHECK_ERR(rio_submit_batch(rt, NULL, 3), -EINVAL, "rio_submit_batch");
    CHECK_MSG("ops");
    CHECK_EQ(rio_file_size(a), 0);

    /* A malformed op anywhere rejects the whole batch: -EINVAL naming
     * ops[i], no op ran (the valid writes before and after it did not
     * reach the files), no result was set. */
    char good[512], bad[16];
    check_fill(good, sizeof good, 6, 0);
    char *abuf = d ? rio_buf_alloc(8192) : NULL;
    enum { KINDS = 10 };
    for (int kind = 0; kind < KINDS; kind++) {
        for (int pos = 0; pos < 3; pos++) {
            rio_op_t ops[3] = {
                op_rw(RIO_OP_WRITE, a, good, sizeof good, 0, 10),
                op_rw(RIO_OP_WRITE, b, good, sizeof good, 4096, 11),
                op_rw(RIO_OP_READ, a, bad, sizeof bad, 0, 12),
            };
            rio_op_t *m = &ops[pos];
            const char *what = "";
            switch (kind) {
            case 0: m->file = NULL; what = "file"; break;
            case 1: m->opcode = 4; what = "opcode"; break;
            case 2: m->opcode = 0xFFFFFFFFu; what = "opcode"; break;
            case 3: m->flags = 1; what = "flags"; break;
            case 4: m->flags = 0x80000000u; what = "flags"; break;
            case 5: m->opcode = RIO_OP_WRITE; m->buf = NULL; m->len = 10; what = "buf"; break;
            case 6: m->opcode = RIO_OP_READ; m->buf = NULL; m->len = 10; what = "buf"; break;
            case 7: m->offset = UINT64_MAX; what = "offset"; break;
            case 8: m->len = UINT64_MAX; what = "len"; break;
            case 9:
                if (!d)
                    continue;
                /* O_DIRECT misalignment is checked up front too. */
                m->file = d;
                m->buf = abuf + 1;
                m->len = 4096;
                m->opcode = RIO_OP_WRITE;
                what = "align";
                break;
            }
            char name[32];
            snprintf(name, sizeof name, "ops[%d]", pos);
            CHECK_ERR(rio_submit_batch(rt, ops, 3), -EINVAL, name);
            CHECK_MSG(what);
            CHECK_MSG("rio_submit_batch");
            for (int i = 0; i < 3; i++)
                CHECK_EQ(ops[i].result, SENTINEL);
            CHECK_EQ(rio_file_size(a), 0);
            CHECK_EQ(rio_file_size(b), 0);
            if (d)
                CHECK_EQ(rio_file_size(d), 0);
        }
    }
    rio_buf_free(abuf);

    /* Per-op errors do not fail the batch: a write through a read-only
     * handle gets -EBADF, a read through a write-only handle too, the
     * other ops succeed. */
    rio_file_t *ro = open_ok(rt, pa, RIO_OPEN_READ);
    rio_file_t *wo = open_ok(rt, pb, RIO_OPEN_WRITE);
    if (ro && wo) {
        char rbuf[512];
        rio_op_t ops[5] = {
            op_rw(RIO_OP_WRITE, a, good, sizeof good, 0, 20),
            op_rw(RIO_OP_WRITE, ro, good, sizeof good, 8192, 21),
            op_rw(RIO_OP_WRITE, b, good, sizeof good, 0, 22),
            op_rw(RIO_OP_READ, wo, rbuf, sizeof rbuf, 0, 23),
            op_sync(RIO_OP_FSYNC, ro, 24),
        };
        CHECK_EQ(rio_submit_batch(rt, ops, 5), 5);
        CHECK_EQ(ops[0].result, sizeof good);
        CHECK_EQ(ops[1].result, -EBADF);
        CHECK_EQ(ops[2].result, sizeof good);
        CHECK_EQ(ops[3].result, -EBADF);
        CHECK_EQ(ops[4].result, 0);
        for (int i = 0; i < 5; i++)
            CHECK_EQ(ops[i].user_data, 20 + (uint64_t)i);
        CHECK_EQ(rio_file_size(a), sizeof good); /* not 8192 + 512 */
        char back[512];
        CHECK_EQ(rio_file_read_at(ro, back, sizeof back, 0), sizeof back);
        CHECK(memcmp(back, good, sizeof good) == 0);
    }
    rio_file_close(ro);
    rio_file_close(wo);

out:
    rio_file_close(a);
    rio_file_close(b);
    rio_file_close(d);
    unlink(pa);
    unlink(pb);
    unlink(pd);
}

/* 1000 ops with queue_depth 8 and max_concurrent_ops 16. */
static void test_large_batch(uint32_t backend) {
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.queue_depth = 8;
    cfg.max_concurrent_ops = 16;
    rio_runtime_t *rt = check_runtime_open(backend, &cfg);
    if (!rt)
        return;
    check_ctx = check_backend_name(backend);
    rio_capabilities_t caps = {.struct_size = sizeof(rio_capabilities_t)};
    CHECK_EQ(rio_runtime_capabilities(rt, &caps), 0);
    CHECK_EQ(caps.max_concurrent_ops, 16);

    char pa[512], pb[512];
    rio_file_t *f[2] = {open_ok(rt, fpath(pa, sizeof pa, "large-a"), RWCT),
                        open_ok(rt, fpath(pb, sizeof pb, "large-b"), RWCT)};
    enum { N = 1000, SZ = 512 };
    char *data = malloc((size_t)N * SZ), *back = calloc(N, SZ);
    rio_op_t *ops = calloc(N, sizeof *ops);
    check_fill(data, (size_t)N * SZ, 7, 0);
    if (!f[0] || !f[1])
        goto out;

    /* Writes, alternating files, in reverse offset order. */
    for (int i = 0; i < N; i++) {
        int k = N - 1 - i;
        ops[i] = op_rw(RIO_OP_WRITE, f[k % 2], data + (size_t)k * SZ, SZ, (uint64_t)(k / 2) * SZ, (uint64_t)k);
    }
    CHECK_EQ(rio_submit_batch(rt, ops, N), N);
    int ok = 1;
    for (int i = 0; i < N; i++)
        ok &= ops[i].result == SZ && ops[i].user_data == (uint64_t)(N - 1 - i);
    CHECK(ok);
    CHECK_EQ(rio_file_size(f[0]), (N / 2) * SZ);
    CHECK_EQ(rio_file_size(f[1]), (N / 2) * SZ);

    /* Reads of everything plus syncs in the middle. */
    for (int i = 0; i < N; i++) {
        if (i % 100 == 50)
            ops[i] = op_sync(i % 200 == 50 ? RIO_OP_FSYNC : RIO_OP_FDATASYNC, f[i % 2], (uint64_t)i);
        else
            ops[i] = op_rw(RIO_OP_READ, f[i % 2], back + (size_t)i * SZ, SZ, (uint64_t)(i / 2) * SZ, (uint64_t)i);
    }
    CHECK_EQ(rio_submit_batch(rt, ops, N), N);
    ok = 1;
    for (int i = 0; i < N; i++) {
        if (i % 100 == 50) {
            ok &= ops[i].result == 0;
            continue;
        }
        ok &= ops[i].result == SZ && ops[i].user_data == (uint64_t)i;
        ok &= memcmp(back + (size_t)i * SZ, data + (size_t)i * SZ, SZ) == 0;
    }
    CHECK(ok);

    /* Mixed errors in a big batch: every third op through a read-only handle. */
    rio_file_t *ro = open_ok(rt, pa, RIO_OPEN_READ);
    if (ro) {
        for (int i = 0; i < N; i++)
            ops[i] = op_rw(RIO_OP_WRITE, i % 3 == 0 ? ro : f[0], data, SZ, (uint64_t)i * SZ, (uint64_t)i);
        CHECK_EQ(rio_submit_batch(rt, ops, N), N);
        ok = 1;
        for (int i = 0; i < N; i++)
            ok &= ops[i].result == (i % 3 == 0 ? -EBADF : SZ);
        CHECK(ok);
        rio_file_close(ro);
    }

    /* Several large batches in a row: no slot or permit leaks. */
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N; i++)
            ops[i] = op_rw(RIO_OP_READ, f[1], back + (size_t)i * SZ, SZ, (uint64_t)(i % 500) * SZ, (uint64_t)i);
        CHECK_EQ(rio_submit_batch(rt, ops, N), N);
        ok = 1;
        for (int i = 0; i < N; i++)
            ok &= ops[i].result == SZ;
        CHECK(ok);
    }

    /* Metrics saw the ops; nothing is left in flight. */
    int64_t len = rio_runtime_metrics_prometheus(rt, NULL, 0);
    char *text = malloc((size_t)len + 1);
    CHECK_EQ(rio_runtime_metrics_prometheus(rt, text, (size_t)len + 1), len);
    CHECK(strstr(text, "rio_ops_in_flight 0\n") != NULL);
    free(text);

out:
    free(data);
    free(back);
    free(ops);
    rio_file_close(f[0]);
    rio_file_close(f[1]);
    unlink(pa);
    unlink(pb);
    check_ctx = "";
    rio_runtime_close(rt);
}

/* Files of one runtime in a batch submitted to another (any mix). */
static void test_cross_runtime(void) {
    if (!check_backend_enabled(RIO_BACKEND_IO_URING) || !check_backend_enabled(RIO_BACKEND_THREAD_POOL))
        return;
    rio_runtime_t *u = check_runtime_open(RIO_BACKEND_IO_URING, NULL);
    rio_runtime_t *p = check_runtime_open(RIO_BACKEND_THREAD_POOL, NULL);
    if (!u || !p) {
        rio_runtime_close(u);
        rio_runtime_close(p);
        return;
    }
    check_ctx = "cross";
    char pa[512], pb[512];
    rio_file_t *fu = open_ok(u, fpath(pa, sizeof pa, "u"), RWCT);
    rio_file_t *fp = open_ok(p, fpath(pb, sizeof pb, "p"), RWCT);
    char x[100], y[100], rx[100], ry[100];
    check_fill(x, sizeof x, 8, 0);
    check_fill(y, sizeof y, 9, 0);
    rio_op_t ops[2] = {op_rw(RIO_OP_WRITE, fu, x, sizeof x, 0, 1), op_rw(RIO_OP_WRITE, fp, y, sizeof y, 0, 2)};
    CHECK_EQ(rio_submit_batch(p, ops, 2), 2);
    CHECK_EQ(ops[0].result, sizeof x);
    CHECK_EQ(ops[1].result, sizeof y);
    rio_op_t rops[2] = {op_rw(RIO_OP_READ, fu, rx, sizeof rx, 0, 1), op_rw(RIO_OP_READ, fp, ry, sizeof ry, 0, 2)};
    CHECK_EQ(rio_submit_batch(u, rops, 2), 2);
    CHECK_EQ(rops[0].result, sizeof rx);
    CHECK_EQ(rops[1].result, sizeof ry);
    CHECK(memcmp(x, rx, sizeof x) == 0);
    CHECK(memcmp(y, ry, sizeof y) == 0);
    rio_file_close(fu);
    rio_file_close(fp);
    unlink(pa);
    unlink(pb);
    check_ctx = "";
    rio_runtime_close(u);
    rio_runtime_close(p);
}

/* Fsync and fdatasync ops ignore buf, len and offset, as the header says:
 * an unaligned offset on an O_DIRECT file, or offset ~0, in a sync op must
 * neither fail the batch nor the op (it used to fail the whole batch with
 * -EINVAL, the sync checked like a transfer). */
static void test_sync_ignores_fields(rio_runtime_t *rt) {
    char pa[512], pd[512];
    rio_file_t *a = open_ok(rt, fpath(pa, sizeof pa, "sync-a"), RWCT);
    rio_file_t *d = NULL;
    CHECK_EQ(rio_file_open(rt, fpath(pd, sizeof pd, "sync-direct"), RWCT | RIO_OPEN_DIRECT, 0644, &d), 0);
    char *abuf = rio_buf_alloc(4096);
    char junk[3];
    if (!a || !d || !abuf)
        goto out;
    check_fill(abuf, 4096, 11, 0);
    rio_op_t ops[6] = {
        op_rw(RIO_OP_WRITE, d, abuf, 4096, 0, 1),
        op_rw(RIO_OP_FSYNC, d, junk, 3, 7, 2),                 /* unaligned everything */
        op_rw(RIO_OP_FDATASYNC, d, (void *)1, 1, UINT64_MAX, 3), /* offset ~0 */
        op_rw(RIO_OP_FSYNC, a, NULL, 123, UINT64_MAX, 4),      /* NULL buf, non-zero len */
        op_rw(RIO_OP_FDATASYNC, a, junk, UINT64_MAX, (uint64_t)1 << 63, 5),
        op_rw(RIO_OP_WRITE, a, abuf, 100, 0, 6),
    };
    CHECK_EQ(rio_submit_batch(rt, ops, 6), 6);
    CHECK_EQ(ops[0].result, 4096);
    for (int i = 1; i < 5; i++)
        CHECK_EQ(ops[i].result, 0);
    CHECK_EQ(ops[5].result, 100);
    CHECK_EQ(rio_file_size(d), 4096);
    /* Alone (one op goes the single-op path), on both kinds of file. */
    rio_op_t one = op_rw(RIO_OP_FDATASYNC, d, NULL, 5, 1, 7);
    CHECK_EQ(rio_submit_batch(rt, &one, 1), 1);
    CHECK_EQ(one.result, 0);
    one = op_rw(RIO_OP_FSYNC, a, NULL, 0, UINT64_MAX, 8);
    CHECK_EQ(rio_submit_batch(rt, &one, 1), 1);
    CHECK_EQ(one.result, 0);
    /* Transfers are still checked: the same offsets on a write fail. */
    rio_op_t bad[2] = {op_sync(RIO_OP_FSYNC, d, 9), op_rw(RIO_OP_WRITE, d, abuf, 4096, 7, 10)};
    CHECK_ERR(rio_submit_batch(rt, bad, 2), -EINVAL, "ops[1]");
    bad[1] = op_rw(RIO_OP_WRITE, a, abuf, 1, UINT64_MAX, 10);
    CHECK_ERR(rio_submit_batch(rt, bad, 2), -EINVAL, "ops[1]");
out:
    rio_buf_free(abuf);
    rio_file_close(a);
    rio_file_close(d);
    unlink(pa);
    unlink(pd);
}

/* n is bounded by RIO_BATCH_MAX: exactly the limit runs, one more is
 * -EINVAL naming n and the limit, and nothing runs. */
static void test_batch_limit(rio_runtime_t *rt) {
    char pa[512];
    rio_file_t *a = open_ok(rt, fpath(pa, sizeof pa, "limit"), RWCT);
    rio_op_t *ops = calloc(RIO_BATCH_MAX + 1, sizeof *ops);
    if (!a || !ops)
        goto out;
    /* Zero-length reads: the most ops the limit allows, cheaply. */
    for (size_t i = 0; i <= RIO_BATCH_MAX; i++)
        ops[i] = op_rw(RIO_OP_READ, a, NULL, 0, 0, i);
    CHECK_EQ(rio_submit_batch(rt, ops, RIO_BATCH_MAX), RIO_BATCH_MAX);
    int ok = 1;
    for (size_t i = 0; i < RIO_BATCH_MAX; i++)
        ok &= ops[i].result == 0 && ops[i].user_data == i;
    CHECK(ok);
    CHECK_EQ(ops[RIO_BATCH_MAX].result, SENTINEL);
    /* One more: rejected whole, before anything runs. */
    ops[0] = op_rw(RIO_OP_WRITE, a, "x", 1, 0, 0);
    CHECK_ERR(rio_submit_batch(rt, ops, RIO_BATCH_MAX + 1), -EINVAL, "RIO_BATCH_MAX");
    CHECK_MSG("rio_submit_batch");
    CHECK_EQ(ops[0].result, SENTINEL);
    CHECK_EQ(rio_file_size(a), 0);
    CHECK_ERR(rio_submit_batch(rt, ops, SIZE_MAX), -EINVAL, "RIO_BATCH_MAX");
out:
    free(ops);
    rio_file_close(a);
    unlink(pa);
}

static void run_all(rio_runtime_t *rt) {
    test_basic(rt);
    test_bad_args(rt);
    test_sync_ignores_fields(rt);
    test_batch_limit(rt);
}

int main(void) {
    unsetenv("RUSTFS_ENABLE_IO_URING");
    unsetenv("RUSTFS_MAX_CONCURRENT_FILE_OPS");
    check_tmpdir(dir, sizeof dir);
    check_for_each_backend(run_all);
    for (int i = 0; i < 2; i++)
        if (check_backend_enabled(check_backends[i]))
            test_large_batch(check_backends[i]);
    test_cross_runtime();
    check_rmtree(dir);
    return check_summary("test_batch");
}
