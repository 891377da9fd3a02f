/*
 * librio C++ wrappers: header-only RAII types over the C API of rio.h.
 *
 *   rio::Runtime rt(rio::Backend::Auto);
 *   rio::File f = rt.open("data.bin", RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE);
 *   f.write_at("hello", 5, 0);
 *   char buf[5];
 *   std::size_t n = f.read_at(buf, sizeof buf, 0);   // < 5 only at end of file
 *
 *   rio::Wal wal = rt.open_wal("log");                 // created and recovered
 *   std::uint64_t seq = wal.append("entry");           // durable when it returns
 *   wal.append_batch({"a", "b"});                      // atomic
 *   for (const rio::WalEntry &e : wal.reader(1)) use(e.seq, e.view());
 *
 *   rio::Queue q(rt, 32);                              // asynchronous queue
 *   q.push_read(f, buf, sizeof buf, 0, 7);             // nothing starts yet
 *   q.submit();                                        // started, not waited for
 *   for (const rio_op_t &op : q.reap(32, 1)) use(op.user_data, op.result);
 *
 * - Runtime, File, Wal, WalReader and Queue own one handle each; they are move-only
 *   and close it in their destructor (errors there are ignored: call close()
 *   to see them). A moved-from object holds no handle; calls on it throw
 *   std::system_error with EINVAL (the library rejects NULL handles).
 * - Failures throw rio::error, a std::system_error whose code() is
 *   std::error_code(errno, std::generic_category()) (so it compares equal to
 *   std::errc values) and whose message() is the library's message naming
 *   the function, the path or argument, and the cause.
 * - Sizes are returned as std::size_t / std::uint64_t. Besides pointer+size,
 *   C++20 adds std::span overloads (std::byte, char, unsigned char).
 * - As in C, every handle may be used from many threads at once (the I/O
 *   member functions are const); closing or moving a handle while another
 *   thread uses it is the caller's bug. A Queue is the exception: one
 *   thread at a time (its member functions are not const), any thread over
 *   its life.
 *
 * C++17 or later. Link with -lrio (pkg-config --libs rio).
 */
#ifndef RIO_HPP
#define RIO_HPP

#include "rio.h"

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if __cplusplus >= 202002L && defined(__has_include)
#if __has_include(<span>)
#include <span>
#define RIO_HPP_SPAN 1
#endif
#endif

namespace rio {

/* The library version, e.g. "0.1.0". */
inline const char *version() noexcept { return rio_version(); }

/* A failed librio call: code() is the errno, message() the library's text. */
class error : public std::system_error {
public:
    error(int errno_value, std::string message)
        : std::system_error(std::error_code(errno_value, std::generic_category()), message),
          message_(std::move(message)) {}
    /* The library's message (what() adds the errno's description). */
    const std::string &message() const noexcept { return message_; }

private:
    std::string message_;
};

namespace detail {

/* Throws rio::error for a -errno result, with the calling thread's message. */
[[noreturn]] inline void throw_result(long long rc, const char *func) {
    const char *msg = rio_last_error_message();
    throw error(static_cast<int>(-rc), (msg != nullptr && *msg != '\0') ? std::string(msg) : std::string(func));
}

template <class T> inline T check(T rc, const char *func) {
    if (rc < 0) throw_result(static_cast<long long>(rc), func);
    return rc;
}

} // namespace detail

/* Which engine runs the I/O. */
enum class Backend : std::uint32_t {
    Auto = RIO_BACKEND_AUTO,             /* io_uring when it works, else the thread pool */
    IoUring = RIO_BACKEND_IO_URING,      /* io_uring, or the Runtime constructor throws EOPNOTSUPP */
    ThreadPool = RIO_BACKEND_THREAD_POOL /* pread/pwrite worker threads */
};

inline const char *to_string(Backend b) noexcept {
    switch (b) {
    case Backend::Auto: return "auto";
    case Backend::IoUring: return "io_uring";
    case Backend::ThreadPool: return "thread_pool";
    }
    return "unknown";
}

class File;
class Wal;

/* An I/O engine (io_uring rings or a thread pool). Files opened from it keep
 * the engine alive after the Runtime is closed. */
class Runtime {
public:
    /* Defaults plus the environment (RUSTFS_ENABLE_IO_URING, ...). */
    Runtime() { open(nullptr); }
    explicit Runtime(Backend backend) {
        rio_runtime_config_t cfg = default_config();
        cfg.backend = static_cast<std::uint32_t>(backend);
        open(&cfg);
    }
    /* cfg should start from default_config(). */
    explicit Runtime(const rio_runtime_config_t &cfg) { open(&cfg); }

    /* Takes ownership of a handle from rio_runtime_open. */
    static Runtime adopt(rio_runtime_t *rt) noexcept { return Runtime(rt, adopt_tag{}); }

    static rio_runtime_config_t default_config() noexcept {
        rio_runtime_config_t cfg;
        rio_runtime_config_default(&cfg);
        return cfg;
    }

    Runtime(Runtime &&o) noexcept : rt_(std::exchange(o.rt_, nullptr)) {}
    Runtime &operator=(Runtime &&o) noexcept {
        if (this != &o) {
            close();
            rt_ = std::exchange(o.rt_, nullptr);
        }
        return *this;
    }
    Runtime(const Runtime &) = delete;
    Runtime &operator=(const Runtime &) = delete;
    ~Runtime() { close(); }

    /* Releases the handle (idempotent). Open files keep working. */
    void close() noexcept { rio_runtime_close(std::exchange(rt_, nullptr)); }
    rio_runtime_t *native_handle() const noexcept { return rt_; }
    rio_runtime_t *release() noexcept { return std::exchange(rt_, nullptr); }
    explicit operator bool() const noexcept { return rt_ != nullptr; }

    /* Backend::IoUring or Backend::ThreadPool. */
    Backend backend() const {
        return static_cast<Backend>(detail::check(rio_runtime_backend(rt_), "rio_runtime_backend"));
    }

    /* Output structs are versioned: struct_size tells the library how much
     * of the struct this program (built against this header) has room for. */
    rio_capabilities_t capabilities() const {
        rio_capabilities_t caps{};
        caps.struct_size = sizeof caps;
        detail::check(rio_runtime_capabilities(rt_, &caps), "rio_runtime_capabilities");
        return caps;
    }

    /* A snapshot of the runtime's counters (rio_runtime_metrics). */
    rio_metrics_t metrics() const {
        rio_metrics_t m{};
        m.struct_size = sizeof m;
        detail::check(rio_runtime_metrics(rt_, &m), "rio_runtime_metrics");
        return m;
    }

    /* Metrics in the Prometheus text exposition format. */
    std::string metrics_prometheus() const {
        std::string text(4096, '\0');
        for (;;) {
            std::int64_t n = detail::check(rio_runtime_metrics_prometheus(rt_, &text[0], text.size() + 1),
                                           "rio_runtime_metrics_prometheus");
            if (static_cast<std::uint64_t>(n) <= text.size()) {
                text.resize(static_cast<std::size_t>(n));
                return text;
            }
            text.assign(static_cast<std::size_t>(n) + static_cast<std::size_t>(n) / 4, '\0');
        }
    }

    /* Opens `path` with RIO_OPEN_* flags; `mode` applies when it is created. */
    inline File open(const char *path, std::uint32_t flags, std::uint32_t mode = 0644) const;
    inline File open(const std::string &path, std::uint32_t flags, std::uint32_t mode = 0644) const;
    /* A File over the caller's open descriptor (rio_file_from_fd): flags 0
     * leaves fd open when the File closes (POSIX locks survive),
     * RIO_FD_OWNED closes it. Mode, O_DIRECT, O_APPEND come from the fd. */
    inline File from_fd(int fd, std::uint32_t flags = 0) const;

    /* Opens (creating the directory if needed) and recovers the write-ahead
     * log in `dir`. cfg nullptr means defaults; else start from
     * Wal::default_config(). */
    inline Wal open_wal(const char *dir, const rio_wal_config_t *cfg = nullptr) const;
    inline Wal open_wal(const std::string &dir, const rio_wal_config_t *cfg = nullptr) const;
    inline Wal open_wal(const std::string &dir, const rio_wal_config_t &cfg) const;

    /* Submits ops together and waits for all of them. Returns n with every
     * ops[i].result set (per-op failures are -errno there, not exceptions);
     * throws when the batch is malformed (then nothing ran). */
    std::size_t submit_batch(rio_op_t *ops, std::size_t n) const {
        return static_cast<std::size_t>(detail::check(rio_submit_batch(rt_, ops, n), "rio_submit_batch"));
    }
#ifdef RIO_HPP_SPAN
    std::size_t submit_batch(std::span<rio_op_t> ops) const { return submit_batch(ops.data(), ops.size()); }
#endif

private:
    struct adopt_tag {};
    Runtime(rio_runtime_t *rt, adopt_tag) noexcept : rt_(rt) {}
    void open(const rio_runtime_config_t *cfg) { detail::check(rio_runtime_open(cfg, &rt_), "rio_runtime_open"); }

    rio_runtime_t *rt_ = nullptr;
};

/* An open file: positioned reads and writes through a runtime's engine. */
class File {
public:
    File() noexcept = default; /* no file */
    /* Takes ownership of a handle from rio_file_open. */
    static File adopt(rio_file_t *f) noexcept {
        File file;
        file.f_ = f;
        return file;
    }

    File(File &&o) noexcept : f_(std::exchange(o.f_, nullptr)) {}
    File &operator=(File &&o) noexcept {
        if (this != &o) {
            rio_file_close(f_);
            f_ = std::exchange(o.f_, nullptr);
        }
        return *this;
    }
    File(const File &) = delete;
    File &operator=(const File &) = delete;
    ~File() { rio_file_close(f_); }

    /* Closes the file (idempotent). The handle is freed even when close(2)
     * fails, which is then thrown. */
    void close() { detail::check(rio_file_close(std::exchange(f_, nullptr)), "rio_file_close"); }
    rio_file_t *native_handle() const noexcept { return f_; }
    rio_file_t *release() noexcept { return std::exchange(f_, nullptr); }
    explicit operator bool() const noexcept { return f_ != nullptr; }

    /* Reads up to len bytes at offset; fewer only at end of file. */
    std::size_t read_at(void *buf, std::size_t len, std::uint64_t offset) const {
        return static_cast<std::size_t>(detail::check(rio_file_read_at(f_, buf, len, offset), "rio_file_read_at"));
    }
    /* Writes all len bytes at offset (or throws). Returns len. */
    std::size_t write_at(const void *buf, std::size_t len, std::uint64_t offset) const {
        return static_cast<std::size_t>(detail::check(rio_file_write_at(f_, buf, len, offset), "rio_file_write_at"));
    }
    std::size_t write_at(std::string_view data, std::uint64_t offset) const {
        return write_at(data.data(), data.size(), offset);
    }
    /* Writes all len bytes at offset and returns len once they (and the
     * size needed to read them back) are on stable storage, or throws
     * (rio_file_write_durable; nothing is promised durable then). */
    std::size_t write_durable(const void *buf, std::size_t len, std::uint64_t offset) const {
        return static_cast<std::size_t>(
            detail::check(rio_file_write_durable(f_, buf, len, offset), "rio_file_write_durable"));
    }
    std::size_t write_durable(std::string_view data, std::uint64_t offset) const {
        return write_durable(data.data(), data.size(), offset);
    }
    /* Scatter read / gather write of iovcnt buffers (at most RIO_IOV_MAX). */
    std::size_t readv_at(const struct iovec *iov, int iovcnt, std::uint64_t offset) const {
        return static_cast<std::size_t>(
            detail::check(rio_file_readv_at(f_, iov, iovcnt, offset), "rio_file_readv_at"));
    }
    std::size_t writev_at(const struct iovec *iov, int iovcnt, std::uint64_t offset) const {
        return static_cast<std::size_t>(
            detail::check(rio_file_writev_at(f_, iov, iovcnt, offset), "rio_file_writev_at"));
    }

#ifdef RIO_HPP_SPAN
    std::size_t read_at(std::span<std::byte> buf, std::uint64_t offset) const {
        return read_at(buf.data(), buf.size(), offset);
    }
    std::size_t read_at(std::span<char> buf, std::uint64_t offset) const {
        return read_at(buf.data(), buf.size(), offset);
    }
    std::size_t read_at(std::span<unsigned char> buf, std::uint64_t offset) const {
        return read_at(buf.data(), buf.size(), offset);
    }
    std::size_t write_at(std::span<const std::byte> data, std::uint64_t offset) const {
        return write_at(data.data(), data.size(), offset);
    }
    std::size_t write_at(std::span<const unsigned char> data, std::uint64_t offset) const {
        return write_at(data.data(), data.size(), offset);
    }
    std::size_t write_durable(std::span<const std::byte> data, std::uint64_t offset) const {
        return write_durable(data.data(), data.size(), offset);
    }
    std::size_t readv_at(std::span<const struct iovec> iov, std::uint64_t offset) const {
        return readv_at(iov.data(), static_cast<int>(iov.size()), offset);
    }
    std::size_t writev_at(std::span<const struct iovec> iov, std::uint64_t offset) const {
        return writev_at(iov.data(), static_cast<int>(iov.size()), offset);
    }
#endif

    void sync() const { detail::check(rio_file_sync(f_), "rio_file_sync"); }
    void datasync() const { detail::check(rio_file_datasync(f_), "rio_file_datasync"); }
    void allocate(std::uint64_t offset, std::uint64_t len) const {
        detail::check(rio_file_allocate(f_, offset, len), "rio_file_allocate");
    }
    void truncate(std::uint64_t len) const { detail::check(rio_file_truncate(f_, len), "rio_file_truncate"); }
    std::uint64_t size() const {
        return static_cast<std::uint64_t>(detail::check(rio_file_size(f_), "rio_file_size"));
    }

private:
    rio_file_t *f_ = nullptr;
};

inline File Runtime::open(const char *path, std::uint32_t flags, std::uint32_t mode) const {
    rio_file_t *f = nullptr;
    detail::check(rio_file_open(rt_, path, flags, mode, &f), "rio_file_open");
    return File::adopt(f);
}

inline File Runtime::open(const std::string &path, std::uint32_t flags, std::uint32_t mode) const {
    return open(path.c_str(), flags, mode);
}

inline File Runtime::from_fd(int fd, std::uint32_t flags) const {
    rio_file_t *f = nullptr;
    detail::check(rio_file_from_fd(rt_, fd, flags, &f), "rio_file_from_fd");
    return File::adopt(f);
}

/* Page-aligned memory for O_DIRECT (rio_buf_alloc), freed on destruction. */
class AlignedBuffer {
public:
    AlignedBuffer() noexcept = default;
    explicit AlignedBuffer(std::size_t len) : p_(rio_buf_alloc(len)), len_(len) {
        if (p_ == nullptr) {
            if (len == 0) len_ = 0;
            else throw error(ENOMEM, rio_last_error_message());
        }
    }
    AlignedBuffer(AlignedBuffer &&o) noexcept : p_(std::exchange(o.p_, nullptr)), len_(std::exchange(o.len_, 0)) {}
    AlignedBuffer &operator=(AlignedBuffer &&o) noexcept {
        if (this != &o) {
            rio_buf_free(p_);
            p_ = std::exchange(o.p_, nullptr);
            len_ = std::exchange(o.len_, 0);
        }
        return *this;
    }
    AlignedBuffer(const AlignedBuffer &) = delete;
    AlignedBuffer &operator=(const AlignedBuffer &) = delete;
    ~AlignedBuffer() { rio_buf_free(p_); }

    void *data() const noexcept { return p_; }
    std::size_t size() const noexcept { return len_; }
#ifdef RIO_HPP_SPAN
    std::span<std::byte> span() const noexcept { return {static_cast<std::byte *>(p_), len_}; }
#endif

private:
    void *p_ = nullptr;
    std::size_t len_ = 0;
};

/* One entry read from a log. data is valid until the reader's next call. */
struct WalEntry {
    std::uint64_t seq = 0;
    const std::uint8_t *data = nullptr;
    std::size_t size = 0;

    std::string_view view() const noexcept { return {reinterpret_cast<const char *>(data), size}; }
#ifdef RIO_HPP_SPAN
    std::span<const std::byte> bytes() const noexcept { return {reinterpret_cast<const std::byte *>(data), size}; }
#endif
};

/* Reads a log's acknowledged entries in order. May outlive its Wal.
 *
 *   rio::WalReader r = wal.reader(1);
 *   for (const rio::WalEntry &e : r) use(e.seq, e.view());
 *
 * Iteration ends at the last entry acknowledged so far; iterating again
 * (or next()) later finds entries appended since. */
class WalReader {
public:
    WalReader() noexcept = default;
    static WalReader adopt(rio_wal_reader_t *r) noexcept {
        WalReader reader;
        reader.r_ = r;
        return reader;
    }
    WalReader(WalReader &&o) noexcept : r_(std::exchange(o.r_, nullptr)), cur_(o.cur_) {}
    WalReader &operator=(WalReader &&o) noexcept {
        if (this != &o) {
            rio_wal_reader_close(r_);
            r_ = std::exchange(o.r_, nullptr);
            cur_ = o.cur_;
        }
        return *this;
    }
    WalReader(const WalReader &) = delete;
    WalReader &operator=(const WalReader &) = delete;
    ~WalReader() { rio_wal_reader_close(r_); }

    void close() noexcept { rio_wal_reader_close(std::exchange(r_, nullptr)); }
    rio_wal_reader_t *native_handle() const noexcept { return r_; }
    rio_wal_reader_t *release() noexcept { return std::exchange(r_, nullptr); }
    explicit operator bool() const noexcept { return r_ != nullptr; }

    /* Reads the next entry into e: true, or false at the end of the
     * acknowledged entries. Throws on a record that does not verify
     * (EBADMSG, naming the file and offset). */
    bool next(WalEntry &e) {
        std::uint64_t seq = 0;
        const std::uint8_t *data = nullptr;
        std::size_t len = 0;
        int rc = detail::check(rio_wal_reader_next(r_, &seq, &data, &len), "rio_wal_reader_next");
        if (rc == 0) return false;
        e.seq = seq;
        e.data = data;
        e.size = len;
        return true;
    }

    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = WalEntry;
        using difference_type = std::ptrdiff_t;
        using pointer = const WalEntry *;
        using reference = const WalEntry &;

        iterator() noexcept = default;
        reference operator*() const noexcept { return r_->cur_; }
        pointer operator->() const noexcept { return &r_->cur_; }
        iterator &operator++() {
            if (!r_->next(r_->cur_)) r_ = nullptr;
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator &a, const iterator &b) noexcept { return a.r_ == b.r_; }
        friend bool operator!=(const iterator &a, const iterator &b) noexcept { return a.r_ != b.r_; }

    private:
        friend class WalReader;
        explicit iterator(WalReader *r) : r_(r) { ++*this; }
        WalReader *r_ = nullptr;
    };
    iterator begin() { return iterator(this); }
    iterator end() noexcept { return iterator(); }

private:
    rio_wal_reader_t *r_ = nullptr;
    WalEntry cur_;
};

/* A durable write-ahead log. Threads appending at once share writes and
 * syncs (group commit). Sequence numbers start at 1, rise by one per entry. */
class Wal {
public:
    Wal() noexcept = default; /* no log */
    static Wal adopt(rio_wal_t *w) noexcept {
        Wal wal;
        wal.w_ = w;
        return wal;
    }
    static rio_wal_config_t default_config() noexcept {
        rio_wal_config_t cfg;
        rio_wal_config_default(&cfg);
        return cfg;
    }

    Wal(Wal &&o) noexcept : w_(std::exchange(o.w_, nullptr)) {}
    Wal &operator=(Wal &&o) noexcept {
        if (this != &o) {
            rio_wal_close(w_);
            w_ = std::exchange(o.w_, nullptr);
        }
        return *this;
    }
    Wal(const Wal &) = delete;
    Wal &operator=(const Wal &) = delete;
    ~Wal() { rio_wal_close(w_); }

    /* Syncs and closes the log (idempotent); the handle is freed even when
     * this throws (EIO: the log was poisoned or the final sync failed). */
    void close() { detail::check(rio_wal_close(std::exchange(w_, nullptr)), "rio_wal_close"); }
    rio_wal_t *native_handle() const noexcept { return w_; }
    rio_wal_t *release() noexcept { return std::exchange(w_, nullptr); }
    explicit operator bool() const noexcept { return w_ != nullptr; }

    /* Appends one entry; returns its sequence number once it is durable. */
    std::uint64_t append(const void *data, std::size_t len) const {
        std::uint64_t seq = 0;
        detail::check(rio_wal_append(w_, data, len, &seq), "rio_wal_append");
        return seq;
    }
    std::uint64_t append(std::string_view data) const { return append(data.data(), data.size()); }
#ifdef RIO_HPP_SPAN
    std::uint64_t append(std::span<const std::byte> data) const { return append(data.data(), data.size()); }
    std::uint64_t append(std::span<const unsigned char> data) const { return append(data.data(), data.size()); }
#endif

    /* Appends n entries atomically (all recovered after a crash, or none);
     * returns the first of their consecutive sequence numbers. */
    std::uint64_t append_batch(const rio_slice_t *entries, std::size_t n) const {
        std::uint64_t first = 0;
        detail::check(rio_wal_append_batch(w_, entries, n, &first), "rio_wal_append_batch");
        return first;
    }
    std::uint64_t append_batch(std::initializer_list<std::string_view> entries) const {
        return append_range(entries);
    }
    /* Any range of contiguous byte containers (std::string, std::string_view,
     * std::vector<std::uint8_t>, ...). */
    template <class Range, class = decltype(std::data(*std::begin(std::declval<const Range &>())))>
    std::uint64_t append_batch(const Range &entries) const {
        return append_range(entries);
    }
#ifdef RIO_HPP_SPAN
    std::uint64_t append_batch(std::span<const rio_slice_t> entries) const {
        return append_batch(entries.data(), entries.size());
    }
#endif

    /* Appends one entry without waiting for it: the library copies it and
     * assigns its sequence number, returned here. Blocks only while the
     * log's buffer is full. Entries become durable in order. */
    std::uint64_t append_async(const void *data, std::size_t len) const {
        std::uint64_t seq = 0;
        detail::check(rio_wal_append_async(w_, data, len, &seq), "rio_wal_append_async");
        return seq;
    }
    std::uint64_t append_async(std::string_view data) const { return append_async(data.data(), data.size()); }
    /* Waits until every entry up to seq is durable (written, without
     * sync_after_batch); true once it is, false when timeout_us passed
     * first (RIO_WAL_WAIT_FOREVER: no limit, 0: poll). Throws EIO (the log
     * is poisoned) and EINVAL (a seq never assigned). */
    bool wait(std::uint64_t seq, std::int64_t timeout_us = RIO_WAL_WAIT_FOREVER) const {
        int rc = rio_wal_wait(w_, seq, timeout_us);
        if (rc == -ETIMEDOUT)
            return false;
        detail::check(rc, "rio_wal_wait");
        return true;
    }
    /* Every entry up to this sequence number is durable; 0 for none. */
    std::uint64_t durable_seq() const noexcept { return rio_wal_durable_seq(w_); }

    void sync() const { detail::check(rio_wal_sync(w_), "rio_wal_sync"); }
    /* The last acknowledged sequence number; 0 for an empty log. */
    std::uint64_t last_seq() const noexcept { return rio_wal_last_seq(w_); }
    /* Removes whole segments all of whose entries are below seq. */
    void truncate_before(std::uint64_t seq) const {
        detail::check(rio_wal_truncate_before(w_, seq), "rio_wal_truncate_before");
    }
    /* A reader of the entries from from_seq on. */
    WalReader reader(std::uint64_t from_seq = 1) const {
        rio_wal_reader_t *r = nullptr;
        detail::check(rio_wal_reader_open(w_, from_seq, &r), "rio_wal_reader_open");
        return WalReader::adopt(r);
    }

private:
    template <class Range> std::uint64_t append_range(const Range &entries) const {
        std::vector<rio_slice_t> slices;
        for (const auto &e : entries) {
            rio_slice_t s;
            s.data = std::data(e);
            s.len = std::size(e) * sizeof(*std::data(e));
            slices.push_back(s);
        }
        return append_batch(slices.data(), slices.size());
    }

    rio_wal_t *w_ = nullptr;
};

inline Wal Runtime::open_wal(const char *dir, const rio_wal_config_t *cfg) const {
    rio_wal_t *w = nullptr;
    detail::check(rio_wal_open(rt_, dir, cfg, &w), "rio_wal_open");
    return Wal::adopt(w);
}

inline Wal Runtime::open_wal(const std::string &dir, const rio_wal_config_t *cfg) const {
    return open_wal(dir.c_str(), cfg);
}

inline Wal Runtime::open_wal(const std::string &dir, const rio_wal_config_t &cfg) const {
    return open_wal(dir.c_str(), &cfg);
}

/* An asynchronous queue (rio_queue_*): operations are pushed, started by
 * submit() without waiting for the device, and reaped later, so one thread
 * keeps many in flight. Used by one thread at a time, from any thread.
 * Buffers and files of pushed ops must stay valid until the op is reaped or
 * the queue is closed; the destructor and close() wait for every started
 * op (unreaped results are discarded), so destroying the Queue before the
 * buffers is always safe. */
class Queue {
public:
    Queue() noexcept = default; /* no queue */
    /* depth: the most ops pushed and not reaped, 1..RIO_QUEUE_MAX_DEPTH
     * (0 = the runtime's queue_depth). */
    explicit Queue(const Runtime &rt, std::uint32_t depth = 0) {
        detail::check(rio_queue_open(rt.native_handle(), depth, &q_), "rio_queue_open");
    }
    /* Takes ownership of a handle from rio_queue_open. */
    static Queue adopt(rio_queue_t *q) noexcept {
        Queue queue;
        queue.q_ = q;
        return queue;
    }

    Queue(Queue &&o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
    Queue &operator=(Queue &&o) noexcept {
        if (this != &o) {
            rio_queue_close(q_);
            q_ = std::exchange(o.q_, nullptr);
        }
        return *this;
    }
    Queue(const Queue &) = delete;
    Queue &operator=(const Queue &) = delete;
    ~Queue() { rio_queue_close(q_); }

    /* Waits for every started op, discards unreaped results, frees the queue (idempotent). */
    void close() { detail::check(rio_queue_close(std::exchange(q_, nullptr)), "rio_queue_close"); }
    rio_queue_t *native_handle() const noexcept { return q_; }
    rio_queue_t *release() noexcept { return std::exchange(q_, nullptr); }
    explicit operator bool() const noexcept { return q_ != nullptr; }

    /* Copies n ops in (all or none) and returns n. Throws EINVAL naming the
     * bad op (nothing queued), EAGAIN when fewer than n slots are free. */
    std::size_t push(const rio_op_t *ops, std::size_t n) {
        return static_cast<std::size_t>(detail::check(rio_queue_push(q_, ops, n), "rio_queue_push"));
    }
    /* Like push, but a full queue returns false instead of throwing. */
    bool try_push(const rio_op_t *ops, std::size_t n) {
        int rc = rio_queue_push(q_, ops, n);
        if (rc == -EAGAIN) return false;
        detail::check(rc, "rio_queue_push");
        return true;
    }
    void push_read(const File &f, void *buf, std::size_t len, std::uint64_t offset, std::uint64_t user_data) {
        push_one(RIO_OP_READ, f, buf, len, offset, user_data);
    }
    void push_write(const File &f, const void *buf, std::size_t len, std::uint64_t offset, std::uint64_t user_data) {
        push_one(RIO_OP_WRITE, f, const_cast<void *>(buf), len, offset, user_data);
    }
    void push_fsync(const File &f, std::uint64_t user_data) { push_one(RIO_OP_FSYNC, f, nullptr, 0, 0, user_data); }
    void push_fdatasync(const File &f, std::uint64_t user_data) {
        push_one(RIO_OP_FDATASYNC, f, nullptr, 0, 0, user_data);
    }

    /* Starts the pushed ops; returns how many started. Never blocks on the device. */
    std::size_t submit() { return static_cast<std::size_t>(detail::check(rio_queue_submit(q_), "rio_queue_submit")); }

    /* Waits until min ops are complete (timeout < 0: no limit, 0: poll),
     * copies up to max into out (as pushed, result set: bytes or -errno) and
     * returns the count. Throws ETIMEDOUT (nothing copied) when fewer than
     * min completed in time, EINVAL when min exceeds pending(). */
    std::size_t reap(rio_op_t *out, std::size_t max, std::size_t min = 1,
                     std::chrono::microseconds timeout = std::chrono::microseconds(-1)) {
        std::int64_t us = timeout.count() < 0 ? -1 : static_cast<std::int64_t>(timeout.count());
        return static_cast<std::size_t>(detail::check(rio_queue_reap(q_, out, max, min, us), "rio_queue_reap"));
    }
    std::vector<rio_op_t> reap(std::size_t max, std::size_t min = 1,
                               std::chrono::microseconds timeout = std::chrono::microseconds(-1)) {
        std::vector<rio_op_t> out(max);
        out.resize(reap(out.data(), max, min, timeout));
        return out;
    }

    /* Ops pushed and not yet reaped. */
    std::size_t pending() const {
        return static_cast<std::size_t>(detail::check(rio_queue_pending(q_), "rio_queue_pending"));
    }
    /* An eventfd, owned by the queue, readable when a reap may find complete ops. */
    int fd() { return detail::check(rio_queue_fd(q_), "rio_queue_fd"); }

private:
    void push_one(std::uint32_t opcode, const File &f, void *buf, std::size_t len, std::uint64_t offset,
                  std::uint64_t user_data) {
        rio_op_t op{};
        op.opcode = opcode;
        op.file = f.native_handle();
        op.buf = buf;
        op.len = len;
        op.offset = offset;
        op.user_data = user_data;
        push(&op, 1);
    }

    rio_queue_t *q_ = nullptr;
};

} // namespace rio

#endif /* RIO_HPP */
