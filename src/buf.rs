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
    registered: bool,
}

unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let ptr = alloc_aligned(len.max(1));
        assert!(!ptr.is_null(), "out of memory allocating {len} aligned bytes");
        AlignedBuf { ptr, len, registered: false }
    }

    /// Like `new`, and registered with io_uring rings where possible (as
    /// `rio_buf_alloc` memory is): transfers inside it use READ_FIXED /
    /// WRITE_FIXED. For long-lived I/O buffers: every allocation and free
    /// makes each ring update its registration.
    pub fn new_registered(len: usize) -> AlignedBuf {
        let ptr = alloc_registered(len.max(1));
        assert!(!ptr.is_null(), "out of memory allocating {len} aligned bytes");
        AlignedBuf { ptr, len, registered: true }
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
        if self.registered {
            unsafe { free_registered(self.ptr) }
        } else {
            unsafe { free_aligned(self.ptr) }
        }
    }
}

/// Memory registered with io_uring rings ("fixed" buffers,
/// docs/registered-buffers.md): `rio_buf_alloc` buffers (and
/// `AlignedBuf::new_registered`) get a slot of one table shared by every
/// ring; each ring mirrors the table into its kernel registration on the
/// owning thread before it builds SQEs (a SINGLE_ISSUER ring refuses
/// registration from other threads), and uses READ_FIXED / WRITE_FIXED for
/// a transfer that lies inside a registered slot.
pub(crate) mod fixed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, MutexGuard, OnceLock};

    use crate::engine::fork::ForkLocal;

    /// Slots of the table (the sparse kernel table of every ring).
    pub(crate) const SLOTS: usize = 1024;
    /// The kernel's limit for one registered buffer.
    pub(crate) const MAX_LEN: usize = 1 << 30;

    /// One registered region: `[addr, addr + len)`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Region {
        pub addr: usize,
        pub len: usize,
    }

    /// Per process: a forked child starts with an empty table (its copies
    /// of the parent's buffers are used unregistered), and never waits on a
    /// lock a parent thread held at the fork.
    static SLOT_TABLE: OnceLock<ForkLocal<Mutex<Vec<Option<Region>>>>> = OnceLock::new();
    /// Bumped on every change, so a ring syncs only when something changed.
    static GENERATION: AtomicU64 = AtomicU64::new(0);

    fn table() -> MutexGuard<'static, Vec<Option<Region>>> {
        let local = SLOT_TABLE.get_or_init(|| ForkLocal::new(Mutex::new(vec![None; SLOTS])));
        let table = local.get_or(|| Mutex::new(vec![None; SLOTS]));
        table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn generation() -> u64 {
        GENERATION.load(Ordering::Acquire)
    }

    /// Gives `[addr, addr + len)` a slot, when one is free and the size is
    /// registrable; otherwise the buffer is simply not registered.
    pub fn add(addr: usize, len: usize) {
        if len > MAX_LEN {
            return;
        }
        let mut table = table();
        if let Some(slot) = table.iter_mut().find(|s| s.is_none()) {
            *slot = Some(Region { addr, len });
            GENERATION.fetch_add(1, Ordering::Release);
        }
    }

    /// Drops the slot of the buffer starting at `addr` (before it is freed:
    /// rings unregister it at their next sync, before any new SQE).
    pub fn remove(addr: usize) {
        let mut table = table();
        if let Some(slot) = table.iter_mut().find(|s| s.is_some_and(|r| r.addr == addr)) {
            *slot = None;
            GENERATION.fetch_add(1, Ordering::Release);
        }
    }

    /// The table and the generation it belongs to.
    pub fn snapshot() -> (u64, Vec<Option<Region>>) {
        let table = table();
        (generation(), table.clone())
    }
}

/// `alloc_aligned` whose memory is also registered with io_uring rings
/// (when a slot is free); free with `free_registered`.
pub fn alloc_registered(len: usize) -> *mut u8 {
    let p = alloc_aligned(len);
    if !p.is_null() {
        fixed::add(p as usize, len);
    }
    p
}

/// Frees memory from `alloc_registered`; NULL is a no-op.
///
/// # Safety
/// `p` must come from `alloc_registered`, no op may still use it, and it
/// must not be freed twice.
pub unsafe fn free_registered(p: *mut u8) {
    if !p.is_null() {
        fixed::remove(p as usize);
    }
    unsafe { free_aligned(p) }
}
