//! `rio_wal_t` and `rio_wal_reader_t`: a boxed `Wal` and a boxed (locked)
//! `WalReader`.

use std::ffi::{c_char, c_int, c_void};
use std::mem::offset_of;

use crate::engine::sync::Mutex;

use super::runtime::rio_runtime_t;
use super::{c_path, check_c_bool, check_null, fail, ffi_boundary, finish, read_versioned};
use crate::engine::fork::Owner;
use crate::wal::{RecoveryMode, Wal, WalConfig, WalReader};
use crate::Error;

/// An open write-ahead log. Create with `rio_wal_open`, free with
/// `rio_wal_close`. Thread-safe: many threads may append and wait at once
/// (they share writes and syncs). A handle inherited through fork() belongs
/// to the parent: in the child every call fails with -EBUSY (functions
/// returning a seq return 0), except rio_wal_close, which frees it without
/// touching the log.
pub struct rio_wal_t(pub(crate) Wal);

/// A reader of a log's entries. Create with `rio_wal_reader_open`, free with
/// `rio_wal_reader_close`. Calls on one reader are serialized. Inherited
/// through fork(), it fails with -EBUSY in the child (close frees it).
pub struct rio_wal_reader_t {
    /// Checked before the lock, which a parent thread may have held at fork.
    owner: Owner,
    reader: Mutex<WalReader>,
}

/// Default: a torn tail (an interrupted write) is cut off on open;
/// corruption before it is -EBADMSG.
pub const RIO_WAL_RECOVER_TOLERATE_TAIL: u32 = 0;
/// Any invalid byte, even a torn tail, makes rio_wal_open fail with -EBADMSG.
pub const RIO_WAL_RECOVER_STRICT: u32 = 1;
/// Largest entry, in bytes (64 MiB); larger ones are -EINVAL.
pub const RIO_WAL_MAX_ENTRY: u64 = 64 << 20;
/// Most entries one rio_wal_append_batch may carry (65536); more is -EINVAL.
pub const RIO_WAL_MAX_BATCH: u64 = 1 << 16;
/// rio_wal_wait's timeout_us meaning "no limit".
pub const RIO_WAL_WAIT_FOREVER: i64 = -1;

const _: () = assert!(RIO_WAL_MAX_ENTRY as usize == crate::wal::MAX_ENTRY);
const _: () = assert!(RIO_WAL_MAX_BATCH as usize == crate::wal::MAX_BATCH_ENTRIES);

/// WAL configuration. Fill with `rio_wal_config_default`, then change fields.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rio_wal_config_t {
    /// sizeof(rio_wal_config_t), set by rio_wal_config_default.
    pub struct_size: u32,
    /// Most entries per group commit (default 256, 1..=65536). An atomic
    /// batch with more entries is written alone.
    pub batch_size: u32,
    /// Longest wait for more appenders to join a group commit, in
    /// microseconds (default 100, at most 1000000). A lone appender never waits.
    pub flush_timeout_us: u32,
    /// true (default): an append returns once its entry is fdatasync'd.
    /// false: once written to the page cache; rio_wal_sync makes it durable.
    pub sync_after_batch: bool,
    /// Bytes of queued, not yet written entries before appenders wait
    /// (default 4 MiB). A larger single append is admitted alone.
    pub buffer_size: u64,
    /// Segment file size, preallocated (default 64 MiB, at least 4096).
    pub segment_size: u64,
    /// RIO_WAL_RECOVER_TOLERATE_TAIL (default) or RIO_WAL_RECOVER_STRICT.
    pub recovery_mode: u32,
}

/// A byte range: one entry of `rio_wal_append_batch`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rio_slice_t {
    pub data: *const c_void,
    pub len: usize,
}

impl rio_wal_config_t {
    fn defaults() -> Self {
        let d = WalConfig::default();
        rio_wal_config_t {
            struct_size: std::mem::size_of::<Self>() as u32,
            batch_size: d.batch_size,
            flush_timeout_us: d.flush_timeout_us,
            sync_after_batch: d.sync_after_batch,
            buffer_size: d.buffer_size,
            segment_size: d.segment_size,
            recovery_mode: RIO_WAL_RECOVER_TOLERATE_TAIL,
        }
    }

    fn to_config(self) -> crate::Result<WalConfig> {
        let recovery_mode = match self.recovery_mode {
            RIO_WAL_RECOVER_TOLERATE_TAIL => RecoveryMode::TolerateTail,
            RIO_WAL_RECOVER_STRICT => RecoveryMode::Strict,
            other => return Err(Error::invalid(format!("cfg.recovery_mode: unknown value {other}"))),
        };
        Ok(WalConfig {
            batch_size: self.batch_size,
            flush_timeout_us: self.flush_timeout_us,
            sync_after_batch: self.sync_after_batch,
            buffer_size: self.buffer_size,
            segment_size: self.segment_size,
            recovery_mode,
        })
    }

    /// Reads a caller's config. The bool byte is checked before the struct
    /// is read as Rust values (any byte but 0 or 1 would be undefined there).
    ///
    /// # Safety
    /// `cfg` points at `cfg->struct_size` readable bytes.
    unsafe fn read(cfg: *const Self) -> crate::Result<WalConfig> {
        unsafe { check_c_bool(cfg, offset_of!(rio_wal_config_t, sync_after_batch), "cfg.sync_after_batch") }?;
        unsafe { read_versioned(cfg, Self::defaults(), "cfg") }?.to_config()
    }
}

/// The caller's bytes as a slice. The length is checked first, so no slice
/// longer than an entry may be is ever formed over the caller's memory.
///
/// # Safety
/// `data` is valid for `len` bytes (or `len` is 0).
unsafe fn entry_bytes<'a>(what: impl FnOnce() -> String, data: *const c_void, len: usize) -> crate::Result<&'a [u8]> {
    if len as u64 > RIO_WAL_MAX_ENTRY {
        return Err(Error::invalid(format!("{}: {len} bytes exceed RIO_WAL_MAX_ENTRY ({RIO_WAL_MAX_ENTRY})", what())));
    }
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Error::invalid(format!("{} is NULL with a non-zero length", what())));
    }
    Ok(unsafe { std::slice::from_raw_parts(data as *const u8, len) })
}

fn wal<'a>(w: *const rio_wal_t) -> &'a Wal {
    // SAFETY: callers check NULL first; the handle is live per the API contract.
    &unsafe { &*w }.0
}

/// A seq getter: 0 with the EBUSY message in a forked child.
fn owned_seq(func: &str, w: &Wal, get: fn(&Wal) -> u64) -> u64 {
    match w.check_owner() {
        Ok(()) => get(w),
        Err(e) => fail(func, e),
    }
}

/// Fills `cfg` with defaults (including `struct_size`). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn rio_wal_config_default(cfg: *mut rio_wal_config_t) {
    ffi_boundary!("rio_wal_config_default", {
        if !cfg.is_null() {
            unsafe { cfg.write(rio_wal_config_t::defaults()) };
        }
    })
}

/// Opens the log in directory `dir` (created if missing) and recovers what
/// is there; sequence numbers continue after the last entry on disk. `cfg`
/// NULL means defaults. Stores a new handle in `*out` (NULL on failure).
/// Errors: `-EINVAL` (NULL argument, bad field or struct_size), `-EBADMSG`
/// (corruption: the message names the segment file and offset), `-EBUSY`
/// (the log is already open), or the `-errno` of a failed system call.
#[no_mangle]
pub unsafe extern "C" fn rio_wal_open(
    rt: *mut rio_runtime_t,
    dir: *const c_char,
    cfg: *const rio_wal_config_t,
    out: *mut *mut rio_wal_t,
) -> c_int {
    ffi_boundary!("rio_wal_open", {
        check_null!("rio_wal_open", out);
        unsafe { *out = std::ptr::null_mut() };
        check_null!("rio_wal_open", rt);
        check_null!("rio_wal_open", dir);
        let config = if cfg.is_null() { Ok(WalConfig::default()) } else { unsafe { rio_wal_config_t::read(cfg) } };
        let rt = &unsafe { &*rt }.0;
        match config.and_then(|c| Wal::open(rt, unsafe { c_path(dir) }, c)) {
            Ok(w) => {
                unsafe { *out = Box::into_raw(Box::new(rio_wal_t(w))) };
                0
            }
            Err(e) => fail("rio_wal_open", e),
        }
    })
}

/// Stores the sequence number in `*out` when `out` is not NULL.
fn store_seq(out: *mut u64, r: crate::Result<u64>) -> crate::Result<c_int> {
    r.map(|seq| {
        if !out.is_null() {
            unsafe { *out = seq };
        }
        0
    })
}

/// Appends one entry of `len` bytes (0 allowed; at most RIO_WAL_MAX_ENTRY)
/// and returns 0 once it is durable (or written, when `sync_after_batch`
/// is false); its sequence number goes to `*seq_out` (may be NULL).
/// Errors: `-EINVAL` (NULL `w`, NULL `data` with `len` > 0, too large),
/// `-EIO` once the log is poisoned by a failed write or sync, or the
/// failure of the write/sync that carried this entry.
#[no_mangle]
pub unsafe extern "C" fn rio_wal_append(w: *mut rio_wal_t, data: *const c_void, len: usize, seq_out: *mut u64) -> c_int {
    ffi_boundary!("rio_wal_append", {
        check_null!("rio_wal_append", w);
        let r = unsafe { entry_bytes(|| "data".into(), data, len) }.and_then(|bytes| wal(w).append(bytes));
        finish("rio_wal_append", store_seq(seq_out, r))
    })
}

/// Borrows the caller's slices as Rust slices.
fn entry_slices<'a>(entries: *const rio_slice_t, n: usize) -> crate::Result<Vec<&'a [u8]>> {
    if entries.is_null() {
        return Err(Error::invalid("entries is NULL"));
    }
    if n == 0 {
        return Err(Error::invalid("n is 0: an atomic batch needs at least one entry"));
    }
    if n as u64 > RIO_WAL_MAX_BATCH {
        return Err(Error::invalid(format!("n is {n}: a batch holds at most RIO_WAL_MAX_BATCH ({RIO_WAL_MAX_BATCH}) entries")));
    }
    let slices = unsafe { std::slice::from_raw_parts(entries, n) };
    slices.iter().enumerate().map(|(i, s)| unsafe { entry_bytes(|| format!("entries[{i}].data"), s.data, s.len) }).collect()
}

/// Appends `n` entries atomically: after a crash all of them are recovered
/// or none. Their sequence numbers are consecutive; the first goes to
/// `*first_seq_out` (may be NULL). `n` == 0 or above RIO_WAL_MAX_BATCH is
/// `-EINVAL` (nothing appended). Other errors as `rio_wal_append`.
#[no_mangle]
pub unsafe extern "C" fn rio_wal_append_batch(
    w: *mut rio_wal_t,
    entries: *const rio_slice_t,
    n: usize,
    first_seq_out: *mut u64,
) -> c_int {
    ffi_boundary!("rio_wal_append_batch", {
        check_null!("rio_wal_append_batch", w);
        let r = entry_slices(entries, n).and_then(|slices| wal(w).append_batch(&slices));
        finish("rio_wal_append_batch", store_seq(first_seq_out, r))
    })
}

/// Appends one entry of `len` bytes (0 allowed; at most RIO_WAL_MAX_ENTRY)
/// without waiting for it: assigns the next sequence number (to
/// `*seq_out`, may be NULL), copies the entry into the log's buffer and
/// returns 0. Blocks only while `buffer_size` bytes are already waiting to
/// be written (backpressure). Entries become durable in sequence order,
/// whether or not anyone waits: `rio_wal_wait` or `rio_wal_durable_seq`
/// tell when. Errors as `rio_wal_append` (nothing is appended).
#[no_mangle]
pub unsafe extern "C" fn rio_wal_append_async(w: *mut rio_wal_t, data: *const c_void, len: usize, seq_out: *mut u64) -> c_int {
    ffi_boundary!("rio_wal_append_async", {
        check_null!("rio_wal_append_async", w);
        let r = unsafe { entry_bytes(|| "data".into(), data, len) }.and_then(|bytes| wal(w).append_async(bytes));
        finish("rio_wal_append_async", store_seq(seq_out, r))
    })
}

/// Waits until every entry up to `seq` is acknowledged and returns 0:
/// durable (fdatasync'd) with the default config; with `sync_after_batch`
/// false, written to the page cache (rio_wal_sync makes it durable).
/// `timeout_us`: RIO_WAL_WAIT_FOREVER (-1) waits without limit, 0 polls.
/// Errors: `-ETIMEDOUT` when the time passed first (the entry may still
/// become durable later); `-EIO` when the log is poisoned by a failed
/// write or sync (the message names it) and `seq` was not acknowledged
/// before; `-EINVAL` for NULL `w`, `seq` 0, a seq never assigned, or a
/// negative `timeout_us` other than -1.
#[no_mangle]
pub unsafe extern "C" fn rio_wal_wait(w: *mut rio_wal_t, seq: u64, timeout_us: i64) -> c_int {
    ffi_boundary!("rio_wal_wait", {
        check_null!("rio_wal_wait", w);
        let timeout = match timeout_us {
            RIO_WAL_WAIT_FOREVER => Ok(None),
            t if t >= 0 => Ok(Some(std::time::Duration::from_micros(t as u64))),
            t => Err(Error::invalid(format!("timeout_us: {t} is negative (only -1, no limit, is allowed)"))),
        };
        finish("rio_wal_wait", timeout.and_then(|t| wal(w).wait(seq, t)).map(|_| 0))
    })
}

/// The highest sequence number such that it and every entry before it are
/// durable (fdatasync'd); with `sync_after_batch` false it advances on
/// rio_wal_sync, segment rotation and close. 0 for NULL, for a log whose
/// entries are not yet durable, and in a forked child (message set).
#[no_mangle]
pub unsafe extern "C" fn rio_wal_durable_seq(w: *const rio_wal_t) -> u64 {
    ffi_boundary!("rio_wal_durable_seq", {
        check_null!("rio_wal_durable_seq", w);
        owned_seq("rio_wal_durable_seq", wal(w), Wal::durable_seq)
    })
}

/// Writes every entry appended so far (rio_wal_append_async ones too) and
/// makes it durable (a no-op cost with the default `sync_after_batch` once
/// they are written). `-EIO` once the log is poisoned.
#[no_mangle]
pub unsafe extern "C" fn rio_wal_sync(w: *mut rio_wal_t) -> c_int {
    ffi_boundary!("rio_wal_sync", {
        check_null!("rio_wal_sync", w);
        finish("rio_wal_sync", wal(w).sync().map(|_| 0))
    })
}

/// The sequence number of the last acknowledged entry (truncated ones
/// count; entries of rio_wal_append_async once rio_wal_wait would return 0
/// for them); 0 for a log that never had an entry, for NULL, and in a
/// forked child (message set).
#[no_mangle]
pub unsafe extern "C" fn rio_wal_last_seq(w: *const rio_wal_t) -> u64 {
    ffi_boundary!("rio_wal_last_seq", {
        check_null!("rio_wal_last_seq", w);
        owned_seq("rio_wal_last_seq", wal(w), Wal::last_seq)
    })
}

/// Removes whole segment files all of whose entries are below `seq` (the
/// segment being appended to stays): entries >= `seq` are kept, some below
/// it may remain. Crash-safe. `-EINVAL` if `seq` > last_seq + 1.
#[no_mangle]
pub unsafe extern "C" fn rio_wal_truncate_before(w: *mut rio_wal_t, seq: u64) -> c_int {
    ffi_boundary!("rio_wal_truncate_before", {
        check_null!("rio_wal_truncate_before", w);
        finish("rio_wal_truncate_before", wal(w).truncate_before(seq).map(|_| 0))
    })
}

/// Opens a reader of acknowledged entries from `from_seq` on (0 means 1;
/// a truncated-away `from_seq` starts at the first entry kept). Readers
/// work while others append, and may outlive `w`. Stores a new handle in
/// `*out` (NULL on failure).
#[no_mangle]
pub unsafe extern "C" fn rio_wal_reader_open(w: *mut rio_wal_t, from_seq: u64, out: *mut *mut rio_wal_reader_t) -> c_int {
    ffi_boundary!("rio_wal_reader_open", {
        check_null!("rio_wal_reader_open", out);
        unsafe { *out = std::ptr::null_mut() };
        check_null!("rio_wal_reader_open", w);
        match wal(w).reader(from_seq) {
            Ok(r) => {
                unsafe { *out = Box::into_raw(Box::new(rio_wal_reader_t { owner: Owner::current(), reader: Mutex::new(r) })) };
                0
            }
            Err(e) => fail("rio_wal_reader_open", e),
        }
    })
}

/// Reads the next entry: returns 1 and sets `*seq`, `*data`, `*len` (the
/// bytes stay valid until the next call on this reader or its close), 0
/// when every entry acknowledged so far has been read (a later call may
/// find new ones), or `-errno` (`-EBADMSG` for a record that does not
/// verify, naming the file and offset). All pointers must be non-NULL.
#[no_mangle]
pub unsafe extern "C" fn rio_wal_reader_next(
    r: *mut rio_wal_reader_t,
    seq: *mut u64,
    data: *mut *const u8,
    len: *mut usize,
) -> c_int {
    ffi_boundary!("rio_wal_reader_next", {
        check_null!("rio_wal_reader_next", r);
        check_null!("rio_wal_reader_next", seq);
        check_null!("rio_wal_reader_next", data);
        check_null!("rio_wal_reader_next", len);
        let handle = unsafe { &*r };
        if handle.owner.is_inherited() {
            return fail("rio_wal_reader_next", Error::new(libc::EBUSY, "this reader was inherited through fork and belongs to the parent process; only close is allowed"));
        }
        let mut reader = handle.reader.lock();
        let r = reader.next().map(|entry| match entry {
            Some((s, bytes)) => {
                unsafe {
                    *seq = s;
                    *data = bytes.as_ptr();
                    *len = bytes.len();
                }
                1
            }
            None => 0,
        });
        finish("rio_wal_reader_next", r)
    })
}

/// Frees a reader. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn rio_wal_reader_close(r: *mut rio_wal_reader_t) {
    ffi_boundary!("rio_wal_reader_close", {
        if !r.is_null() {
            drop(unsafe { Box::from_raw(r) });
        }
    })
}

/// Makes every acknowledged entry durable, closes the log and frees the
/// handle (always, even on error). Returns 0, or `-EIO` if the log was
/// poisoned (or the final sync failed). NULL is a no-op returning 0. No
/// call on `w` may be running or follow; open readers stay usable. In a
/// forked child it frees the handle and returns 0 without touching the log
/// (no sync, the parent's directory lock kept).
#[no_mangle]
pub unsafe extern "C" fn rio_wal_close(w: *mut rio_wal_t) -> c_int {
    ffi_boundary!("rio_wal_close", {
        if w.is_null() {
            return 0;
        }
        let boxed = unsafe { Box::from_raw(w) };
        finish("rio_wal_close", boxed.0.close().map(|_| 0))
    })
}
