//! DiskFile: positioned file I/O through the runtime's engine.

use std::ffi::CString;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::engine::{Op, OpKind};
use crate::error::{Error, Result};
use crate::runtime::Runtime;

mod durable;

/// `rio_file_from_fd` flags.
pub mod fd_flags {
    /// The handle owns the descriptor: closing the handle closes it.
    pub const OWNED: u32 = 1 << 0;
    pub const ALL: u32 = OWNED;
}

/// `rio_file_open` flags.
pub mod open_flags {
    pub const READ: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const CREATE: u32 = 1 << 2;
    pub const TRUNCATE: u32 = 1 << 3;
    pub const EXCL: u32 = 1 << 4;
    pub const APPEND: u32 = 1 << 5;
    pub const DIRECT: u32 = 1 << 6;
    pub const DSYNC: u32 = 1 << 7;
    pub const ALL: u32 = (1 << 8) - 1;
}

/// Direct-I/O alignment of a file: buffers must be aligned to `memory`,
/// offsets and lengths to `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DioAlign {
    pub memory: u32,
    pub offset: u32,
}

/// A file opened through a runtime. All methods take `&self` and may be
/// called from many threads at once.
pub struct DiskFile {
    rt: Runtime,
    fd: HandleFd,
    path: PathBuf,
    dio: Option<DioAlign>,
    /// The open file status flags (`fcntl(F_GETFL)`): access mode, O_APPEND.
    status: libc::c_int,
    /// The O_DIRECT path of `write_durable` on a buffered handle, opened on first use.
    durable: durable::DirectPath,
}

/// The descriptor of a `DiskFile`: closed with the handle unless it was
/// borrowed from the caller (`from_borrowed_fd`, `rio_file_from_fd`
/// without `RIO_FD_OWNED`), whose POSIX locks must survive the close.
struct HandleFd {
    fd: RawFd,
    owned: bool,
}

impl HandleFd {
    /// close(2) for an owned descriptor; a borrowed one is left open.
    fn close(self) -> std::io::Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: we own fd; it is not used again whatever close returns.
        if this.owned && unsafe { libc::close(this.fd) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for HandleFd {
    fn drop(&mut self) {
        if self.owned {
            unsafe { libc::close(self.fd) };
        }
    }
}

fn os_flags(flags: u32) -> Result<libc::c_int> {
    use open_flags::*;
    if flags & !ALL != 0 {
        return Err(Error::invalid(format!("flags: unknown bits {:#x}", flags & !ALL)));
    }
    let mut f = match (flags & READ != 0, flags & WRITE != 0) {
        (true, true) => libc::O_RDWR,
        (true, false) => libc::O_RDONLY,
        (false, true) => libc::O_WRONLY,
        (false, false) => return Err(Error::invalid("flags: need RIO_OPEN_READ and/or RIO_OPEN_WRITE")),
    };
    if flags & TRUNCATE != 0 && flags & WRITE == 0 {
        return Err(Error::invalid("flags: RIO_OPEN_TRUNCATE needs RIO_OPEN_WRITE"));
    }
    if flags & EXCL != 0 && flags & CREATE == 0 {
        return Err(Error::invalid("flags: RIO_OPEN_EXCL needs RIO_OPEN_CREATE"));
    }
    for (bit, os) in [
        (CREATE, libc::O_CREAT),
        (TRUNCATE, libc::O_TRUNC),
        (EXCL, libc::O_EXCL),
        (APPEND, libc::O_APPEND),
        (DIRECT, libc::O_DIRECT),
        (DSYNC, libc::O_DSYNC),
    ] {
        if flags & bit != 0 {
            f |= os;
        }
    }
    Ok(f | libc::O_CLOEXEC)
}

/// Direct-I/O alignment from statx(STATX_DIOALIGN), else the device's
/// logical block size, else 512.
pub fn dio_alignment(fd: RawFd) -> DioAlign {
    // SAFETY: statx fills the zeroed struct; empty path + AT_EMPTY_PATH = fd itself.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statx(fd, c"".as_ptr(), libc::AT_EMPTY_PATH, libc::STATX_DIOALIGN, &mut stx) };
    if rc == 0 && stx.stx_mask & libc::STATX_DIOALIGN != 0 && stx.stx_dio_offset_align != 0 {
        return DioAlign { memory: stx.stx_dio_mem_align, offset: stx.stx_dio_offset_align };
    }
    let bs = logical_block_size(rc == 0, &stx).unwrap_or(512);
    DioAlign { memory: bs, offset: bs }
}

fn logical_block_size(have_stx: bool, stx: &libc::statx) -> Option<u32> {
    if !have_stx {
        return None;
    }
    let sys = format!("/sys/dev/block/{}:{}/queue/logical_block_size", stx.stx_dev_major, stx.stx_dev_minor);
    std::fs::read_to_string(sys).ok()?.trim().parse().ok()
}

impl DiskFile {
    /// Opens `path` with `rio_file_open` flags and a creation `mode`.
    pub fn open(rt: &Runtime, path: impl AsRef<Path>, flags: u32, mode: u32) -> Result<DiskFile> {
        let path = path.as_ref();
        let os = os_flags(flags)?;
        if mode & !0o7777 != 0 {
            return Err(Error::invalid(format!("mode: {mode:#o} has bits outside 07777")));
        }
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::invalid(format!("{}: path contains a NUL byte", path.display())))?;
        let faults = rt.fault_injector();
        let creating = faults.is_some() && flags & open_flags::CREATE != 0 && std::fs::symlink_metadata(path).is_err();
        // SAFETY: a valid C string; the returned fd is owned below.
        let fd = loop {
            let fd = unsafe { libc::open(cpath.as_ptr(), os, mode as libc::c_uint) };
            if fd >= 0 {
                break unsafe { OwnedFd::from_raw_fd(fd) };
            }
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
            if errno == libc::EINTR {
                continue;
            }
            if errno == libc::EINVAL && flags & open_flags::DIRECT != 0 {
                return Err(Error::invalid(format!(
                    "{}: the filesystem does not support O_DIRECT (RIO_OPEN_DIRECT)",
                    path.display()
                )));
            }
            return Err(Error::os(errno, path.display()));
        };
        if let (true, Some(f)) = (creating, faults) {
            f.file_created(path);
        }
        let dio = (flags & open_flags::DIRECT != 0).then(|| dio_alignment(fd.as_raw_fd()));
        tracing::debug!(path = %path.display(), flags, ?dio, "file opened");
        let fd = HandleFd { fd: fd.into_raw_fd(), owned: true };
        Ok(DiskFile::with_fd(rt, fd, path.to_path_buf(), dio, os))
    }

    fn with_fd(rt: &Runtime, fd: HandleFd, path: PathBuf, dio: Option<DioAlign>, status: libc::c_int) -> DiskFile {
        DiskFile { rt: rt.clone(), fd, path, dio, status, durable: durable::DirectPath::default() }
    }

    /// A handle over a descriptor the caller opened; the handle owns it and
    /// closes it with itself. Access mode, O_DIRECT and O_APPEND come from
    /// `fcntl(F_GETFL)`, so alignment and mode checks hold as for `open`.
    pub fn from_fd(rt: &Runtime, fd: OwnedFd) -> Result<DiskFile> {
        let file = Self::adopt(rt, fd.as_raw_fd(), true)?;
        // Only now does the handle own it: on error `fd` closes as it drops.
        let _ = fd.into_raw_fd();
        Ok(file)
    }

    /// A handle over a descriptor that stays the caller's: closing or
    /// dropping the handle leaves it open (and the process's POSIX record
    /// locks on the file, which any close of any descriptor of it drops,
    /// survive).
    ///
    /// A bad descriptor (-1, a closed one) is EBADF naming it.
    ///
    /// # Safety
    /// An open `fd` must stay open, and refer to the same file, until the
    /// handle is closed or dropped.
    pub unsafe fn from_borrowed_fd(rt: &Runtime, fd: RawFd) -> Result<DiskFile> {
        Self::adopt(rt, fd, false)
    }

    /// Wraps `fd` (checked with F_GETFL first: a bad fd is EBADF naming it).
    /// On error nothing is closed, whoever owns `fd`.
    pub(crate) fn adopt(rt: &Runtime, fd: RawFd, owned: bool) -> Result<DiskFile> {
        let status = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if status < 0 {
            let err = std::io::Error::last_os_error();
            return Err(Error::from_io(err, format_args!("fd {fd}: not an open file descriptor (fcntl F_GETFL)")));
        }
        let dio = (status & libc::O_DIRECT != 0).then(|| dio_alignment(fd));
        let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_else(|_| PathBuf::from(format!("fd {fd}")));
        tracing::debug!(fd, path = %path.display(), status, owned, ?dio, "file adopted from a descriptor");
        let mut file = DiskFile::with_fd(rt, HandleFd { fd, owned }, path, dio, status);
        if !owned {
            file.durable = durable::DirectPath::for_borrowed_fd();
        }
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// The direct-I/O alignment, when opened with `RIO_OPEN_DIRECT`.
    pub fn dio_align(&self) -> Option<DioAlign> {
        self.dio
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.fd
    }

    /// Whether the handle was opened for writing (O_WRONLY or O_RDWR).
    pub fn is_writable(&self) -> bool {
        matches!(self.status & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR)
    }

    /// Whether every write goes to the end of the file (O_APPEND).
    pub fn is_append(&self) -> bool {
        self.status & libc::O_APPEND != 0
    }

    /// Checks alignment and builds the op; batches and single calls share it.
    pub(crate) fn prepare(&self, kind: OpKind, offset: u64) -> Result<Op> {
        if offset > i64::MAX as u64 {
            // io_uring would take offset -1 as "the file position".
            return Err(Error::invalid(format!("offset {offset} is larger than the largest file offset")));
        }
        if let Some(a) = self.dio {
            self.check_aligned(kind, offset, a)?;
        }
        let mut op = Op::new(self.fd.fd, kind, offset);
        op.cached = self.dio.is_none();
        Ok(op)
    }

    fn check_aligned(&self, kind: OpKind, offset: u64, a: DioAlign) -> Result<()> {
        let (mem, off) = (a.memory.max(1) as usize, a.offset.max(1) as u64);
        let bad = |addr: usize, len: usize| addr % mem != 0 || len as u64 % off != 0;
        let misaligned = offset % off != 0
            || match kind {
                OpKind::Read { buf, len } => bad(buf as usize, len),
                OpKind::Write { buf, len } => bad(buf as usize, len),
                OpKind::Readv { iov, iovcnt } | OpKind::Writev { iov, iovcnt } => {
                    crate::engine::iov_slice(iov, iovcnt).iter().any(|v| bad(v.iov_base as usize, v.iov_len))
                }
                _ => false,
            };
        if misaligned {
            return Err(Error::invalid(format!(
                "{}: O_DIRECT needs buffers aligned to {} bytes and offsets/lengths to multiples of {} bytes (offset {offset})",
                self.path.display(),
                a.memory,
                a.offset
            )));
        }
        Ok(())
    }

    /// Runs one op on this file; the error message names the path and op.
    fn run(&self, kind: OpKind, offset: u64, what: impl FnOnce() -> String) -> Result<u64> {
        let op = self.prepare(kind, offset)?;
        // SAFETY: callers pass pointers valid for the op's length for this call.
        let res = unsafe { self.rt.engine().execute_one(op) };
        if res < 0 {
            // The message is built only on failure: the hot path formats nothing.
            return Err(Error::os((-res) as i32, format_args!("{}: {}", self.path.display(), what())));
        }
        Ok(res as u64)
    }

    /// Reads into `buf` at `offset`; returns fewer bytes only at end of file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        unsafe { self.read_at_raw(buf.as_mut_ptr(), buf.len(), offset) }
    }

    /// # Safety
    /// `buf` must be valid for `len` bytes of writes.
    pub unsafe fn read_at_raw(&self, buf: *mut u8, len: usize, offset: u64) -> Result<usize> {
        let n = self.run(OpKind::Read { buf, len }, offset, || format!("read of {len} bytes at offset {offset}"))?;
        Ok(n as usize)
    }

    /// Writes all of `buf` at `offset` or fails.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize> {
        unsafe { self.write_at_raw(buf.as_ptr(), buf.len(), offset) }
    }

    /// # Safety
    /// `buf` must be valid for `len` bytes of reads.
    pub unsafe fn write_at_raw(&self, buf: *const u8, len: usize, offset: u64) -> Result<usize> {
        let n = self.run(OpKind::Write { buf, len }, offset, || format!("write of {len} bytes at offset {offset}"))?;
        Ok(n as usize)
    }

    pub fn readv_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> Result<usize> {
        // IoSliceMut is ABI-compatible with struct iovec on Unix.
        unsafe { self.readv_at_raw(bufs.as_ptr() as *const libc::iovec, bufs.len(), offset) }
    }

    /// # Safety
    /// `iov` must point at `iovcnt` iovecs whose buffers are valid for writes.
    pub unsafe fn readv_at_raw(&self, iov: *const libc::iovec, iovcnt: usize, offset: u64) -> Result<usize> {
        let n = self.run(OpKind::Readv { iov, iovcnt }, offset, || format!("readv of {iovcnt} buffers at offset {offset}"))?;
        Ok(n as usize)
    }

    pub fn writev_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<usize> {
        unsafe { self.writev_at_raw(bufs.as_ptr() as *const libc::iovec, bufs.len(), offset) }
    }

    /// # Safety
    /// `iov` must point at `iovcnt` iovecs whose buffers are valid for reads.
    pub unsafe fn writev_at_raw(&self, iov: *const libc::iovec, iovcnt: usize, offset: u64) -> Result<usize> {
        let n = self.run(OpKind::Writev { iov, iovcnt }, offset, || format!("writev of {iovcnt} buffers at offset {offset}"))?;
        Ok(n as usize)
    }

    /// fsync(2): data and metadata on stable storage.
    pub fn sync(&self) -> Result<()> {
        self.run(OpKind::Fsync, 0, || "fsync".into()).map(drop)
    }

    /// fdatasync(2): data (and the metadata needed to read it) on stable storage.
    pub fn datasync(&self) -> Result<()> {
        self.run(OpKind::Fdatasync, 0, || "fdatasync".into()).map(drop)
    }

    /// Reserves `len` bytes at `offset` (fallocate mode 0; the size grows).
    pub fn allocate(&self, offset: u64, len: u64) -> Result<()> {
        check_range(offset, len)?;
        self.run(OpKind::Fallocate { mode: 0, len }, offset, || format!("fallocate of {len} bytes at offset {offset}"))
            .map(drop)
    }

    /// Sets the file size to `len`.
    pub fn truncate(&self, len: u64) -> Result<()> {
        check_range(0, len)?;
        self.run(OpKind::Ftruncate { len }, 0, || format!("ftruncate to {len} bytes")).map(drop)
    }

    /// The current size in bytes.
    pub fn size(&self) -> Result<u64> {
        // SAFETY: the handle's descriptor is open for the handle's life.
        nix::sys::stat::fstat(unsafe { BorrowedFd::borrow_raw(self.fd.fd) })
            .map(|st| st.st_size as u64)
            .map_err(|e| Error::os(e as i32, format_args!("{}: fstat", self.path.display())))
    }

    /// Closes the file, reporting an error from close(2); a borrowed
    /// descriptor is left open.
    pub fn close(self) -> Result<()> {
        let DiskFile { fd, path, durable, .. } = self;
        drop(durable);
        fd.close().map_err(|err| Error::from_io(err, format_args!("{}: close", path.display())))
    }
}

/// fsyncs a directory through the engine, making the entries created or
/// removed in it durable (needed after creating a file that must survive a
/// crash).
pub fn sync_dir(rt: &Runtime, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    let cpath = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("{}: path contains a NUL byte", dir.display())))?;
    // SAFETY: a valid C string; the fd is owned right away.
    let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::from_io(std::io::Error::last_os_error(), format_args!("{}: open directory", dir.display())));
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let res = unsafe { rt.engine().execute_one(Op::new(fd.as_raw_fd(), OpKind::Fsync, 0)) };
    if res < 0 {
        return Err(Error::os((-res) as i32, format_args!("{}: fsync directory", dir.display())));
    }
    Ok(())
}

fn check_range(offset: u64, len: u64) -> Result<()> {
    if offset > i64::MAX as u64 || len > i64::MAX as u64 || offset.checked_add(len).is_none_or(|e| e > i64::MAX as u64) {
        return Err(Error::invalid(format!("offset {offset} + length {len} exceeds the largest file offset")));
    }
    Ok(())
}
