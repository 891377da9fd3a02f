// Tests of include/rio.hpp, the C++ RAII wrappers. Built with -std=c++17
// and -std=c++20 (std::span overloads); prints "N passed, N failed".
// Honours RIO_CTEST_BACKENDS and RIO_CTEST_REQUIRE_IO_URING like the C tests.
#include "rio.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#if __cplusplus >= 202002L
#include <array>
#include <span>
#endif

namespace fs = std::filesystem;

static std::atomic<int> passed{0}, failed{0};
static thread_local std::string ctx;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (cond) {                                                                        \
            passed++;                                                                      \
        } else {                                                                           \
            failed++;                                                                      \
            std::fprintf(stderr, "  FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, ctx.c_str(), #cond); \
        }                                                                                  \
    } while (0)

// CHECK that `expr` throws rio::error (a std::system_error) with errno
// `want` and a message containing `needle`.
#define CHECK_THROWS(expr, want, needle)                                                   \
    do {                                                                                   \
        bool ok_ = false;                                                                  \
        std::string got_ = "no exception";                                                 \
        try {                                                                              \
            (void)(expr);                                                                  \
        } catch (const rio::error &e_) {                                                   \
            const std::system_error &se_ = e_;                                             \
            ok_ = se_.code() == std::error_code((want), std::generic_category()) &&        \
                  se_.code() == std::errc(want) &&                                         \
                  e_.message().find(needle) != std::string::npos &&                        \
                  std::string(se_.what()).find(needle) != std::string::npos;               \
            got_ = std::to_string(se_.code().value()) + " " + e_.message();                \
        } catch (const std::exception &e_) {                                               \
            got_ = std::string("other exception: ") + e_.what();                           \
        }                                                                                  \
        if (ok_) {                                                                         \
            passed++;                                                                      \
        } else {                                                                           \
            failed++;                                                                      \
            std::fprintf(stderr, "  FAIL %s:%d [%s]: %s should throw errno %d naming \"%s\"; got %s\n", \
                         __FILE__, __LINE__, ctx.c_str(), #expr, (want), std::string(needle).c_str(), got_.c_str()); \
        }                                                                                  \
    } while (0)

static_assert(!std::is_copy_constructible<rio::Runtime>::value, "move-only");
static_assert(!std::is_copy_assignable<rio::File>::value, "move-only");
static_assert(std::is_nothrow_move_constructible<rio::File>::value, "noexcept move");
static_assert(std::is_nothrow_move_assignable<rio::Runtime>::value, "noexcept move");
static_assert(std::is_base_of<std::system_error, rio::error>::value, "rio::error is a system_error");
static_assert(!std::is_copy_constructible<rio::Wal>::value && !std::is_copy_constructible<rio::WalReader>::value,
              "move-only");
static_assert(std::is_nothrow_move_assignable<rio::Wal>::value, "noexcept move");

static int count_fds() {
    int n = 0;
    if (DIR *d = opendir("/proc/self/fd")) {
        while (readdir(d) != nullptr) n++;
        closedir(d);
    }
    return n;
}

static std::string pattern(int id, int block, std::size_t n) {
    std::string s(n, '\0');
    std::uint32_t x = static_cast<std::uint32_t>(id * 7919 + block * 104729 + 1);
    for (auto &c : s) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x);
    }
    return s;
}

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "rio-cpp-XXXXXX").string();
        path = mkdtemp(&tmpl[0]) ? fs::path(tmpl) : fs::path();
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string operator/(const char *name) const { return (path / name).string(); }
};

static const std::uint32_t RW_CREATE = RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE;

static bool backend_enabled(const char *name) {
    const char *list = std::getenv("RIO_CTEST_BACKENDS");
    if (list == nullptr || *list == '\0') return true;
    std::string l = std::string(",") + list + ",";
    return l.find(std::string(",") + name + ",") != std::string::npos;
}

// Runs fn on a runtime of each enabled backend.
static void for_each_backend(const std::function<void(rio::Runtime &)> &fn) {
    for (rio::Backend b : {rio::Backend::IoUring, rio::Backend::ThreadPool}) {
        if (!backend_enabled(rio::to_string(b))) continue;
        ctx = rio::to_string(b);
        try {
            rio::Runtime rt(b);
            CHECK(rt.backend() == b);
            fn(rt);
        } catch (const rio::error &e) {
            const char *req = std::getenv("RIO_CTEST_REQUIRE_IO_URING");
            if (b == rio::Backend::IoUring && e.code() == std::errc::operation_not_supported &&
                !(req && std::strcmp(req, "1") == 0)) {
                std::printf("  SKIP io_uring: %s\n", e.what());
                continue;
            }
            failed++;
            std::fprintf(stderr, "  FAIL [%s]: unexpected exception: %s\n", ctx.c_str(), e.what());
        } catch (const std::exception &e) {
            failed++;
            std::fprintf(stderr, "  FAIL [%s]: unexpected exception: %s\n", ctx.c_str(), e.what());
        }
        ctx.clear();
    }
}

static void test_library() {
    CHECK(std::string(rio::version()) == RIO_VERSION_STRING);
    CHECK(std::string(rio::to_string(rio::Backend::ThreadPool)) == "thread_pool");
}

static void test_runtime() {
    rio::Runtime def;
    CHECK(static_cast<bool>(def));
    CHECK(def.backend() == rio::Backend::IoUring || def.backend() == rio::Backend::ThreadPool);

    rio_runtime_config_t cfg = rio::Runtime::default_config();
    cfg.backend = 99;
    CHECK_THROWS(rio::Runtime(cfg), EINVAL, "backend");

    for_each_backend([](rio::Runtime &rt) {
        rio_capabilities_t caps = rt.capabilities();
        CHECK(caps.struct_size == sizeof caps);
        CHECK(static_cast<rio::Backend>(caps.backend) == rt.backend());
        CHECK(std::strlen(caps.kernel_release) > 0);
        CHECK((rt.backend() == rio::Backend::IoUring) == (caps.io_uring_unavailable_reason[0] == '\0'));
        rio_metrics_t snap = rt.metrics();
        CHECK(snap.struct_size == sizeof snap);
        CHECK(static_cast<rio::Backend>(snap.backend) == rt.backend());
        std::string m = rt.metrics_prometheus();
        CHECK(m.find("# TYPE rio_ops_total counter") != std::string::npos);
        CHECK(m.size() == std::strlen(m.c_str()));

        // Moving: the source holds nothing and its calls throw EINVAL.
        rio::Runtime moved(std::move(rt));
        CHECK(!rt && moved);
        CHECK_THROWS(rt.backend(), EINVAL, "rt is NULL");
        rt = std::move(moved);
        CHECK(rt && !moved);
        rio::Runtime other(rio::Backend::ThreadPool);
        other = std::move(rt); // closes other's runtime
        CHECK(other.capabilities().backend == caps.backend);
        rt = std::move(other);
        rt.close();
        rt.close();
        CHECK(!rt);
        CHECK_THROWS(rt.open("/nonexistent", RIO_OPEN_READ), EINVAL, "rt is NULL");
    });
}

static void test_files() {
    for_each_backend([](rio::Runtime &rt) {
        TempDir dir;
        std::string path = dir / "f";
        CHECK_THROWS(rt.open(path, RIO_OPEN_READ), ENOENT, path);
        CHECK_THROWS(rt.open(dir.path.string(), RIO_OPEN_READ | RIO_OPEN_WRITE), EISDIR, "rio_file_open");
        CHECK_THROWS(rt.open(path, RIO_OPEN_READ | (1u << 30)), EINVAL, "rio_file_open");

        rio::File f = rt.open(path, RW_CREATE | RIO_OPEN_EXCL, 0600);
        CHECK(static_cast<bool>(f));
        struct stat st;
        CHECK(stat(path.c_str(), &st) == 0 && (st.st_mode & 0777) == 0600);
        CHECK_THROWS(rt.open(path, RW_CREATE | RIO_OPEN_EXCL), EEXIST, path);

        std::string data = pattern(1, 0, 10000);
        CHECK(f.write_at(data.data(), data.size(), 100) == data.size());
        CHECK(f.size() == 100 + data.size());
        std::string buf(data.size(), '\0');
        CHECK(f.read_at(&buf[0], buf.size(), 100) == data.size() && buf == data);
        // Short only at end of file.
        CHECK(f.read_at(&buf[0], buf.size(), 5100) == 5000 && buf.compare(0, 5000, data, 5000, 5000) == 0);
        CHECK(f.read_at(&buf[0], buf.size(), 1u << 30) == 0);
        CHECK(f.write_at(std::string_view("hello"), 0) == 5);
        CHECK(f.read_at(&buf[0], 5, 0) == 5 && buf.compare(0, 5, "hello") == 0);
        CHECK(f.write_at(nullptr, 0, 0) == 0);
        CHECK_THROWS(f.read_at(nullptr, 1, 0), EINVAL, "buf");
        CHECK_THROWS(f.write_at("x", 1, std::uint64_t(1) << 63), EINVAL, "offset");

        // Vectored.
        std::string a = pattern(2, 0, 300), b = pattern(2, 1, 5000);
        struct iovec wv[2] = {{&a[0], a.size()}, {&b[0], b.size()}};
        CHECK(f.writev_at(wv, 2, 20000) == a.size() + b.size());
        std::string ra(300, '\0'), rb(6000, '\0');
        struct iovec rv[2] = {{&ra[0], ra.size()}, {&rb[0], rb.size()}};
        CHECK(f.readv_at(rv, 2, 20000) == a.size() + b.size());
        CHECK(ra == a && rb.compare(0, b.size(), b) == 0);
        CHECK_THROWS(f.readv_at(rv, -1, 0), EINVAL, "iovcnt");

        f.sync();
        f.datasync();
        try {
            f.allocate(0, 1 << 20);
            CHECK(f.size() == 1 << 20);
        } catch (const rio::error &e) {
            CHECK(e.code() == std::errc::operation_not_supported);
        }
        f.truncate(3);
        CHECK(f.size() == 3);
        CHECK_THROWS(f.allocate(0, 0), EINVAL, "rio_file_allocate");

        // Read-only file: writes fail with EBADF.
        rio::File r = rt.open(path, RIO_OPEN_READ);
        CHECK_THROWS(r.write_at("x", 1, 0), EBADF, "rio_file_write_at");
        CHECK(r.read_at(&buf[0], 10, 0) == 3 && buf.compare(0, 3, "hel") == 0);

        // Move, close, destructor.
        int fds = count_fds();
        {
            rio::File g = rt.open(path, RIO_OPEN_READ);
            CHECK(count_fds() == fds + 1);
            rio::File h(std::move(g));
            CHECK(!g && h);
            CHECK_THROWS(g.size(), EINVAL, "NULL");
            g = std::move(h);
            CHECK(g && !h);
        }
        CHECK(count_fds() == fds);
        {
            rio::File g = rt.open(path, RIO_OPEN_READ);
            rio::File h = rt.open(path, RIO_OPEN_READ);
            g = std::move(h); // closes g's file
            CHECK(count_fds() == fds + 1);
        }
        CHECK(count_fds() == fds);
        rio::File c = rt.open(path, RIO_OPEN_READ);
        c.close();
        c.close();
        CHECK(!c && count_fds() == fds);
        CHECK_THROWS(c.read_at(&buf[0], 1, 0), EINVAL, "NULL");
        rio::File raw = rio::File::adopt(r.release());
        CHECK(!r && raw && raw.size() == 3);

        // Files outlive their runtime handle.
        rio::File keep = rt.open(path, RIO_OPEN_READ | RIO_OPEN_WRITE);
        rio::Runtime gone = std::move(rt);
        gone.close();
        CHECK(keep.write_at("abc", 3, 3) == 3 && keep.size() == 6);
    });
}

// from_fd (borrowed: the fd outlives the File; owned: closed with it) and
// write_durable, read back through the same buffered handle.
static void test_from_fd_and_durable() {
    for_each_backend([](rio::Runtime &rt) {
        TempDir dir;
        std::string path = dir / "fd";
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0);
        {
            rio::File f = rt.from_fd(fd);
            std::string data = pattern(7, 0, 3 * 4096 + 123);
            CHECK(f.write_durable(data, 17) == data.size());
            std::string back(data.size(), '\0');
            CHECK(f.read_at(&back[0], back.size(), 17) == data.size() && back == data);
            CHECK(f.size() == 17 + data.size());
        }
        CHECK(fcntl(fd, F_GETFL) >= 0);
        rio::File owned = rt.from_fd(fd, RIO_FD_OWNED);
        CHECK(owned.write_durable(std::string_view("owned"), 0) == 5);
        owned.close();
        CHECK(fcntl(fd, F_GETFL) < 0 && errno == EBADF);
        CHECK_THROWS(rt.from_fd(-1), EBADF, "fd -1");
        CHECK_THROWS(rt.from_fd(0, 8), EINVAL, "rio_file_from_fd");
        rio::File r = rt.open(path, RIO_OPEN_READ);
        CHECK_THROWS(r.write_durable("x", 1, 0), EBADF, "rio_file_write_durable");
    });
}

static void test_direct_and_batch() {
    for_each_backend([](rio::Runtime &rt) {
        TempDir dir;
        std::string path = dir / "d";
        rio::AlignedBuffer buf(2 * RIO_BUF_ALIGN), back(2 * RIO_BUF_ALIGN);
        CHECK(reinterpret_cast<std::uintptr_t>(buf.data()) % RIO_BUF_ALIGN == 0 && buf.size() == 2 * RIO_BUF_ALIGN);
        std::string p = pattern(3, 0, buf.size());
        std::memcpy(buf.data(), p.data(), p.size());
        try {
            rio::File f = rt.open(path, RW_CREATE | RIO_OPEN_DIRECT);
            CHECK(f.write_at(buf.data(), buf.size(), RIO_BUF_ALIGN) == buf.size());
            CHECK(f.read_at(back.data(), back.size(), RIO_BUF_ALIGN) == back.size());
            CHECK(std::memcmp(back.data(), buf.data(), buf.size()) == 0);
            CHECK_THROWS(f.read_at(static_cast<char *>(back.data()) + 1, 512, 0), EINVAL, "align");
        } catch (const rio::error &e) {
            std::printf("  SKIP O_DIRECT: %s\n", e.what());
        }
        rio::AlignedBuffer empty(0);
        CHECK(empty.size() == 0);
        rio::AlignedBuffer moved(std::move(buf));
        CHECK(buf.data() == nullptr && moved.size() == 2 * RIO_BUF_ALIGN);

        // Batches.
        rio::File f = rt.open(dir / "b", RW_CREATE);
        std::string w1 = pattern(4, 0, 4096), w2 = pattern(4, 1, 100);
        rio_op_t ops[2] = {};
        ops[0].opcode = RIO_OP_WRITE;
        ops[0].file = f.native_handle();
        ops[0].buf = &w1[0];
        ops[0].len = w1.size();
        ops[0].offset = 0;
        ops[1] = ops[0];
        ops[1].buf = &w2[0];
        ops[1].len = w2.size();
        ops[1].offset = 4096;
        CHECK(rt.submit_batch(ops, 2) == 2);
        CHECK(ops[0].result == 4096 && ops[1].result == 100);
        std::string r(5000, '\0');
        rio_op_t rd[1] = {};
        rd[0].opcode = RIO_OP_READ;
        rd[0].file = f.native_handle();
        rd[0].buf = &r[0];
        rd[0].len = r.size();
#if __cplusplus >= 202002L
        CHECK(rt.submit_batch(std::span<rio_op_t>(rd)) == 1);
#else
        CHECK(rt.submit_batch(rd, 1) == 1);
#endif
        CHECK(rd[0].result == 4196 && r.compare(0, 4096, w1) == 0 && r.compare(4096, 100, w2) == 0);
        rd[0].opcode = 77;
        CHECK_THROWS(rt.submit_batch(rd, 1), EINVAL, "ops[0]");
    });
}

#if __cplusplus >= 202002L
static void test_spans() {
    for_each_backend([](rio::Runtime &rt) {
        TempDir dir;
        rio::File f = rt.open(dir / "s", RW_CREATE);
        std::vector<std::byte> bytes(64);
        for (std::size_t i = 0; i < bytes.size(); i++) bytes[i] = std::byte(i);
        CHECK(f.write_at(std::span<const std::byte>(bytes), 0) == 64);
        std::vector<unsigned char> u = {1, 2, 3};
        CHECK(f.write_at(u, 64) == 3);
        std::array<char, 100> c{};
        CHECK(f.read_at(c, 0) == 67);
        CHECK(c[10] == 10 && c[64] == 1 && c[66] == 3);
        std::vector<std::byte> back(64);
        CHECK(f.read_at(back, 0) == 64 && back == bytes);
        unsigned char arr[4];
        CHECK(f.read_at(arr, 63) == 4 && arr[0] == 63 && arr[3] == 3);
        std::string s(5, '\0');
        CHECK(f.read_at(s, 1) == 5 && s[0] == 1);
        std::vector<struct iovec> iov = {{arr, 2}, {&s[0], 2}};
        CHECK(f.readv_at(iov, 0) == 4 && arr[1] == 1 && s[1] == 3);
        CHECK(f.writev_at(iov, 0) == 4);
        rio::AlignedBuffer ab(4096);
        CHECK(f.read_at(ab.span(), 0) == 67);
    });
}
#endif

// Many threads on one File: each writes its own blocks (interleaved with
// the others) and reads them back; then everything is verified.
static void test_threads() {
    for_each_backend([](rio::Runtime &rt) {
        TempDir dir;
        rio::File f = rt.open(dir / "t", RW_CREATE);
        const int workers = 8, blocks = 32;
        const std::size_t bs = 4096;
        std::atomic<int> errors{0};
        std::vector<std::thread> threads;
        for (int w = 0; w < workers; w++) {
            threads.emplace_back([&, w] {
                std::string got(bs, '\0');
                for (int b = 0; b < blocks; b++) {
                    std::string data = pattern(w, b, bs);
                    std::uint64_t off = std::uint64_t(b * workers + w) * bs;
                    try {
                        f.write_at(data.data(), data.size(), off);
                        if (f.read_at(&got[0], bs, off) != bs || got != data) errors++;
                        f.read_at(nullptr, 1, off); // fails on this thread only
                        errors++;
                    } catch (const rio::error &e) {
                        if (e.code() != std::errc::invalid_argument ||
                            e.message().find("rio_file_read_at") == std::string::npos) errors++;
                    }
                }
            });
        }
        for (auto &t : threads) t.join();
        CHECK(errors == 0);
        CHECK(f.size() == workers * blocks * bs);
        std::string got(bs, '\0');
        int bad = 0;
        for (int w = 0; w < workers; w++)
            for (int b = 0; b < blocks; b++) {
                f.read_at(&got[0], bs, std::uint64_t(b * workers + w) * bs);
                if (got != pattern(w, b, bs)) bad++;
            }
        CHECK(bad == 0);
    });
}

static std::string wal_entry(int i) { return "entry " + std::to_string(i) + " " + pattern(i, 9, i % 50); }

static void test_wal() {
    for_each_backend([](rio::Runtime &rt) {
        TempDir dir;
        std::string logdir = dir / "log";
        std::map<std::uint64_t, std::string> want;
        {
            rio::Wal w = rt.open_wal(logdir);
            CHECK(w && w.last_seq() == 0);
            CHECK(w.append(wal_entry(1)) == 1);
            std::string e2 = wal_entry(2);
            CHECK(w.append(e2.data(), e2.size()) == 2);
            CHECK(w.append(nullptr, 0) == 3);
            CHECK(w.append_batch({"b4", "", "b6"}) == 4);
            std::vector<std::string> vs = {wal_entry(7), wal_entry(8)};
            CHECK(w.append_batch(vs) == 7);
            std::vector<std::vector<std::uint8_t>> vb = {{1, 2, 3}};
            CHECK(w.append_batch(vb) == 9);
            rio_slice_t raw[2] = {{"s10", 3}, {"s11", 3}};
            CHECK(w.append_batch(raw, 2) == 10);
#if __cplusplus >= 202002L
            std::vector<std::byte> bytes = {std::byte{12}};
            CHECK(w.append(std::span<const std::byte>(bytes)) == 12);
            CHECK(w.append_batch(std::span<const rio_slice_t>(raw, 1)) == 13);
#else
            CHECK(w.append("\x0c", 1) == 12);
            CHECK(w.append_batch(raw, 1) == 13);
#endif
            want = {{1, wal_entry(1)}, {2, e2},   {3, ""},           {4, "b4"},    {5, ""},
                    {6, "b6"},         {7, vs[0]}, {8, vs[1]},       {9, "\x01\x02\x03"},
                    {10, "s10"},       {11, "s11"}, {12, "\x0c"},    {13, "s10"}};
            w.sync();
            CHECK(w.last_seq() == 13);

            // Range-for over a reader; tailing.
            rio::WalReader r = w.reader(1);
            std::uint64_t expect = 1;
            int bad = 0;
            for (const rio::WalEntry &e : r) {
                if (e.seq != expect++ || std::string(e.view()) != want[e.seq]) bad++;
            }
            CHECK(bad == 0 && expect == 14);
            rio::WalEntry e;
            CHECK(!r.next(e));
            CHECK(w.append("tail") == 14);
            CHECK(r.next(e) && e.seq == 14 && e.view() == "tail" && !r.next(e));
            want[14] = "tail";
            rio::WalReader from = w.reader(12);
            CHECK(from.next(e) && e.seq == 12);

            // Errors.
            CHECK_THROWS(rt.open_wal(logdir), EBUSY, logdir);
            CHECK_THROWS(w.append_batch(raw, 0), EINVAL, "rio_wal_append_batch");
            CHECK_THROWS(w.truncate_before(100), EINVAL, "rio_wal_truncate_before");
            rio_wal_config_t bad_cfg = rio::Wal::default_config();
            bad_cfg.recovery_mode = 9;
            CHECK_THROWS(rt.open_wal(dir / "other", bad_cfg), EINVAL, "recovery_mode");

            // Moves; the reader outlives the log.
            rio::Wal moved(std::move(w));
            CHECK(!w && moved && moved.last_seq() == 14 && w.last_seq() == 0);
            CHECK_THROWS(w.append("x"), EINVAL, "NULL");
            moved.close();
            moved.close();
            CHECK(!moved);
            rio::WalReader late = std::move(from);
            CHECK(!from && late.next(e) && e.seq == 13);
        }
        // Reopen: everything is there, strict recovery finds nothing wrong.
        rio_wal_config_t cfg = rio::Wal::default_config();
        cfg.recovery_mode = RIO_WAL_RECOVER_STRICT;
        rio::Wal w = rt.open_wal(logdir, cfg);
        CHECK(w.last_seq() == 14);
        std::size_t n = 0;
        int bad = 0;
        for (const rio::WalEntry &e : w.reader()) {
            n++;
            if (std::string(e.view()) != want[e.seq]) bad++;
        }
        CHECK(n == 14 && bad == 0);
        CHECK(w.append("more") == 15);
        // Asynchronous acknowledgement.
        std::uint64_t last = 0;
        for (int i = 0; i < 100; i++) last = w.append_async(wal_entry(100 + i));
        CHECK(last == 115);
        CHECK(w.wait(last));
        CHECK(w.durable_seq() == last && w.last_seq() == last);
        CHECK(w.wait(last, 0)); // already durable: a poll succeeds
        CHECK_THROWS(w.wait(0), EINVAL, "rio_wal_wait");
        CHECK_THROWS(w.wait(last + 1, 0), EINVAL, "never assigned");
        CHECK_THROWS(w.wait(last, -5), EINVAL, "timeout_us");
    });
}

// Many threads appending to one Wal, singly and in batches: every entry is
// replayed at the sequence number its append returned.
static void test_wal_threads() {
    for_each_backend([](rio::Runtime &rt) {
        TempDir dir;
        rio::Wal w = rt.open_wal(dir / "log");
        const int workers = 8, per = 30;
        std::mutex mu;
        std::map<std::uint64_t, std::string> acked;
        std::atomic<int> errors{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < workers; t++) {
            threads.emplace_back([&, t] {
                for (int i = 0; i < per; i++) {
                    try {
                        if (i % 5 == 4) {
                            std::vector<std::string> b = {pattern(t, i, 10), pattern(t, i, 2000)};
                            std::uint64_t first = w.append_batch(b);
                            std::lock_guard<std::mutex> g(mu);
                            acked[first] = b[0];
                            acked[first + 1] = b[1];
                        } else {
                            std::string d = "t" + std::to_string(t) + "-" + std::to_string(i) + pattern(t, i, i);
                            std::uint64_t seq = w.append(d);
                            std::lock_guard<std::mutex> g(mu);
                            if (!acked.emplace(seq, d).second) errors++;
                        }
                    } catch (const std::exception &e) {
                        std::fprintf(stderr, "  thread %d: %s\n", t, e.what());
                        errors++;
                    }
                }
            });
        }
        for (auto &t : threads) t.join();
        const std::size_t total = workers * (per + per / 5);
        CHECK(errors == 0);
        CHECK(acked.size() == total && w.last_seq() == total);
        std::size_t n = 0;
        int bad = 0;
        for (const rio::WalEntry &e : w.reader(1)) {
            n++;
            if (e.seq != n || std::string(e.view()) != acked[e.seq]) bad++;
        }
        CHECK(n == total && bad == 0);
    });
}

// rio::Queue: push/submit/reap with results handed back as pushed, a full
// queue (try_push false, push throws EAGAIN), reap timeouts and bad input as
// exceptions, per-op errors as results, a move-only RAII handle whose
// destructor waits for ops still in flight, used from a second thread.
static_assert(!std::is_copy_constructible<rio::Queue>::value, "move-only");
static_assert(std::is_nothrow_move_assignable<rio::Queue>::value, "noexcept move");

static void test_queue() {
    for_each_backend([](rio::Runtime &rt) {
        TempDir dir;
        rio::File f = rt.open(dir / "q.dat", RW_CREATE);
        std::vector<std::string> data;
        for (int i = 0; i < 8; i++) data.push_back(pattern(3, i, 4096));
        rio::Queue q(rt, 8);
        CHECK(q && q.pending() == 0);
        for (int i = 0; i < 8; i++) q.push_write(f, data[i].data(), 4096, std::uint64_t(i) * 4096, std::uint64_t(i));
        CHECK(q.try_push(nullptr, 0)); // nothing to push: done
        rio_op_t extra{};
        extra.opcode = RIO_OP_FSYNC;
        extra.file = f.native_handle();
        CHECK(!q.try_push(&extra, 1));
        CHECK_THROWS(q.push(&extra, 1), EAGAIN, "rio_queue_push");
        CHECK_THROWS(q.reap(9, 9), EINVAL, "min");
        CHECK_THROWS(q.reap(1, 1, std::chrono::microseconds(0)), ETIMEDOUT, "rio_queue_reap");
        CHECK(q.submit() == 8);
        std::size_t got = 0;
        while (got < 8) {
            for (const rio_op_t &op : q.reap(8, 1)) {
                CHECK(op.result == 4096 && op.opcode == RIO_OP_WRITE && op.user_data < 8);
                got++;
            }
        }
        CHECK(q.pending() == 0 && f.size() == 8 * 4096);

        // Bad ops name the op; a per-op failure is a result, not an exception.
        rio_op_t bad[2] = {extra, extra};
        bad[1].opcode = 42;
        CHECK_THROWS(q.push(bad, 2), EINVAL, "ops[1].opcode");
        rio::File wo = rt.open(dir / "wo.dat", RIO_OPEN_WRITE | RIO_OPEN_CREATE);
        char buf[16];
        q.push_read(wo, buf, sizeof buf, 0, 1);
        q.push_fdatasync(f, 2);
        CHECK(q.submit() == 2);
        std::vector<rio_op_t> done = q.reap(2, 2);
        CHECK(done.size() == 2);
        for (const rio_op_t &op : done) CHECK(op.result == (op.user_data == 1 ? -EBADF : 0));

        // Readiness through the fd; the queue moves to another thread and back.
        int fd = q.fd();
        CHECK(fd >= 0);
        std::vector<std::string> back(8, std::string(4096, '\0'));
        for (int i = 0; i < 8; i++) q.push_read(f, &back[i][0], 4096, std::uint64_t(i) * 4096, std::uint64_t(i));
        std::thread([&] {
            CHECK(q.submit() == 8);
            std::size_t n = 0;
            while (n < 8) n += q.reap(8, 1).size();
        }).join();
        for (int i = 0; i < 8; i++) CHECK(back[i] == data[i]);

        // RAII: a queue destroyed with ops in flight waits for them first.
        for (int round = 0; round < 10; round++) {
            std::vector<std::string> scratch(8, std::string(4096, '\0'));
            rio::Queue inflight(rt, 8);
            for (int i = 0; i < 8; i++) inflight.push_read(f, &scratch[i][0], 4096, std::uint64_t(i) * 4096, 0);
            inflight.submit();
            rio::Queue moved = std::move(inflight);
            CHECK(!inflight);
        }
        q.close();
        CHECK(!q);
        q.close(); // idempotent
        CHECK_THROWS(rio::Queue(rt, RIO_QUEUE_MAX_DEPTH + 1), EINVAL, "depth");
    });
}

int main() {
    test_library();
    test_runtime();
    test_files();
    test_from_fd_and_durable();
    test_direct_and_batch();
#if __cplusplus >= 202002L
    test_spans();
#endif
    test_threads();
    test_wal();
    test_wal_threads();
    test_queue();
    std::printf("test_cpp (C++%ld): %d passed, %d failed\n", __cplusplus / 100 % 100, passed.load(), failed.load());
    return failed == 0 ? 0 : 1;
}
