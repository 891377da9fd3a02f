/* Tiny test harness for the C test programs: CHECK records a pass or a
 * failure (with file:line and the library's last error message), and
 * check_summary() prints "N passed, N failed" and gives the exit status. */
#ifndef RIO_CHECK_H
#define RIO_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rio.h"

static int check_passed, check_failed;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            check_passed++;                                                      \
        } else {                                                                 \
            check_failed++;                                                      \
            fprintf(stderr, "  FAIL %s:%d: %s (last error: %s)\n", __FILE__,     \
                    __LINE__, #cond, rio_last_error_message());                  \
        }                                                                        \
    } while (0)

/* CHECK that `expr` (an int or int64_t result) equals `want`, printing both. */
#define CHECK_EQ(expr, want)                                                     \
    do {                                                                         \
        long long got_ = (long long)(expr), want_ = (long long)(want);           \
        if (got_ == want_) {                                                     \
            check_passed++;                                                      \
        } else {                                                                 \
            check_failed++;                                                      \
            fprintf(stderr, "  FAIL %s:%d: %s == %lld, want %lld (last error: %s)\n", \
                    __FILE__, __LINE__, #expr, got_, want_, rio_last_error_message()); \
        }                                                                        \
    } while (0)

/* CHECK that the last error message mentions `needle`. */
#define CHECK_MSG(needle) CHECK(strstr(rio_last_error_message(), (needle)) != NULL)

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed == 0 ? 0 : 1;
}

/* Makes a fresh scratch directory; returns its path in buf. */
static inline const char *check_tmpdir(char *buf, size_t cap) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, cap, "%s/rio-ctest-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        exit(2);
    }
    return buf;
}

#endif
