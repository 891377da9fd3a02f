/* C side of the Go binding (cgo). Each wrapper calls one librio function
 * and, when it fails, copies rio_last_error_message() INSIDE THE SAME cgo
 * call: the message is thread-local and a goroutine may run on another OS
 * thread by its next cgo call. On success nothing is allocated. */
#ifndef RIOGO_H
#define RIOGO_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "rio.h"

typedef struct {
    int64_t rc;  /* the library's result: >= 0, or -errno */
    char *msg;   /* on failure: malloc'd copy of the message (free with free()), else NULL */
} riogo_ret;

static inline riogo_ret riogo_result(int64_t rc) {
    riogo_ret r;
    r.rc = rc;
    r.msg = NULL;
    if (rc < 0) {
        r.msg = strdup(rio_last_error_message());
    }
    return r;
}

/* runtime */
static inline riogo_ret riogo_runtime_open(const rio_runtime_config_t *cfg, rio_runtime_t **out) {
    return riogo_result(rio_runtime_open(cfg, out));
}
static inline riogo_ret riogo_runtime_backend(const rio_runtime_t *rt) {
    return riogo_result(rio_runtime_backend(rt));
}
static inline riogo_ret riogo_runtime_capabilities(const rio_runtime_t *rt, rio_capabilities_t *out) {
    return riogo_result(rio_runtime_capabilities(rt, out));
}
static inline riogo_ret riogo_runtime_metrics_prometheus(rio_runtime_t *rt, char *buf, size_t cap) {
    return riogo_result(rio_runtime_metrics_prometheus(rt, buf, cap));
}

/* files */
static inline riogo_ret riogo_file_open(rio_runtime_t *rt, const char *path, uint32_t flags, uint32_t mode,
                                        rio_file_t **out) {
    return riogo_result(rio_file_open(rt, path, flags, mode, out));
}
static inline riogo_ret riogo_file_read_at(rio_file_t *f, void *buf, size_t len, uint64_t off) {
    return riogo_result(rio_file_read_at(f, buf, len, off));
}
static inline riogo_ret riogo_file_write_at(rio_file_t *f, const void *buf, size_t len, uint64_t off) {
    return riogo_result(rio_file_write_at(f, buf, len, off));
}
static inline riogo_ret riogo_file_from_fd(rio_runtime_t *rt, int fd, uint32_t flags, rio_file_t **out) {
    return riogo_result(rio_file_from_fd(rt, fd, flags, out));
}
static inline riogo_ret riogo_file_write_durable(rio_file_t *f, const void *buf, size_t len, uint64_t off) {
    return riogo_result(rio_file_write_durable(f, buf, len, off));
}
static inline riogo_ret riogo_file_readv_at(rio_file_t *f, const struct iovec *iov, int n, uint64_t off) {
    return riogo_result(rio_file_readv_at(f, iov, n, off));
}
static inline riogo_ret riogo_file_writev_at(rio_file_t *f, const struct iovec *iov, int n, uint64_t off) {
    return riogo_result(rio_file_writev_at(f, iov, n, off));
}
static inline riogo_ret riogo_file_sync(rio_file_t *f) { return riogo_result(rio_file_sync(f)); }
static inline riogo_ret riogo_file_datasync(rio_file_t *f) { return riogo_result(rio_file_datasync(f)); }
static inline riogo_ret riogo_file_allocate(rio_file_t *f, uint64_t off, uint64_t len) {
    return riogo_result(rio_file_allocate(f, off, len));
}
static inline riogo_ret riogo_file_truncate(rio_file_t *f, uint64_t len) {
    return riogo_result(rio_file_truncate(f, len));
}
static inline riogo_ret riogo_file_size(rio_file_t *f) { return riogo_result(rio_file_size(f)); }
static inline riogo_ret riogo_file_close(rio_file_t *f) { return riogo_result(rio_file_close(f)); }

/* batches */
static inline riogo_ret riogo_submit_batch(rio_runtime_t *rt, rio_op_t *ops, size_t n) {
    return riogo_result(rio_submit_batch(rt, ops, n));
}

/* write-ahead log */
static inline riogo_ret riogo_wal_open(rio_runtime_t *rt, const char *dir, const rio_wal_config_t *cfg,
                                       rio_wal_t **out) {
    return riogo_result(rio_wal_open(rt, dir, cfg, out));
}
static inline riogo_ret riogo_wal_append(rio_wal_t *w, const void *data, size_t len, uint64_t *seq) {
    return riogo_result(rio_wal_append(w, data, len, seq));
}
static inline riogo_ret riogo_wal_append_batch(rio_wal_t *w, const rio_slice_t *entries, size_t n,
                                               uint64_t *first_seq) {
    return riogo_result(rio_wal_append_batch(w, entries, n, first_seq));
}
static inline riogo_ret riogo_wal_sync(rio_wal_t *w) { return riogo_result(rio_wal_sync(w)); }
static inline riogo_ret riogo_wal_truncate_before(rio_wal_t *w, uint64_t seq) {
    return riogo_result(rio_wal_truncate_before(w, seq));
}
static inline riogo_ret riogo_wal_reader_open(rio_wal_t *w, uint64_t from, rio_wal_reader_t **out) {
    return riogo_result(rio_wal_reader_open(w, from, out));
}
static inline riogo_ret riogo_wal_reader_next(rio_wal_reader_t *r, uint64_t *seq, const uint8_t **data,
                                              size_t *len) {
    return riogo_result(rio_wal_reader_next(r, seq, data, len));
}
static inline riogo_ret riogo_wal_close(rio_wal_t *w) { return riogo_result(rio_wal_close(w)); }

#endif /* RIOGO_H */
