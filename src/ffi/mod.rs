//! The C ABI. One module per C object; argument checks, the panic boundary,
//! `-errno` results and the thread-local error message live here. No I/O
//! logic: every function forwards to the Rust API.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::OnceLock;

use crate::error::Error;

pub mod batch;
pub mod buf;
pub mod fault;
pub mod file;
pub mod logging;
pub mod queue;
pub mod runtime;
pub mod wal;

/// The most entries one call takes from a caller's array: `n` of
/// `rio_submit_batch` (larger is `-EINVAL`, and nothing runs). Bounding it
/// keeps a garbage count from turning into a huge allocation or a slice
/// that runs past the caller's memory; real batches are far smaller (the
/// ring holds at most a few thousand entries at once anyway).
pub const RIO_BATCH_MAX: usize = 65536;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as the calling thread's last error.
pub(crate) fn set_last_error(message: String) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// What an FFI function returns when it fails: `-errno` for integer
/// results, NULL for pointers.
pub(crate) trait FfiReturn {
    fn from_errno(errno: i32) -> Self;
}

impl FfiReturn for c_int {
    fn from_errno(errno: i32) -> Self {
        -errno
    }
}

impl FfiReturn for i64 {
    fn from_errno(errno: i32) -> Self {
        -(errno as i64)
    }
}

impl FfiReturn for u64 {
    fn from_errno(_: i32) -> Self {
        0
    }
}

impl FfiReturn for () {
    fn from_errno(_: i32) -> Self {}
}

impl<T> FfiReturn for *mut T {
    fn from_errno(_: i32) -> Self {
        std::ptr::null_mut()
    }
}

impl<T> FfiReturn for *const T {
    fn from_errno(_: i32) -> Self {
        std::ptr::null()
    }
}

/// Records `err` (prefixed with the function name) and returns its code.
pub(crate) fn fail<T: FfiReturn>(func: &str, err: Error) -> T {
    set_last_error(format!("{func}: {}", err.message()));
    T::from_errno(err.errno())
}

/// Turns a Rust result into the C convention: the value, or `-errno` with
/// the message recorded.
pub(crate) fn finish<T: FfiReturn>(func: &str, r: crate::Result<T>) -> T {
    r.unwrap_or_else(|e| fail(func, e))
}

/// Runs a function body, turning a panic into `-ENOTRECOVERABLE` (or NULL)
/// with a message, so no unwind crosses the C boundary.
macro_rules! ffi_boundary {
    ($func:literal, $body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(payload) => $crate::ffi::panicked($func, payload),
        }
    }};
}
pub(crate) use ffi_boundary;

/// Returns `-EINVAL` (or NULL) from the enclosing FFI function when `$ptr` is NULL.
macro_rules! check_null {
    ($func:literal, $ptr:ident) => {
        if $ptr.is_null() {
            return $crate::ffi::fail(
                $func,
                $crate::Error::invalid(concat!(stringify!($ptr), " is NULL")),
            );
        }
    };
}
pub(crate) use check_null;

/// Returns `-EINVAL` when `$buf` is NULL but `$len` is not zero.
macro_rules! check_buf {
    ($func:literal, $buf:ident, $len:expr) => {
        if $buf.is_null() && $len != 0 {
            return $crate::ffi::fail(
                $func,
                $crate::Error::invalid(concat!(stringify!($buf), " is NULL with a non-zero length")),
            );
        }
    };
}
pub(crate) use check_buf;

/// Rejects a file offset past the largest one the kernel accepts
/// (`i64::MAX`). io_uring reads `(u64)-1` as "the current file position",
/// so without this check such an offset would silently read or write at
/// the position instead of failing as pread/pwrite do.
pub(crate) fn check_offset(offset: u64) -> crate::Result<()> {
    if offset > i64::MAX as u64 {
        return Err(Error::invalid(format!("offset {offset} exceeds the largest file offset {}", i64::MAX)));
    }
    Ok(())
}

pub(crate) fn panicked<T: FfiReturn>(func: &str, payload: Box<dyn std::any::Any + Send>) -> T {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    fail(func, Error::new(libc::ENOTRECOVERABLE, format!("internal panic: {what}")))
}

/// Reads a NUL-terminated path argument.
///
/// # Safety
/// `p` must be non-NULL and NUL-terminated.
pub(crate) unsafe fn c_path<'a>(p: *const c_char) -> &'a std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    std::path::Path::new(std::ffi::OsStr::from_bytes(bytes))
}

/// Copies a versioned config struct supplied by C: `struct_size` larger
/// than ours is rejected (a newer caller with fields we would ignore);
/// smaller means an older caller, whose missing fields keep `defaults`.
///
/// # Safety
/// `cfg` must point at `struct_size` readable bytes starting with a u32 size.
pub(crate) unsafe fn read_versioned<T: Copy>(cfg: *const T, defaults: T, what: &str) -> crate::Result<T> {
    let size = unsafe { *(cfg as *const u32) } as usize;
    let ours = std::mem::size_of::<T>();
    if size > ours {
        return Err(Error::invalid(format!("{what}.struct_size {size} is larger than this library's {ours}")));
    }
    if size < std::mem::size_of::<u32>() {
        return Err(Error::invalid(format!(
            "{what}.struct_size {size} is too small; fill the struct with its _default() function first"
        )));
    }
    let mut out = defaults;
    // SAFETY: size <= size_of::<T>() and the caller's struct has size bytes.
    unsafe { std::ptr::copy_nonoverlapping(cfg as *const u8, &mut out as *mut T as *mut u8, size) };
    Ok(out)
}

/// Smallest `struct_size` an output struct accepts: its fixed prefix,
/// `uint32_t struct_size` and `int backend`, which every version has.
pub(crate) const OUTPUT_STRUCT_PREFIX: usize = 8;

/// Copies an output struct to a C caller who set `out->struct_size` to the
/// size of its own version of the struct: at most that many bytes are
/// written (an older, smaller struct never gets bytes past its end), at most
/// ours (a newer, larger one keeps its extra fields untouched). The
/// caller's `struct_size` is then set to the number of bytes filled, so a
/// newer caller learns which of its fields this library did not know.
/// A size below the fixed prefix (typically 0: not set) is `-EINVAL`.
///
/// # Safety
/// `out` must point at `struct_size` writable bytes starting with a u32 size.
pub(crate) unsafe fn write_versioned<T: Copy>(out: *mut T, mut value: T, type_name: &str) -> crate::Result<()> {
    let size = unsafe { (out as *const u32).read_unaligned() } as usize;
    if size < OUTPUT_STRUCT_PREFIX {
        return Err(Error::invalid(format!(
            "out->struct_size {size} is smaller than the {OUTPUT_STRUCT_PREFIX}-byte prefix every version has; \
             set out->struct_size = sizeof({type_name}) before the call"
        )));
    }
    let filled = size.min(std::mem::size_of::<T>());
    // SAFETY: value is a T, whose layout starts with the u32 struct_size.
    unsafe { (&mut value as *mut T as *mut u32).write(filled as u32) };
    // SAFETY: filled <= size_of::<T>() and <= the caller's struct_size.
    unsafe { std::ptr::copy_nonoverlapping(&value as *const T as *const u8, out as *mut u8, filled) };
    Ok(())
}

/// Checks that the C `bool` at byte `at` of a caller's config (when its
/// `struct_size` covers it) is 0 or 1: reading any other byte as a Rust
/// bool would be undefined behaviour.
///
/// # Safety
/// `cfg` points at `struct_size` readable bytes starting with a u32 size.
pub(crate) unsafe fn check_c_bool<T>(cfg: *const T, at: usize, what: &str) -> crate::Result<()> {
    let size = unsafe { *(cfg as *const u32) } as usize;
    if size > at && size <= std::mem::size_of::<T>() {
        let byte = unsafe { *(cfg as *const u8).add(at) };
        if byte > 1 {
            return Err(Error::invalid(format!("{what}: {byte} is not a bool (0 or 1)")));
        }
    }
    Ok(())
}

/// Copies `s` into a fixed C char array, truncating, always NUL-terminated.
pub(crate) fn fill_c_chars(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len().saturating_sub(1));
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    dst[n] = 0;
}

/// The library version, e.g. "0.1.0". Static; never NULL.
#[no_mangle]
pub extern "C" fn rio_version() -> *const c_char {
    static VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => c"unknown",
    };
    VERSION.as_ptr()
}

/// A static description of an error code; accepts `-errno` or `errno`.
/// Never NULL; unknown codes give "Unknown error".
#[no_mangle]
pub extern "C" fn rio_strerror(err: c_int) -> *const c_char {
    static TABLE: OnceLock<Vec<CString>> = OnceLock::new();
    ffi_boundary!("rio_strerror", {
        let table = TABLE.get_or_init(|| {
            (0..134).map(|e| CString::new(if e == 0 { "Success".into() } else { crate::error::strerror(e) }).unwrap_or_default()).collect()
        });
        let code = err.unsigned_abs() as usize;
        table.get(code).map_or(c"Unknown error".as_ptr(), |s| s.as_ptr())
    })
}

/// The calling thread's message for its last failed librio call, naming the
/// function, the argument or path, and the cause. Empty when no call has
/// failed on this thread. Valid until the next failing call on this thread;
/// never NULL.
#[no_mangle]
pub extern "C" fn rio_last_error_message() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    /// include/rio.h is checked in; it must be what the pinned cbindgen
    /// generates from the current sources (`make header` refreshes it).
    #[test]
    fn checked_in_header_is_fresh() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/rio.h"));
        let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/rio.h")).unwrap();
        assert!(generated == checked_in, "include/rio.h is stale: run `make header` and commit it");
    }

    /// Every function, constant and type of the header carries a doc comment.
    #[test]
    fn header_items_are_documented() {
        let header = include_str!(concat!(env!("OUT_DIR"), "/rio.h"));
        let lines: Vec<&str> = header.lines().collect();
        let mut undocumented = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let item = (line.starts_with("#define RIO_") && !line.starts_with("#define RIO_VERSION") && *line != "#define RIO_H")
                || line.starts_with("typedef ")
                || (line.contains("rio_") && line.contains('(') && !line.starts_with(' ') && !line.starts_with('#'));
            if !item {
                continue;
            }
            let prev = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).copied().unwrap_or("");
            if !prev.trim_end().ends_with("*/") {
                undocumented.push(*line);
            }
        }
        assert!(undocumented.is_empty(), "undocumented items in rio.h:\n{}", undocumented.join("\n"));
    }

    /// Every name the header declares carries the library's prefix.
    #[test]
    fn header_names_are_prefixed() {
        let header = include_str!(concat!(env!("OUT_DIR"), "/rio.h"));
        for line in header.lines() {
            let name = if let Some(rest) = line.strip_prefix("#define ") {
                rest.split_whitespace().next()
            } else if line.starts_with("} ") {
                line.trim_start_matches("} ").strip_suffix(';')
            } else {
                None
            };
            if let Some(name) = name {
                assert!(name.starts_with("RIO_") || name.starts_with("rio_"), "unprefixed name in rio.h: {name}");
            }
        }
    }
}
