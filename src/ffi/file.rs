//! `rio_file_t`: a boxed `DiskFile`.

use std::ffi::{c_char, c_int, c_void};

use super::runtime::rio_runtime_t;
use super::{c_path, check_buf, check_null, check_offset, fail, ffi_boundary, finish};
use crate::file::{fd_flags, open_flags, DiskFile};
use crate::Error;

/// An open file. Create with `rio_file_open`, free with `rio_file_close`.
/// Thread-safe: positioned calls may run from many threads at once.
pub struct rio_file_t(pub(crate) DiskFile);

/// Open for reading.
pub const RIO_OPEN_READ: u32 = 1 << 0;
/// Open for writing (with RIO_OPEN_READ: both).
pub const RIO_OPEN_WRITE: u32 = 1 << 1;
/// Create the file if missing (with `mode`).
pub const RIO_OPEN_CREATE: u32 = 1 << 2;
/// Truncate to 0 bytes on open (needs RIO_OPEN_WRITE).
pub const RIO_OPEN_TRUNCATE: u32 = 1 << 3;
/// Fail with -EEXIST if the file exists (needs RIO_OPEN_CREATE).
pub const RIO_OPEN_EXCL: u32 = 1 << 4;
/// Every write goes to the end of the file; the offset is ignored (O_APPEND).
pub const RIO_OPEN_APPEND: u32 = 1 << 5;
/// O_DIRECT: buffers, offsets and lengths must be aligned (see rio_buf_alloc).
pub const RIO_OPEN_DIRECT: u32 = 1 << 6;
/// O_DSYNC: every write is durable when it returns.
pub const RIO_OPEN_DSYNC: u32 = 1 << 7;

/// `rio_file_from_fd` flag: the handle owns the descriptor, and
/// `rio_file_close` closes it.
pub const RIO_FD_OWNED: u32 = 1 << 0;

/// Largest iovec count accepted by the vectored calls (IOV_MAX).
pub const RIO_IOV_MAX: c_int = 1024;

// The RIO_OPEN_* values are literals so cbindgen can emit them into rio.h
// (it cannot resolve paths such as `open_flags::READ`); they must stay
// equal to the flags DiskFile::open understands.
const _: () = {
    assert!(RIO_OPEN_READ == open_flags::READ);
    assert!(RIO_OPEN_WRITE == open_flags::WRITE);
    assert!(RIO_OPEN_CREATE == open_flags::CREATE);
    assert!(RIO_OPEN_TRUNCATE == open_flags::TRUNCATE);
    assert!(RIO_OPEN_EXCL == open_flags::EXCL);
    assert!(RIO_OPEN_APPEND == open_flags::APPEND);
    assert!(RIO_OPEN_DIRECT == open_flags::DIRECT);
    assert!(RIO_OPEN_DSYNC == open_flags::DSYNC);
    assert!(RIO_FD_OWNED == fd_flags::OWNED);
};

fn file<'a>(f: *mut rio_file_t) -> &'a DiskFile {
    // SAFETY: callers check NULL first; the handle is live per the API contract.
    &unsafe { &*f }.0
}

/// Opens `path` with `RIO_OPEN_*` flags; `mode` (e.g. 0644) applies when the
/// file is created. Stores a new handle in `*out` (NULL on failure).
/// Errors: `-EINVAL` (NULL argument, unknown flag bits, inconsistent flags,
/// O_DIRECT unsupported by the filesystem), or the `-errno` of open(2)
/// with the path in the message.
#[no_mangle]
pub unsafe extern "C" fn rio_file_open(
    rt: *mut rio_runtime_t,
    path: *const c_char,
    flags: u32,
    mode: u32,
    out: *mut *mut rio_file_t,
) -> c_int {
    ffi_boundary!("rio_file_open", {
        check_null!("rio_file_open", out);
        unsafe { *out = std::ptr::null_mut() };
        check_null!("rio_file_open", rt);
        check_null!("rio_file_open", path);
        let rt = &unsafe { &*rt }.0;
        match DiskFile::open(rt, unsafe { c_path(path) }, flags, mode) {
            Ok(f) => {
                unsafe { *out = Box::into_raw(Box::new(rio_file_t(f))) };
                0
            }
            Err(e) => fail("rio_file_open", e),
        }
    })
}

/// Wraps a descriptor the caller already has (a SQLite VFS, a
/// PostgreSQL-style storage manager) in a handle; stores it in `*out`
/// (NULL on failure). The access mode, O_DIRECT and O_APPEND are read from
/// `fcntl(F_GETFL)`, so alignment checks and read/write permissions hold
/// as for a handle from `rio_file_open` (a write through a read-only fd
/// fails with `-EBADF`). `flags`: 0, the caller keeps the descriptor and
/// `rio_file_close` leaves it open (so the process's POSIX record locks on
/// the file survive the close), or `RIO_FD_OWNED`, the handle closes it.
/// The caller must not close a borrowed fd while the handle is open.
/// Errors: `-EBADF` when `fd` is not an open descriptor (the message names
/// it), `-EINVAL` for NULL `rt`/`out` or unknown flag bits. On failure the
/// descriptor is never closed, even with `RIO_FD_OWNED`.
#[no_mangle]
pub unsafe extern "C" fn rio_file_from_fd(rt: *mut rio_runtime_t, fd: c_int, flags: u32, out: *mut *mut rio_file_t) -> c_int {
    ffi_boundary!("rio_file_from_fd", {
        check_null!("rio_file_from_fd", out);
        unsafe { *out = std::ptr::null_mut() };
        check_null!("rio_file_from_fd", rt);
        if flags & !fd_flags::ALL != 0 {
            return fail("rio_file_from_fd", Error::invalid(format!("flags: unknown bits {:#x}", flags & !fd_flags::ALL)));
        }
        let rt = &unsafe { &*rt }.0;
        match DiskFile::adopt(rt, fd, flags & RIO_FD_OWNED != 0) {
            Ok(f) => {
                unsafe { *out = Box::into_raw(Box::new(rio_file_t(f))) };
                0
            }
            Err(e) => fail("rio_file_from_fd", e),
        }
    })
}

/// Reads up to `len` bytes at `offset` into `buf`. Returns the bytes read:
/// fewer than `len` only at end of file. `-EINVAL` for NULL `f`, NULL `buf`
/// with `len` > 0, or O_DIRECT misalignment (the message names it).
#[no_mangle]
pub unsafe extern "C" fn rio_file_read_at(f: *mut rio_file_t, buf: *mut c_void, len: usize, offset: u64) -> i64 {
    ffi_boundary!("rio_file_read_at", {
        check_null!("rio_file_read_at", f);
        check_buf!("rio_file_read_at", buf, len);
        let r = check_offset(offset).and_then(|_| unsafe { file(f).read_at_raw(buf as *mut u8, len, offset) });
        finish("rio_file_read_at", r.map(|n| n as i64))
    })
}

/// Writes all `len` bytes of `buf` at `offset`. Returns `len`, or `-errno`
/// (nothing is reported as a short write).
#[no_mangle]
pub unsafe extern "C" fn rio_file_write_at(f: *mut rio_file_t, buf: *const c_void, len: usize, offset: u64) -> i64 {
    ffi_boundary!("rio_file_write_at", {
        check_null!("rio_file_write_at", f);
        check_buf!("rio_file_write_at", buf, len);
        let r = check_offset(offset).and_then(|_| unsafe { file(f).write_at_raw(buf as *const u8, len, offset) });
        finish("rio_file_write_at", r.map(|n| n as i64))
    })
}

/// Writes all `len` bytes of `buf` at `offset` and returns `len` only once
/// they, and the metadata needed to read them back (a grown size), are on
/// stable storage. On a buffered handle an overwrite sends its
/// page-aligned middle through O_DIRECT (a second descriptor of the file,
/// opened on first use) in chunks kept in flight together, head and tail
/// through the page cache, then one fdatasync; a write that grows the file
/// is write + fdatasync (measured faster for fresh objects,
/// `rio_durable_extending_writes_total`). A buffered read afterwards
/// returns the new bytes. An O_DIRECT handle needs the usual alignment. Where the
/// filesystem has no O_DIRECT, and on a descriptor borrowed through
/// `rio_file_from_fd` (closing a second descriptor would drop the caller's
/// POSIX locks), it is write + fdatasync (counted in the Prometheus metric
/// `rio_durable_page_cache_fallbacks_total`). It never returns while any
/// part is in flight; on error nothing is promised durable and the message
/// says which part failed. `len` 0 returns 0 without I/O.
/// Errors: `-EINVAL` (NULL `f`, NULL `buf` with `len` > 0, offset + len
/// past the largest file offset, misalignment on an O_DIRECT handle, or an
/// O_APPEND handle, whose writes ignore offsets), `-EBADF` for a handle
/// not open for writing, or the `-errno` of the write or the sync.
/// Thread-safe; concurrent durable writes to overlapping ranges leave
/// either's bytes, as pwrite does.
#[no_mangle]
pub unsafe extern "C" fn rio_file_write_durable(f: *mut rio_file_t, buf: *const c_void, len: usize, offset: u64) -> i64 {
    ffi_boundary!("rio_file_write_durable", {
        check_null!("rio_file_write_durable", f);
        check_buf!("rio_file_write_durable", buf, len);
        let r = unsafe { file(f).write_durable_raw(buf as *const u8, len, offset) };
        finish("rio_file_write_durable", r.map(|n| n as i64))
    })
}

fn check_iov(iov: *const libc::iovec, iovcnt: c_int) -> crate::Result<usize> {
    if !(0..=RIO_IOV_MAX).contains(&iovcnt) {
        return Err(Error::invalid(format!("iovcnt {iovcnt} is outside 0..={RIO_IOV_MAX}")));
    }
    if iov.is_null() && iovcnt > 0 {
        return Err(Error::invalid("iov is NULL with a non-zero iovcnt"));
    }
    let entries = crate::engine::iov_slice(iov, iovcnt as usize);
    if let Some(i) = entries.iter().position(|v| v.iov_base.is_null() && v.iov_len != 0) {
        return Err(Error::invalid(format!("iov[{i}].iov_base is NULL with a non-zero length")));
    }
    Ok(iovcnt as usize)
}

/// Reads into `iovcnt` buffers (scatter) starting at `offset`. Returns bytes
/// read, fewer than the total only at end of file.
#[no_mangle]
pub unsafe extern "C" fn rio_file_readv_at(f: *mut rio_file_t, iov: *const libc::iovec, iovcnt: c_int, offset: u64) -> i64 {
    ffi_boundary!("rio_file_readv_at", {
        check_null!("rio_file_readv_at", f);
        let r = check_offset(offset)
            .and_then(|_| check_iov(iov, iovcnt))
            .and_then(|n| unsafe { file(f).readv_at_raw(iov, n, offset) });
        finish("rio_file_readv_at", r.map(|n| n as i64))
    })
}

/// Writes `iovcnt` buffers (gather) starting at `offset`, all or fail.
/// Returns the total bytes written.
#[no_mangle]
pub unsafe extern "C" fn rio_file_writev_at(f: *mut rio_file_t, iov: *const libc::iovec, iovcnt: c_int, offset: u64) -> i64 {
    ffi_boundary!("rio_file_writev_at", {
        check_null!("rio_file_writev_at", f);
        let r = check_offset(offset)
            .and_then(|_| check_iov(iov, iovcnt))
            .and_then(|n| unsafe { file(f).writev_at_raw(iov, n, offset) });
        finish("rio_file_writev_at", r.map(|n| n as i64))
    })
}

/// fsync(2). Returns 0 or `-errno`.
#[no_mangle]
pub unsafe extern "C" fn rio_file_sync(f: *mut rio_file_t) -> c_int {
    ffi_boundary!("rio_file_sync", {
        check_null!("rio_file_sync", f);
        finish("rio_file_sync", file(f).sync().map(|_| 0))
    })
}

/// fdatasync(2). Returns 0 or `-errno`.
#[no_mangle]
pub unsafe extern "C" fn rio_file_datasync(f: *mut rio_file_t) -> c_int {
    ffi_boundary!("rio_file_datasync", {
        check_null!("rio_file_datasync", f);
        finish("rio_file_datasync", file(f).datasync().map(|_| 0))
    })
}

/// Reserves `len` bytes at `offset` (fallocate mode 0: the file grows to
/// cover them). Returns 0 or `-errno` (`-EOPNOTSUPP` where the filesystem
/// cannot, `-EINVAL` for `len` 0 or a range past the largest offset).
#[no_mangle]
pub unsafe extern "C" fn rio_file_allocate(f: *mut rio_file_t, offset: u64, len: u64) -> c_int {
    ffi_boundary!("rio_file_allocate", {
        check_null!("rio_file_allocate", f);
        finish("rio_file_allocate", file(f).allocate(offset, len).map(|_| 0))
    })
}

/// Sets the file's size to `len` (ftruncate). Returns 0 or `-errno`.
#[no_mangle]
pub unsafe extern "C" fn rio_file_truncate(f: *mut rio_file_t, len: u64) -> c_int {
    ffi_boundary!("rio_file_truncate", {
        check_null!("rio_file_truncate", f);
        finish("rio_file_truncate", file(f).truncate(len).map(|_| 0))
    })
}

/// The file's size in bytes, or `-errno`.
#[no_mangle]
pub unsafe extern "C" fn rio_file_size(f: *mut rio_file_t) -> i64 {
    ffi_boundary!("rio_file_size", {
        check_null!("rio_file_size", f);
        finish("rio_file_size", file(f).size().map(|n| n as i64))
    })
}

/// Closes the file and frees the handle (always, even when close(2)
/// reports an error, which is returned as `-errno`). A descriptor given to
/// `rio_file_from_fd` without `RIO_FD_OWNED` is left open. NULL is a no-op
/// returning 0. No call on `f` may be running or follow.
#[no_mangle]
pub unsafe extern "C" fn rio_file_close(f: *mut rio_file_t) -> c_int {
    ffi_boundary!("rio_file_close", {
        if f.is_null() {
            return 0;
        }
        let boxed = unsafe { Box::from_raw(f) };
        finish("rio_file_close", boxed.0.close().map(|_| 0))
    })
}
