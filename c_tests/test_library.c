/* rio_version, rio_strerror, rio_last_error_message. */
#include <limits.h>
#include <pthread.h>

#include "check.h"

static void test_version(void) {
    const char *v = rio_version();
    CHECK(v != NULL);
    if (!v)
        return;
    CHECK(strcmp(v, RIO_VERSION_STRING) == 0);
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", RIO_VERSION_MAJOR, RIO_VERSION_MINOR, RIO_VERSION_PATCH);
    CHECK(strcmp(v, want) == 0);
    /* Static: the same string every time. */
    CHECK(rio_version() == v);
}

static void test_strerror(void) {
    /* Negative and positive codes give the same text, the C library's. */
    int codes[] = {EPERM, ENOENT, EIO, EBADF, ENOMEM, EINVAL, EEXIST, ENOSPC,
                   EOPNOTSUPP, ETIMEDOUT, EBADMSG, ENOTRECOVERABLE, EAGAIN, EINTR};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *neg = rio_strerror(-codes[i]);
        const char *pos = rio_strerror(codes[i]);
        CHECK(neg != NULL && pos != NULL);
        if (!neg || !pos)
            continue;
        CHECK(strcmp(neg, pos) == 0);
        CHECK(strcmp(neg, strerror(codes[i])) == 0);
        if (strcmp(neg, strerror(codes[i])) != 0)
            fprintf(stderr, "    rio_strerror(%d) = \"%s\", strerror = \"%s\"\n", -codes[i], neg,
                    strerror(codes[i]));
        /* Static: stable across calls. */
        CHECK(rio_strerror(-codes[i]) == neg);
    }
    CHECK(strstr(rio_strerror(-ENOENT), "No such file") != NULL);
    CHECK(strcmp(rio_strerror(0), "Success") == 0);

    /* Unknown codes: a string, never NULL. */
    int unknown[] = {4095, -4095, 100000, -100000, INT_MAX, INT_MIN, INT_MIN + 1};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = rio_strerror(unknown[i]);
        CHECK(s != NULL);
        if (s)
            CHECK(strstr(s, "Unknown error") != NULL);
    }
    /* Every code in a wide range gives a non-empty string. */
    int all_ok = 1;
    for (int e = -5000; e <= 5000; e++) {
        const char *s = rio_strerror(e);
        if (!s || !s[0])
            all_ok = 0;
    }
    CHECK(all_ok);
}

struct thread_arg {
    int which;
    int ok;
};

/* Fails a different function in each thread, many times, and checks that
 * the thread always sees its own message. */
static void *message_thread(void *p) {
    struct thread_arg *a = p;
    a->ok = 1;
    /* A new thread starts with an empty message, not its parent's. */
    const char *m = rio_last_error_message();
    if (!m || m[0] != '\0')
        a->ok = 0;
    for (int i = 0; i < 2000; i++) {
        const char *want;
        long long rc;
        switch (a->which % 4) {
        case 0: rc = rio_file_size(NULL); want = "rio_file_size"; break;
        case 1: rc = rio_file_sync(NULL); want = "rio_file_sync"; break;
        case 2: rc = rio_runtime_backend(NULL); want = "rio_runtime_backend"; break;
        default: rc = rio_file_truncate(NULL, 0); want = "rio_file_truncate"; break;
        }
        m = rio_last_error_message();
        if (rc != -EINVAL || !m || !strstr(m, want)) {
            a->ok = 0;
            break;
        }
        sched_yield();
    }
    return NULL;
}

static void test_last_error(void) {
    /* Initially empty, never NULL (nothing has failed on this thread yet). */
    const char *m = rio_last_error_message();
    CHECK(m != NULL);
    CHECK(m && m[0] == '\0');

    /* After a failure it names the function and the argument. */
    CHECK_EQ(rio_runtime_backend(NULL), -EINVAL);
    CHECK_MSG("rio_runtime_backend");
    CHECK_MSG("rt");

    /* Successful calls leave the last failure's message alone. */
    CHECK(rio_version() != NULL);
    CHECK(rio_strerror(-EIO) != NULL);
    rio_runtime_t *rt = NULL;
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.backend = RIO_BACKEND_THREAD_POOL;
    CHECK_EQ(rio_runtime_open(&cfg, &rt), 0);
    CHECK_EQ(rio_runtime_backend(rt), RIO_BACKEND_THREAD_POOL);
    CHECK_MSG("rio_runtime_backend");

    /* The next failure replaces it. */
    CHECK_EQ(rio_file_open(rt, NULL, RIO_OPEN_READ, 0, &(rio_file_t *){NULL}), -EINVAL);
    CHECK_MSG("rio_file_open");
    CHECK(strstr(rio_last_error_message(), "rio_runtime_backend") == NULL);
    rio_runtime_close(rt);

    /* Thread-local: a failure in another thread does not change ours. */
    char before[512];
    snprintf(before, sizeof before, "%s", rio_last_error_message());
    struct thread_arg one = {.which = 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, message_thread, &one), 0);
    pthread_join(t, NULL);
    CHECK(one.ok);
    CHECK(strcmp(rio_last_error_message(), before) == 0);

    /* Many threads failing different functions at once. */
    enum { N = 8 };
    pthread_t ts[N];
    struct thread_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i].which = i;
        CHECK_EQ(pthread_create(&ts[i], NULL, message_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(ts[i], NULL);
        CHECK(args[i].ok);
    }
    CHECK(strcmp(rio_last_error_message(), before) == 0);

    /* Long inputs do not break the message (a long path is quoted in it). */
    char dir[256];
    check_tmpdir(dir, sizeof dir);
    char longpath[3000];
    int n = snprintf(longpath, sizeof longpath, "%s/", dir);
    memset(longpath + n, 'x', sizeof longpath - n - 1);
    longpath[sizeof longpath - 1] = '\0';
    CHECK_EQ(rio_runtime_open(&cfg, &rt), 0);
    CHECK_ERR(rio_file_open(rt, longpath, RIO_OPEN_READ, 0, &(rio_file_t *){NULL}), -ENAMETOOLONG,
              "rio_file_open");
    rio_runtime_close(rt);
    check_rmtree(dir);
}

int main(void) {
    test_last_error(); /* first: checks the initial empty message */
    test_version();
    test_strerror();
    return check_summary("test_library");
}
