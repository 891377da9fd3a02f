/* rio_set_log_callback: records reach the callback with level, target and
 * message; the level filters; removing the callback stops delivery; bad
 * levels are rejected. The callback may call back into librio (issue 11
 * bug 2): a poisoned WAL logs, and the callback reads rio_wal_last_seq; a
 * slow fdatasync logs a warning on the group-commit leader, and the
 * callback appends to the same WAL. On old main both hung for ever (the
 * alarm turns a hang into a failure). */
#include <pthread.h>
#include <signal.h>

#include "check.h"

struct seen {
    pthread_mutex_t lock;
    int records;
    int worst_level;
    char last_target[128];
    char last_message[512];
};

static void on_log(int level, const char *target, const char *message, void *user_data) {
    struct seen *s = user_data;
    pthread_mutex_lock(&s->lock);
    s->records++;
    if (level > s->worst_level) s->worst_level = level;
    snprintf(s->last_target, sizeof s->last_target, "%s", target);
    snprintf(s->last_message, sizeof s->last_message, "%s", message);
    pthread_mutex_unlock(&s->lock);
}

/* The WAL the re-entrant callback calls into. */
static rio_wal_t *reentrant_wal;
static atomic_int reentrant_calls, reentrant_appends, reentrant_append_rc = 1;

static void calls_back(int level, const char *target, const char *message, void *user_data) {
    (void)level;
    (void)target;
    (void)user_data;
    rio_wal_t *w = reentrant_wal;
    if (!w)
        return;
    reentrant_calls++;
    (void)rio_wal_last_seq(w);
    (void)rio_wal_durable_seq(w);
    if (strstr(message, "slow") && atomic_fetch_add(&reentrant_appends, 1) == 0)
        reentrant_append_rc = rio_wal_append(w, "from the callback", 17, NULL);
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "  FAIL test_log: a log callback calling into librio hung\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
}

static void test_reentrant_callback(uint32_t backend) {
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.fault_injection = true;
    rio_runtime_t *rt = check_runtime_open(backend, &cfg);
    if (!rt)
        return;
    char dir[256], path[300];
    check_tmpdir(dir, sizeof dir);
    rio_wal_t *w = NULL;
    CHECK_EQ(rio_wal_open(rt, check_path(path, sizeof path, dir, "wal"), NULL, &w), 0);
    CHECK_EQ(rio_set_log_callback(RIO_LOG_WARN, calls_back, NULL), 0);
    reentrant_wal = w;
    signal(SIGALRM, on_alarm);
    alarm(60);
    rio_fault_t f;
    /* A slow sync: the warning comes from the leader's fdatasync. */
    rio_fault_default(&f);
    f.target = RIO_FAULT_ON_FDATASYNC;
    f.action = RIO_FAULT_DELAY;
    f.delay_us = 600 * 1000;
    CHECK_EQ(rio_runtime_add_fault(rt, &f), 0);
    CHECK_EQ(rio_wal_append(w, "slow", 4, NULL), 0);
    CHECK_EQ(reentrant_appends, 1);
    CHECK_EQ(reentrant_append_rc, 0);
    CHECK_EQ(rio_wal_last_seq(w), 2);
    /* A failed sync: poisoning logs an error. */
    rio_fault_default(&f);
    f.target = RIO_FAULT_ON_FDATASYNC;
    f.error = EIO;
    CHECK_EQ(rio_runtime_add_fault(rt, &f), 0);
    int before = reentrant_calls;
    CHECK_ERR(rio_wal_append(w, "doomed", 6, NULL), -EIO, "rio_wal_append");
    CHECK(reentrant_calls > before);
    CHECK_ERR(rio_wal_append(w, "again", 5, NULL), -EIO, "poisoned");
    alarm(0);
    reentrant_wal = NULL;
    CHECK_EQ(rio_set_log_callback(RIO_LOG_OFF, NULL, NULL), 0);
    CHECK_EQ(rio_wal_close(w), -EIO);
    rio_runtime_close(rt);
    check_rmtree(dir);
}

static void open_close_runtime(uint32_t backend) {
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.backend = backend;
    rio_runtime_t *rt = NULL;
    CHECK_EQ(rio_runtime_open(&cfg, &rt), 0);
    rio_runtime_close(rt);
}

int main(void) {
    struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};

    CHECK_EQ(rio_set_log_callback(6, on_log, &s), -EINVAL);
    CHECK_MSG("rio_set_log_callback");
    CHECK_EQ(rio_set_log_callback(-1, on_log, &s), -EINVAL);

    /* INFO: opening a runtime logs which backend it chose. */
    CHECK_EQ(rio_set_log_callback(RIO_LOG_INFO, on_log, &s), 0);
    open_close_runtime(RIO_BACKEND_THREAD_POOL);
    CHECK(s.records >= 1);
    CHECK(s.worst_level <= RIO_LOG_INFO);
    CHECK(strncmp(s.last_target, "rio", 3) == 0);
    CHECK(strstr(s.last_message, "runtime opened") != NULL);
    CHECK(strstr(s.last_message, "thread_pool") != NULL);

    /* ERROR only: the INFO record is filtered out. */
    int before = s.records;
    CHECK_EQ(rio_set_log_callback(RIO_LOG_ERROR, on_log, &s), 0);
    open_close_runtime(RIO_BACKEND_IO_URING);
    CHECK_EQ(s.records, before);

    /* Removed: nothing more arrives. */
    CHECK_EQ(rio_set_log_callback(RIO_LOG_TRACE, NULL, NULL), 0);
    open_close_runtime(RIO_BACKEND_THREAD_POOL);
    CHECK_EQ(s.records, before);
    CHECK_EQ(rio_set_log_callback(RIO_LOG_OFF, on_log, &s), 0);
    open_close_runtime(RIO_BACKEND_THREAD_POOL);
    CHECK_EQ(s.records, before);

    for (uint32_t b = RIO_BACKEND_IO_URING; b <= RIO_BACKEND_THREAD_POOL; b++) {
        if (!check_backend_enabled(b))
            continue;
        check_ctx = check_backend_name(b);
        reentrant_appends = 0;
        reentrant_append_rc = 1;
        test_reentrant_callback(b);
        check_ctx = "";
    }

    return check_summary("test_log");
}
