//! Aligned memory for O_DIRECT.

/// Alignment of every buffer from `alloc_aligned`: a page, which satisfies
/// the direct-I/O memory alignment of every Linux filesystem and device.
pub const BUF_ALIGN: usize = 4096;

/// Allocates `len` zeroed bytes aligned to `BUF_ALIGN`; free with `free_aligned`.
/// Returns NULL when `len` is 0 or memory is exhausted.
pub fn alloc_aligned(len: usize) -> *mut u8 {
    if len == 0 {
        return std::ptr::null_mut();
    }
    let mut p: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: posix_memalign writes p only on success.
    if unsafe { libc::posix_memalign(&mut p, BUF_ALIGN, len) } != 0 {
        return std::ptr::null_mut();
    }
    // Zeroed, so a partly filled buffer never writes uninitialised heap to disk.
    unsafe { std::ptr::write_bytes(p as *mut u8, 0, len) };
    p as *mut u8
}

/// Frees memory from `alloc_aligned`; NULL is a no-op.
///
/// # Safety
/// `p` must come from `alloc_aligned` and not be freed twice.
pub unsafe fn free_aligned(p: *mut u8) {
    unsafe { libc::free(p as *mut libc::c_void) }
}

/// An owned aligned buffer for Rust callers.
pub struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}

unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let ptr = alloc_aligned(len.max(1));
        assert!(!ptr.is_null(), "out of memory allocating {len} aligned bytes");
        AlignedBuf { ptr, len }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        unsafe { free_aligned(self.ptr) }
    }
}
