/* rio_file_*: every open flag, positioned and vectored I/O, sync,
 * allocate, truncate, size, close, and the bad inputs of each, on both
 * backends. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "check.h"

static char dir[256];

/* A path inside the scratch dir, unique per backend. */
static const char *fpath(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s-%s", dir, check_ctx, name);
    return buf;
}

#define RW (RIO_OPEN_READ | RIO_OPEN_WRITE)
#define RWC (RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE)
#define RWCT (RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE)

static rio_file_t *open_ok(rio_runtime_t *rt, const char *path, uint32_t flags) {
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, flags, 0644, &f), 0);
    CHECK(f != NULL);
    return f;
}

/* Writes `len` bytes of pattern `seed` at 0 to a fresh file at path. */
static void make_file(rio_runtime_t *rt, const char *path, size_t len, uint64_t seed) {
    rio_file_t *f = open_ok(rt, path, RWCT);
    if (!f)
        return;
    char *data = malloc(len ? len : 1);
    check_fill(data, len, seed, 0);
    CHECK_EQ(rio_file_write_at(f, data, len, 0), len);
    free(data);
    CHECK_EQ(rio_file_close(f), 0);
}

static void test_open_errors(rio_runtime_t *rt) {
    char path[512], missing[512];
    fpath(path, sizeof path, "open-errors");
    fpath(missing, sizeof missing, "does-not-exist");
    make_file(rt, path, 100, 1);
    rio_file_t *f = (rio_file_t *)(uintptr_t)1;

    CHECK_ERR(rio_file_open(rt, path, RIO_OPEN_READ, 0, NULL), -EINVAL, "rio_file_open");
    CHECK_ERR(rio_file_open(NULL, path, RIO_OPEN_READ, 0, &f), -EINVAL, "rio_file_open");
    CHECK(f == NULL);
    f = (rio_file_t *)(uintptr_t)1;
    CHECK_ERR(rio_file_open(rt, NULL, RIO_OPEN_READ, 0, &f), -EINVAL, "path");
    CHECK(f == NULL);

    /* Unknown flag bits. */
    uint32_t unknown[] = {1u << 8, 1u << 16, 1u << 31, RIO_OPEN_READ | (1u << 9), 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        f = (rio_file_t *)(uintptr_t)1;
        CHECK_ERR(rio_file_open(rt, path, unknown[i], 0644, &f), -EINVAL, "flags");
        CHECK(f == NULL);
        CHECK_MSG("rio_file_open");
    }
    /* Inconsistent flags: neither READ nor WRITE, TRUNCATE without WRITE,
     * EXCL without CREATE. */
    CHECK_ERR(rio_file_open(rt, path, 0, 0, &f), -EINVAL, "rio_file_open");
    CHECK_ERR(rio_file_open(rt, path, RIO_OPEN_CREATE, 0644, &f), -EINVAL, "rio_file_open");
    CHECK_ERR(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_TRUNCATE, 0, &f), -EINVAL, "TRUNCATE");
    CHECK_ERR(rio_file_open(rt, path, RIO_OPEN_WRITE | RIO_OPEN_EXCL, 0, &f), -EINVAL, "EXCL");
    /* Bad mode bits. */
    CHECK_ERR(rio_file_open(rt, missing, RWC, 0100000, &f), -EINVAL, "mode");
    /* The flags check left the file alone. */
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, 100);

    /* Missing file: -ENOENT naming the path. */
    f = (rio_file_t *)(uintptr_t)1;
    CHECK_ERR(rio_file_open(rt, missing, RIO_OPEN_READ, 0, &f), -ENOENT, missing);
    CHECK(f == NULL);
    CHECK_MSG("rio_file_open");
    CHECK_ERR(rio_file_open(rt, missing, RW, 0, &f), -ENOENT, missing);
    CHECK_ERR(rio_file_open(rt, "", RIO_OPEN_READ, 0, &f), -ENOENT, "rio_file_open");
    /* A directory cannot be opened for writing. */
    CHECK_ERR(rio_file_open(rt, dir, RW, 0, &f), -EISDIR, dir);
    /* A path through a regular file. */
    char through[600];
    snprintf(through, sizeof through, "%s/x", path);
    CHECK_ERR(rio_file_open(rt, through, RWC, 0644, &f), -ENOTDIR, through);
    unlink(path);
}

static void test_open_flags(rio_runtime_t *rt) {
    char path[512];
    struct stat st;
    char buf[256], back[256];
    check_fill(buf, sizeof buf, 2, 0);

    /* CREATE with mode. */
    fpath(path, sizeof path, "flags");
    unlink(path);
    mode_t old = umask(022);
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_WRITE | RIO_OPEN_CREATE, 0640, &f), 0);
    umask(old);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 07777, 0640);
    long fl = check_fd_flags(path);
    CHECK(fl >= 0 && (fl & O_ACCMODE) == O_WRONLY);
    /* WRITE only: writes work, reads fail with -EBADF. */
    CHECK_EQ(rio_file_write_at(f, buf, sizeof buf, 0), sizeof buf);
    CHECK_ERR(rio_file_read_at(f, back, sizeof back, 0), -EBADF, "rio_file_read_at");
    CHECK_MSG(path);
    struct iovec riov = {back, sizeof back};
    CHECK_ERR(rio_file_readv_at(f, &riov, 1, 0), -EBADF, "rio_file_readv_at");
    CHECK_EQ(rio_file_close(f), 0);

    /* READ only: reads work, writes fail with -EBADF naming the function and path. */
    f = open_ok(rt, path, RIO_OPEN_READ);
    fl = check_fd_flags(path);
    CHECK(fl >= 0 && (fl & O_ACCMODE) == O_RDONLY);
    CHECK_EQ(rio_file_read_at(f, back, sizeof back, 0), sizeof back);
    CHECK(memcmp(buf, back, sizeof buf) == 0);
    CHECK_ERR(rio_file_write_at(f, buf, sizeof buf, 0), -EBADF, "rio_file_write_at");
    CHECK_MSG(path);
    struct iovec wiov = {buf, sizeof buf};
    CHECK_ERR(rio_file_writev_at(f, &wiov, 1, 0), -EBADF, "rio_file_writev_at");
    CHECK_ERR(rio_file_allocate(f, 0, 4096), -EBADF, "rio_file_allocate");
    CHECK(rio_file_truncate(f, 0) < 0); /* EINVAL or EBADF, as ftruncate(2) says */
    CHECK_MSG("rio_file_truncate");
    CHECK_EQ(rio_file_sync(f), 0);
    CHECK_EQ(rio_file_size(f), sizeof buf);
    CHECK_EQ(rio_file_close(f), 0);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, sizeof buf);

    /* Without CREATE a missing file is not created. */
    char other[512];
    fpath(other, sizeof other, "not-created");
    unlink(other);
    CHECK_ERR(rio_file_open(rt, other, RW, 0644, &f), -ENOENT, other);
    CHECK(stat(other, &st) != 0);

    /* TRUNCATE empties an existing file. */
    f = open_ok(rt, path, RIO_OPEN_WRITE | RIO_OPEN_TRUNCATE);
    CHECK_EQ(rio_file_size(f), 0);
    CHECK_EQ(rio_file_close(f), 0);
    /* Opening without TRUNCATE keeps the data. */
    make_file(rt, path, 300, 3);
    f = open_ok(rt, path, RW);
    CHECK_EQ(rio_file_size(f), 300);
    CHECK_EQ(rio_file_close(f), 0);

    /* EXCL: -EEXIST on an existing file (naming it), success on a new one. */
    f = (rio_file_t *)(uintptr_t)1;
    CHECK_ERR(rio_file_open(rt, path, RWC | RIO_OPEN_EXCL, 0644, &f), -EEXIST, path);
    CHECK(f == NULL);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, 300);
    fpath(other, sizeof other, "excl-new");
    unlink(other);
    f = open_ok(rt, other, RWC | RIO_OPEN_EXCL);
    CHECK_EQ(rio_file_close(f), 0);
    unlink(other);

    /* APPEND: every write goes to the end, whatever the offset. */
    fpath(other, sizeof other, "append");
    make_file(rt, other, 0, 0);
    f = open_ok(rt, other, RW | RIO_OPEN_APPEND);
    fl = check_fd_flags(other);
    CHECK(fl >= 0 && (fl & O_APPEND) && !(fl & O_DIRECT) && (fl & O_DSYNC) != O_DSYNC);
    char a[100], b[50];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    CHECK_EQ(rio_file_write_at(f, a, sizeof a, 0), sizeof a);
    CHECK_EQ(rio_file_write_at(f, b, sizeof b, 0), sizeof b);
    struct iovec aiov[2] = {{a, 10}, {b, 10}};
    CHECK_EQ(rio_file_writev_at(f, aiov, 2, 5), 20);
    CHECK_EQ(rio_file_size(f), 170);
    char got[170];
    CHECK_EQ(rio_file_read_at(f, got, sizeof got, 0), 170);
    CHECK(memcmp(got, a, 100) == 0);
    CHECK(memcmp(got + 100, b, 50) == 0);
    CHECK(memcmp(got + 150, a, 10) == 0);
    CHECK(memcmp(got + 160, b, 10) == 0);
    CHECK_EQ(rio_file_close(f), 0);
    unlink(other);

    /* DIRECT (more in test_direct): an aligned round trip. */
    fpath(other, sizeof other, "direct");
    f = NULL;
    int rc = rio_file_open(rt, other, RWCT | RIO_OPEN_DIRECT, 0644, &f);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        char *d = rio_buf_alloc(8192), *e = rio_buf_alloc(8192);
        check_fill(d, 8192, 4, 0);
        CHECK_EQ(rio_file_write_at(f, d, 8192, 4096), 8192);
        CHECK_EQ(rio_file_read_at(f, e, 8192, 4096), 8192);
        CHECK(memcmp(d, e, 8192) == 0);
        CHECK_EQ(rio_file_size(f), 12288);
        rio_buf_free(d);
        rio_buf_free(e);
        CHECK_EQ(rio_file_close(f), 0);
    }
    unlink(other);

    /* DSYNC: writes are durable on return; data round-trips. */
    fpath(other, sizeof other, "dsync");
    f = open_ok(rt, other, RWCT | RIO_OPEN_DSYNC);
    fl = check_fd_flags(other);
    CHECK(fl >= 0 && (fl & O_DSYNC) == O_DSYNC && (fl & O_ACCMODE) == O_RDWR && !(fl & O_APPEND));
    CHECK(fl >= 0 && (fl & O_CLOEXEC)); /* no descriptor leaks into children */
    CHECK_EQ(rio_file_write_at(f, buf, sizeof buf, 10), sizeof buf);
    CHECK_EQ(rio_file_read_at(f, back, sizeof back, 10), sizeof back);
    CHECK(memcmp(buf, back, sizeof buf) == 0);
    CHECK_EQ(rio_file_close(f), 0);
    unlink(other);

    /* All flags at once. */
    fpath(other, sizeof other, "all-flags");
    unlink(other);
    f = NULL;
    rc = rio_file_open(rt, other,
                       RWCT | RIO_OPEN_EXCL | RIO_OPEN_APPEND | RIO_OPEN_DIRECT | RIO_OPEN_DSYNC, 0600, &f);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        fl = check_fd_flags(other);
        CHECK(fl >= 0 && (fl & O_APPEND) && (fl & O_DIRECT) && (fl & O_DSYNC) == O_DSYNC);
        char *d = rio_buf_alloc(4096);
        CHECK_EQ(rio_file_write_at(f, d, 4096, 0), 4096);
        CHECK_EQ(rio_file_write_at(f, d, 4096, 0), 4096);
        CHECK_EQ(rio_file_size(f), 8192);
        rio_buf_free(d);
        CHECK_EQ(rio_file_close(f), 0);
    }
    unlink(other);
    unlink(path);
}

static void test_read_write(rio_runtime_t *rt) {
    char path[512];
    fpath(path, sizeof path, "rw");
    rio_file_t *f = open_ok(rt, path, RWCT);
    if (!f)
        return;

    /* Small round trip at an odd offset. */
    char small[1000], back[1000];
    check_fill(small, sizeof small, 5, 0);
    CHECK_EQ(rio_file_write_at(f, small, sizeof small, 12345), sizeof small);
    CHECK_EQ(rio_file_size(f), 12345 + 1000);
    memset(back, 0, sizeof back);
    CHECK_EQ(rio_file_read_at(f, back, sizeof back, 12345), sizeof back);
    CHECK(memcmp(small, back, sizeof back) == 0);
    /* The hole before it reads as zeros. */
    CHECK_EQ(rio_file_read_at(f, back, 100, 0), 100);
    int zeros = 1;
    for (int i = 0; i < 100; i++)
        zeros &= back[i] == 0;
    CHECK(zeros);

    /* Zero-length transfers, with or without a buffer. */
    CHECK_EQ(rio_file_read_at(f, back, 0, 0), 0);
    CHECK_EQ(rio_file_write_at(f, small, 0, 0), 0);
    CHECK_EQ(rio_file_read_at(f, NULL, 0, 0), 0);
    CHECK_EQ(rio_file_write_at(f, NULL, 0, 0), 0);
    CHECK_EQ(rio_file_size(f), 12345 + 1000);

    /* Large: 8 MiB written and read in one call each. */
    size_t big = 8u << 20;
    char *data = malloc(big), *check = malloc(big);
    check_fill(data, big, 6, 0);
    CHECK_EQ(rio_file_write_at(f, data, big, 0), big);
    CHECK_EQ(rio_file_size(f), big);
    memset(check, 0, big);
    CHECK_EQ(rio_file_read_at(f, check, big, 0), big);
    CHECK(memcmp(data, check, big) == 0);
    /* Unaligned piece in the middle. */
    CHECK_EQ(rio_file_read_at(f, check, 777777, 1234567), 777777);
    CHECK(memcmp(data + 1234567, check, 777777) == 0);

    /* Short read at EOF; reads at and past EOF return 0. */
    memset(check, 0, big);
    CHECK_EQ(rio_file_read_at(f, check, 1 << 20, big - 1000), 1000);
    CHECK(memcmp(check, data + big - 1000, 1000) == 0);
    CHECK_EQ(rio_file_read_at(f, check, 4096, big), 0);
    CHECK_EQ(rio_file_read_at(f, check, 4096, big + 1), 0);
    CHECK_EQ(rio_file_read_at(f, check, 4096, (uint64_t)1 << 40), 0);
    /* A read larger than the whole file returns the file. */
    CHECK_EQ(rio_file_read_at(f, check, big, 0), big);
    free(check);

    /* Offsets beyond the largest file offset (> INT64_MAX) are invalid on
     * both backends; in particular (uint64_t)-1 must not mean "the current
     * file position" (io_uring's convention). */
    char one = 'Z';
    CHECK_ERR(rio_file_write_at(f, &one, 1, UINT64_MAX), -EINVAL, "offset");
    CHECK_ERR(rio_file_write_at(f, &one, 1, (uint64_t)INT64_MAX + 1), -EINVAL, "rio_file_write_at");
    CHECK_ERR(rio_file_read_at(f, back, 10, UINT64_MAX), -EINVAL, "offset");
    CHECK_ERR(rio_file_read_at(f, back, 10, (uint64_t)INT64_MAX + 1), -EINVAL, "rio_file_read_at");
    struct iovec oiov = {&one, 1};
    CHECK_ERR(rio_file_writev_at(f, &oiov, 1, UINT64_MAX), -EINVAL, "rio_file_writev_at");
    CHECK_ERR(rio_file_readv_at(f, &oiov, 1, UINT64_MAX), -EINVAL, "rio_file_readv_at");
    char first;
    CHECK_EQ(rio_file_read_at(f, &first, 1, 0), 1);
    CHECK_EQ(first, data[0]); /* nothing was written at the file position (0) */
    CHECK_EQ(rio_file_size(f), big);
    free(data);

    /* Overwrite in place does not change the size. */
    CHECK_EQ(rio_file_write_at(f, small, sizeof small, 0), sizeof small);
    CHECK_EQ(rio_file_size(f), big);

    CHECK_EQ(rio_file_close(f), 0);
    unlink(path);
}

static void test_vectored(rio_runtime_t *rt) {
    char path[512];
    fpath(path, sizeof path, "vec");
    rio_file_t *f = open_ok(rt, path, RWCT);
    if (!f)
        return;

    /* 64 buffers of different sizes (gather), read back with a different
     * split (scatter). */
    enum { N = 64 };
    struct iovec wiov[N], riov[N];
    char *wbufs[N], *rbufs[N];
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        size_t len = (size_t)(i * 37 % 1000) + 1;
        wbufs[i] = malloc(len);
        check_fill(wbufs[i], len, 8, total);
        wiov[i].iov_base = wbufs[i];
        wiov[i].iov_len = len;
        total += len;
    }
    CHECK_EQ(rio_file_writev_at(f, wiov, N, 100), total);
    CHECK_EQ(rio_file_size(f), 100 + total);
    size_t chunk = total / N + 1, left = total;
    for (int i = 0; i < N; i++) {
        size_t len = left < chunk ? left : chunk;
        rbufs[i] = calloc(1, chunk);
        riov[i].iov_base = rbufs[i];
        riov[i].iov_len = chunk;
        left -= len;
    }
    /* The last buffers reach past EOF: a short vectored read. */
    CHECK_EQ(rio_file_readv_at(f, riov, N, 100), total);
    size_t pos = 0;
    int same = 1;
    for (int i = 0; i < N && pos < total; i++) {
        size_t len = total - pos < chunk ? total - pos : chunk;
        same &= check_verify(rbufs[i], len, 8, pos);
        pos += len;
    }
    CHECK(same);
    /* Read past EOF: 0. */
    CHECK_EQ(rio_file_readv_at(f, riov, N, 100 + total), 0);
    for (int i = 0; i < N; i++) {
        free(wbufs[i]);
        free(rbufs[i]);
    }

    /* iovcnt 0, and NULL iov with iovcnt 0. */
    CHECK_EQ(rio_file_readv_at(f, riov, 0, 0), 0);
    CHECK_EQ(rio_file_writev_at(f, wiov, 0, 0), 0);
    CHECK_EQ(rio_file_readv_at(f, NULL, 0, 0), 0);
    CHECK_EQ(rio_file_writev_at(f, NULL, 0, 0), 0);
    /* Zero-length entries (even with NULL bases) are fine. */
    char x[4] = "abc";
    struct iovec z[3] = {{NULL, 0}, {x, 3}, {NULL, 0}};
    CHECK_EQ(rio_file_writev_at(f, z, 3, 0), 3);
    CHECK_EQ(rio_file_readv_at(f, z, 3, 0), 3);

    /* RIO_IOV_MAX (1024) buffers work; 1025 and negative counts do not. */
    int maxn = RIO_IOV_MAX;
    struct iovec *many = calloc((size_t)maxn + 1, sizeof *many);
    char *bytes = malloc((size_t)maxn + 1);
    for (int i = 0; i <= maxn; i++) {
        bytes[i] = (char)(i * 7);
        many[i].iov_base = &bytes[i];
        many[i].iov_len = 1;
    }
    CHECK_EQ(rio_file_writev_at(f, many, maxn, 0), maxn);
    memset(bytes, 0, (size_t)maxn + 1);
    CHECK_EQ(rio_file_readv_at(f, many, maxn, 0), maxn);
    int ok = 1;
    for (int i = 0; i < maxn; i++)
        ok &= bytes[i] == (char)(i * 7);
    CHECK(ok);
    CHECK_ERR(rio_file_writev_at(f, many, maxn + 1, 0), -EINVAL, "iovcnt");
    CHECK_MSG("rio_file_writev_at");
    CHECK_ERR(rio_file_readv_at(f, many, maxn + 1, 0), -EINVAL, "iovcnt");
    CHECK_MSG("rio_file_readv_at");
    CHECK_ERR(rio_file_readv_at(f, many, 100000, 0), -EINVAL, "iovcnt");
    CHECK_ERR(rio_file_readv_at(f, many, -1, 0), -EINVAL, "iovcnt");
    CHECK_ERR(rio_file_writev_at(f, many, -1, 0), -EINVAL, "iovcnt");
    free(many);
    free(bytes);

    /* NULL iov with a count; NULL base with a length. */
    CHECK_ERR(rio_file_readv_at(f, NULL, 1, 0), -EINVAL, "iov");
    CHECK_ERR(rio_file_writev_at(f, NULL, 2, 0), -EINVAL, "rio_file_writev_at");
    struct iovec holes[4] = {{x, 1}, {x, 1}, {x, 1}, {NULL, 5}};
    int64_t size_before = rio_file_size(f);
    CHECK_ERR(rio_file_writev_at(f, holes, 4, 1 << 20), -EINVAL, "iov[3]");
    CHECK_EQ(rio_file_size(f), size_before); /* nothing written */
    CHECK_ERR(rio_file_readv_at(f, holes, 4, 0), -EINVAL, "iov[3]");

    /* Large vectored transfer: 4 x 1 MiB. */
    char *big[4];
    struct iovec biov[4];
    for (int i = 0; i < 4; i++) {
        big[i] = malloc(1 << 20);
        check_fill(big[i], 1 << 20, 9, (uint64_t)i << 20);
        biov[i].iov_base = big[i];
        biov[i].iov_len = 1 << 20;
    }
    CHECK_EQ(rio_file_writev_at(f, biov, 4, 4096), 4 << 20);
    for (int i = 0; i < 4; i++)
        memset(big[i], 0, 1 << 20);
    CHECK_EQ(rio_file_readv_at(f, biov, 4, 4096), 4 << 20);
    ok = 1;
    for (int i = 0; i < 4; i++) {
        ok &= check_verify(big[i], 1 << 20, 9, (uint64_t)i << 20);
        free(big[i]);
    }
    CHECK(ok);

    CHECK_EQ(rio_file_close(f), 0);
    unlink(path);
}

static void test_sync_allocate_truncate(rio_runtime_t *rt) {
    char path[512];
    fpath(path, sizeof path, "meta");
    rio_file_t *f = open_ok(rt, path, RWCT);
    if (!f)
        return;
    struct stat st;

    CHECK_EQ(rio_file_sync(f), 0);
    CHECK_EQ(rio_file_datasync(f), 0);
    char data[10000];
    check_fill(data, sizeof data, 10, 0);
    CHECK_EQ(rio_file_write_at(f, data, sizeof data, 0), sizeof data);
    CHECK_EQ(rio_file_sync(f), 0);
    CHECK_EQ(rio_file_datasync(f), 0);
    CHECK_EQ(rio_file_size(f), sizeof data);

    /* truncate: shrink, then grow (zeros). */
    CHECK_EQ(rio_file_truncate(f, 4000), 0);
    CHECK_EQ(rio_file_size(f), 4000);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, 4000);
    char back[10000];
    CHECK_EQ(rio_file_read_at(f, back, sizeof back, 0), 4000);
    CHECK(memcmp(back, data, 4000) == 0);
    CHECK_EQ(rio_file_truncate(f, 1 << 20), 0);
    CHECK_EQ(rio_file_size(f), 1 << 20);
    memset(back, 'x', sizeof back);
    CHECK_EQ(rio_file_read_at(f, back, sizeof back, 4000), sizeof back);
    int zeros = 1;
    for (size_t i = 0; i < sizeof back; i++)
        zeros &= back[i] == 0;
    CHECK(zeros);
    CHECK_EQ(rio_file_truncate(f, 0), 0);
    CHECK_EQ(rio_file_size(f), 0);
    CHECK_ERR(rio_file_truncate(f, UINT64_MAX), -EINVAL, "rio_file_truncate");
    CHECK_ERR(rio_file_truncate(f, (uint64_t)INT64_MAX + 1), -EINVAL, "rio_file_truncate");
    CHECK_EQ(rio_file_size(f), 0);

    /* allocate: the size grows to cover the range, blocks are reserved. */
    CHECK_EQ(rio_file_allocate(f, 0, 1 << 20), 0);
    CHECK_EQ(rio_file_size(f), 1 << 20);
    CHECK_EQ(stat(path, &st), 0);
    CHECK(st.st_blocks * 512 >= (1 << 20));
    CHECK_EQ(rio_file_allocate(f, 3 << 20, 4096), 0);
    CHECK_EQ(rio_file_size(f), (3 << 20) + 4096);
    /* Inside the file: no size change. */
    CHECK_EQ(rio_file_allocate(f, 4096, 8192), 0);
    CHECK_EQ(rio_file_size(f), (3 << 20) + 4096);
    /* Allocated space reads as zeros. */
    CHECK_EQ(rio_file_read_at(f, back, 100, 100), 100);
    zeros = 1;
    for (int i = 0; i < 100; i++)
        zeros &= back[i] == 0;
    CHECK(zeros);
    /* Bad ranges. */
    CHECK_ERR(rio_file_allocate(f, 0, 0), -EINVAL, "rio_file_allocate");
    CHECK_ERR(rio_file_allocate(f, UINT64_MAX, 1), -EINVAL, "rio_file_allocate");
    CHECK_ERR(rio_file_allocate(f, (uint64_t)INT64_MAX, 2), -EINVAL, "rio_file_allocate");
    CHECK_ERR(rio_file_allocate(f, 0, UINT64_MAX), -EINVAL, "rio_file_allocate");
    CHECK_EQ(rio_file_size(f), (3 << 20) + 4096);

    CHECK_EQ(rio_file_close(f), 0);
    unlink(path);
}

/* Every function with a NULL handle or buffer: -EINVAL naming the function. */
static void test_null_args(rio_runtime_t *rt) {
    char buf[16] = {0};
    struct iovec iov = {buf, sizeof buf};
    CHECK_ERR(rio_file_read_at(NULL, buf, sizeof buf, 0), -EINVAL, "rio_file_read_at");
    CHECK_ERR(rio_file_write_at(NULL, buf, sizeof buf, 0), -EINVAL, "rio_file_write_at");
    CHECK_ERR(rio_file_readv_at(NULL, &iov, 1, 0), -EINVAL, "rio_file_readv_at");
    CHECK_ERR(rio_file_writev_at(NULL, &iov, 1, 0), -EINVAL, "rio_file_writev_at");
    CHECK_ERR(rio_file_sync(NULL), -EINVAL, "rio_file_sync");
    CHECK_ERR(rio_file_datasync(NULL), -EINVAL, "rio_file_datasync");
    CHECK_ERR(rio_file_allocate(NULL, 0, 4096), -EINVAL, "rio_file_allocate");
    CHECK_ERR(rio_file_truncate(NULL, 0), -EINVAL, "rio_file_truncate");
    CHECK_ERR(rio_file_size(NULL), -EINVAL, "rio_file_size");
    CHECK_EQ(rio_file_close(NULL), 0);

    char path[512];
    fpath(path, sizeof path, "nulls");
    rio_file_t *f = open_ok(rt, path, RWCT);
    if (!f)
        return;
    CHECK_ERR(rio_file_read_at(f, NULL, 10, 0), -EINVAL, "rio_file_read_at");
    CHECK_MSG("buf");
    CHECK_ERR(rio_file_write_at(f, NULL, 10, 0), -EINVAL, "rio_file_write_at");
    CHECK_MSG("buf");
    CHECK_EQ(rio_file_size(f), 0);
    CHECK_EQ(rio_file_close(f), 0);
    unlink(path);
}

/* Many files open at once, and a file opened twice sees its own writes. */
static void test_many_files(rio_runtime_t *rt) {
    enum { N = 64 };
    rio_file_t *fs[N];
    char path[512];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "many-%d", i);
        fs[i] = open_ok(rt, fpath(path, sizeof path, name), RWCT);
    }
    for (int i = 0; i < N; i++)
        if (fs[i])
            CHECK_EQ(rio_file_write_at(fs[i], &i, sizeof i, (uint64_t)i), sizeof i);
    int ok = 1;
    for (int i = 0; i < N; i++) {
        int v = -1;
        if (!fs[i])
            continue;
        ok &= rio_file_read_at(fs[i], &v, sizeof v, (uint64_t)i) == sizeof v && v == i;
        ok &= rio_file_size(fs[i]) == (int64_t)(i + sizeof i);
        CHECK_EQ(rio_file_close(fs[i]), 0);
        char name[32];
        snprintf(name, sizeof name, "many-%d", i);
        unlink(fpath(path, sizeof path, name));
    }
    CHECK(ok);
}

static void run_all(rio_runtime_t *rt) {
    test_open_errors(rt);
    test_open_flags(rt);
    test_read_write(rt);
    test_vectored(rt);
    test_sync_allocate_truncate(rt);
    test_null_args(rt);
    test_many_files(rt);
}

int main(void) {
    unsetenv("RUSTFS_ENABLE_IO_URING");
    unsetenv("RUSTFS_MAX_CONCURRENT_FILE_OPS");
    check_tmpdir(dir, sizeof dir);
    check_for_each_backend(run_all);
    check_rmtree(dir);
    return check_summary("test_file");
}
