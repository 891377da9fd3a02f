//! Group commit: appenders queue their entries under one mutex; one of them
//! (the leader) takes the queue, writes it with one `writev` and makes it
//! durable with one `fdatasync`, while the next ones queue up behind.
//!
//! - Zero copy: a queued unit points at the appender's own slices (the
//!   appender waits until its unit is written or has failed); the leader
//!   only builds the 32-byte headers, into a buffer reused across batches.
//! - Writes and syncs are serialized (one leader at a time), so records
//!   reach the file in sequence order and `durable_seq` stamps are exact.
//! - A lone appender leads at once. A leader waits (at most
//!   `flush_timeout_us`) only while fewer units are queued than the
//!   previous group carried, i.e. when other appenders are on their way.
//! - Memory: `pending_bytes` (queued and in-flight records) stays within
//!   `buffer_size`; appenders beyond it wait for space.
//! - Poisoning: a failed write or sync fails its whole batch with the
//!   error, drops the queue (every queued appender gets `EIO`) and makes
//!   every later append and sync fail with `EIO`.
//! - Waking: every appender parks on its own `Waiter`; a finished batch
//!   wakes exactly its appenders, outside the lock, and they return
//!   without re-taking it (docs/wal-design.md, "Waking").

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::format::{record_size, RecordHeader, MAX_SEQ, RECORD_HEADER_SIZE, SEAL_SIZE, SEGMENT_HEADER_SIZE};
use super::recovery::{Recovered, SegmentMeta};
use super::segment::Segment;
use super::metrics::WalMetrics;
use super::{Shared, WalConfig};
use crate::error::{Error, Result};

/// `Waiter::state`: the unit is queued or being written.
const WAITING: u8 = 0;
/// Written (and synced): `append_unit` returns `Ok` without the lock.
const DONE: u8 = 1;
/// Failed or dropped from the queue by poisoning: the error is in `State::poison`.
const FAILED: u8 = 2;
/// Still queued, and no leader is active: the appender should try to lead.
const LEAD: u8 = 3;

/// How a leader tells one appender about its unit. Lives on the appender's
/// stack in `append_unit`; the appender does not return before the state is
/// `DONE` or `FAILED`, and whoever sets one of those clones `thread` first
/// and never touches the waiter afterwards.
struct Waiter {
    state: AtomicU8,
    thread: Thread,
}

impl Waiter {
    /// Sets a final state (`DONE`, `FAILED`); returns the thread to unpark
    /// (after the lock is released).
    ///
    /// # Safety
    /// `w` is the waiter of a unit that is queued or in this leader's batch.
    unsafe fn signal(w: *const Waiter, state: u8) -> Thread {
        // SAFETY: the appender is blocked until the store below.
        let thread = unsafe { (*w).thread.clone() };
        unsafe { (*w).state.store(state, Ordering::Release) };
        thread
    }
}

/// How many others an appender woken from a batch unparks before returning.
const HELP_WAKE: usize = 2;

/// One caller's entries (a lone append or an atomic batch) in the queue.
/// The pointers are the caller's slices, their CRCs and its `Waiter`: the
/// caller waits in `append_unit` until the unit is written or failed, and
/// by then the unit has left the queue and the leader's hands.
pub(super) struct Unit {
    entries: *const &'static [u8],
    crcs: *const u32,
    waiter: *const Waiter,
    count: usize,
    first_seq: u64,
    /// Record bytes, headers and padding included.
    bytes: u64,
}

// SAFETY: see `Unit`: the memory outlives every use, whichever thread leads.
unsafe impl Send for Unit {}

impl Unit {
    fn entries(&self) -> &[&[u8]] {
        // SAFETY: `count` slices, valid while the unit is queued or in flight.
        unsafe { std::slice::from_raw_parts(self.entries, self.count) }
    }

    fn crcs(&self) -> &[u32] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(self.crcs, self.count) }
    }

    fn last_seq(&self) -> u64 {
        self.first_seq + self.count as u64 - 1
    }
}

/// The leader's buffers, kept in the state between batches so the hot
/// path does not allocate.
#[derive(Default)]
pub(super) struct Scratch {
    units: Vec<Unit>,
    /// Record headers, each preceded by the previous record's padding.
    arena: Vec<u8>,
    /// (offset, len) of each header chunk in `arena`, then the last padding.
    chunks: Vec<(usize, usize)>,
    iov: Vec<libc::iovec>,
}

// SAFETY: the iovecs point into `arena` and the units' slices, and are
// cleared before the scratch goes back into the state.
unsafe impl Send for Scratch {}

impl Scratch {
    /// Encodes the units' records for a segment with `salt`; returns the
    /// iovecs: header chunks alternating with payloads.
    fn build(&mut self, salt: u64, durable_seq: u64) -> &[libc::iovec] {
        self.arena.clear();
        self.chunks.clear();
        self.iov.clear();
        let mut pad = 0;
        for unit in &self.units {
            for (i, (data, crc)) in unit.entries().iter().zip(unit.crcs()).enumerate() {
                let header = RecordHeader::entry(data.len(), unit.first_seq + i as u64, durable_seq, i + 1 < unit.count);
                let start = self.arena.len();
                self.arena.resize(start + pad, 0);
                self.arena.extend_from_slice(&header.encode(*crc, salt));
                self.chunks.push((start, self.arena.len() - start));
                pad = (record_size(data.len()) - (RECORD_HEADER_SIZE + data.len()) as u64) as usize;
            }
        }
        let start = self.arena.len();
        self.arena.resize(start + pad, 0);
        self.chunks.push((start, pad));
        let base = self.arena.as_ptr();
        let iovec = |ptr: *const u8, len: usize| libc::iovec { iov_base: ptr as *mut libc::c_void, iov_len: len };
        let mut chunks = self.chunks.iter();
        for data in self.units.iter().flat_map(Unit::entries) {
            let &(off, len) = chunks.next().expect("one chunk per record");
            // SAFETY: off + len is within the arena.
            self.iov.push(iovec(unsafe { base.add(off) }, len));
            if !data.is_empty() {
                self.iov.push(iovec(data.as_ptr(), data.len()));
            }
        }
        if let Some(&(off, len)) = chunks.next().filter(|(_, len)| *len > 0) {
            self.iov.push(iovec(unsafe { base.add(off) }, len));
        }
        &self.iov
    }

    /// Drops every pointer into appenders' memory.
    fn release(&mut self) {
        self.units.clear();
        self.iov.clear();
    }
}

/// Why the log refuses writes.
struct Poison {
    cause: Error,
    /// The sequence range of the batch whose write or sync failed.
    batch: Option<(u64, u64)>,
}

impl Poison {
    /// The failure itself for appenders of the failed batch, `EIO` for the rest.
    fn error_for(&self, first: u64, last: u64) -> Error {
        match self.batch {
            Some((a, b)) if first <= b && last >= a => self.cause.clone(),
            _ => self.later(),
        }
    }

    fn later(&self) -> Error {
        Error::new(
            libc::EIO,
            format!("the log is poisoned by an earlier failed write or sync ({}); reopen it to recover", self.cause.message()),
        )
    }
}

/// Counters of a log since it was opened (`Wal::stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Successful group commits (one write, plus one fdatasync when
    /// `sync_after_batch`, each).
    pub group_commits: u64,
    /// Entries they carried.
    pub entries: u64,
    /// The most entries one group commit carried.
    pub largest_group: u64,
    /// The most record bytes ever queued or in flight at once (bounded by
    /// `buffer_size`, or by one unit larger than it).
    pub peak_pending_bytes: u64,
    /// Segments created by rotation.
    pub rotations: u64,
}

/// The state under `Shared::state`.
pub(super) struct State {
    queue: VecDeque<Unit>,
    queued_entries: usize,
    /// Record bytes queued or being written.
    pending_bytes: u64,
    next_seq: u64,
    /// Entries up to here are acknowledged: written, and synced when
    /// `sync_after_batch`. Readers see exactly these.
    pub acked_seq: u64,
    /// Entries up to here are known durable (stamped into new records).
    durable_seq: u64,
    /// End of the acknowledged records in `active`.
    pub write_offset: u64,
    pub active: Arc<Segment>,
    /// Every segment, oldest first; the last one is `active`.
    pub segments: Vec<SegmentMeta>,
    leader: bool,
    leader_waiting: bool,
    space_waiters: usize,
    /// Units in the previous group commit: how many appenders to expect.
    last_batch_units: usize,
    poison: Option<Poison>,
    scratch: Scratch,
    pub stats: WalStats,
}

/// What a leader writes, decided under the lock.
struct Plan {
    rotate: bool,
    segment: Arc<Segment>,
    offset: u64,
    first_seq: u64,
    last_seq: u64,
    bytes: u64,
    units: usize,
    durable_seq: u64,
}

/// What a successful batch changed.
struct Written {
    new_segment: Option<Arc<Segment>>,
    end: u64,
    durable_seq: u64,
}

impl State {
    pub fn new(r: Recovered) -> State {
        let last = r.next_seq - 1;
        State {
            queue: VecDeque::new(),
            queued_entries: 0,
            pending_bytes: 0,
            next_seq: r.next_seq,
            acked_seq: last,
            durable_seq: last,
            write_offset: r.write_offset,
            active: Arc::new(r.active),
            segments: r.segments,
            leader: false,
            leader_waiting: false,
            space_waiters: 0,
            last_batch_units: 0,
            poison: None,
            scratch: Scratch::default(),
            stats: WalStats::default(),
        }
    }

    /// `EIO` once poisoned.
    pub fn check_poison(&self) -> Result<()> {
        self.poison.as_ref().map_or(Ok(()), |p| Err(p.later()))
    }

    /// Refuses all further writes and fails every queued unit (their
    /// threads go to `wake`).
    fn poison(&mut self, cause: Error, batch: Option<(u64, u64)>, metrics: &WalMetrics, wake: &mut Vec<Thread>) {
        metrics.poisoned.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(error = %cause, "wal poisoned: every later append and sync fails with EIO");
        if self.poison.is_none() {
            self.poison = Some(Poison { cause, batch });
        }
        for unit in self.queue.drain(..) {
            // SAFETY: a queued unit's appender waits for its state.
            wake.push(unsafe { Waiter::signal(unit.waiter, FAILED) });
        }
        self.queued_entries = 0;
        self.pending_bytes = 0;
    }

    /// Takes units from the queue for one write: at most `batch_size`
    /// entries (the first unit always), all fitting in one segment.
    fn plan(&mut self, cfg: &WalConfig, units: &mut Vec<Unit>) -> Plan {
        let room_here = cfg.segment_size.saturating_sub(self.write_offset + SEAL_SIZE);
        let first_bytes = self.queue.front().map_or(0, |u| u.bytes);
        let rotate = first_bytes > room_here && self.write_offset > SEGMENT_HEADER_SIZE;
        let room = if rotate { cfg.segment_size - SEGMENT_HEADER_SIZE - SEAL_SIZE } else { room_here };
        let (mut bytes, mut entries) = (0, 0);
        while let Some(u) = self.queue.front() {
            let fits = bytes + u.bytes <= room && entries + u.count <= cfg.batch_size as usize;
            if !units.is_empty() && !fits {
                break;
            }
            bytes += u.bytes;
            entries += u.count;
            units.extend(self.queue.pop_front());
        }
        self.queued_entries -= entries;
        Plan {
            rotate,
            segment: self.active.clone(),
            offset: self.write_offset,
            first_seq: units[0].first_seq,
            last_seq: units[units.len() - 1].last_seq(),
            bytes,
            units: units.len(),
            durable_seq: self.durable_seq,
        }
    }

    /// Publishes the outcome of a batch and signals its units' appenders
    /// (except `me`, the leader's own waiter, which is only marked).
    fn finish(&mut self, plan: &Plan, outcome: Result<Written>, metrics: &WalMetrics, units: &[Unit], me: *const Waiter, wake: &mut Vec<Thread>) {
        self.pending_bytes = self.pending_bytes.saturating_sub(plan.bytes);
        self.last_batch_units = plan.units;
        let state = if outcome.is_ok() { DONE } else { FAILED };
        match outcome {
            Ok(w) => {
                let entries = plan.last_seq - plan.first_seq + 1;
                self.stats.group_commits += 1;
                self.stats.entries += entries;
                self.stats.largest_group = self.stats.largest_group.max(entries);
                self.stats.rotations += u64::from(w.new_segment.is_some());
                metrics.group_commit(entries, plan.bytes);
                metrics.segments_created.fetch_add(u64::from(w.new_segment.is_some()), std::sync::atomic::Ordering::Relaxed);
                if let Some(segment) = w.new_segment {
                    self.segments.push(SegmentMeta { first_seq: segment.first_seq, path: segment.path.clone() });
                    self.active = segment;
                }
                self.write_offset = w.end;
                self.acked_seq = plan.last_seq;
                self.durable_seq = self.durable_seq.max(w.durable_seq);
            }
            Err(e) => self.poison(e, Some((plan.first_seq, plan.last_seq)), metrics, wake),
        }
        // The I/O is over: nobody reads these units' memory any more.
        for unit in units {
            if std::ptr::eq(unit.waiter, me) {
                // SAFETY: our own waiter.
                unsafe { (*me).state.store(state, Ordering::Relaxed) };
            } else {
                // SAFETY: the appender of an in-flight unit waits for its state.
                wake.push(unsafe { Waiter::signal(unit.waiter, state) });
            }
        }
    }
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::new(libc::ENOTRECOVERABLE, format!("internal panic while writing the log: {what}"))
}

impl Shared {
    /// Unparks up to `most` threads from `wake` (filled under the state
    /// lock). The leader empties it after releasing the lock; every appender
    /// it wakes unparks `HELP_WAKE` more before returning, so a batch's
    /// waiters are woken by a growing tree of threads rather than one after
    /// another.
    pub(super) fn help_wake(&self, most: usize) {
        for _ in 0..most {
            let Some(thread) = self.wake.lock().pop() else { return };
            thread.unpark();
        }
    }

    /// Queues one unit and waits until it is acknowledged or failed,
    /// leading group commits while it waits and no one else does.
    ///
    /// Waiting is per appender: the leader that finishes a batch sets the
    /// state of exactly that batch's waiters and wakes them after releasing
    /// the lock; a `DONE` appender returns without the lock.
    pub(super) fn append_unit(&self, entries: &[&[u8]], crcs: &[u32]) -> Result<u64> {
        let bytes: u64 = entries.iter().map(|e| record_size(e.len())).sum();
        let waiter = Waiter { state: AtomicU8::new(WAITING), thread: std::thread::current() };
        let me: *const Waiter = &waiter;
        let mut st = self.state.lock();
        self.admit(&mut st, bytes)?;
        let first_seq = st.next_seq;
        if first_seq + entries.len() as u64 - 1 > MAX_SEQ {
            return Err(Error::new(
                libc::EOVERFLOW,
                format!("sequence numbers are exhausted: the log may not go beyond {MAX_SEQ}"),
            ));
        }
        let unit = Unit {
            entries: entries.as_ptr().cast(),
            crcs: crcs.as_ptr(),
            waiter: me,
            count: entries.len(),
            first_seq,
            bytes,
        };
        let last_seq = unit.last_seq();
        st.next_seq = last_seq + 1;
        st.queue.push_back(unit);
        st.queued_entries += entries.len();
        st.pending_bytes += bytes;
        st.stats.peak_pending_bytes = st.stats.peak_pending_bytes.max(st.pending_bytes);
        if st.leader_waiting && !self.should_gather(&st) {
            // Only the appender that completes the group wakes the leader.
            self.joined.notify_one();
        }
        let mut led = false;
        let state = loop {
            // The lock is held here.
            let state = waiter.state.load(Ordering::Acquire);
            if state == DONE || state == FAILED {
                break state;
            }
            if state == LEAD && waiter.state.compare_exchange(LEAD, WAITING, Ordering::Acquire, Ordering::Acquire).is_err() {
                continue; // finished meanwhile
            }
            if !st.leader && !st.queue.is_empty() && st.poison.is_none() {
                if led {
                    // Our unit missed the batch we led: wake the finished
                    // ones before leading again.
                    led = false;
                    MutexGuard::unlocked(&mut st, || self.help_wake(usize::MAX));
                    continue;
                }
                self.lead(&mut st, me);
                led = true;
                continue;
            }
            drop(st);
            self.help_wake(usize::MAX);
            let state = loop {
                let state = waiter.state.load(Ordering::Acquire);
                if state != WAITING {
                    break state;
                }
                std::thread::park();
            };
            if state == DONE {
                // Whoever finished our batch hands leadership on; we help
                // waking the rest of it.
                self.help_wake(HELP_WAKE);
                return Ok(first_seq);
            }
            st = self.state.lock();
        };
        let result = if state == DONE {
            self.hand_off(&mut st);
            Ok(first_seq)
        } else {
            let poison = st.poison.as_ref().expect("a failed unit means a poisoned log");
            Err(poison.error_for(first_seq, last_seq))
        };
        drop(st);
        self.help_wake(usize::MAX);
        result
    }

    /// A leader leaving with units still queued and nobody leading wakes
    /// the first of them to lead (woken first). Appenders arriving
    /// meanwhile lead too when they find no leader; whoever comes first.
    fn hand_off(&self, st: &mut MutexGuard<'_, State>) {
        if st.leader || st.poison.is_some() {
            return;
        }
        let Some(front) = st.queue.front() else { return };
        // SAFETY: a queued unit's appender waits (it cannot return before
        // its state is DONE or FAILED, and the unit stays queued while we
        // hold the lock).
        let w = unsafe { &*front.waiter };
        if w.state.compare_exchange(WAITING, LEAD, Ordering::Release, Ordering::Relaxed).is_ok() {
            // `help_wake` pops from the end: this one goes first.
            self.wake.lock().push(w.thread.clone());
        }
    }

    /// Waits until `bytes` more fit in `buffer_size` (or nothing is pending).
    fn admit(&self, st: &mut MutexGuard<'_, State>, bytes: u64) -> Result<()> {
        loop {
            st.check_poison()?;
            if st.pending_bytes == 0 || st.pending_bytes + bytes <= self.cfg.buffer_size {
                return Ok(());
            }
            st.space_waiters += 1;
            if st.leader_waiting {
                self.joined.notify_one();
            }
            self.progress.wait(st);
            st.space_waiters -= 1;
        }
    }

    /// Runs one group commit from the queue; returns with the lock held and
    /// the batch's threads in `wake` (`me`, the caller's own waiter, is only
    /// marked), to be woken by `help_wake` once the lock is released.
    fn lead(&self, st: &mut MutexGuard<'_, State>, me: *const Waiter) {
        st.leader = true;
        self.gather(st);
        if st.queue.is_empty() {
            // A failed sync poisoned the log (and dropped the queue) meanwhile.
            st.leader = false;
            self.progress.notify_all();
            return;
        }
        let mut scratch = std::mem::take(&mut st.scratch);
        let plan = st.plan(&self.cfg, &mut scratch.units);
        let outcome = MutexGuard::unlocked(st, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write_batch(&plan, &mut scratch)))
                .unwrap_or_else(|payload| Err(panic_error(payload)))
        });
        st.finish(&plan, outcome, &self.metrics, &scratch.units, me, &mut self.wake.lock());
        scratch.release();
        st.scratch = scratch;
        st.leader = false;
        if st.space_waiters > 0 {
            self.progress.notify_all();
        }
    }

    /// Gives appenders that are on their way a moment to join the batch:
    /// only while fewer units are queued than the previous batch had, the
    /// batch is not full and nobody waits for buffer space.
    fn gather(&self, st: &mut MutexGuard<'_, State>) {
        if self.cfg.flush_timeout_us == 0 {
            return;
        }
        let deadline = Instant::now() + Duration::from_micros(self.cfg.flush_timeout_us as u64);
        while self.should_gather(st) {
            st.leader_waiting = true;
            let timed_out = self.joined.wait_until(st, deadline).timed_out();
            st.leader_waiting = false;
            if timed_out {
                break;
            }
        }
    }

    /// Whether a leader should wait for more appenders: fewer units are
    /// queued than the previous batch had, the batch is not full and nobody
    /// waits for buffer space.
    fn should_gather(&self, st: &State) -> bool {
        st.queue.len() < st.last_batch_units
            && st.queued_entries < self.cfg.batch_size as usize
            && st.space_waiters == 0
    }

    /// The I/O of one group commit, without the lock: rotate if planned,
    /// one writev, one fdatasync (when `sync_after_batch`).
    fn write_batch(&self, plan: &Plan, scratch: &mut Scratch) -> Result<Written> {
        let context = |e: Error| e.context(format_args!("append of entries {}..={}", plan.first_seq, plan.last_seq));
        let (segment, offset, stamp) = if plan.rotate {
            // Rotation synced everything before this batch.
            (Arc::new(self.rotate(plan).map_err(context)?), SEGMENT_HEADER_SIZE, plan.first_seq - 1)
        } else {
            (plan.segment.clone(), plan.offset, plan.durable_seq)
        };
        let iov = scratch.build(segment.salt, stamp);
        // SAFETY: the iovecs point into the scratch arena and the queued
        // units' slices, all valid until this returns (see `Unit`).
        unsafe { segment.file.writev_at_raw(iov.as_ptr(), iov.len(), offset) }.map_err(context)?;
        let durable_seq = if self.cfg.sync_after_batch {
            self.timed_datasync(&segment).map_err(context)?;
            plan.last_seq
        } else {
            stamp
        };
        let new_segment = plan.rotate.then_some(segment);
        Ok(Written { new_segment, end: offset + plan.bytes, durable_seq })
    }

    /// fdatasync of a segment, timed for the metrics.
    fn timed_datasync(&self, segment: &Segment) -> Result<()> {
        let start = Instant::now();
        let result = segment.file.datasync();
        self.metrics.fdatasync(start.elapsed());
        result
    }

    /// Seals the full segment, makes it durable, and creates the next one.
    fn rotate(&self, plan: &Plan) -> Result<Segment> {
        plan.segment.write_seal(plan.offset, plan.first_seq, plan.durable_seq)?;
        self.timed_datasync(&plan.segment)?;
        Segment::create(&self.rt, &self.dir, plan.first_seq, self.cfg.segment_size)
    }

    /// fdatasync of the active segment, covering every acknowledged entry
    /// (earlier segments were synced when they were sealed).
    pub(super) fn sync(&self) -> Result<()> {
        let (segment, target) = {
            let st = self.state.lock();
            st.check_poison()?;
            if st.durable_seq >= st.acked_seq {
                return Ok(());
            }
            (st.active.clone(), st.acked_seq)
        };
        let result = self.timed_datasync(&segment);
        let mut st = self.state.lock();
        match result {
            Ok(()) => {
                st.durable_seq = st.durable_seq.max(target);
                Ok(())
            }
            Err(e) => {
                st.poison(e.clone(), None, &self.metrics, &mut self.wake.lock());
                self.progress.notify_all();
                drop(st);
                self.help_wake(usize::MAX);
                Err(e)
            }
        }
    }
}
