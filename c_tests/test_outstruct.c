/* Output structs (rio_capabilities_t, rio_metrics_t) are filled only up to
 * the caller's struct_size: a caller built against an older, smaller struct
 * puts it in a buffer with a guard region behind it, and no byte of the
 * guard may change, for every size from the 8-byte prefix up. A newer,
 * larger struct keeps the bytes past the library's size. struct_size comes
 * back as the number of bytes filled. Sizes below the prefix are -EINVAL
 * and write nothing. Both backends. */
#include <stddef.h>

#include "check.h"

#define GUARD 0xA5
#define EXTRA 64 /* a newer caller's fields past the library's struct */

typedef int (*fill_fn)(rio_runtime_t *rt, void *out);

static int fill_caps(rio_runtime_t *rt, void *out) { return rio_runtime_capabilities(rt, out); }
static int fill_metrics(rio_runtime_t *rt, void *out) { return rio_runtime_metrics(rt, out); }

static int untouched(const unsigned char *p, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        if (p[i] != GUARD)
            return 0;
    return 1;
}

/* Fills a guarded buffer whose struct_size says `size`; checks the guard. */
static void one_size(rio_runtime_t *rt, fill_fn fill, size_t ours, uint32_t size, const char *name) {
    unsigned char buf[4096];
    memset(buf, GUARD, sizeof buf);
    memcpy(buf, &size, sizeof size);
    int rc = fill(rt, buf);
    uint32_t back;
    memcpy(&back, buf, sizeof back);
    size_t filled = size < ours ? size : ours;
    if (size < 8) {
        CHECK_ERR(rc, -EINVAL, "struct_size");
        CHECK_MSG(name);
        CHECK_EQ(back, size);
        CHECK(untouched(buf, sizeof size, sizeof buf));
        return;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(back, filled);
    /* The backend (in every version's prefix) is filled in. */
    int backend;
    memcpy(&backend, buf + 4, sizeof backend);
    CHECK_EQ(backend, rio_runtime_backend(rt));
    if (!untouched(buf, filled, sizeof buf)) {
        CHECK(!"bytes written past struct_size");
        fprintf(stderr, "    %s: struct_size %u, library size %zu\n", name, size, ours);
    }
}

static void test_sizes(rio_runtime_t *rt, fill_fn fill, size_t ours, const char *name) {
    for (uint32_t size = 0; size <= ours + EXTRA; size++)
        one_size(rt, fill, ours, size, name);
    one_size(rt, fill, ours, 4096, name); /* the whole buffer: a much newer caller */
}

static void run_all(rio_runtime_t *rt) {
    test_sizes(rt, fill_caps, sizeof(rio_capabilities_t), "rio_capabilities_t");
    test_sizes(rt, fill_metrics, sizeof(rio_metrics_t), "rio_metrics_t");

    /* Older callers' structs, read through the struct's own fields:
     * capabilities without the opcode bitmap and text fields, metrics
     * without the per-op table. */
    union {
        rio_capabilities_t c;
        rio_metrics_t m;
        unsigned char bytes[4096];
    } old;
    memset(&old, GUARD, sizeof old);
    old.c.struct_size = offsetof(rio_capabilities_t, io_uring_opcodes);
    CHECK_EQ(rio_runtime_capabilities(rt, &old.c), 0);
    CHECK_EQ(old.c.struct_size, offsetof(rio_capabilities_t, io_uring_opcodes));
    CHECK(old.c.max_concurrent_ops > 0);
    CHECK(untouched(old.bytes, offsetof(rio_capabilities_t, io_uring_opcodes), sizeof old));
    memset(&old, GUARD, sizeof old);
    old.m.struct_size = offsetof(rio_metrics_t, ops);
    CHECK_EQ(rio_runtime_metrics(rt, &old.m), 0);
    CHECK_EQ(old.m.struct_size, offsetof(rio_metrics_t, ops));
    CHECK_EQ(old.m.ops_in_flight, 0);
    CHECK(untouched(old.bytes, offsetof(rio_metrics_t, ops), sizeof old));

    /* The full struct: struct_size stays sizeof. */
    rio_metrics_t full = {.struct_size = sizeof full};
    CHECK_EQ(rio_runtime_metrics(rt, &full), 0);
    CHECK_EQ(full.struct_size, sizeof full);
    /* Not set (0): -EINVAL with a message telling what to do. */
    rio_capabilities_t unset = {0};
    CHECK_ERR(rio_runtime_capabilities(rt, &unset), -EINVAL, "sizeof(rio_capabilities_t)");
    CHECK_MSG("rio_runtime_capabilities");
}

int main(void) {
    unsetenv("RUSTFS_ENABLE_IO_URING");
    check_for_each_backend(run_all);
    return check_summary("test_outstruct");
}
