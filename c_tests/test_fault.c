/* The fault-injection API: rio_fault_default, rio_runtime_add_fault,
 * rio_runtime_clear_faults, rio_runtime_simulate_power_loss — errors,
 * short transfers, power loss (at a chosen fdatasync and on demand), and
 * every bad input. */
#include <sys/resource.h>

#include "check.h"

static rio_runtime_t *faulty(uint32_t backend) {
    rio_runtime_config_t cfg;
    rio_runtime_config_default(&cfg);
    cfg.fault_injection = true;
    return check_runtime_open(backend, &cfg);
}

static int64_t file_size_of(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    return n;
}

/* Makes the new file's directory entry durable: a directory opened with
 * rio_file_open and fsynced through the runtime. */
static void sync_dir(rio_runtime_t *rt, const char *dir) {
    rio_file_t *d = NULL;
    CHECK_EQ(rio_file_open(rt, dir, RIO_OPEN_READ, 0, &d), 0);
    CHECK_EQ(rio_file_sync(d), 0);
    CHECK_EQ(rio_file_close(d), 0);
}

static void bad_inputs(rio_runtime_t *rt) {
    rio_fault_t fault;
    rio_fault_default(NULL); /* ignored */
    rio_fault_default(&fault);
    CHECK_EQ(fault.struct_size, sizeof fault);
    CHECK_EQ(fault.nth, 1);
    CHECK_EQ(fault.error, EIO);
    CHECK_EQ(rio_runtime_add_fault(NULL, &fault), -EINVAL);
    CHECK_MSG("rio_runtime_add_fault");
    CHECK_EQ(rio_runtime_add_fault(rt, NULL), -EINVAL);
    rio_fault_t bad = fault;
    bad.target = 99;
    CHECK_EQ(rio_runtime_add_fault(rt, &bad), -EINVAL);
    CHECK_MSG("target");
    bad = fault;
    bad.action = 42;
    CHECK_EQ(rio_runtime_add_fault(rt, &bad), -EINVAL);
    bad = fault;
    bad.error = 0;
    CHECK_EQ(rio_runtime_add_fault(rt, &bad), -EINVAL);
    bad = fault;
    bad.nth = 0;
    CHECK_EQ(rio_runtime_add_fault(rt, &bad), -EINVAL);
    bad = fault;
    bad.struct_size = sizeof fault + 8;
    CHECK_EQ(rio_runtime_add_fault(rt, &bad), -EINVAL);
    bad = fault;
    bad.action = RIO_FAULT_POWER_LOSS;
    bad.crash_mode = 7;
    CHECK_EQ(rio_runtime_add_fault(rt, &bad), -EINVAL);
    CHECK_EQ(rio_runtime_clear_faults(NULL), -EINVAL);
    CHECK_EQ(rio_runtime_simulate_power_loss(NULL, RIO_CRASH_DISCARD_ALL, 0), -EINVAL);
    CHECK_EQ(rio_runtime_simulate_power_loss(rt, 9, 0), -EINVAL);
    CHECK_MSG("crash mode");
}

static void not_enabled(rio_runtime_t *rt) {
    rio_fault_t fault;
    rio_fault_default(&fault);
    CHECK_EQ(rio_runtime_add_fault(rt, &fault), -EOPNOTSUPP);
    CHECK_MSG("fault_injection");
    CHECK_EQ(rio_runtime_clear_faults(rt), -EOPNOTSUPP);
    CHECK_EQ(rio_runtime_simulate_power_loss(rt, RIO_CRASH_DISCARD_ALL, 0), -EOPNOTSUPP);
}

static void errors_and_short_transfers(rio_runtime_t *rt) {
    char dir[256], path[512];
    check_tmpdir(dir, sizeof dir);
    check_path(path, sizeof path, dir, "f");
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE, 0644, &f), 0);
    rio_fault_t fault;
    rio_fault_default(&fault);
    fault.target = RIO_FAULT_ON_WRITE;
    fault.nth = 2;
    fault.error = ENOSPC;
    CHECK_EQ(rio_runtime_add_fault(rt, &fault), 0);
    char buf[8192];
    check_fill(buf, sizeof buf, 3, 0);
    CHECK_EQ(rio_file_write_at(f, buf, 100, 0), 100);
    CHECK_EQ(rio_file_write_at(f, buf, 100, 100), -ENOSPC);
    CHECK_EQ(rio_file_write_at(f, buf, 100, 100), 100);
    /* EINTR on every write and short transfers: never seen by the caller. */
    rio_fault_default(&fault);
    fault.target = RIO_FAULT_ON_WRITE;
    fault.count = 0;
    fault.error = EINTR;
    CHECK_EQ(rio_runtime_add_fault(rt, &fault), 0);
    rio_fault_default(&fault);
    fault.action = RIO_FAULT_SHORT;
    fault.count = 0;
    CHECK_EQ(rio_runtime_add_fault(rt, &fault), 0);
    CHECK_EQ(rio_file_write_at(f, buf, sizeof buf, 0), sizeof buf);
    char back[8192];
    CHECK_EQ(rio_file_read_at(f, back, sizeof back, 0), sizeof back);
    CHECK(memcmp(buf, back, sizeof buf) == 0);
    CHECK_EQ(rio_runtime_clear_faults(rt), 0);
    CHECK_EQ(rio_file_close(f), 0);
    check_rmtree(dir);
}

static void power_loss_at_the_second_fdatasync(rio_runtime_t *rt) {
    char dir[256], path[512];
    check_tmpdir(dir, sizeof dir);
    check_path(path, sizeof path, dir, "p");
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE, 0644, &f), 0);
    sync_dir(rt, dir);
    rio_fault_t fault;
    rio_fault_default(&fault);
    fault.target = RIO_FAULT_ON_FDATASYNC;
    fault.nth = 2;
    fault.action = RIO_FAULT_POWER_LOSS;
    CHECK_EQ(rio_runtime_add_fault(rt, &fault), 0);
    char buf[4096];
    memset(buf, 'a', sizeof buf);
    CHECK_EQ(rio_file_write_at(f, buf, sizeof buf, 0), sizeof buf);
    CHECK_EQ(rio_file_datasync(f), 0);                 /* durable */
    CHECK_EQ(rio_file_write_at(f, buf, sizeof buf, 4096), sizeof buf);
    CHECK_EQ(rio_file_datasync(f), -EIO);              /* the power went out */
    CHECK_EQ(rio_file_write_at(f, buf, 1, 0), -EIO);   /* a dead machine does nothing */
    CHECK_EQ(file_size_of(path), 4096);                /* the unsynced write is gone */
    CHECK_EQ(rio_file_close(f), 0);
    check_rmtree(dir);
}

static void power_loss_on_demand(rio_runtime_t *rt) {
    char dir[256], path[512];
    check_tmpdir(dir, sizeof dir);
    check_path(path, sizeof path, dir, "q");
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE, 0644, &f), 0);
    sync_dir(rt, dir);
    char buf[1000];
    memset(buf, 'b', sizeof buf);
    CHECK_EQ(rio_file_write_at(f, buf, sizeof buf, 0), sizeof buf);
    CHECK_EQ(rio_file_sync(f), 0);
    for (int i = 1; i < 6; i++) CHECK_EQ(rio_file_write_at(f, buf, sizeof buf, (uint64_t)i * 1000), sizeof buf);
    char fresh[512];
    check_path(fresh, sizeof fresh, dir, "never-synced-entry");
    rio_file_t *g = NULL;
    CHECK_EQ(rio_file_open(rt, fresh, RIO_OPEN_WRITE | RIO_OPEN_CREATE, 0644, &g), 0);
    CHECK_EQ(rio_file_datasync(g), 0);
    CHECK_EQ(rio_runtime_simulate_power_loss(rt, RIO_CRASH_TORN_PREFIX, 12345), 0);
    CHECK_EQ(file_size_of(fresh), -1); /* its directory was never synced: gone */
    CHECK_EQ(rio_file_close(g), 0);
    int64_t size = file_size_of(path);
    CHECK(size >= 1000 && size <= 6000); /* a prefix of the unsynced appends survives */
    CHECK_EQ(rio_file_sync(f), -EIO);
    CHECK_EQ(rio_file_close(f), 0);
    check_rmtree(dir);
}

static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* A database making a journal file per transaction: create, write, sync,
 * close, unlink. */
static void short_lived_file(rio_runtime_t *rt, const char *path) {
    rio_file_t *f = NULL;
    CHECK_EQ(rio_file_open(rt, path, RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE, 0644, &f), 0);
    CHECK_EQ(rio_file_write_at(f, "journal", 7, 0), 7);
    CHECK_EQ(rio_file_datasync(f), 0);
    CHECK_EQ(rio_file_close(f), 0);
    CHECK_EQ(unlink(path), 0);
}

/* The fault backend keeps no descriptor for such files (it used to keep
 * one per file forever), and after 200 of them under RLIMIT_NOFILE 128 a
 * power loss still rolls back an unsynced write (it used to be silently
 * unjournaled once the shadow descriptors ran out). */
static void short_lived_files(rio_runtime_t *rt) {
    char dir[256], path[512], kept[512];
    check_tmpdir(dir, sizeof dir);
    check_path(path, sizeof path, dir, "journal");
    check_path(kept, sizeof kept, dir, "kept");
    short_lived_file(rt, path); /* warm-up: an io_uring thread makes its ring */
    int before = open_fds();
    for (int i = 0; i < 300; i++)
        short_lived_file(rt, path);
    CHECK_EQ(open_fds() - before, 0);

    FILE *fp = fopen(kept, "wb");
    CHECK(fp && fputs("synced", fp) >= 0 && fclose(fp) == 0);
    struct rlimit old, low;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 128;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    for (int i = 0; i < 200; i++)
        short_lived_file(rt, path);
    rio_file_t *k = NULL;
    CHECK_EQ(rio_file_open(rt, kept, RIO_OPEN_WRITE, 0, &k), 0);
    CHECK_EQ(rio_file_write_at(k, "LOST!!", 6, 0), 6);
    CHECK_EQ(rio_runtime_simulate_power_loss(rt, RIO_CRASH_DISCARD_ALL, 0), 0);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    char back[16] = {0};
    fp = fopen(kept, "rb");
    CHECK(fp && fread(back, 1, sizeof back - 1, fp) == 6);
    if (fp)
        fclose(fp);
    CHECK(strcmp(back, "synced") == 0);
    CHECK_EQ(rio_file_close(k), 0);
    check_rmtree(dir);
}

int main(void) {
    for (int i = 0; i < 2; i++) {
        if (!check_backend_enabled(check_backends[i])) continue;
        check_ctx = check_backend_name(check_backends[i]);
        void (*cases[])(rio_runtime_t *) = {bad_inputs, errors_and_short_transfers,
                                            power_loss_at_the_second_fdatasync, power_loss_on_demand,
                                            short_lived_files};
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            rio_runtime_t *rt = faulty(check_backends[i]);
            if (!rt) continue;
            cases[c](rt);
            rio_runtime_close(rt);
        }
        rio_runtime_t *plain = check_runtime_open(check_backends[i], NULL);
        if (plain) {
            not_enabled(plain);
            rio_runtime_close(plain);
        }
    }
    return check_summary("test_fault");
}
