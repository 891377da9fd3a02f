//! Group commit with decoupled acknowledgement: appenders copy their
//! entries into the log's queue and get a sequence number at once
//! (`append_async`); one thread at a time (the leader) takes the queue,
//! writes it with one `writev` and makes it durable with one `fdatasync`;
//! `wait` returns once a sequence number is acknowledged.
//!
//! - Copy: a queued unit owns its payloads (copied under the state lock,
//!   after admission, so queued memory stays within `buffer_size`); the
//!   leader builds the 32-byte headers into a buffer reused across batches
//!   and writes headers and payloads with one `writev`.
//! - Who leads: a waiter that finds no leader leads itself (a lone
//!   `append` pays no wake-up); entries nobody waits for are written by
//!   the log's flusher thread, started by the first `append_async`.
//!   Writes are serialized (one leader at a time), so records reach the
//!   file in sequence order and `durable_seq` stamps are exact.
//! - A leader waits (at most `flush_timeout_us`) only while fewer units
//!   are queued than the previous group carried, i.e. when other
//!   appenders are on their way.
//! - Poisoning: a failed write or sync fails its whole batch with the
//!   error, drops the queue and fails every waiter; every later append,
//!   wait beyond the acknowledged seq, and sync fails with `EIO`.
//! - Waking: every waiter registers a `Waiter` with the seq it waits for;
//!   a finished batch sets the state of exactly the waiters it satisfied,
//!   and one futex wake (`Bell`) outside the lock wakes the sleepers; the
//!   satisfied ones return without re-taking it (docs/wal-design.md,
//!   "Waking").
//! - Syncs of the log's segments are serialized and re-check poisoning
//!   afterwards: Linux reports a writeback error to one fdatasync only.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::sync::MutexGuard;

use super::format::{record_size, RecordHeader, MAX_SEQ, RECORD_HEADER_SIZE, SEAL_SIZE, SEGMENT_HEADER_SIZE};
use super::metrics::WalMetrics;
use super::bell::Bell;
use super::recovery::{Recovered, SegmentMeta};
use super::segment::Segment;
use super::{Shared, WalConfig};
use crate::error::{Error, Result};

/// `Waiter::state`: waiting for the seq.
const WAITING: u8 = 0;
/// The seq is acknowledged: `wait` returns `Ok` without the lock.
const DONE: u8 = 1;
/// The log was poisoned: the error is in `State::poison`.
const FAILED: u8 = 2;
/// Units are queued and no leader is active: the waiter should lead.
const LEAD: u8 = 3;

/// How a leader tells one waiting thread about its seq. Lives on the
/// waiter's stack in `wait_locked`; it is registered in `State::parked`
/// while the thread sleeps, and whoever removes it from there (under the
/// state lock) sets the state through the bell and never touches it again.
struct Waiter {
    state: AtomicU8,
}

/// A registered waiter: the seq it waits for.
struct Parked {
    seq: u64,
    waiter: *const Waiter,
    /// An untimed wait: it may be told to lead.
    may_lead: bool,
}

// SAFETY: see `Waiter`: the pointee outlives its registration.
unsafe impl Send for Parked {}

impl Parked {
    /// Sets a final state; the bell wakes the waiter once rung (after the
    /// lock is released).
    ///
    /// # Safety
    /// The waiter is still registered (just removed from `State::parked`).
    unsafe fn signal(&self, bell: &Bell, state: u8) {
        // SAFETY: the waiter waits until this store.
        bell.signal(unsafe { &(*self.waiter).state }, state);
    }
}

/// One caller's entries (an append or an atomic batch), copied.
pub(super) struct Unit {
    /// The payloads, one after another.
    payload: Vec<u8>,
    /// (length, CRC) of the first entry; `rest` holds the others (empty,
    /// so no allocation, for a lone append).
    first: (u32, u32),
    rest: Vec<(u32, u32)>,
    first_seq: u64,
    /// Record bytes, headers and padding included.
    bytes: u64,
}

impl Unit {
    /// Copies `entries` (at least one; each at most `MAX_ENTRY`).
    fn new(entries: &[&[u8]], crcs: &[u32], first_seq: u64, bytes: u64) -> Unit {
        let mut payload = Vec::with_capacity(entries.iter().map(|e| e.len()).sum());
        for e in entries {
            payload.extend_from_slice(e);
        }
        let mut sizes = entries.iter().zip(crcs).map(|(e, &crc)| (e.len() as u32, crc));
        let first = sizes.next().expect("a unit has an entry");
        Unit { payload, first, rest: sizes.collect(), first_seq, bytes }
    }

    fn count(&self) -> usize {
        1 + self.rest.len()
    }

    fn last_seq(&self) -> u64 {
        self.first_seq + self.count() as u64 - 1
    }

    /// Each entry's payload and CRC.
    fn records(&self) -> impl Iterator<Item = (&[u8], u32)> {
        let mut at = 0;
        std::iter::once(&self.first).chain(&self.rest).map(move |&(len, crc)| {
            let data = &self.payload[at..at + len as usize];
            at += len as usize;
            (data, crc)
        })
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

// SAFETY: the iovecs point into `arena` and the units' payloads, owned by
// the scratch, and are cleared before it goes back into the state.
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
            let count = unit.count();
            for (i, (data, crc)) in unit.records().enumerate() {
                let header = RecordHeader::entry(data.len(), unit.first_seq + i as u64, durable_seq, i + 1 < count);
                let start = self.arena.len();
                self.arena.resize(start + pad, 0);
                self.arena.extend_from_slice(&header.encode(crc, salt));
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
        for (data, _) in self.units.iter().flat_map(Unit::records) {
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

    /// Frees the written units and drops every pointer into them.
    fn release(&mut self) {
        self.iov.clear();
        self.units.clear();
    }
}

/// Why the log refuses writes.
struct Poison {
    cause: Error,
    /// The sequence range of the batch whose write or sync failed.
    batch: Option<(u64, u64)>,
}

impl Poison {
    /// The failure itself for the entries of the failed batch, `EIO` for the rest.
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
    /// The seq the next entry gets.
    pub next_seq: u64,
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
    /// A waiter was told to lead, or the flusher was woken, and has not
    /// yet taken the lock: nobody else needs telling.
    lead_offered: bool,
    space_waiters: usize,
    /// Threads sleeping in `wait`, with the seq each waits for.
    parked: Vec<Parked>,
    /// The flusher thread runs (it writes what nobody waits for).
    pub flusher: bool,
    /// `Wal` dropped or closed: the flusher writes what is queued and exits.
    pub shutdown: bool,
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
            lead_offered: false,
            space_waiters: 0,
            parked: Vec::new(),
            flusher: false,
            shutdown: false,
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

    /// Refuses all further writes, drops the queue and fails every waiter
    /// (their threads go to `wake`). The first cause is kept.
    fn poison(&mut self, cause: Error, batch: Option<(u64, u64)>, metrics: &WalMetrics, bell: &Bell) {
        if self.poison.is_none() {
            metrics.poisoned.store(true, Ordering::Relaxed);
            // Deferred by the caller's `log::defer` scope: emitted once
            // every lock is released.
            tracing::error!(error = %cause, "wal poisoned: every later append and sync fails with EIO");
            self.poison = Some(Poison { cause, batch });
        }
        self.queue.clear();
        self.queued_entries = 0;
        self.pending_bytes = 0;
        for parked in self.parked.drain(..) {
            // SAFETY: just unregistered.
            unsafe { parked.signal(bell, FAILED) };
        }
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
            let fits = bytes + u.bytes <= room && entries + u.count() <= cfg.batch_size as usize;
            if !units.is_empty() && !fits {
                break;
            }
            bytes += u.bytes;
            entries += u.count();
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

    /// Publishes the outcome of a batch and signals the waiters it
    /// satisfied (all of them, failed, when it poisoned the log).
    fn finish(&mut self, shared: &Shared, plan: &Plan, outcome: Result<Written>) {
        let bell = &shared.bell;
        let metrics = &shared.metrics;
        self.pending_bytes = self.pending_bytes.saturating_sub(plan.bytes);
        self.last_batch_units = plan.units;
        match outcome {
            Ok(w) => {
                let entries = plan.last_seq - plan.first_seq + 1;
                self.stats.group_commits += 1;
                self.stats.entries += entries;
                self.stats.largest_group = self.stats.largest_group.max(entries);
                self.stats.rotations += u64::from(w.new_segment.is_some());
                metrics.group_commit(entries, plan.bytes);
                metrics.segments_created.fetch_add(u64::from(w.new_segment.is_some()), Ordering::Relaxed);
                if let Some(segment) = w.new_segment {
                    self.segments.push(SegmentMeta { first_seq: segment.first_seq, path: segment.path.clone() });
                    self.active = segment;
                }
                self.write_offset = w.end;
                self.acked_seq = plan.last_seq;
                self.durable_seq = self.durable_seq.max(w.durable_seq);
                shared.publish(self);
                self.signal_done(bell);
            }
            Err(e) => self.poison(e, Some((plan.first_seq, plan.last_seq)), metrics, bell),
        }
    }

    /// Signals (and unregisters) every waiter whose seq is acknowledged.
    fn signal_done(&mut self, bell: &Bell) {
        let acked = self.acked_seq;
        let mut i = 0;
        while i < self.parked.len() {
            if self.parked[i].seq <= acked {
                let parked = self.parked.swap_remove(i);
                // SAFETY: just unregistered.
                unsafe { parked.signal(bell, DONE) };
            } else {
                i += 1;
            }
        }
    }

    /// `EINVAL` for seq 0 or a seq never assigned.
    fn check_assigned(&self, seq: u64) -> Result<()> {
        if seq == 0 || seq >= self.next_seq {
            return Err(Error::invalid(format!(
                "seq {seq} was never assigned (the last assigned is {})",
                self.next_seq - 1
            )));
        }
        Ok(())
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

fn timed_out(seq: u64, timeout: Duration) -> Error {
    Error::new(libc::ETIMEDOUT, format!("entry {seq} was not acknowledged within {} us", timeout.as_micros()))
}

type Guard<'a> = MutexGuard<'a, State>;

impl Shared {
    /// Stores the acknowledged and durable seqs where lock-free readers
    /// (`wait`'s fast path, `durable_seq`, `last_seq`) find them.
    fn publish(&self, st: &State) {
        self.acked.store(st.acked_seq, Ordering::Release);
        self.durable.store(st.durable_seq, Ordering::Release);
    }

    /// Wakes the waiters signalled under the state lock; called once it
    /// is released.
    pub(super) fn wake_signalled(&self) {
        self.bell.ring();
    }

    /// Queues one unit (copied) and returns its first seq with the lock
    /// still held. `notify`: wake the flusher if nobody leads (the caller
    /// will not wait for the unit itself).
    pub(super) fn enqueue(&self, entries: &[&[u8]], crcs: &[u32], notify: bool) -> Result<(Guard<'_>, u64)> {
        let bytes: u64 = entries.iter().map(|e| record_size(e.len())).sum();
        let mut st = self.state.lock();
        self.admit(&mut st, bytes)?;
        let first_seq = st.next_seq;
        if first_seq + entries.len() as u64 - 1 > MAX_SEQ {
            return Err(Error::new(
                libc::EOVERFLOW,
                format!("sequence numbers are exhausted: the log may not go beyond {MAX_SEQ}"),
            ));
        }
        let unit = Unit::new(entries, crcs, first_seq, bytes);
        st.next_seq = unit.last_seq() + 1;
        st.queue.push_back(unit);
        st.queued_entries += entries.len();
        st.pending_bytes += bytes;
        st.stats.peak_pending_bytes = st.stats.peak_pending_bytes.max(st.pending_bytes);
        if st.leader_waiting && !self.should_gather(&st) {
            // Only the appender that completes the group wakes the leader.
            self.joined.notify_one();
        }
        if notify && !st.leader && !st.lead_offered {
            st.lead_offered = true;
            self.work.notify_one();
        }
        Ok((st, first_seq))
    }

    /// `wait` for `seq` (1 ..= last assigned); `timeout` None waits for ever.
    pub(super) fn wait(&self, seq: u64, timeout: Option<Duration>) -> Result<()> {
        if seq != 0 && seq <= self.acked.load(Ordering::Acquire) {
            return Ok(());
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let st = self.state.lock();
        st.check_assigned(seq)?;
        self.wait_locked(st, seq, deadline).map_err(|e| match (e.errno(), timeout) {
            (libc::ETIMEDOUT, Some(t)) => timed_out(seq, t),
            _ => e,
        })
    }

    /// Waits until `seq` is acknowledged, leading group commits while it
    /// waits and no one else does.
    pub(super) fn wait_locked<'a>(&'a self, mut st: Guard<'a>, seq: u64, deadline: Option<Instant>) -> Result<()> {
        let waiter = Waiter { state: AtomicU8::new(WAITING) };
        loop {
            // The lock is held here.
            if seq <= st.acked_seq {
                self.leave(st);
                return Ok(());
            }
            if let Some(poison) = &st.poison {
                return Err(poison.error_for(seq, seq));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.leave(st);
                return Err(Error::new(libc::ETIMEDOUT, "timed out"));
            }
            // A timed wait never leads (a write and sync could outlast its
            // timeout): the flusher, or the untimed waiter of a blocking
            // append, writes those units.
            if deadline.is_none() && !st.leader && !st.queue.is_empty() {
                self.lead(&mut st);
                MutexGuard::unlocked(&mut st, || self.wake_signalled());
                continue;
            }
            waiter.state.store(WAITING, Ordering::Relaxed);
            st.parked.push(Parked { seq, waiter: &waiter, may_lead: deadline.is_none() });
            drop(st);
            self.wake_signalled();
            let state = self.bell.sleep(&waiter.state, WAITING, deadline);
            if state == DONE {
                // Whoever finished our batch hands leadership on.
                return Ok(());
            }
            st = self.state.lock();
            if state == WAITING {
                // Timed out: unregister, unless a signal came meanwhile
                // (it was set under the lock we now hold).
                if let Some(i) = st.parked.iter().position(|p| std::ptr::eq(p.waiter, &waiter)) {
                    st.parked.swap_remove(i);
                }
            }
            if waiter.state.load(Ordering::Acquire) == LEAD {
                st.lead_offered = false;
            }
        }
    }

    /// Leaves `wait`: hands leadership on, releases the lock, then wakes
    /// whoever the batches it led (and the hand-off) satisfied.
    fn leave(&self, mut st: Guard<'_>) {
        self.hand_off(&mut st);
        drop(st);
        self.wake_signalled();
    }

    /// A thread leaving `wait` with units still queued and nobody leading
    /// makes sure someone writes them: the flusher if it runs, else the
    /// untimed waiter of the lowest seq (woken first). Appenders arriving meanwhile
    /// lead too when they find no leader; whoever comes first.
    fn hand_off(&self, st: &mut Guard<'_>) {
        if st.leader || st.lead_offered || st.poison.is_some() || st.queue.is_empty() {
            return;
        }
        if st.flusher {
            st.lead_offered = true;
            self.work.notify_one();
            return;
        }
        let leaders = (0..st.parked.len()).filter(|&i| st.parked[i].may_lead);
        let Some(i) = leaders.min_by_key(|&i| st.parked[i].seq) else { return };
        let parked = st.parked.swap_remove(i);
        st.lead_offered = true;
        // SAFETY: just unregistered.
        unsafe { parked.signal(&self.bell, LEAD) };
    }

    /// Waits until `bytes` more fit in `buffer_size` (or nothing is
    /// pending). With no leader active it writes the queue itself.
    fn admit(&self, st: &mut Guard<'_>, bytes: u64) -> Result<()> {
        loop {
            st.check_poison()?;
            if st.pending_bytes == 0 || st.pending_bytes + bytes <= self.cfg.buffer_size {
                return Ok(());
            }
            if !st.leader && !st.queue.is_empty() {
                self.lead(st);
                MutexGuard::unlocked(st, || self.wake_signalled());
                continue;
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
    /// the waiters it satisfied signalled, to be woken by `wake_signalled`
    /// once the lock is released.
    pub(super) fn lead(&self, st: &mut Guard<'_>) {
        st.leader = true;
        st.lead_offered = false;
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
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write_batch(&plan, &mut scratch)))
                .unwrap_or_else(|payload| Err(panic_error(payload)));
            // The I/O is over: the units' memory goes now, outside the lock.
            scratch.release();
            outcome
        });
        st.finish(self, &plan, outcome);
        st.scratch = scratch;
        st.leader = false;
        if st.space_waiters > 0 || st.poison.is_some() {
            self.progress.notify_all();
        }
    }

    /// Gives appenders that are on their way a moment to join the batch:
    /// only while fewer units are queued than the previous batch had, the
    /// batch is not full and nobody waits for buffer space.
    fn gather(&self, st: &mut Guard<'_>) {
        if self.cfg.flush_timeout_us == 0 {
            return;
        }
        let deadline = Instant::now() + Duration::from_micros(self.cfg.flush_timeout_us as u64);
        while self.should_gather(st) {
            st.leader_waiting = true;
            let timed_out = self.joined.wait_until(st, deadline);
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
        let batch = Some((plan.first_seq, plan.last_seq));
        let context = |e: Error| e.context(format_args!("append of entries {}..={}", plan.first_seq, plan.last_seq));
        let (segment, offset, stamp) = if plan.rotate {
            // Rotation synced everything before this batch.
            (Arc::new(self.rotate(plan).map_err(context)?), SEGMENT_HEADER_SIZE, plan.first_seq - 1)
        } else {
            (plan.segment.clone(), plan.offset, plan.durable_seq)
        };
        segment.zero_ahead(offset + plan.bytes, plan.bytes, self.cfg.segment_size).map_err(context)?;
        let iov = scratch.build(segment.salt, stamp);
        // SAFETY: the iovecs point into the scratch arena and its units'
        // payloads, all valid until this returns.
        unsafe { segment.file.writev_at_raw(iov.as_ptr(), iov.len(), offset) }.map_err(context)?;
        let durable_seq = if self.cfg.sync_after_batch {
            self.datasync(&segment, batch, None).map_err(context)?;
            plan.last_seq
        } else {
            stamp
        };
        let new_segment = plan.rotate.then_some(segment);
        Ok(Written { new_segment, end: offset + plan.bytes, durable_seq })
    }

    /// fdatasync of a segment, serialized with every other sync of the
    /// log: Linux reports a writeback error to one fdatasync of a file
    /// only, so an overlapping one could succeed over lost data. A failure
    /// poisons the log before the next sync may start (`batch` names the
    /// entries it fails), and a success re-checks poisoning. A success
    /// makes entries up to `durable` durable before the next sync may
    /// start, so no later failure can precede its publication.
    fn datasync(&self, segment: &Segment, batch: Option<(u64, u64)>, durable: Option<u64>) -> Result<()> {
        let _one_at_a_time = self.syncing.lock();
        let start = Instant::now();
        let result = segment.file.datasync();
        self.metrics.fdatasync(start.elapsed());
        let mut st = self.state.lock();
        match result {
            Ok(()) => {
                st.check_poison()?;
                if let Some(seq) = durable {
                    st.durable_seq = st.durable_seq.max(seq);
                    self.publish(&st);
                }
                Ok(())
            }
            Err(e) => {
                st.poison(e.clone(), batch, &self.metrics, &self.bell);
                self.progress.notify_all();
                Err(e)
            }
        }
    }

    /// Seals the full segment, makes it durable, and creates the next one.
    fn rotate(&self, plan: &Plan) -> Result<Segment> {
        plan.segment.write_seal(plan.offset, plan.first_seq, plan.durable_seq)?;
        self.datasync(&plan.segment, Some((plan.first_seq, plan.last_seq)), None)?;
        Segment::create(&self.rt, &self.dir, plan.first_seq, self.cfg.segment_size)
    }

    /// Writes everything appended so far and makes it durable (earlier
    /// segments were synced when they were sealed).
    pub(super) fn sync(&self) -> Result<()> {
        let st = self.state.lock();
        st.check_poison()?;
        let last = st.next_seq - 1;
        let st = if last > st.acked_seq {
            self.wait_locked(st, last, None)?;
            self.state.lock()
        } else {
            st
        };
        if st.durable_seq >= last {
            return st.check_poison();
        }
        let (segment, target) = (st.active.clone(), st.acked_seq);
        drop(st);
        let result = self.datasync(&segment, None, Some(target));
        self.wake_signalled();
        result
    }

    /// The flusher thread: writes what is queued whenever nobody else
    /// leads, until the log is dropped and the queue is empty.
    pub(super) fn flush_loop(&self) {
        let mut st = self.state.lock();
        loop {
            st.lead_offered = false;
            if !st.leader && !st.queue.is_empty() && st.poison.is_none() {
                let logs = crate::log::defer();
                self.lead(&mut st);
                MutexGuard::unlocked(&mut st, || {
                    self.wake_signalled();
                    drop(logs);
                });
                continue;
            }
            if st.shutdown && (st.queue.is_empty() || st.poison.is_some()) {
                st.flusher = false;
                return;
            }
            self.work.wait(&mut st);
        }
    }
}
