/* rio_file_write_durable on both backends: every call that returned
 * survives rio_runtime_simulate_power_loss (discard-all and torn-prefix);
 * one whose fdatasync failed is rolled back (so the O_DIRECT part was
 * journaled too); buffered reads see the new bytes; heads and tails of
 * every size 0..8191 around aligned middles on tmpfs (/dev/shm), a grid
 * on TMPDIR; bad inputs. Needs O_DIRECT on TMPDIR (else /tmp). */
#include <fcntl.h>

#include "check.h"

static char dir[256];

#define RWC (RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE)

static void fill(unsigned char *p, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

static rio_runtime_t *faulty(uint32_t backend) {
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.fault_injection = true;
    return check_runtime_open(backend, &cfg);
}

/* The directory entry must be durable too, or the power loss removes the
 * file: synced through the runtime, so the fault backend sees it. */
static void sync_dir(rio_runtime_t *rt) {
    rio_file_t *d = NULL;
    CHECK_EQ(rio_file_open(rt, dir, RIO_OPEN_READ, 0, &d), 0);
    CHECK_EQ(rio_file_sync(d), 0);
    rio_file_close(d);
}

/* 40 durable writes in their own ranges and unsynced writes between them;
 * after the power loss every durable one reads back. */
static void test_power_loss(uint32_t backend, uint32_t mode, uint64_t seed) {
    rio_runtime_t *rt = faulty(backend);
    if (!rt)
        return;
    char p[512];
    snprintf(p, sizeof p, "%s/%s-pl-%u-%llu", dir, check_ctx, mode, (unsigned long long)seed);
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, p, RWC, 0644, &f), 0);
    CHECK_EQ(rio_file_sync(f), 0);
    enum { N = 40, SLOT = 300000 };
    static unsigned char data[N][280000];
    size_t off[N], len[N];
    uint64_t x = 0x9E3779B9ull + seed;
    for (int i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        off[i] = (size_t)i * SLOT + x % 9000;
        len[i] = 1 + (size_t)(x >> 20) % sizeof data[i];
        fill(data[i], len[i], x);
        CHECK_EQ(rio_file_write_durable(f, data[i], len[i], off[i]), (int64_t)len[i]);
        CHECK_EQ(rio_file_write_at(f, "unsynced", 8, (uint64_t)i * SLOT + 295000), 8);
    }
    sync_dir(rt);
    rio_runtime_t *plain = check_runtime_open(backend, NULL);
    CHECK_EQ(rio_runtime_simulate_power_loss(rt, mode, seed), 0);
    rio_file_close(f);
    rio_file_t *r = NULL;
    CHECK_EQ(rio_file_open(plain, p, RIO_OPEN_READ, 0, &r), 0);
    static unsigned char back[280000];
    int intact = 1;
    for (int i = 0; i < N; i++)
        intact &= rio_file_read_at(r, back, len[i], off[i]) == (int64_t)len[i] && memcmp(back, data[i], len[i]) == 0;
    CHECK(intact);
    rio_file_close(r);
    rio_runtime_close(plain);
    rio_runtime_close(rt);
}

/* A durable write whose fdatasync fails promised nothing: the power loss
 * brings the old bytes back, including over the O_DIRECT middle. */
static void test_failed_sync_rolls_back(uint32_t backend) {
    rio_runtime_t *rt = faulty(backend);
    if (!rt)
        return;
    char p[512];
    snprintf(p, sizeof p, "%s/%s-rollback", dir, check_ctx);
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, p, RWC, 0644, &f), 0);
    size_t n = 1 << 20;
    unsigned char *old = malloc(n), *neu = malloc(n), *back = malloc(n);
    fill(old, n, 1);
    fill(neu, n, 2);
    CHECK_EQ(rio_file_write_durable(f, old, n, 0), (int64_t)n);
    sync_dir(rt);
    rio_fault_t rule;
    rio_fault_default(&rule);
    rule.target = RIO_FAULT_ON_FDATASYNC;
    rule.error = EIO;
    CHECK_EQ(rio_runtime_add_fault(rt, &rule), 0);
    CHECK_ERR(rio_file_write_durable(f, neu, n, 0), -EIO, "fdatasync");
    CHECK_EQ(rio_runtime_simulate_power_loss(rt, RIO_CRASH_DISCARD_ALL, 0), 0);
    rio_file_close(f);
    FILE *fp = fopen(p, "rb");
    CHECK(fp && fread(back, 1, n, fp) == n && memcmp(back, old, n) == 0);
    if (fp)
        fclose(fp);
    free(old);
    free(neu);
    free(back);
    rio_runtime_close(rt);
}

/* Head h and tail t around an 8 KiB page-aligned middle, each checked
 * through a buffered read of the surroundings against a model. */
static void heads_and_tails(rio_runtime_t *rt, const char *path, int exhaustive) {
    enum { SLOT = 32768, FILE_LEN = 4 * SLOT };
    static unsigned char model[FILE_LEN + 16384], data[4 * 8192], back[SLOT + 16384];
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RWC | RIO_OPEN_TRUNCATE, 0644, &f), 0);
    fill(model, FILE_LEN, 99);
    fill(data, sizeof data, 7);
    CHECK_EQ(rio_file_write_at(f, model, FILE_LEN, 0), FILE_LEN);
    static const size_t grid[] = {0, 1, 511, 512, 513, 4095, 4096, 4097, 8191};
    size_t count = exhaustive ? 8192 : 81;
    int ok = 1;
    for (size_t i = 0; i < count && ok; i++) {
        size_t h = exhaustive ? i : grid[i / 9], t = exhaustive ? (i * 4099) % 8192 : grid[i % 9];
        size_t base = (i % 3) * SLOT + 8192, off = base - h, len = h + 8192 + t;
        ok &= rio_file_write_durable(f, data + i % 8192, len, off) == (int64_t)len;
        memcpy(model + off, data + i % 8192, len);
        int64_t got = rio_file_read_at(f, back, sizeof back, base - 8192);
        ok &= got == (int64_t)sizeof back && memcmp(back, model + base - 8192, sizeof back) == 0;
        if (!ok)
            fprintf(stderr, "  head %zu tail %zu differs\n", h, t);
    }
    CHECK(ok);
    rio_file_close(f);
}

static void test_heads_and_tails(rio_runtime_t *rt) {
    char p[512];
    snprintf(p, sizeof p, "/dev/shm/rio-ctest-durable-%d-%s", (int)getpid(), check_ctx);
    heads_and_tails(rt, p, 1);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s-ht", dir, check_ctx);
    heads_and_tails(rt, p, 0);
}

static void test_bad_inputs(rio_runtime_t *rt) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s-bad", dir, check_ctx);
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, p, RWC, 0644, &f), 0);
    CHECK_ERR(rio_file_write_durable(NULL, "x", 1, 0), -EINVAL, "f is NULL");
    CHECK_ERR(rio_file_write_durable(f, NULL, 1, 0), -EINVAL, "buf is NULL");
    CHECK_EQ(rio_file_write_durable(f, NULL, 0, 0), 0);
    CHECK_ERR(rio_file_write_durable(f, "x", 1, (uint64_t)1 << 63), -EINVAL, "largest file offset");
    CHECK_ERR(rio_file_write_durable(f, "xy", 2, INT64_MAX), -EINVAL, "rio_file_write_durable");
    CHECK_EQ(rio_file_size(f), 0);
    rio_file_t *ap = NULL;
    CHECK_EQ(rio_file_open(rt, p, RIO_OPEN_WRITE | RIO_OPEN_APPEND, 0, &ap), 0);
    CHECK_ERR(rio_file_write_durable(ap, "x", 1, 0), -EINVAL, "O_APPEND");
    rio_file_close(ap);
    rio_file_t *ro = NULL;
    CHECK_EQ(rio_file_open(rt, p, RIO_OPEN_READ, 0, &ro), 0);
    CHECK_ERR(rio_file_write_durable(ro, "x", 1, 0), -EBADF, "not open for writing");
    rio_file_close(ro);
    /* Unaligned memory, unaligned offset: bounced, and still coherent. */
    size_t n = (1 << 20) + 3;
    unsigned char *buf = malloc(n + 1), *back = malloc(n);
    fill(buf + 1, n, 5);
    CHECK_EQ(rio_file_write_durable(f, buf + 1, n, 4097), (int64_t)n);
    CHECK_EQ(rio_file_read_at(f, back, n, 4097), (int64_t)n);
    CHECK(memcmp(back, buf + 1, n) == 0);
    CHECK_EQ(rio_file_size(f), 4097 + (int64_t)n);
    free(buf);
    free(back);
    rio_file_close(f);
}

static void run(rio_runtime_t *rt) {
    uint32_t backend = (uint32_t)rio_runtime_backend(rt);
    test_power_loss(backend, RIO_CRASH_DISCARD_ALL, 0);
    test_power_loss(backend, RIO_CRASH_TORN_PREFIX, 7);
    test_power_loss(backend, RIO_CRASH_TORN_PREFIX, 1234);
    test_failed_sync_rolls_back(backend);
    test_heads_and_tails(rt);
    test_bad_inputs(rt);
}

int main(void) {
    check_tmpdir(dir, sizeof dir);
    check_for_each_backend(run);
    check_rmtree(dir);
    return check_summary("test_durable");
}
