/* rio_file_from_fd: a handle over the caller's descriptor, on both
 * backends. Without RIO_FD_OWNED rio_file_close leaves the fd open and the
 * process's POSIX record locks survive (seen through an OFD lock query);
 * with it the fd is closed. Access mode, O_DIRECT and O_APPEND come from
 * F_GETFL; bad fds are -EBADF naming the fd; unknown flags -EINVAL; NULL
 * arguments -EINVAL. Needs O_DIRECT on TMPDIR (else /tmp), as test_direct
 * does. */
#include <fcntl.h>

#include "check.h"

static char dir[256];

static const char *fpath(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s-%s", dir, check_ctx, name);
    return buf;
}

static int lock_all(int fd) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    return fcntl(fd, F_SETLK, &fl);
}

/* 1 when our POSIX write lock on the file is in place, seen through
 * `probe`, another open file description of it: an OFD lock query
 * conflicts with the process's record locks. The probe is opened before
 * the lock and closed after the last check, since closing any descriptor
 * of the file drops the process's locks. (A forked child would do too,
 * but valgrind reports the child's exit as leaks.) */
static int locked(int probe) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(probe, F_OFD_GETLK, &fl) != 0)
        return -1;
    return fl.l_type != F_UNLCK;
}

static void test_borrowed_keeps_fd_and_locks(rio_runtime_t *rt) {
    char p[512];
    fpath(p, sizeof p, "borrowed");
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int probe = open(p, O_RDONLY);
    CHECK(fd >= 0 && probe >= 0);
    CHECK_EQ(locked(probe), 0);
    CHECK_EQ(lock_all(fd), 0);
    CHECK_EQ(locked(probe), 1);
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_from_fd(rt, fd, 0, &f), 0);
    CHECK_EQ(rio_file_write_at(f, "hello", 5, 0), 5);
    CHECK_EQ(rio_file_write_durable(f, "world", 5, 5), 5);
    char back[10];
    CHECK_EQ(rio_file_read_at(f, back, 10, 0), 10);
    CHECK(memcmp(back, "helloworld", 10) == 0);
    CHECK_EQ(rio_file_size(f), 10);
    CHECK_EQ(rio_file_close(f), 0);
    CHECK(fcntl(fd, F_GETFL) >= 0);      /* still open */
    CHECK_EQ(locked(probe), 1);          /* and the lock survived */
    CHECK_EQ(pread(fd, back, 10, 0), 10);
    CHECK(memcmp(back, "helloworld", 10) == 0);
    close(fd);
    close(probe);
}

static void test_owned_closes(rio_runtime_t *rt) {
    char p[512];
    fpath(p, sizeof p, "owned");
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int probe = open(p, O_RDONLY);
    CHECK_EQ(lock_all(fd), 0);
    CHECK_EQ(locked(probe), 1);
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_from_fd(rt, fd, RIO_FD_OWNED, &f), 0);
    CHECK_EQ(rio_file_write_durable(f, "owned", 5, 0), 5);
    CHECK_EQ(rio_file_close(f), 0);
    CHECK_EQ(locked(probe), 0);          /* closing the fd released the lock */
    close(probe);
    CHECK(fcntl(fd, F_GETFL) < 0 && errno == EBADF);
}

static void test_modes_from_the_fd(rio_runtime_t *rt) {
    char p[512];
    fpath(p, sizeof p, "modes");
    int w = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK_EQ(pwrite(w, "0123456789", 10, 0), 10);
    close(w);

    int ro = open(p, O_RDONLY);
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_from_fd(rt, ro, 0, &f), 0);
    char buf[4];
    CHECK_EQ(rio_file_read_at(f, buf, 4, 2), 4);
    CHECK(memcmp(buf, "2345", 4) == 0);
    CHECK_ERR(rio_file_write_at(f, "x", 1, 0), -EBADF, "rio_file_write_at");
    CHECK_ERR(rio_file_write_durable(f, "x", 1, 0), -EBADF, "not open for writing");
    rio_file_close(f);
    close(ro);

    int wo = open(p, O_WRONLY);
    CHECK_EQ(rio_file_from_fd(rt, wo, RIO_FD_OWNED, &f), 0);
    CHECK_ERR(rio_file_read_at(f, buf, 4, 0), -EBADF, "rio_file_read_at");
    rio_file_close(f);

    int ap = open(p, O_WRONLY | O_APPEND);
    CHECK_EQ(rio_file_from_fd(rt, ap, RIO_FD_OWNED, &f), 0);
    CHECK_EQ(rio_file_write_at(f, "ab", 2, 0), 2); /* appended: the offset is ignored */
    CHECK_EQ(rio_file_size(f), 12);
    CHECK_ERR(rio_file_write_durable(f, "ab", 2, 0), -EINVAL, "O_APPEND");
    rio_file_close(f);

    int d = open(p, O_RDWR | O_DIRECT);
    CHECK(d >= 0);
    CHECK_EQ(rio_file_from_fd(rt, d, RIO_FD_OWNED, &f), 0);
    CHECK_ERR(rio_file_write_at(f, "abc", 3, 1), -EINVAL, "O_DIRECT");
    CHECK_ERR(rio_file_write_durable(f, "abc", 3, 1), -EINVAL, "O_DIRECT");
    unsigned char *a = rio_buf_alloc(4096);
    memset(a, 'z', 4096);
    CHECK_EQ(rio_file_write_durable(f, a, 4096, 4096), 4096);
    memset(a, 0, 4096);
    CHECK_EQ(rio_file_read_at(f, a, 4096, 4096), 4096);
    CHECK(a[0] == 'z' && a[4095] == 'z');
    rio_buf_free(a);
    rio_file_close(f);
}

static void test_bad_arguments(rio_runtime_t *rt) {
    rio_file_t *f = (rio_file_t *)1;
    CHECK_ERR(rio_file_from_fd(rt, -1, 0, &f), -EBADF, "fd -1");
    CHECK(f == NULL);
    char p[512];
    int fd = open(fpath(p, sizeof p, "closed"), O_RDWR | O_CREAT, 0644);
    close(fd);
    char name[32];
    snprintf(name, sizeof name, "fd %d", fd);
    CHECK_ERR(rio_file_from_fd(rt, fd, RIO_FD_OWNED, &f), -EBADF, name);
    fd = open(p, O_RDWR);
    CHECK_ERR(rio_file_from_fd(rt, fd, 2, &f), -EINVAL, "unknown bits");
    CHECK_ERR(rio_file_from_fd(rt, fd, 0, NULL), -EINVAL, "out is NULL");
    CHECK_ERR(rio_file_from_fd(NULL, fd, 0, &f), -EINVAL, "rt is NULL");
    CHECK(fcntl(fd, F_GETFL) >= 0); /* failures never close it, owned or not */
    CHECK_ERR(rio_file_from_fd(rt, fd, RIO_FD_OWNED | 4, &f), -EINVAL, "unknown bits");
    CHECK(fcntl(fd, F_GETFL) >= 0);
    close(fd);
    CHECK_EQ(rio_file_close(NULL), 0);
}

static void run(rio_runtime_t *rt) {
    test_borrowed_keeps_fd_and_locks(rt);
    test_owned_closes(rt);
    test_modes_from_the_fd(rt);
    test_bad_arguments(rt);
}

int main(void) {
    check_tmpdir(dir, sizeof dir);
    check_for_each_backend(run);
    check_rmtree(dir);
    return check_summary("test_from_fd");
}
