//! Segment files and the log directory: creation (crash-safe, preallocated),
//! header verification, seals, removal, directory fsync.
//!
//! All file I/O goes through `DiskFile` (the engine); so does the directory
//! fsync, on the directory opened read-only. Only namespace operations
//! (mkdir, rename, unlink, readdir) and flock are plain system calls: the
//! engine has no op for them.

use std::ffi::CString;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::format::{self, RecordHeader, SegmentHeader, SEGMENT_HEADER_SIZE};
use crate::error::{Error, Result};
use crate::file::{open_flags, DiskFile};
use crate::runtime::Runtime;

/// The log directory: an open read-only handle used for fsync, and a
/// second descriptor held under an exclusive flock, so one log is never
/// opened twice at once. The lock has its own descriptor, never used for
/// I/O, so no in-flight request of a killed process keeps it locked.
pub(crate) struct Directory {
    pub path: PathBuf,
    handle: DiskFile,
    lock: OwnedFd,
}

/// One segment file of the log.
pub(crate) struct Segment {
    pub first_seq: u64,
    pub salt: u64,
    pub path: PathBuf,
    pub file: DiskFile,
    /// Bytes of the file up to which `zero_ahead` has written zeros (or
    /// records were written) in this process: written extents, not
    /// fallocate's unwritten ones. `u64::MAX` where zeros ahead do not
    /// pay (see `zeros_pay_on`).
    zeroed_to: AtomicU64,
}

/// How far `zero_ahead` writes zeros past the records, at a time.
const ZERO_AHEAD: u64 = 1 << 20;

/// Batches up to this size get zeros written ahead of them (see
/// `zero_ahead`); larger ones amortize the extent conversion themselves.
const SMALL_BATCH: u64 = 16 << 10;

/// Whether zeros ahead pay on the filesystem of `file`: only where
/// fallocate leaves unwritten extents that the first sync after a write
/// must convert, i.e. ext4 and XFS. On copy-on-write filesystems (btrfs,
/// ZFS) every write allocates anew, so zeros would only double the bytes
/// written and use space; on tmpfs there is nothing to convert.
fn zeros_pay_on(file: &DiskFile) -> bool {
    const EXT4_SUPER_MAGIC: i64 = 0xEF53;
    const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
    // SAFETY: fstatfs fills the zeroed struct for our open descriptor.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.raw_fd(), &mut st) } != 0 {
        return false;
    }
    matches!(st.f_type as i64, EXT4_SUPER_MAGIC | XFS_SUPER_MAGIC)
}

/// The initial `Segment::zeroed_to`: nothing zeroed yet, or never.
fn zeroed_from(file: &DiskFile) -> u64 {
    if zeros_pay_on(file) { 0 } else { u64::MAX }
}

/// One page of zeros, referenced by every iovec of a zero-fill.
static ZERO_PAGE: [u8; 4096] = [0; 4096];

fn io_error(e: std::io::Error, what: impl std::fmt::Display) -> Error {
    Error::from_io(e, what)
}

/// Creates `path` and missing parents, fsyncing each new entry's parent so
/// the directory itself survives a crash.
fn create_dir_durably(rt: &Runtime, path: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut p = path;
    while !p.exists() {
        missing.push(p);
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => break,
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|e| io_error(e, format_args!("{}: mkdir", path.display())))?;
    for created in missing.iter().rev() {
        let parent = created.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        crate::file::sync_dir(rt, parent)?;
    }
    Ok(())
}

/// Opens `path` once more and takes an exclusive flock on it: `EBUSY` if
/// another handle (in this process or another) holds it.
fn lock_dir(path: &Path) -> Result<OwnedFd> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("{}: path contains a NUL byte", path.display())))?;
    // SAFETY: a valid C string; the fd is owned at once.
    let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io_error(std::io::Error::last_os_error(), format_args!("{}: open directory", path.display())));
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a valid fd; flock has no memory arguments.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(Error::new(
                libc::EBUSY,
                format!("{}: the log is already open (locked by another handle or process)", path.display()),
            ));
        }
        return Err(io_error(err, format_args!("{}: flock", path.display())));
    }
    Ok(fd)
}

fn random_salt() -> Result<u64> {
    loop {
        let mut b = [0u8; 8];
        // SAFETY: getrandom writes at most 8 bytes into b.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(io_error(err, "getrandom (segment salt)"));
        }
        let salt = u64::from_le_bytes(b);
        if n == 8 && salt != 0 {
            return Ok(salt);
        }
    }
}

impl Directory {
    /// Creates the directory if needed, opens it and locks it.
    pub fn open(rt: &Runtime, path: &Path) -> Result<Directory> {
        create_dir_durably(rt, path)?;
        let meta = std::fs::metadata(path).map_err(|e| io_error(e, path.display()))?;
        if !meta.is_dir() {
            return Err(Error::new(libc::ENOTDIR, format!("{}: not a directory", path.display())));
        }
        let handle = DiskFile::open(rt, path, open_flags::READ, 0)?;
        let lock = lock_dir(path)?;
        Ok(Directory { path: path.to_path_buf(), handle, lock })
    }

    /// Releases the lock taken by `open` (the handle stays open for fsync).
    pub fn unlock(&self) {
        // SAFETY: a valid fd we own.
        unsafe { libc::flock(self.lock.as_raw_fd(), libc::LOCK_UN) };
    }

    /// fsync of the directory: makes creations, renames and removals durable.
    pub fn sync(&self) -> Result<()> {
        self.handle.sync()
    }

    pub fn segment_path(&self, first_seq: u64) -> PathBuf {
        self.path.join(format::segment_name(first_seq))
    }

    fn names(&self) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.path).map_err(|e| io_error(e, format_args!("{}: readdir", self.path.display())))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(e, format_args!("{}: readdir", self.path.display())))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    /// The segments present, as (first_seq, path), in sequence order. Files
    /// with other names are not part of the log and are left alone.
    pub fn list_segments(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut segments: Vec<(u64, PathBuf)> = self
            .names()?
            .into_iter()
            .filter_map(|name| format::parse_segment_name(&name).map(|seq| (seq, self.path.join(name))))
            .collect();
        segments.sort_by_key(|(seq, _)| *seq);
        Ok(segments)
    }

    /// Deletes segments whose creation a crash interrupted (never renamed
    /// into the log).
    pub fn remove_temp_files(&self) -> Result<()> {
        let temps: Vec<String> = self.names()?.into_iter().filter(|n| n.ends_with(format::TEMP_SUFFIX)).collect();
        for name in &temps {
            tracing::info!(file = %name, "removing a segment whose creation was interrupted");
            self.remove(&self.path.join(name))?;
        }
        if !temps.is_empty() {
            self.sync()?;
        }
        Ok(())
    }

    /// Unlinks a file (already gone is fine); the caller syncs the directory.
    pub fn remove(&self, path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(e, format_args!("{}: unlink", path.display()))),
            _ => Ok(()),
        }
    }
}

impl Segment {
    /// Creates the segment starting at `first_seq`, crash-safely: the file
    /// is built under a temporary name (preallocated, header written,
    /// fsynced), then renamed into the log and the directory fsynced. A
    /// `*.wal` file therefore always has a valid header.
    pub fn create(rt: &Runtime, dir: &Directory, first_seq: u64, size: u64) -> Result<Segment> {
        let path = dir.segment_path(first_seq);
        let temp = dir.path.join(format!("{}.tmp", format::segment_name(first_seq)));
        let header = SegmentHeader { first_seq, salt: random_salt()?, prealloc_size: size };
        let flags = open_flags::READ | open_flags::WRITE | open_flags::CREATE | open_flags::TRUNCATE;
        let file = DiskFile::open(rt, &temp, flags, 0o644)?;
        preallocate(&file, 0, size)?;
        file.write_at(&header.encode(), 0)?;
        file.sync()?;
        std::fs::rename(&temp, &path).map_err(|e| io_error(e, format_args!("rename {} to {}", temp.display(), path.display())))?;
        dir.sync()?;
        // Reopened under its final name, which error messages then show.
        let file = DiskFile::open(rt, &path, open_flags::READ | open_flags::WRITE, 0)?;
        tracing::debug!(path = %path.display(), first_seq, "segment created");
        let zeroed_to = AtomicU64::new(zeroed_from(&file));
        Ok(Segment { first_seq, salt: header.salt, path, file, zeroed_to })
    }

    /// Opens an existing segment and verifies its header against its name.
    pub fn open(rt: &Runtime, path: &Path, name_seq: u64, writable: bool) -> Result<Segment> {
        let flags = if writable { open_flags::READ | open_flags::WRITE } else { open_flags::READ };
        let file = DiskFile::open(rt, path, flags, 0)?;
        let mut bytes = [0u8; SEGMENT_HEADER_SIZE as usize];
        let n = file.read_at(&mut bytes, 0)?;
        let corrupt = |why: String| Error::new(libc::EBADMSG, format!("{}: offset 0: {why}", path.display()));
        let header = SegmentHeader::decode(&bytes[..n]).map_err(corrupt)?;
        if header.first_seq != name_seq {
            return Err(corrupt(format!("header says first seq {} but the file name says {name_seq}", header.first_seq)));
        }
        let zeroed_to = AtomicU64::new(zeroed_from(&file));
        Ok(Segment { first_seq: header.first_seq, salt: header.salt, path: path.to_path_buf(), file, zeroed_to })
    }

    /// Writes the seal record at `at`: this segment is complete and the
    /// next one starts at `next_seq`.
    pub fn write_seal(&self, at: u64, next_seq: u64, durable_seq: u64) -> Result<()> {
        let seal = RecordHeader::seal(next_seq, durable_seq).encode(crc32c::crc32c(&[]), self.salt);
        self.file.write_at(&seal, at).map(drop)
    }

    /// Before a small batch of records ending at `end` is written: keeps
    /// the next `ZERO_AHEAD` bytes after it (up to `limit`, the
    /// preallocated size) written with zeros. fdatasync after a write into
    /// fallocate'd, *unwritten* extents also writes the extent conversion
    /// (a second device write); into written zeros it is one data write
    /// (docs/wal-design.md, "Zeros ahead of the records"). The zeros go
    /// only past the records (never over one), over bytes that already
    /// read as zeros, so a torn zero-fill changes nothing; the batch's own
    /// fdatasync makes them durable. The leader is the only caller (writes
    /// are serialized).
    pub fn zero_ahead(&self, end: u64, batch_bytes: u64, limit: u64) -> Result<()> {
        let zeroed = self.zeroed_to.load(Ordering::Relaxed);
        if batch_bytes > SMALL_BATCH || end.saturating_add(ZERO_AHEAD / 2) <= zeroed || end >= limit {
            return Ok(());
        }
        let from = zeroed.max(end);
        // Only inside the file: where fallocate is missing (ramfs, some
        // FUSE filesystems) the file is as long as its records, and zeros
        // past it would grow it (and could fail with ENOSPC where the
        // records alone fit). Such a segment is never zeroed.
        let to = (from + ZERO_AHEAD).min(limit).min(self.file.size()?);
        if to <= from {
            self.zeroed_to.store(u64::MAX, Ordering::Relaxed);
            return Ok(());
        }
        let pages = (to - from).div_ceil(ZERO_PAGE.len() as u64) as usize;
        let mut iov: Vec<IoSlice<'_>> = vec![IoSlice::new(&ZERO_PAGE); pages];
        if let Some(last) = iov.last_mut() {
            let tail = (to - from) as usize - (pages - 1) * ZERO_PAGE.len();
            *last = IoSlice::new(&ZERO_PAGE[..tail]);
        }
        self.file.writev_at(&iov, from)?;
        self.zeroed_to.store(to, Ordering::Relaxed);
        Ok(())
    }

    /// Cuts the file at `at` and preallocates it back to `size`: whatever
    /// followed `at` (a torn tail) reads as zeros afterwards. Fsynced.
    pub fn cut(&self, at: u64, size: u64) -> Result<()> {
        self.file.truncate(at)?;
        preallocate(&self.file, at, size)?;
        if self.zeroed_to.load(Ordering::Relaxed) != u64::MAX {
            self.zeroed_to.fetch_min(at, Ordering::Relaxed);
        }
        self.file.sync()
    }
}

/// fallocate of `[from, to)`; filesystems without fallocate just grow the
/// file as records are written.
fn preallocate(file: &DiskFile, from: u64, to: u64) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    match file.allocate(from, to - from) {
        Err(e) if e.errno() == libc::EOPNOTSUPP => Ok(()),
        other => other,
    }
}
