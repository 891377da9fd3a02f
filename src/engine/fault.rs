//! The fault-injecting backend: a testing tool for librio and for its
//! callers. It wraps a real backend and can fail the Nth operation of a
//! kind with a chosen errno, return short transfers, add latency, and
//! simulate power loss.
//!
//! Power loss: before every write, truncate or fallocate it saves what the
//! change will overwrite (an undo record, read through a second, buffered
//! descriptor of the same file). A completed fsync/fdatasync of a file
//! drops that file's records; an fsync of a directory makes the files
//! created in it since then durable. `crash()` then rolls back, per file,
//! every change since its last sync (or all but a random prefix, the last
//! kept write torn at a random byte), unlinks files whose directory entry
//! was never synced, and fails every later operation with EIO, as a dead
//! machine would. Removals of files are treated as immediately durable.
//!
//! Shadow descriptors live only while a file has undo records: a completed
//! sync of the file (which drops them) closes its shadow, so does finding
//! the file unlinked (checked whenever another file starts a journal), and
//! so does the crash. A file written, closed and left unsynced keeps its
//! shadow: the crash still has to roll it back. When a shadow cannot be
//! opened (RLIMIT_NOFILE...), the change is not run unjournaled: the op
//! fails with the open's errno, and a warning says why.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::sync::Mutex;

use super::fork::ForkLocal;
use super::{After, Backend, BackendKind, Op, OpCode, OpKind, Progress};

/// What a matching operation suffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// The first attempt fails with this errno (EINTR/EAGAIN are retried
    /// by the engine and never reach the caller; EIO, ENOSPC... do).
    Error(i32),
    /// Every attempt transfers at most half of what is left (at least 1
    /// byte), so the engine must continue the transfer.
    Short,
    /// The operation is delayed before it runs.
    Delay(Duration),
    /// The machine loses power just before the operation would run
    /// (`crash` with this mode): the operation and everything after it
    /// fail with EIO.
    PowerLoss(CrashMode),
}

/// Fail (or shorten, or delay) operations `nth..nth+count` (1-based,
/// counted from when the rule is added) among those of kind `op` (all
/// kinds when `None`; `Read` also matches `Readv`, `Write` `Writev`).
/// `count` 0 means every one from `nth` on.
#[derive(Debug, Clone, Copy)]
pub struct FaultRule {
    pub op: Option<OpCode>,
    pub nth: u64,
    pub count: u64,
    pub action: FaultAction,
}

/// How a simulated power loss treats unsynced changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every change since the file's last sync is lost.
    DiscardAll,
    /// A random prefix of each file's unsynced changes survives, the last
    /// surviving write torn at a random byte. `seed` makes it repeatable.
    TornPrefix { seed: u64 },
}

struct ActiveRule {
    rule: FaultRule,
    seen: u64,
}

impl ActiveRule {
    fn matches(&mut self, code: OpCode) -> bool {
        if self.rule.op.is_some_and(|k| k.family() != code.family()) {
            return false;
        }
        self.seen = self.seen.saturating_add(1);
        self.seen >= self.rule.nth && (self.rule.count == 0 || self.seen - self.rule.nth < self.rule.count)
    }
}

/// The state a change overwrote: the file size before it, and the bytes
/// that were at `offset` (only those below the old size).
struct Undo {
    old_size: u64,
    offset: u64,
    /// (offset, bytes) of what the change overwrites or discards. A write
    /// saves its one range (holes included: they must read as zeros again);
    /// a truncate saves only the data extents it cuts off, since growing
    /// the file back re-creates the holes.
    saved: Vec<(u64, Vec<u8>)>,
    /// Bytes the change wrote at `offset` (for tearing), 0 for size changes.
    written: u64,
    /// Names the record for `Journal::complete` (Journal::records).
    serial: u64,
    /// Journal::completions once the change's op returned; None while it
    /// runs. A sync makes durable only changes complete before it started.
    completed: Option<u64>,
}

impl Undo {
    fn rollback(&self, fd: RawFd) {
        unsafe { libc::ftruncate(fd, self.old_size as i64) };
        for (offset, bytes) in &self.saved {
            pwrite_all(fd, *offset, bytes);
        }
    }

    /// Reverts this write from a random byte on, so it looks half-written.
    fn tear(&self, fd: RawFd, dice: &mut Dice) {
        if self.written < 2 {
            return;
        }
        let cut = 1 + dice.below(self.written - 1);
        let start = self.offset + cut;
        if let Some((_, old)) = self.saved.first().filter(|(_, old)| (cut as usize) < old.len()) {
            pwrite_all(fd, start, &old[cut as usize..]);
        }
        if self.offset + self.written > self.old_size {
            // The write extended the file: the torn part never reached it.
            unsafe { libc::ftruncate(fd, start.max(self.old_size) as i64) };
        }
    }
}

struct FileJournal {
    /// A buffered descriptor of the same file, for snapshots and rollback;
    /// held only while `undo` is not empty.
    shadow: OwnedFd,
    undo: Vec<Undo>,
    /// When the journal started (Journal::started), for a repeatable crash order.
    since: u64,
}

impl FileJournal {
    /// The file has no directory entry left: its changes cannot survive a
    /// crash in any form (removals are durable), so it needs no journal.
    fn unlinked(&self) -> bool {
        nix::sys::stat::fstat(&self.shadow).is_ok_and(|st| st.st_nlink == 0)
    }
}

impl Journal {
    /// Closes the shadows of files that were unlinked since they were journaled.
    fn release_unlinked(&mut self) {
        self.files.retain(|_, f| !f.unlinked());
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// A buffered read-write descriptor of the file `fd` refers to, reopened
/// through /proc so `fd`'s O_DIRECT, O_APPEND or write-only mode do not
/// get in the way of snapshots and rollback.
fn open_shadow(fd: RawFd) -> Result<OwnedFd, i32> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a /proc path");
    loop {
        // SAFETY: a valid C string; the descriptor is owned right away.
        let shadow = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if shadow >= 0 {
            return Ok(unsafe { OwnedFd::from_raw_fd(shadow) });
        }
        match last_errno() {
            libc::EINTR => continue,
            errno => return Err(errno),
        }
    }
}

#[derive(Default)]
struct Journal {
    files: HashMap<(u64, u64), FileJournal>,
    /// Files created since their directory was last synced: (dir id, path).
    created: Vec<((u64, u64), PathBuf)>,
    /// File journals started so far.
    started: u64,
    /// Undo records made so far.
    records: u64,
    /// Calls whose journaled changes have completed so far.
    completions: u64,
}

/// Names one undo record: (file id, serial).
type Ticket = ((u64, u64), u64);

impl Journal {
    /// Stamps the records of changes whose ops have returned.
    fn complete(&mut self, tickets: &[Ticket]) {
        self.completions += 1;
        for (id, serial) in tickets {
            let record = self.files.get_mut(id).and_then(|f| f.undo.iter_mut().rev().find(|u| u.serial == *serial));
            if let Some(u) = record {
                u.completed = Some(self.completions);
            }
        }
    }
}

pub(crate) struct FaultBackend {
    inner: Box<dyn Backend>,
    /// Per process: a forked child starts with no rules and an empty
    /// journal rather than wait forever on a lock a parent thread held.
    rules: ForkLocal<Mutex<Vec<ActiveRule>>>,
    journal: ForkLocal<Mutex<Journal>>,
    crashed: AtomicBool,
}

fn file_id(fd: RawFd) -> Option<((u64, u64), bool)> {
    let st = nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).ok()?;
    Some(((st.st_dev, st.st_ino), st.st_mode & libc::S_IFMT == libc::S_IFDIR))
}

fn file_size(fd: RawFd) -> u64 {
    nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).map_or(0, |st| st.st_size as u64)
}

fn pread_all(fd: RawFd, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = unsafe { libc::pread(fd, buf[done..].as_mut_ptr().cast(), len - done, (offset + done as u64) as i64) };
        if n <= 0 {
            break;
        }
        done += n as usize;
    }
    buf.truncate(done);
    buf
}

/// The data (non-hole) extents of `[start, end)`, read: what a truncate to
/// `start` discards, without allocating for holes of a sparse file.
fn data_extents(fd: RawFd, start: u64, end: u64) -> Vec<(u64, Vec<u8>)> {
    let mut extents = Vec::new();
    let mut pos = start;
    while pos < end {
        let data = unsafe { libc::lseek(fd, pos as i64, libc::SEEK_DATA) };
        if data < 0 || data as u64 >= end {
            break;
        }
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let stop = if hole < 0 { end } else { (hole as u64).min(end) };
        extents.push((data as u64, pread_all(fd, data as u64, (stop - data as u64) as usize)));
        pos = stop;
    }
    extents
}

fn pwrite_all(fd: RawFd, offset: u64, data: &[u8]) {
    let mut done = 0;
    while done < data.len() {
        let n = unsafe { libc::pwrite(fd, data[done..].as_ptr().cast(), data.len() - done, (offset + done as u64) as i64) };
        if n <= 0 {
            return;
        }
        done += n as usize;
    }
}

/// A small deterministic generator for crash choices (no dependency for a
/// test tool's dice).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 { 0 } else { self.0 % n }
    }
}

impl FaultBackend {
    pub fn new(inner: Box<dyn Backend>) -> FaultBackend {
        FaultBackend {
            inner,
            rules: ForkLocal::new(Mutex::default()),
            journal: ForkLocal::new(Mutex::default()),
            crashed: AtomicBool::new(false),
        }
    }

    fn rules(&self) -> &Mutex<Vec<ActiveRule>> {
        self.rules.get_or(Mutex::default)
    }

    fn journal(&self) -> &Mutex<Journal> {
        self.journal.get_or(Mutex::default)
    }

    pub fn add_rule(&self, rule: FaultRule) {
        self.rules().lock().push(ActiveRule { rule, seen: 0 });
    }

    pub fn clear_rules(&self) {
        self.rules().lock().clear();
    }

    /// Records that `path` was just created (its directory entry is not durable yet).
    pub(crate) fn file_created(&self, path: &Path) {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if let Ok(meta) = std::fs::metadata(dir) {
            use std::os::unix::fs::MetadataExt;
            self.journal().lock().created.push(((meta.dev(), meta.ino()), path.to_path_buf()));
        }
    }

    fn action_for(&self, code: OpCode) -> Option<FaultAction> {
        let mut rules = self.rules().lock();
        // Every rule counts the op, even when an earlier rule already fires.
        rules.iter_mut().map(|r| r.matches(code).then_some(r.rule.action)).fold(None, |a, b| a.or(b))
    }

    /// Saves what `op` is about to change, for a later crash. `Err(errno)`
    /// when the file cannot be journaled: the op must then fail with it,
    /// since running the change unjournaled would let a simulated power
    /// loss keep a write that was never synced. The ticket names the
    /// record, to stamp once the op has returned.
    fn journal_before(&self, op: &Op) -> Result<Option<Ticket>, i32> {
        let (offset, len) = match op.kind {
            OpKind::Write { .. } | OpKind::Writev { .. } => (op.offset, op.transfer_len()),
            OpKind::Ftruncate { len } => (len, u64::MAX),
            OpKind::Fallocate { .. } => (0, 0),
            _ => return Ok(None),
        };
        // fstat fails only for a bad descriptor, which the op would fail on too.
        let (id, _) = file_id(op.fd).ok_or_else(last_errno)?;
        let mut journal = self.journal().lock();
        if !journal.files.contains_key(&id) {
            journal.release_unlinked();
            let shadow = match open_shadow(op.fd) {
                Ok(shadow) => shadow,
                Err(errno) => {
                    // Logged without the lock: a log callback may call back into librio.
                    drop(journal);
                    tracing::warn!(
                        fd = op.fd,
                        error = %crate::error::strerror(errno),
                        "fault injection: cannot open a shadow descriptor to journal a change for simulated power \
                         loss; the operation fails instead of running unjournaled"
                    );
                    return Err(errno);
                }
            };
            journal.started += 1;
            let since = journal.started;
            journal.files.insert(id, FileJournal { shadow, undo: Vec::new(), since });
        }
        journal.records += 1;
        let serial = journal.records;
        let entry = journal.files.get_mut(&id).expect("inserted above");
        let shadow = entry.shadow.as_raw_fd();
        let old_size = file_size(shadow);
        let end = offset.saturating_add(len).min(old_size);
        let is_write = matches!(op.kind, OpKind::Write { .. } | OpKind::Writev { .. });
        let saved = match (is_write, offset < end) {
            (_, false) => Vec::new(),
            (true, true) => vec![(offset, pread_all(shadow, offset, (end - offset) as usize))],
            (false, true) => data_extents(shadow, offset, end),
        };
        let written = if is_write { len } else { 0 };
        entry.undo.push(Undo { old_size, offset, saved, written, serial, completed: None });
        Ok(Some((id, serial)))
    }

    /// A completed sync makes the file's (or directory's) changes durable:
    /// those complete before the sync started (`since`, the completion
    /// count then), not those still running or submitted with it.
    fn journal_after(&self, op: &mut Op, since: u64) {
        if !matches!(op.kind, OpKind::Fsync | OpKind::Fdatasync) || op.result < 0 {
            return;
        }
        let Some((id, is_dir)) = file_id(op.fd) else { return };
        let mut journal = self.journal().lock();
        // A crash that began while this sync ran rolled its changes back (or
        // is about to): the machine died before the sync could complete.
        if self.crashed.load(Ordering::SeqCst) {
            op.result = -(libc::EIO as i64);
            return;
        }
        if is_dir {
            journal.created.retain(|(dir, _)| *dir != id);
        } else if let Some(f) = journal.files.get_mut(&id) {
            f.undo.retain(|u| u.completed.is_none_or(|done| done > since));
            if f.undo.is_empty() {
                // Nothing of the file is left to roll back: close its shadow.
                journal.files.remove(&id);
            }
        }
    }

    /// Simulates power loss; every later operation fails with EIO.
    pub fn crash(&self, mode: CrashMode) {
        self.crashed.store(true, Ordering::SeqCst);
        let mut journal = self.journal().lock();
        let mut dice = Dice(match mode {
            CrashMode::TornPrefix { seed } => seed | 1,
            CrashMode::DiscardAll => 1,
        });
        // In the order the files were first journaled, not the map's
        // (randomly seeded) order: the same seed must make the same choices.
        let mut files: Vec<&mut FileJournal> = journal.files.values_mut().collect();
        files.sort_by_key(|f| f.since);
        for f in files {
            let keep = match mode {
                CrashMode::DiscardAll => 0,
                CrashMode::TornPrefix { .. } => dice.below(f.undo.len() as u64 + 1) as usize,
            };
            let fd = f.shadow.as_raw_fd();
            for u in f.undo.drain(keep..).rev() {
                u.rollback(fd);
            }
            if let (CrashMode::TornPrefix { .. }, Some(last)) = (mode, f.undo.last()) {
                last.tear(fd, &mut dice);
            }
        }
        // The machine is dead: nothing is journaled any more.
        journal.files.clear();
        for (_, path) in journal.created.drain(..) {
            let _ = std::fs::remove_file(path);
        }
        // Logged without the lock: a log callback may call back into librio.
        drop(journal);
        tracing::warn!(?mode, "fault injection: simulated power loss");
    }
}

impl Backend for FaultBackend {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    /// Queue ops run through `execute` (so rules and the power-loss journal
    /// see them), synchronously when they start: a testing tool, not fast.
    fn queue_machinery(&self, _depth: u32) -> crate::Result<super::queue::Machinery> {
        Ok(super::queue::Machinery::Inline)
    }

    unsafe fn execute(&self, ops: &mut [Op]) {
        if self.crashed.load(Ordering::SeqCst) {
            ops.iter_mut().for_each(|op| op.result = -(libc::EIO as i64));
            return;
        }
        // What the syncs of this call can make durable: changes complete now.
        let since = self.journal().lock().completions;
        let (mut plain, mut tickets) = (Vec::new(), Vec::new());
        for (i, op) in ops.iter_mut().enumerate() {
            let action = self.action_for(op.code());
            if let Some(FaultAction::PowerLoss(mode)) = action {
                self.crash(mode);
                ops.iter_mut().for_each(|op| op.result = -(libc::EIO as i64));
                return;
            }
            match self.journal_before(op) {
                Err(errno) => op.result = -(errno as i64),
                Ok(ticket) => {
                    tickets.extend(ticket);
                    match action {
                        Some(action) => run_faulted(op, action),
                        None => plain.push(i),
                    }
                }
            }
        }
        if !plain.is_empty() {
            let mut rest: Vec<Op> = plain.iter().map(|&i| ops[i]).collect();
            unsafe { self.inner.execute(&mut rest) };
            for (&i, done) in plain.iter().zip(rest) {
                ops[i].result = done.result;
            }
        }
        self.journal().lock().complete(&tickets);
        ops.iter_mut().for_each(|op| self.journal_after(op, since));
    }
}

/// Runs one op with blocking syscalls, applying `action` the way the
/// kernel would: an error on the first attempt, or short transfers.
fn run_faulted(op: &mut Op, action: FaultAction) {
    let mut progress = Progress::new(op);
    let mut first = true;
    loop {
        let call = progress.step(op);
        // SAFETY: the call's memory is the op's, valid per `execute`'s contract.
        let res = match action {
            FaultAction::Error(errno) if first => -(errno as i64),
            FaultAction::Short => unsafe { call.halved().run() },
            FaultAction::Delay(d) if first => {
                std::thread::sleep(d);
                unsafe { call.run() }
            }
            _ => unsafe { call.run() },
        };
        first = false;
        if progress.complete(op, res) == After::Done {
            return;
        }
    }
}
