/* RIO_OPEN_DIRECT and rio_buf_alloc/rio_buf_free: aligned round trips,
 * misaligned buffer/offset/length rejected with a message naming the
 * alignment, on both backends. Needs a filesystem with O_DIRECT (ext4,
 * xfs, btrfs; not tmpfs): TMPDIR, else /tmp. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "check.h"

/* Lets rio_buf_alloc report an impossible size instead of ASan aborting. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static char dir[256];
static unsigned mem_align = 512, off_align = 512; /* from statx(STATX_DIOALIGN) */

static const char *fpath(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s-%s", dir, check_ctx, name);
    return buf;
}

#define RWCT (RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE)

static int aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

static void test_buf_alloc(void) {
    size_t sizes[] = {1, 100, 511, 512, 4095, 4096, 4097, 65536, 1 << 20, (8 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = rio_buf_alloc(sizes[i]);
        CHECK(p != NULL);
        if (!p)
            continue;
        CHECK(aligned(p, RIO_BUF_ALIGN));
        CHECK(aligned(p, mem_align));
        /* Zeroed and writable over its whole length. */
        int zero = 1;
        for (size_t j = 0; j < sizes[i]; j++)
            zero &= p[j] == 0;
        CHECK(zero);
        memset(p, 0xA5, sizes[i]);
        rio_buf_free(p);
    }
    CHECK_EQ(RIO_BUF_ALIGN % 512, 0);
    CHECK(RIO_BUF_ALIGN >= 4096);

    /* Many at once, all distinct and aligned. */
    void *many[100];
    int ok = 1;
    for (int i = 0; i < 100; i++) {
        many[i] = rio_buf_alloc((size_t)i * 100 + 1);
        ok &= many[i] != NULL && aligned(many[i], RIO_BUF_ALIGN);
    }
    for (int i = 0; i < 100; i++)
        rio_buf_free(many[i]);
    CHECK(ok);

    /* 0 bytes: NULL with a message. */
    CHECK(rio_buf_alloc(0) == NULL);
    CHECK_MSG("rio_buf_alloc");
    /* Impossible sizes: NULL with a message, no crash. */
    CHECK(rio_buf_alloc(SIZE_MAX) == NULL);
    CHECK_MSG("rio_buf_alloc");
    CHECK(rio_buf_alloc((size_t)1 << 62) == NULL);
    CHECK_MSG("rio_buf_alloc");
    /* NULL: no-op. */
    rio_buf_free(NULL);
    CHECK(1);
}

static void check_align_msg(void) {
    char want[64];
    snprintf(want, sizeof want, "%u", off_align);
    CHECK_MSG(want);
    CHECK_MSG("align");
}

static void test_direct(rio_runtime_t *rt) {
    char path[512];
    fpath(path, sizeof path, "direct");
    rio_file_t *f = NULL;
    int rc = rio_file_open(rt, path, RWCT | RIO_OPEN_DIRECT, 0644, &f);
    CHECK_EQ(rc, 0);
    if (rc != 0)
        return;
    long flags = check_fd_flags(path);
    CHECK(flags >= 0 && (flags & O_DIRECT));

    /* Aligned round trip, 1 MiB at a non-zero aligned offset. */
    size_t len = 1 << 20;
    unsigned char *w = rio_buf_alloc(len), *r = rio_buf_alloc(len);
    check_fill(w, len, 11, 0);
    CHECK_EQ(rio_file_write_at(f, w, len, 3 * 4096), len);
    CHECK_EQ(rio_file_size(f), 3 * 4096 + len);
    CHECK_EQ(rio_file_read_at(f, r, len, 3 * 4096), len);
    CHECK(memcmp(w, r, len) == 0);
    /* Smallest aligned unit. */
    CHECK_EQ(rio_file_write_at(f, w, off_align, off_align), off_align);
    CHECK_EQ(rio_file_read_at(f, r, off_align, off_align), off_align);
    CHECK(memcmp(w, r, off_align) == 0);

    /* Vectored, aligned. */
    struct iovec iov[4];
    for (int i = 0; i < 4; i++) {
        iov[i].iov_base = w + (size_t)i * 8192;
        iov[i].iov_len = 8192;
    }
    CHECK_EQ(rio_file_writev_at(f, iov, 4, 0), 4 * 8192);
    for (int i = 0; i < 4; i++)
        iov[i].iov_base = r + (size_t)i * 8192;
    memset(r, 0, len);
    CHECK_EQ(rio_file_readv_at(f, iov, 4, 0), 4 * 8192);
    CHECK(memcmp(w, r, 4 * 8192) == 0);

    int64_t size = rio_file_size(f);

    /* Misaligned buffer, offset, length: -EINVAL naming the alignment;
     * nothing written. */
    if (mem_align > 1) {
        CHECK_ERR(rio_file_write_at(f, w + 1, 4096, 0), -EINVAL, "rio_file_write_at");
        check_align_msg();
        CHECK_ERR(rio_file_read_at(f, r + 1, 4096, 0), -EINVAL, "rio_file_read_at");
        check_align_msg();
    }
    if (off_align > 1) {
        CHECK_ERR(rio_file_write_at(f, w, 4096, 1), -EINVAL, "rio_file_write_at");
        check_align_msg();
        CHECK_ERR(rio_file_write_at(f, w, 4096, size + off_align / 2), -EINVAL, "rio_file_write_at");
        CHECK_ERR(rio_file_read_at(f, r, 4096, off_align / 2), -EINVAL, "rio_file_read_at");
        check_align_msg();
        CHECK_ERR(rio_file_write_at(f, w, 100, 0), -EINVAL, "rio_file_write_at");
        check_align_msg();
        CHECK_ERR(rio_file_write_at(f, w, 4096 + 1, size), -EINVAL, "rio_file_write_at");
        CHECK_ERR(rio_file_read_at(f, r, off_align - 1, 0), -EINVAL, "rio_file_read_at");
        check_align_msg();
        /* Vectored: one bad entry spoils the call. */
        iov[2].iov_len = 100;
        CHECK_ERR(rio_file_writev_at(f, iov, 4, size), -EINVAL, "rio_file_writev_at");
        check_align_msg();
        iov[2].iov_len = 8192;
        iov[3].iov_base = r + 1;
        CHECK_ERR(rio_file_readv_at(f, iov, 4, 0), -EINVAL, "rio_file_readv_at");
        check_align_msg();
        CHECK_ERR(rio_file_readv_at(f, iov, 3, 1), -EINVAL, "rio_file_readv_at");
    }
    /* A batch of aligned direct writes and reads (one submission). */
    {
        enum { N = 16, SZ = 4096 };
        rio_op_t ops[2 * N];
        for (int i = 0; i < N; i++)
            ops[i] = (rio_op_t){.opcode = RIO_OP_WRITE, .file = f, .buf = w + (size_t)(N - 1 - i) * SZ,
                                .len = SZ, .offset = (uint64_t)(N - 1 - i) * SZ, .user_data = (uint64_t)i};
        CHECK_EQ(rio_submit_batch(rt, ops, N), N);
        int ok = 1;
        for (int i = 0; i < N; i++)
            ok &= ops[i].result == SZ && ops[i].user_data == (uint64_t)i;
        CHECK(ok);
        memset(r, 0, (size_t)N * SZ);
        for (int i = 0; i < N; i++)
            ops[i] = (rio_op_t){.opcode = RIO_OP_READ, .file = f, .buf = r + (size_t)(N - 1 - i) * SZ,
                                .len = SZ, .offset = (uint64_t)(N - 1 - i) * SZ};
        ops[N] = (rio_op_t){.opcode = RIO_OP_FDATASYNC, .file = f};
        CHECK_EQ(rio_submit_batch(rt, ops, N + 1), N + 1);
        ok = 1;
        for (int i = 0; i < N; i++)
            ok &= ops[i].result == SZ;
        CHECK(ok);
        CHECK_EQ(ops[N].result, 0);
        CHECK(memcmp(w, r, (size_t)N * SZ) == 0);
        /* A misaligned op rejects the batch up front, naming it. */
        ops[3].offset += 1;
        CHECK_ERR(rio_submit_batch(rt, ops, N), -EINVAL, "ops[3]");
        check_align_msg();
    }

    /* The message names the path too. */
    CHECK_ERR(rio_file_write_at(f, w, 100, 0), -EINVAL, path);
    CHECK_EQ(rio_file_size(f), size);

    /* Metadata calls are not restricted by alignment. */
    CHECK_EQ(rio_file_sync(f), 0);
    CHECK_EQ(rio_file_datasync(f), 0);
    CHECK_EQ(rio_file_truncate(f, 5000), 0);
    CHECK_EQ(rio_file_size(f), 5000);
    /* A short read at EOF with aligned arguments. */
    memset(r, 0xFF, 8192);
    CHECK_EQ(rio_file_read_at(f, r, 8192, 0), 5000);
    CHECK(memcmp(r, w, 5000) == 0);
    CHECK_EQ(rio_file_read_at(f, r, 8192, 8192), 0);
    CHECK_EQ(rio_file_allocate(f, 8192, 8192), 0);
    CHECK_EQ(rio_file_size(f), 16384);
    CHECK_EQ(rio_file_close(f), 0);

    /* A buffered handle on the same file sees the direct writes, and the
     * direct handle sees buffered writes once they are flushed. */
    rio_file_t *b = NULL, *d = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE, 0, &b), 0);
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_DIRECT, 0, &d), 0);
    if (b && d) {
        char plain[100];
        check_fill(plain, sizeof plain, 12, 0);
        CHECK_EQ(rio_file_write_at(b, plain, sizeof plain, 4096), sizeof plain);
        CHECK_EQ(rio_file_sync(b), 0);
        CHECK_EQ(rio_file_read_at(d, r, 4096, 4096), 4096);
        CHECK(memcmp(r, plain, sizeof plain) == 0);
        /* A read-only direct handle cannot write. */
        CHECK(rio_file_write_at(d, w, 4096, 0) < 0);
    }
    rio_file_close(b);
    rio_file_close(d);

    rio_buf_free(w);
    rio_buf_free(r);
    unlink(path);
}

int main(void) {
    unsetenv("RUSTFS_ENABLE_IO_URING");
    unsetenv("RUSTFS_MAX_CONCURRENT_FILE_OPS");
    check_tmpdir(dir, sizeof dir);
    /* The alignment the library should find. */
    char probe[300];
    snprintf(probe, sizeof probe, "%s/probe", dir);
    int fd = open(probe, O_CREAT | O_RDWR | O_DIRECT, 0644);
    if (fd < 0) {
        printf("  SKIP: %s does not support O_DIRECT; set TMPDIR to an ext4/xfs directory\n", dir);
        check_rmtree(dir);
        test_buf_alloc();
        return check_summary("test_direct");
    }
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
        stx.stx_dio_offset_align) {
        mem_align = stx.stx_dio_mem_align;
        off_align = stx.stx_dio_offset_align;
    }
    close(fd);
    unlink(probe);

    test_buf_alloc();
    check_for_each_backend(test_direct);
    check_rmtree(dir);
    return check_summary("test_direct");
}
