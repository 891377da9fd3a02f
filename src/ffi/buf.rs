//! Aligned buffers for O_DIRECT.

use std::ffi::c_void;

use super::{fail, ffi_boundary};
use crate::Error;

/// Alignment of every buffer returned by `rio_buf_alloc` (a page).
pub const RIO_BUF_ALIGN: usize = 4096;

// A literal so cbindgen emits it into rio.h; must equal the allocator's alignment.
const _: () = assert!(RIO_BUF_ALIGN == crate::buf::BUF_ALIGN);

/// Allocates `len` zeroed bytes aligned to RIO_BUF_ALIGN, enough for
/// O_DIRECT on any file, and registers them with the runtimes' io_uring
/// rings where possible (up to 1024 buffers of at most 1 GiB; transfers
/// inside one use READ_FIXED/WRITE_FIXED, silently not when the kernel or
/// RLIMIT_MEMLOCK refuses). Free with `rio_buf_free`; thread-safe. Returns NULL for `len` 0 or when out of memory, with
/// the reason in rio_last_error_message().
#[no_mangle]
pub extern "C" fn rio_buf_alloc(len: usize) -> *mut c_void {
    ffi_boundary!("rio_buf_alloc", {
        if len == 0 {
            return fail("rio_buf_alloc", Error::invalid("len is 0"));
        }
        if len > isize::MAX as usize {
            // No allocator can satisfy it; do not hand posix_memalign a
            // "negative" size (valgrind flags that as an error).
            return fail("rio_buf_alloc", Error::new(libc::ENOMEM, format!("len {len} is larger than the address space")));
        }
        let p = crate::buf::alloc_registered(len);
        if p.is_null() {
            return fail("rio_buf_alloc", Error::new(libc::ENOMEM, format!("cannot allocate {len} bytes")));
        }
        p as *mut c_void
    })
}

/// Frees a buffer from `rio_buf_alloc`. NULL is a no-op. No operation may
/// still use it.
#[no_mangle]
pub unsafe extern "C" fn rio_buf_free(buf: *mut c_void) {
    ffi_boundary!("rio_buf_free", { unsafe { crate::buf::free_registered(buf as *mut u8) } })
}
