/* rio_runtime_metrics: the C snapshot counts operations, bytes, errors and
 * latencies per kind, and rejects NULL arguments. */
#include "check.h"

static void metrics_count(rio_runtime_t *rt) {
    char dir[256], path[512];
    check_tmpdir(dir, sizeof dir);
    check_path(path, sizeof path, dir, "m");
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE, 0644, &f), 0);

    rio_metrics_t before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    CHECK_EQ(rio_runtime_metrics(rt, &before), 0);
    CHECK_EQ(before.struct_size, sizeof(rio_metrics_t));
    CHECK_EQ(before.backend, rio_runtime_backend(rt));

    char buf[1000];
    memset(buf, 'm', sizeof buf);
    for (int i = 0; i < 10; i++) CHECK_EQ(rio_file_write_at(f, buf, sizeof buf, (uint64_t)i * 1000), 1000);
    CHECK_EQ(rio_file_datasync(f), 0);
    CHECK_EQ(rio_file_read_at(f, buf, sizeof buf, 500), 1000);
    CHECK_EQ(rio_file_read_at(f, NULL, 5, 0), -EINVAL); /* rejected before the engine: not an op */

    CHECK_EQ(rio_runtime_metrics(rt, &after), 0);
    const rio_op_metrics_t *w = &after.ops[RIO_METRIC_OP_WRITE], *w0 = &before.ops[RIO_METRIC_OP_WRITE];
    CHECK_EQ(w->count - w0->count, 10);
    CHECK_EQ(w->bytes - w0->bytes, 10000);
    CHECK_EQ(w->errors - w0->errors, 0);
    const rio_op_metrics_t *s = &after.ops[RIO_METRIC_OP_FDATASYNC];
    CHECK_EQ(s->count - before.ops[RIO_METRIC_OP_FDATASYNC].count, 1);
    CHECK(s->latency_samples >= 1); /* syncs are always timed */
    CHECK(s->p50_ns >= 1000 && s->p50_ns <= s->p99_ns && s->p99_ns <= s->p999_ns);
    CHECK(s->latency_sum_ns > 0);
    CHECK_EQ(after.ops[RIO_METRIC_OP_READ].bytes - before.ops[RIO_METRIC_OP_READ].bytes, 1000);
    CHECK_EQ(after.ops_in_flight, 0);
    /* Lone buffered ops are direct syscalls; a batch goes through the ring. */
    rio_op_t ops[2] = {
        {.opcode = RIO_OP_WRITE, .file = f, .buf = buf, .len = 100, .offset = 0},
        {.opcode = RIO_OP_READ, .file = f, .buf = buf + 100, .len = 100, .offset = 200},
    };
    CHECK_EQ(rio_submit_batch(rt, ops, 2), 2);
    rio_metrics_t batched = {.struct_size = sizeof batched};
    CHECK_EQ(rio_runtime_metrics(rt, &batched), 0);
    CHECK_EQ(batched.batches - after.batches, 1);
    if (rio_runtime_backend(rt) == RIO_BACKEND_IO_URING) {
        CHECK_EQ(after.io_uring_direct_ops - before.io_uring_direct_ops, 12);
        CHECK_EQ(after.io_uring_sqes_submitted, before.io_uring_sqes_submitted);
        CHECK_EQ(batched.io_uring_sqes_submitted - after.io_uring_sqes_submitted, 2);
        CHECK(batched.io_uring_enter_calls > after.io_uring_enter_calls);
    } else {
        CHECK_EQ(batched.io_uring_sqes_submitted, 0);
        CHECK_EQ(batched.io_uring_direct_ops, 0);
    }

    /* A failing op is counted as an error of its kind. */
    rio_file_t *ro = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ, 0, &ro), 0);
    CHECK_EQ(rio_file_write_at(ro, buf, 10, 0), -EBADF);
    CHECK_EQ(rio_runtime_metrics(rt, &after), 0);
    CHECK_EQ(after.ops[RIO_METRIC_OP_WRITE].errors - w0->errors, 1);

    CHECK_EQ(rio_runtime_metrics(NULL, &after), -EINVAL);
    CHECK_MSG("rio_runtime_metrics");
    CHECK_EQ(rio_runtime_metrics(rt, NULL), -EINVAL);
    CHECK_EQ(rio_file_close(ro), 0);
    CHECK_EQ(rio_file_close(f), 0);
    check_rmtree(dir);
}

int main(void) {
    check_for_each_backend(metrics_count);
    return check_summary("test_metrics");
}
