//! `write_durable`: all bytes at an offset, on stable storage when it
//! returns, by the fastest safe path the file allows (docs/durable-writes.md).
//!
//! A buffered handle sends its page-aligned span through a second, O_DIRECT
//! descriptor of the same file (opened on first use through
//! /proc/self/fd), split into chunks that go to the engine as one batch
//! together with the unaligned head and tail (page cache, through the
//! handle's own descriptor); then one fdatasync. Head and tail never share
//! a page with the direct span, so the two views stay coherent: the direct
//! write flushes and drops the cached pages of its own range, and nothing
//! else touches those pages meanwhile. A write that grows the file goes
//! through the page cache (measured faster there). Where O_DIRECT is unavailable the
//! whole range goes through the page cache (counted in the metrics); so
//! does a borrowed descriptor, since closing a second descriptor of the
//! file would drop the caller's POSIX record locks.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use super::{check_range, dio_alignment, DioAlign, DiskFile};
use crate::buf::AlignedBuf;
use crate::engine::{Op, OpKind};
use crate::error::{Error, Result};

/// Bytes per direct chunk: enough in flight to keep a device's queue busy
/// while each request stays at the size block layers split to anyway.
pub(crate) const DURABLE_CHUNK: usize = 256 * 1024;

/// At most this many bytes are copied to an aligned bounce buffer at once
/// when the caller's memory is not aligned for O_DIRECT.
const BOUNCE_WINDOW: usize = 8 << 20;

const PAGE: u64 = 4096;

/// The second descriptor, or why there is none.
enum Direct {
    Open { fd: OwnedFd, align: DioAlign },
    Unavailable { reason: String },
}

/// The O_DIRECT descriptor of a buffered handle, opened lazily and cached.
#[derive(Default)]
pub(crate) struct DirectPath(OnceLock<Direct>);

impl DirectPath {
    /// No second descriptor for a borrowed fd: closing one (with the
    /// handle) would drop the caller's POSIX record locks on the file.
    pub(crate) fn for_borrowed_fd() -> DirectPath {
        let reason = "the descriptor is borrowed (rio_file_from_fd without RIO_FD_OWNED): closing a second \
                      O_DIRECT descriptor would drop the caller's POSIX locks"
            .to_string();
        DirectPath(OnceLock::from(Direct::Unavailable { reason }))
    }

    fn get(&self, fd: RawFd) -> &Direct {
        self.0.get_or_init(|| open_direct(fd))
    }
}

fn open_direct(fd: RawFd) -> Direct {
    // Reopening the magic link gives a new open file description of the
    // same inode (also for an unlinked file) with O_DIRECT, write-only.
    let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a formatted path");
    let raw = loop {
        let raw = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_DIRECT | libc::O_CLOEXEC) };
        if raw >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break raw;
        }
    };
    if raw < 0 {
        let err = std::io::Error::last_os_error();
        let reason = match err.raw_os_error() {
            Some(libc::EINVAL) => "the filesystem does not support O_DIRECT".to_string(),
            _ => format!("reopening for O_DIRECT failed: {err}"),
        };
        tracing::debug!(fd, %reason, "write_durable: no direct path, using the page cache");
        return Direct::Unavailable { reason };
    }
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let align = dio_alignment(fd.as_raw_fd());
    Direct::Open { fd, align }
}

/// How one durable write is split: `[offset, mid_start)` and `[mid_end,
/// end)` through the page cache, the middle direct.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub mid_start: u64,
    pub mid_end: u64,
}

/// The middle is aligned to the direct-I/O offset alignment and to pages,
/// so no page holds both buffered and direct bytes of this write.
pub(crate) fn split(offset: u64, len: u64, align: u64) -> Split {
    let unit = align.max(PAGE);
    let end = offset + len;
    let mid_start = offset.div_ceil(unit) * unit;
    let mid_end = end / unit * unit;
    if mid_start >= mid_end {
        return Split { mid_start: end, mid_end: end };
    }
    Split { mid_start, mid_end }
}

impl DiskFile {
    /// Writes all of `buf` at `offset` and returns only once the bytes, and
    /// the metadata needed to read them back, are on stable storage.
    pub fn write_durable(&self, buf: &[u8], offset: u64) -> Result<usize> {
        unsafe { self.write_durable_raw(buf.as_ptr(), buf.len(), offset) }
    }

    /// # Safety
    /// `buf` must be valid for `len` bytes of reads.
    pub unsafe fn write_durable_raw(&self, buf: *const u8, len: usize, offset: u64) -> Result<usize> {
        let what = || format!("{}: durable write of {len} bytes at offset {offset}", self.path.display());
        check_range(offset, len as u64).map_err(|e| e.context(what()))?;
        if !self.is_writable() {
            return Err(Error::new(libc::EBADF, format!("{}: the handle is not open for writing", what())));
        }
        if self.is_append() {
            return Err(Error::invalid(format!(
                "{}: the handle is O_APPEND, which writes at the end whatever the offset (use write_at and datasync)",
                what()
            )));
        }
        if len == 0 {
            return Ok(0);
        }
        let durable = &self.rt.engine().metrics.durable;
        let written = match (self.dio, self.durable_path()) {
            (Some(align), _) => unsafe { self.write_direct_handle(buf, len, offset, align) },
            (None, Some(_)) if self.grows_file(offset, len) => {
                durable.record_extending();
                unsafe { self.write_at_raw(buf, len, offset) }
                    .map_err(|e| e.context("write_durable: page-cache write (the file grows)"))
                    .map(drop)
            }
            (None, Some((fd, align))) => unsafe { self.write_split(fd, align, buf, len, offset) },
            (None, None) => {
                durable.record_fallback();
                unsafe { self.write_at_raw(buf, len, offset) }
                    .map_err(|e| e.context("write_durable: page-cache write (no O_DIRECT)"))
                    .map(drop)
            }
        };
        // Whatever failed, nothing may still be in flight (the engine returns
        // only when the kernel is done) and the caller learns it was not made
        // durable: the sync runs only after every write succeeded.
        written.map_err(|e| e.context(what()))?;
        self.datasync().map_err(|e| e.context(format!("{}: fdatasync after the writes", what())))?;
        durable.record_write(len as u64);
        Ok(len)
    }

    /// Whether the write ends past the current size. Such a write goes
    /// through the page cache: on ext4 an extending O_DIRECT write
    /// allocates and converts extents per request, and buffered + one
    /// fdatasync measured 1.4-2x faster for fresh 1 MiB objects
    /// (docs/durable-writes.md). Only a choice of speed: both are durable.
    fn grows_file(&self, offset: u64, len: usize) -> bool {
        self.size().map_or(true, |size| offset + len as u64 > size)
    }

    /// The direct descriptor and its alignment, or None (recorded why).
    fn durable_path(&self) -> Option<(RawFd, DioAlign)> {
        if self.dio.is_some() {
            return None;
        }
        match self.durable.get(self.fd.fd) {
            Direct::Open { fd, align } => Some((fd.as_raw_fd(), *align)),
            Direct::Unavailable { .. } => None,
        }
    }

    /// Why `write_durable` uses the page cache for this file, if it does.
    pub fn durable_fallback_reason(&self) -> Option<String> {
        if self.dio.is_some() {
            return None;
        }
        match self.durable.get(self.fd.fd) {
            Direct::Open { .. } => None,
            Direct::Unavailable { reason } => Some(reason.clone()),
        }
    }

    /// An O_DIRECT handle: the caller's span must be aligned (as for
    /// write_at); it goes out in chunks, all in flight at once.
    unsafe fn write_direct_handle(&self, buf: *const u8, len: usize, offset: u64, align: DioAlign) -> Result<()> {
        // prepare() checks alignment the way every call on the handle does.
        self.prepare(OpKind::Write { buf, len }, offset)?;
        let mut ops = Vec::with_capacity(len.div_ceil(DURABLE_CHUNK));
        push_chunks(&mut ops, self.fd.fd, buf, len, offset, align.offset as usize);
        unsafe { self.run_durable_batch(&mut ops, "direct write") }
    }

    /// A buffered handle with a direct path: head and tail through the
    /// page cache, the aligned middle direct (bounced when the caller's
    /// memory is misaligned), all in one batch.
    unsafe fn write_split(&self, direct: RawFd, align: DioAlign, buf: *const u8, len: usize, offset: u64) -> Result<()> {
        let Split { mid_start, mid_end } = split(offset, len as u64, align.offset as u64);
        let end = offset + len as u64;
        let at = |pos: u64| unsafe { buf.add((pos - offset) as usize) };
        let mut ops = Vec::new();
        let cached = |ops: &mut Vec<Op>, from: u64, to: u64| {
            if from < to {
                let mut op = Op::new(self.fd.fd, OpKind::Write { buf: at(from), len: (to - from) as usize }, from);
                op.cached = true;
                ops.push(op);
            }
        };
        cached(&mut ops, offset, mid_start);
        cached(&mut ops, mid_end, end);
        let mid = at(mid_start);
        let mid_len = (mid_end - mid_start) as usize;
        if mid_len == 0 || (mid as usize) % (align.memory.max(1) as usize) == 0 {
            push_chunks(&mut ops, direct, mid, mid_len, mid_start, align.offset as usize);
            return unsafe { self.run_durable_batch(&mut ops, "page-cache head/tail or direct middle write") };
        }
        // Misaligned memory: the head/tail go with the first window, the
        // middle through an aligned copy, a window at a time.
        let window = BOUNCE_WINDOW.min(mid_len);
        let mut bounce = AlignedBuf::new(window);
        let mut done = 0;
        while done < mid_len {
            let n = window.min(mid_len - done);
            unsafe { std::ptr::copy_nonoverlapping(mid.add(done), bounce.as_mut_ptr(), n) };
            push_chunks(&mut ops, direct, bounce.as_ptr(), n, mid_start + done as u64, align.offset as usize);
            unsafe { self.run_durable_batch(&mut ops, "page-cache head/tail or direct middle write (bounced)")? };
            ops.clear();
            done += n;
        }
        Ok(())
    }

    /// Runs the batch; the first failed op names the part that failed.
    unsafe fn run_durable_batch(&self, ops: &mut [Op], what: &str) -> Result<()> {
        // SAFETY: the caller's buffer (or our bounce buffer) outlives this
        // call, and execute returns only when no op is in flight.
        unsafe { self.rt.engine().execute(ops) };
        match ops.iter().find(|op| op.result < 0) {
            None => Ok(()),
            Some(op) => {
                let part = if op.fd == self.fd.fd { "page-cache" } else { "O_DIRECT" };
                let len = op.transfer_len();
                Err(Error::os(
                    (-op.result) as i32,
                    format_args!("{what}: {part} write of {len} bytes at offset {} failed", op.offset),
                ))
            }
        }
    }
}

/// Splits `[offset, offset+len)` into `DURABLE_CHUNK` pieces (multiples of
/// `align`, the last one the rest).
fn push_chunks(ops: &mut Vec<Op>, fd: RawFd, buf: *const u8, len: usize, offset: u64, align: usize) {
    let chunk = DURABLE_CHUNK / align.max(1) * align.max(1);
    let chunk = chunk.max(align.max(1));
    let mut done = 0;
    while done < len {
        let n = chunk.min(len - done);
        ops.push(Op::new(fd, OpKind::Write { buf: unsafe { buf.add(done) }, len: n }, offset + done as u64));
        done += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_head_and_tail_off_the_direct_pages() {
        assert_eq!(split(0, 8192, 512), Split { mid_start: 0, mid_end: 8192 });
        assert_eq!(split(1, 8192, 512), Split { mid_start: 4096, mid_end: 8192 });
        assert_eq!(split(100, 100, 512), Split { mid_start: 200, mid_end: 200 });
        assert_eq!(split(4095, 4098, 512), Split { mid_start: 4096, mid_end: 8192 });
        assert_eq!(split(4096, 4095, 512), Split { mid_start: 8191, mid_end: 8191 });
        // A larger direct-I/O alignment wins over the page.
        assert_eq!(split(4096, 3 * 16384, 16384), Split { mid_start: 16384, mid_end: 49152 });
    }
}
