//! The write-ahead log: segments of CRC-framed records in one directory,
//! group commit, crash recovery and readers.
//!
//! - `format`: the byte layout (docs/wal-format.md);
//! - `segment`: segment files and the directory (creation, seal, removal);
//! - `cursor`: reading records through a bounded window;
//! - `recovery`: what `Wal::open` does with what is on disk;
//! - `group_commit`: many appenders, one write and one fdatasync per batch;
//! - `reader`: `WalReader`;
//! - `inspect`: read-only checking and listing of a log (`rio wal ...`).
//!
//! docs/wal-design.md explains the decisions (durability, group commit,
//! recovery rules).

mod bell;
mod cursor;
mod format;
mod group_commit;
pub mod inspect;
pub mod metrics;
mod reader;
mod recovery;
mod segment;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::sync::{Condvar, Mutex};

pub use format::MAX_ENTRY;
pub use group_commit::WalStats;
pub use metrics::WalMetrics;
pub use reader::WalReader;

use crate::engine::fork::Owner;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use group_commit::State;
use segment::Directory;

/// What recovery does with bytes after the last complete record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// A torn tail (an interrupted write) is cut off; invalid data that
    /// acknowledged entries depend on is `EBADMSG`.
    #[default]
    TolerateTail,
    /// Any invalid byte, even a torn tail, is `EBADMSG`.
    Strict,
}

/// WAL configuration (`rio_wal_config_t` in C).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalConfig {
    /// Most entries one group commit carries (an atomic batch larger than
    /// this is written alone).
    pub batch_size: u32,
    /// Longest time a group-commit leader waits for more appenders to join,
    /// in microseconds. It waits only while the previous group carried more
    /// appenders than are queued now: a lone appender never waits.
    pub flush_timeout_us: u32,
    /// `true`: append returns once its entry is fdatasync'd. `false`: once
    /// written to the page cache; `Wal::sync` makes everything durable.
    pub sync_after_batch: bool,
    /// Bytes of queued, not yet written records beyond which appenders
    /// wait. A unit larger than this is admitted alone.
    pub buffer_size: u64,
    /// Segment file size (preallocated); a segment holding one oversized
    /// unit grows beyond it.
    pub segment_size: u64,
    pub recovery_mode: RecoveryMode,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            batch_size: 256,
            flush_timeout_us: 100,
            sync_after_batch: true,
            buffer_size: 4 << 20,
            segment_size: 64 << 20,
            recovery_mode: RecoveryMode::TolerateTail,
        }
    }
}

/// Most entries one `append_batch` may carry (`RIO_WAL_MAX_BATCH`); more
/// is `EINVAL`. A batch is one unit, copied and written whole, so its size
/// must have a bound the caller knows.
pub const MAX_BATCH_ENTRIES: usize = 1 << 16;

/// Bounds of the numeric settings.
const MAX_BATCH_SIZE: u32 = 1 << 16;
const MAX_FLUSH_TIMEOUT_US: u32 = 1_000_000;
const MIN_SEGMENT_SIZE: u64 = 4096;
const MAX_SEGMENT_SIZE: u64 = 1 << 40;

impl WalConfig {
    fn validate(&self) -> Result<()> {
        let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(Error::invalid(what)) };
        check(
            (1..=MAX_BATCH_SIZE).contains(&self.batch_size),
            format!("batch_size {} is outside 1..={MAX_BATCH_SIZE}", self.batch_size),
        )?;
        check(
            self.flush_timeout_us <= MAX_FLUSH_TIMEOUT_US,
            format!("flush_timeout_us {} is above {MAX_FLUSH_TIMEOUT_US}", self.flush_timeout_us),
        )?;
        check(self.buffer_size > 0, "buffer_size must be positive".into())?;
        check(
            (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&self.segment_size),
            format!("segment_size {} is outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE}", self.segment_size),
        )
    }
}

/// What the appenders, the group-commit leader and readers share.
pub(crate) struct Shared {
    rt: Runtime,
    cfg: WalConfig,
    dir: Directory,
    /// The process that opened the log: in a forked child every call but
    /// close fails with `EBUSY`, and drop touches nothing.
    owner: Owner,
    state: Mutex<State>,
    /// `State::acked_seq` and the durable seq, published for lock-free readers.
    acked: AtomicU64,
    durable: AtomicU64,
    /// Appenders wait here for buffer space.
    progress: Condvar,
    /// A leader waits here for more appenders to join its batch.
    joined: Condvar,
    /// The flusher waits here for units nobody leads.
    work: Condvar,
    /// Waiters sleep on it; whoever signals one rings it outside the state
    /// lock (`wake_signalled`).
    bell: bell::Bell,
    /// Held across every fdatasync of a segment (see `Shared::datasync`).
    syncing: Mutex<()>,
    /// Serializes removals of segment files with readers opening them.
    files: Mutex<()>,
    metrics: Arc<WalMetrics>,
}

impl Shared {
    /// `EBUSY` in a forked child: the log belongs to the parent.
    pub(crate) fn check_owner(&self) -> Result<()> {
        if self.owner.is_inherited() {
            return Err(Error::new(
                libc::EBUSY,
                format!(
                    "wal {}: this handle was inherited through fork and belongs to the parent process; only close is allowed",
                    self.dir.path.display()
                ),
            ));
        }
        Ok(())
    }
}

/// A write-ahead log. `Send + Sync`: share it (e.g. in an `Arc`) and append
/// from many threads at once; concurrent appends share writes and syncs.
pub struct Wal {
    shared: Arc<Shared>,
    /// The flusher thread, started by the first `append_async`.
    flusher: Mutex<Option<JoinHandle<()>>>,
    flusher_started: AtomicBool,
}

fn check_entry(i: Option<usize>, len: usize) -> Result<()> {
    if len > MAX_ENTRY {
        let which = i.map_or("entry".to_string(), |i| format!("entries[{i}]"));
        return Err(Error::invalid(format!("{which}: {len} bytes exceed the maximum entry size {MAX_ENTRY}")));
    }
    Ok(())
}

impl Wal {
    /// `EBUSY` in a forked child of the process that opened the log.
    pub(crate) fn check_owner(&self) -> Result<()> {
        self.shared.check_owner()
    }

    /// Opens (creating if needed) the log in `dir` and recovers what is
    /// there: sequence numbers continue after the last entry on disk.
    /// `EBADMSG` names the segment file and offset of corruption;
    /// `EBUSY` means the log is already open.
    pub fn open(rt: &Runtime, dir: impl AsRef<Path>, cfg: WalConfig) -> Result<Wal> {
        let _logs = crate::log::defer();
        let path = dir.as_ref();
        let opened = cfg.validate().and_then(|()| {
            let dir = Directory::open(rt, path)?;
            let recovered = recovery::recover(rt, &dir, &cfg)?;
            Ok((dir, recovered))
        });
        let (dir, recovered) = opened.map_err(|e| e.context(format_args!("wal {}", path.display())))?;
        tracing::info!(
            dir = %path.display(),
            segments = recovered.segments.len(),
            next_seq = recovered.next_seq,
            "wal opened"
        );
        let metrics = WalMetrics::new(path);
        let first_seq = recovered.segments.first().map_or(recovered.next_seq, |s| s.first_seq);
        metrics.recovered_entries.store(recovered.next_seq - first_seq, Ordering::Relaxed);
        metrics.tail_bytes_cut.store(recovered.tail_bytes_cut, Ordering::Relaxed);
        metrics.segments_created.store(u64::from(recovered.created_segment), Ordering::Relaxed);
        rt.register_wal_metrics(&metrics);
        let state = State::new(recovered);
        let last = state.acked_seq;
        let shared = Shared {
            rt: rt.clone(),
            cfg,
            dir,
            owner: Owner::current(),
            state: Mutex::new(state),
            acked: AtomicU64::new(last),
            durable: AtomicU64::new(last),
            progress: Condvar::new(),
            joined: Condvar::new(),
            work: Condvar::new(),
            bell: bell::Bell::new(),
            syncing: Mutex::new(()),
            files: Mutex::new(()),
            metrics,
        };
        Ok(Wal { shared: Arc::new(shared), flusher: Mutex::new(None), flusher_started: AtomicBool::new(false) })
    }

    /// Appends one entry (any length up to `MAX_ENTRY`, empty included);
    /// returns its sequence number once it is durable (or written, with
    /// `sync_after_batch = false`). The same as `append_async` followed by
    /// `wait`, without the flusher: a lone appender writes its own entry.
    pub fn append(&self, data: &[u8]) -> Result<u64> {
        let _logs = crate::log::defer();
        self.shared.check_owner()?;
        check_entry(None, data.len())?;
        self.append_and_wait(&[data], &[crc32c::crc32c(data)])
    }

    /// Appends entries atomically: after a crash all of them are recovered
    /// or none. Returns the first one's sequence number once all are
    /// acknowledged; the others follow it. An empty batch, or one of more
    /// than `MAX_BATCH_ENTRIES`, is `EINVAL`.
    pub fn append_batch(&self, entries: &[&[u8]]) -> Result<u64> {
        let _logs = crate::log::defer();
        self.shared.check_owner()?;
        if entries.is_empty() {
            return Err(Error::invalid("entries: an atomic batch needs at least one entry"));
        }
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(Error::invalid(format!(
                "entries: {} entries exceed the maximum batch of {MAX_BATCH_ENTRIES}",
                entries.len()
            )));
        }
        for (i, e) in entries.iter().enumerate() {
            check_entry(Some(i), e.len())?;
        }
        let crcs: Vec<u32> = entries.iter().map(|e| crc32c::crc32c(e)).collect();
        self.append_and_wait(entries, &crcs)
    }

    fn append_and_wait(&self, entries: &[&[u8]], crcs: &[u32]) -> Result<u64> {
        let (st, seq) = self.shared.enqueue(entries, crcs, false)?;
        let last = seq + entries.len() as u64 - 1;
        self.shared.wait_locked(st, last, None)?;
        Ok(seq)
    }

    /// Appends one entry without waiting for it: copies it into the log's
    /// queue and returns its sequence number. Blocks only while
    /// `buffer_size` bytes are already queued (backpressure). Entries
    /// become durable in sequence order; `wait` (or `durable_seq`) tells
    /// when. Nobody has to wait: the log's flusher thread writes them.
    pub fn append_async(&self, data: &[u8]) -> Result<u64> {
        let _logs = crate::log::defer();
        self.shared.check_owner()?;
        check_entry(None, data.len())?;
        let crc = crc32c::crc32c(data);
        self.start_flusher()?;
        let (_st, seq) = self.shared.enqueue(&[data], &[crc], true)?;
        Ok(seq)
    }

    /// Waits until every entry up to `seq` is acknowledged: durable, or
    /// written with `sync_after_batch = false` (then `sync` makes it
    /// durable). `None` waits for ever. `ETIMEDOUT` when `timeout` passes
    /// first; `EIO` once the log is poisoned (unless `seq` was acknowledged
    /// before); `EINVAL` for 0 or a seq never assigned.
    pub fn wait(&self, seq: u64, timeout: Option<Duration>) -> Result<()> {
        let _logs = crate::log::defer();
        self.shared.check_owner()?;
        self.shared.wait(seq, timeout).map_err(|e| match e.errno() {
            libc::ETIMEDOUT | libc::EINVAL | libc::EIO => e,
            // The failed batch's own cause (ENOSPC...): wait reports EIO.
            _ => Error::new(libc::EIO, format!("entry {seq}: the log is poisoned: {}", e.message())),
        })
    }

    /// Every entry up to this one is durable (fdatasync'd). With
    /// `sync_after_batch = false` it moves on `sync`, rotation and `close`
    /// only. 0 in a forked child.
    pub fn durable_seq(&self) -> u64 {
        if self.shared.owner.is_inherited() {
            return 0;
        }
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Writes every entry appended so far and makes it durable (a no-op
    /// cost with `sync_after_batch` once they are written). `EIO` once the
    /// log is poisoned.
    pub fn sync(&self) -> Result<()> {
        let _logs = crate::log::defer();
        self.shared.check_owner()?;
        self.shared.sync()
    }

    /// The sequence number of the last acknowledged entry (entries removed
    /// by `truncate_before` included); 0 for a log that never had one, and
    /// in a forked child.
    pub fn last_seq(&self) -> u64 {
        if self.shared.owner.is_inherited() {
            return 0;
        }
        self.shared.acked.load(Ordering::Acquire)
    }

    /// Starts the flusher thread once.
    fn start_flusher(&self) -> Result<()> {
        if self.flusher_started.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut slot = self.flusher.lock();
        if slot.is_some() {
            return Ok(());
        }
        let shared = self.shared.clone();
        self.shared.state.lock().flusher = true;
        let spawned = std::thread::Builder::new().name("rio-wal-flush".into()).spawn(move || shared.flush_loop());
        match spawned {
            Ok(handle) => {
                *slot = Some(handle);
                self.flusher_started.store(true, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.shared.state.lock().flusher = false;
                Err(Error::new(libc::EAGAIN, format!("cannot start the log's flusher thread: {e}")))
            }
        }
    }

    /// Removes whole segments all of whose entries are below `seq` (the
    /// segment being appended to is kept). Entries `>= seq` are never
    /// removed; some below it may remain. `seq > last_seq() + 1` is `EINVAL`.
    pub fn truncate_before(&self, seq: u64) -> Result<()> {
        let _logs = crate::log::defer();
        self.shared.check_owner()?;
        self.shared.truncate_before(seq)
    }

    /// A reader of acknowledged entries from `from_seq` on (0 means 1; a
    /// truncated-away `from_seq` starts at the first entry kept).
    pub fn reader(&self, from_seq: u64) -> Result<WalReader> {
        self.shared.check_owner()?;
        WalReader::new(self.shared.clone(), from_seq)
    }

    /// Counters since the log was opened: group commits, their sizes, the
    /// peak of queued bytes.
    pub fn stats(&self) -> WalStats {
        if self.shared.owner.is_inherited() {
            return WalStats::default();
        }
        self.shared.state.lock().stats
    }

    /// This log's metrics (also in the runtime's Prometheus exposition).
    pub fn metrics(&self) -> &WalMetrics {
        &self.shared.metrics
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir.path
    }

    /// Makes everything acknowledged durable and closes the log (the
    /// directory may then be opened again). `EIO` if it was poisoned.
    /// Readers still open keep reading what was acknowledged.
    /// In a forked child it frees the handle without touching the log.
    pub fn close(self) -> Result<()> {
        if self.shared.owner.is_inherited() {
            return Ok(());
        }
        let _logs = crate::log::defer();
        self.shared.sync().map_err(|e| e.context(format_args!("wal {}: close", self.shared.dir.path.display())))
    }
}

impl Shared {
    fn truncate_before(&self, seq: u64) -> Result<()> {
        let _files = self.files.lock();
        let doomed: Vec<recovery::SegmentMeta> = {
            let mut st = self.state.lock();
            st.check_poison()?;
            if seq > st.acked_seq + 1 {
                return Err(Error::invalid(format!("seq {seq} is beyond last_seq + 1 = {}", st.acked_seq + 1)));
            }
            // A segment may go when the next one starts at or below seq.
            let removable = st.segments.windows(2).take_while(|pair| pair[1].first_seq <= seq).count();
            st.segments.drain(..removable).collect()
        };
        // Oldest first, each removal durable before the next: a crash
        // leaves a contiguous log.
        for segment in &doomed {
            self.dir.remove(&segment.path)?;
            self.dir.sync()?;
            self.metrics.segments_removed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(path = %segment.path.display(), "segment removed");
        }
        Ok(())
    }
}

impl Drop for Wal {
    /// Stops the flusher (after it wrote what is queued); readers may keep
    /// the shared state alive; the directory lock goes now. In a forked
    /// child nothing is touched: the flusher and the lock are the parent's,
    /// and a lock a parent thread held stays locked here for ever.
    fn drop(&mut self) {
        if self.shared.owner.is_inherited() {
            if let Some(handle) = self.flusher.get_mut().take() {
                std::mem::forget(handle);
            }
            return;
        }
        let _logs = crate::log::defer();
        if let Some(handle) = self.flusher.get_mut().take() {
            self.shared.state.lock().shutdown = true;
            self.shared.work.notify_all();
            let _ = handle.join();
        }
        self.shared.dir.unlock();
    }
}
