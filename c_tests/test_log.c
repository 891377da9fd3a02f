/* rio_set_log_callback: records reach the callback with level, target and
 * message; the level filters; removing the callback stops delivery; bad
 * levels are rejected. */
#include <pthread.h>

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

    return check_summary("test_log");
}
