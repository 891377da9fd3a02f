//! Asynchronous queues: ops pushed, started without waiting, reaped later.
//!
//! A queue owns its submission/completion machinery (docs/queues.md):
//!
//! - io_uring: a ring of its own, created without SINGLE_ISSUER and
//!   DEFER_TASKRUN (and without COOP_TASKRUN) because a queue may be used
//!   from a different OS thread at every call (Go, Python) and a thread
//!   waiting in poll() on the queue's fd must be woken by completions that
//!   the kernel posts as task work. The queue's eventfd is registered with
//!   the ring, so the kernel signals it for every completion.
//! - thread pool: the runtime's workers run the ops and post them to the
//!   queue's completion list, then signal the eventfd.
//!
//! Both run the same `Op` model: short transfers are continued through
//! `Progress`, EINTR/EAGAIN never surface, a CQE with -ECANCELED is redone
//! with blocking syscalls as in batches. Every started op holds one permit
//! of the runtime's `max_concurrent_ops`, taken without waiting
//! (`Limit::try_acquire_up_to`); ops that get none stay queued and start
//! at a later submit or reap. Nothing returns, and no slot is reused, while
//! the kernel or a worker may still touch an op's memory.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{types, IoUring};
use super::sync::{Condvar, Mutex};

use super::completion_faults::Injector;
use super::fork::Owner;
use super::pool::{Job, JobDone, Jobs};
use super::uring::{completion_of, enter_with_faults, sqe_for, EARLY_SUBMIT};
use super::{run_blocking_from, After, Engine, Limit, Op, OpKind, Progress};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Largest queue depth (`rio_queue_open`'s 1..4096).
pub const MAX_QUEUE_DEPTH: u32 = 4096;

/// While ops wait for permits held elsewhere, a waiting reap looks again
/// this often: permits come back on other threads, which do not know whom
/// to wake.
const PERMIT_RETRY: Duration = Duration::from_millis(1);

/// How often a submit retries an `io_uring_enter` that failed with
/// EINTR/EAGAIN/EBUSY before leaving the SQEs for the next submit or reap.
/// The queue's CQ holds every op it can have in flight, so EBUSY
/// (completion backpressure) cannot persist; EAGAIN and EINTR are passing
/// conditions (memory pressure, a signal), and injected faults are rolled
/// anew at every try.
const TRANSIENT_ENTER_RETRIES: usize = 64;

/// What a backend gives a queue to run its ops (one per queue: the size
/// difference of the variants does not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Machinery {
    /// A ring for this queue alone, and the runtime's completion faults
    /// (a test setting), applied to its SQEs and enters as in batches.
    Ring(IoUring, Option<Arc<Injector>>),
    /// The runtime's thread pool.
    Pool(Jobs),
    /// Through the engine's backend, synchronously as each op starts (the
    /// fault-injecting backend, so its rules and journal see queue ops).
    Inline,
}

/// One op of a queue. Workers reach `op` through a raw pointer while the op
/// is started; the owner touches a slot only while it is not.
struct Slot {
    op: Op,
    progress: Progress,
    started: Option<Instant>,
}

/// The part of a queue that pool workers share with its owner.
struct Shared {
    slots: Box<[UnsafeCell<Slot>]>,
    event: OwnedFd,
    /// Slots the workers finished, not yet collected by the owner.
    done: Mutex<Vec<u32>>,
    done_signal: Condvar,
    limit: Arc<Limit>,
}

// SAFETY: a slot is accessed by one party at a time: the owner while it is
// not started, one worker from `Job` hand-off until `job_done`, which
// publishes it back through the `done` mutex.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to our eventfd. EAGAIN (the
        // counter is saturated) still leaves the fd readable.
        unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn drain_signal(&self) {
        let mut count: u64 = 0;
        // SAFETY: a non-blocking read of 8 bytes into a local.
        unsafe { libc::read(self.event.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    }

    /// The slot's memory, for the party that currently owns it.
    /// The lifetime is unbounded so the owner can keep using `self` while it
    /// holds a slot; the caller promises the slot is theirs (see `Slot`).
    unsafe fn slot<'a>(&self, index: u32) -> &'a mut Slot {
        unsafe { &mut *self.slots[index as usize].get() }
    }
}

impl JobDone for Shared {
    fn job_done(&self, index: u32) {
        self.limit.release(1);
        // Signalled under the lock that the owner drains and collects
        // under: the fd never shows readable for a completion the owner
        // already took, and never misses one it has not.
        let mut done = self.done.lock();
        done.push(index);
        self.signal();
        drop(done);
        self.done_signal.notify_one();
    }
}

/// The ring of one queue and where its SQEs are.
struct RingState {
    ring: IoUring,
    /// Slots whose SQE is in the SQ, not yet consumed by the kernel (FIFO,
    /// as the kernel consumes them).
    in_sq: VecDeque<u32>,
    /// SQEs the kernel consumed and has not completed.
    in_kernel: usize,
    /// Set after a fatal io_uring_enter error: later ops run with blocking
    /// syscalls (the SQ may still hold entries that must never be consumed).
    broken: Option<i32>,
    faults: Option<Arc<Injector>>,
}

#[allow(clippy::large_enum_variant)]
enum Driver {
    Ring(RingState),
    Pool(Jobs),
    Inline(EnginePtr),
}

/// The engine of an `Inline` queue. The API layer that owns the queue keeps
/// the runtime, and so the engine, alive (`RawQueue` holds a `Runtime`).
struct EnginePtr(*const Engine);

// SAFETY: Engine is Sync; the pointer is only dereferenced for `&Engine`.
unsafe impl Send for EnginePtr {}

/// A queue of ops in the engine; `T` is what the API layer keeps per op
/// (the C op as pushed, or a Rust buffer), handed back when it is reaped.
pub(crate) struct EngineQueue<T> {
    shared: Arc<Shared>,
    /// Dropped by hand: never in a forked child (see Drop).
    driver: std::mem::ManuallyDrop<Driver>,
    metrics: Arc<Metrics>,
    payloads: Vec<Option<T>>,
    free: Vec<u32>,
    /// Pushed, waiting for a submit.
    unsubmitted: VecDeque<u32>,
    /// Submitted, waiting for a permit.
    deferred: VecDeque<u32>,
    /// Started and not complete: the kernel or a worker holds them.
    started: usize,
    complete: VecDeque<u32>,
    /// Set once the fd was handed out: only then is it kept accurate
    /// (drained by reaps), which costs a syscall per reap.
    fd_exposed: bool,
    /// Set by close: completions are not continued, only waited for.
    closing: bool,
    owner: Owner,
    /// Reused by the pool driver to hand jobs over without allocating.
    starting: Vec<u32>,
    /// Reused by the ring driver to collect CQEs without allocating.
    cqes: Vec<(usize, i64)>,
    /// Swapped with `Shared::done` by the pool driver, so neither list is
    /// allocated again at every collect.
    finished: Vec<u32>,
}

fn eventfd() -> Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned right away.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::from_io(std::io::Error::last_os_error(), "eventfd"));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Fails when a queue is used in a child of the process that opened it.
fn check_owner(owner: Owner) -> Result<()> {
    if owner.is_inherited() {
        return Err(Error::new(
            libc::EBUSY,
            "the queue was inherited through fork(): it belongs to the parent process (only close works here)",
        ));
    }
    Ok(())
}

impl<T> EngineQueue<T> {
    /// A queue of at most `depth` (1..=MAX_QUEUE_DEPTH) ops pushed and not
    /// reaped. The caller keeps `engine` alive as long as the queue.
    pub fn open(engine: &Engine, depth: u32) -> Result<EngineQueue<T>> {
        if depth == 0 || depth > MAX_QUEUE_DEPTH {
            return Err(Error::invalid(format!("depth {depth}: must be between 1 and {MAX_QUEUE_DEPTH}")));
        }
        let event = eventfd()?;
        let driver = match engine.queue_machinery(depth)? {
            Machinery::Ring(ring, faults) => {
                ring.submitter()
                    .register_eventfd(event.as_raw_fd())
                    .map_err(|e| Error::from_io(e, "io_uring: IORING_REGISTER_EVENTFD for the queue"))?;
                Driver::Ring(RingState { ring, in_sq: VecDeque::new(), in_kernel: 0, broken: None, faults })
            }
            Machinery::Pool(jobs) => Driver::Pool(jobs),
            Machinery::Inline => Driver::Inline(EnginePtr(engine)),
        };
        let slots = (0..depth)
            .map(|_| {
                let op = Op::new(-1, OpKind::Fsync, 0);
                UnsafeCell::new(Slot { progress: Progress::new(&op), op, started: None })
            })
            .collect();
        let shared = Arc::new(Shared {
            slots,
            event,
            done: Mutex::new(Vec::with_capacity(depth as usize)),
            done_signal: Condvar::new(),
            limit: engine.limit().clone(),
        });
        Ok(EngineQueue {
            shared,
            driver: std::mem::ManuallyDrop::new(driver),
            metrics: engine.metrics.clone(),
            payloads: (0..depth).map(|_| None).collect(),
            free: (0..depth).rev().collect(),
            unsubmitted: VecDeque::new(),
            deferred: VecDeque::new(),
            started: 0,
            complete: VecDeque::new(),
            fd_exposed: false,
            closing: false,
            owner: Owner::current(),
            starting: Vec::new(),
            cqes: Vec::new(),
            finished: Vec::with_capacity(depth as usize),
        })
    }

    pub fn depth(&self) -> usize {
        self.payloads.len()
    }

    /// EBUSY in a forked child of the process that opened the queue.
    pub fn check_usable(&self) -> Result<()> {
        check_owner(self.owner)
    }

    /// Ops pushed and not yet reaped.
    pub fn pending(&self) -> usize {
        self.depth() - self.free.len()
    }

    /// The eventfd that polls readable when a reap may find complete ops.
    pub fn fd(&mut self) -> Result<RawFd> {
        check_owner(self.owner)?;
        if !self.fd_exposed {
            self.fd_exposed = true;
            // Completions that arrived before anyone watched must show.
            self.shared.signal();
        }
        Ok(self.shared.event.as_raw_fd())
    }

    /// Queues `n` ops built by `make(i)`, each with `payload(i)`, all or
    /// none: a failing `make` queues nothing, and when fewer than `n` slots
    /// are free, every op is still checked (a bad op is reported before a
    /// full queue) and the result is EAGAIN. `payload` runs only for ops
    /// that are queued.
    pub fn push(&mut self, n: usize, mut make: impl FnMut(usize) -> Result<Op>, mut payload: impl FnMut(usize) -> T) -> Result<()> {
        check_owner(self.owner)?;
        if self.free.len() < n {
            for i in 0..n {
                make(i)?;
            }
            return Err(Error::new(
                libc::EAGAIN,
                format!("queue full: {n} ops pushed, {} of {} slots free", self.free.len(), self.depth()),
            ));
        }
        let first = self.unsubmitted.len();
        for i in 0..n {
            match make(i) {
                Ok(op) => {
                    let index = self.free.pop().expect("checked: enough free slots");
                    // SAFETY: a free slot belongs to the owner.
                    unsafe { self.shared.slot(index) }.op = op;
                    self.unsubmitted.push_back(index);
                }
                Err(e) => {
                    for index in self.unsubmitted.drain(first..) {
                        self.free.push(index);
                    }
                    return Err(e);
                }
            }
        }
        for (i, index) in self.unsubmitted.range(first..).enumerate() {
            self.payloads[*index as usize] = Some(payload(i));
        }
        Ok(())
    }

    /// Starts the pushed ops (and earlier ones still waiting for a permit);
    /// returns how many started. Never waits for the device.
    pub fn submit(&mut self) -> Result<usize> {
        check_owner(self.owner)?;
        self.deferred.extend(self.unsubmitted.drain(..));
        self.collect();
        Ok(self.start_deferred())
    }

    /// Waits until `min` ops are complete (`timeout` None = no limit), then
    /// hands up to `max` of them to `sink` and returns how many.
    pub fn reap(&mut self, max: usize, min: usize, timeout: Option<Duration>, mut sink: impl FnMut(T, i64)) -> Result<usize> {
        check_owner(self.owner)?;
        if min > self.pending() {
            return Err(Error::invalid(format!(
                "min {min} exceeds the {} ops pushed and not reaped",
                self.pending()
            )));
        }
        self.wait_complete(min, timeout)?;
        let n = max.min(self.complete.len());
        for index in self.complete.drain(..n) {
            // SAFETY: a complete slot belongs to the owner.
            let result = unsafe { self.shared.slot(index) }.op.result;
            let payload = self.payloads[index as usize].take().expect("a complete slot has a payload");
            self.free.push(index);
            sink(payload, result);
        }
        if self.fd_exposed && !self.complete.is_empty() {
            // The fd was drained; what is left must still show.
            self.shared.signal();
        }
        Ok(n)
    }

    fn wait_complete(&mut self, min: usize, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.collect_draining(true);
            self.start_deferred();
            if self.complete.len() >= min {
                return Ok(());
            }
            let reachable = self.complete.len() + self.started + self.deferred.len();
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if reachable < min && timeout.is_none() {
                return Err(Error::invalid(format!(
                    "min {min} can never be reached: {} of the pending ops were pushed but not submitted (call rio_queue_submit)",
                    self.unsubmitted.len()
                )));
            }
            if reachable < min || remaining == Some(Duration::ZERO) {
                return Err(Error::new(
                    libc::ETIMEDOUT,
                    format!("{} of the {min} ops waited for completed in time", self.complete.len()),
                ));
            }
            let bound = if self.deferred.is_empty() { remaining } else { Some(remaining.map_or(PERMIT_RETRY, |r| r.min(PERMIT_RETRY))) };
            if self.started == 0 {
                std::thread::sleep(bound.unwrap_or(PERMIT_RETRY));
            } else {
                self.wait_one(bound);
            }
        }
    }

    /// Starts waiting ops for which a permit is free.
    fn start_deferred(&mut self) -> usize {
        if self.deferred.is_empty() {
            return 0;
        }
        let n = self.shared.limit.try_acquire_up_to(self.deferred.len());
        let now = Instant::now();
        for _ in 0..n {
            let index = self.deferred.pop_front().expect("n <= deferred");
            self.started += 1;
            // SAFETY: the slot is not started yet; it belongs to the owner.
            let slot = unsafe { self.shared.slot(index) };
            slot.started = Some(now);
            slot.progress = Progress::new(&slot.op);
            self.start(index);
            // Handing the ops over in small groups keeps the device busy
            // while the rest are prepared: one enter for a whole refill of
            // 32 left random O_DIRECT reads at 0.7x fio (as in batches).
            if self.prepared() >= EARLY_SUBMIT {
                self.flush();
            }
        }
        self.flush();
        if n > 0 {
            self.metrics.record_queue_depth(self.started as u64);
        }
        n
    }

    fn start(&mut self, index: u32) {
        let rs = match &mut *self.driver {
            Driver::Ring(rs) => rs,
            Driver::Pool(_) => {
                self.starting.push(index);
                return;
            }
            Driver::Inline(engine) => {
                // SAFETY: see `EnginePtr`; the op's memory is valid until reaped.
                unsafe { (*engine.0).execute_held(std::slice::from_mut(&mut self.shared.slot(index).op)) };
                self.finish(index, true);
                return;
            }
        };
        // SAFETY: the slot is ours until the SQE is pushed; from then on only
        // the kernel, then `on_cqe`, touch it.
        let slot = unsafe { self.shared.slot(index) };
        if rs.broken.is_some() {
            run_blocking_from(&mut slot.op, &mut slot.progress, rs.faults.as_deref());
            self.finish(index, true);
            return;
        }
        // SAFETY: the op's memory stays valid until its completion is reaped
        // (the API layer's contract), and close waits for it.
        let entry = unsafe { sqe_for(&slot.op, &slot.progress, index as usize, rs.faults.as_deref()) };
        let pushed = unsafe { rs.ring.submission().push(&entry) };
        pushed.expect("the SQ holds at least depth entries");
        rs.in_sq.push_back(index);
    }

    /// Ops `start` prepared and `flush` has not handed over yet.
    fn prepared(&self) -> usize {
        match &*self.driver {
            Driver::Ring(rs) => rs.in_sq.len(),
            Driver::Pool(_) => self.starting.len(),
            Driver::Inline(_) => 0,
        }
    }

    /// Hands what `start` prepared to the kernel or the workers.
    fn flush(&mut self) {
        match &mut *self.driver {
            Driver::Ring(_) => {
                // A transient enter error is retried here: after a submit
                // nobody may enter again (the caller may only poll the fd).
                for _ in 0..TRANSIENT_ENTER_RETRIES {
                    let Driver::Ring(rs) = &mut *self.driver else { unreachable!() };
                    if rs.in_sq.is_empty() || rs.broken.is_some() {
                        break;
                    }
                    let entered = enter_with_faults(rs.faults.as_deref(), || rs.ring.submit());
                    self.after_enter(entered);
                }
            }
            Driver::Inline(_) => {}
            Driver::Pool(jobs) => {
                let done: Arc<dyn JobDone> = self.shared.clone();
                let shared = &self.shared;
                jobs.spawn(self.starting.drain(..).map(|index| Job {
                    // SAFETY: from here until `job_done`, only the worker touches the slot.
                    op: unsafe { std::ptr::addr_of_mut!((*shared.slots[index as usize].get()).op) },
                    done: done.clone(),
                    index,
                }));
            }
        }
    }

    /// Accounts what an io_uring_enter consumed and handles its error.
    fn after_enter(&mut self, entered: std::io::Result<usize>) {
        let Driver::Ring(rs) = &mut *self.driver else { return };
        let consumed = rs.in_sq.len() - rs.ring.submission().len();
        rs.in_sq.drain(..consumed);
        rs.in_kernel += consumed;
        match entered {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::EBUSY | libc::ETIME)) => {}
            Err(e) => self.break_ring(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }

    /// After a fatal enter error: waits for what the kernel holds, fails what
    /// it never took, and runs later ops with blocking syscalls.
    fn break_ring(&mut self, errno: i32) {
        tracing::warn!(errno, "io_uring_enter failed on a queue's ring; its ops continue with blocking syscalls");
        let Driver::Ring(rs) = &mut *self.driver else { return };
        rs.broken = Some(errno);
        let never_taken: Vec<u32> = rs.in_sq.drain(..).collect();
        for index in never_taken {
            unsafe { self.shared.slot(index) }.op.result = -(errno as i64);
            self.finish(index, true);
        }
        while matches!(&*self.driver, Driver::Ring(rs) if rs.in_kernel > 0) {
            let Driver::Ring(rs) = &mut *self.driver else { return };
            // SAFETY: a plain wait; nothing is submitted.
            let _ = unsafe { rs.ring.submitter().enter::<libc::sigset_t>(0, 1, 1 /* GETEVENTS */, None) };
            self.collect();
        }
    }

    /// Moves finished ops to `complete`, continuing short transfers.
    fn collect(&mut self) {
        self.collect_draining(false)
    }

    /// `collect`, first draining the fd when `drain` and it was handed out
    /// (a reap, which then re-signals what it leaves): a completion posted
    /// after the drain is either collected here or signals again.
    fn collect_draining(&mut self, drain: bool) {
        let drain = drain && self.fd_exposed;
        match &mut *self.driver {
            Driver::Ring(rs) => {
                if drain {
                    self.shared.drain_signal();
                }
                let mut cqes = std::mem::take(&mut self.cqes);
                cqes.extend(rs.ring.completion().map(|c| completion_of(&c)));
                rs.in_kernel -= cqes.len();
                let mut resubmitted = false;
                for (index, res) in cqes.drain(..) {
                    resubmitted |= self.on_cqe(index as u32, res);
                }
                self.cqes = cqes;
                if resubmitted {
                    self.flush();
                }
            }
            Driver::Pool(_) => {
                let mut finished = std::mem::take(&mut self.finished);
                let mut done = self.shared.done.lock();
                if drain {
                    self.shared.drain_signal();
                }
                std::mem::swap(&mut *done, &mut finished);
                drop(done);
                for &index in &finished {
                    self.finish(index, false);
                }
                finished.clear();
                self.finished = finished;
            }
            // Finished as they started.
            Driver::Inline(_) => {}
        }
    }

    /// One CQE; true when the op's next piece was queued.
    fn on_cqe(&mut self, index: u32, res: i64) -> bool {
        // SAFETY: the kernel is done with this SQE; the slot is ours again.
        let slot = unsafe { self.shared.slot(index) };
        let Driver::Ring(rs) = &*self.driver else { unreachable!("CQEs come from a ring") };
        let (broken, faults) = (rs.broken.is_some(), rs.faults.clone());
        let finish_blocking = |slot: &mut Slot| run_blocking_from(&mut slot.op, &mut slot.progress, faults.as_deref());
        if res == -(libc::ECANCELED as i64) {
            // Never requested: the kernel could not run this piece (as in
            // batches, docs/engine.md); it did nothing, so the op goes on
            // here from the bytes earlier pieces moved (issue 11, bug 4).
            if !self.closing {
                finish_blocking(slot);
            }
        } else if slot.progress.complete(&mut slot.op, res) == After::Resubmit && !self.closing {
            if broken {
                finish_blocking(slot);
            } else {
                self.start(index);
                return true;
            }
        }
        self.finish(index, true);
        false
    }

    /// Records a finished op and makes it reapable.
    fn finish(&mut self, index: u32, release_permit: bool) {
        if release_permit {
            self.shared.limit.release(1);
        }
        self.started -= 1;
        // SAFETY: the op is finished; the slot is the owner's.
        let slot = unsafe { self.shared.slot(index) };
        let latency = slot.started.take().map(|t| (t.elapsed().as_nanos() as u64, 1));
        self.metrics.record_op(&slot.op, latency);
        self.complete.push_back(index);
    }

    /// Waits for at least one completion, at most `bound` (None: no limit).
    fn wait_one(&mut self, bound: Option<Duration>) {
        match &mut *self.driver {
            Driver::Ring(rs) if rs.broken.is_none() => {
                let ring = &rs.ring;
                let entered = enter_with_faults(rs.faults.as_deref(), || match bound {
                    None => ring.submit_and_wait(1),
                    Some(t) => {
                        let ts = types::Timespec::from(t);
                        ring.submitter().submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))
                    }
                });
                self.after_enter(entered);
            }
            // A broken ring and an inline queue complete everything as it
            // starts: nothing to wait for.
            Driver::Ring(_) | Driver::Inline(_) => {}
            Driver::Pool(_) => {
                let mut done = self.shared.done.lock();
                if done.is_empty() {
                    match bound {
                        None => self.shared.done_signal.wait(&mut done),
                        Some(t) => {
                            self.shared.done_signal.wait_for(&mut done, t);
                        }
                    }
                }
            }
        }
    }

    /// Waits for every started op; unstarted and unreaped ones are dropped.
    fn wait_all_started(&mut self) {
        self.closing = true;
        self.collect();
        while self.started > 0 {
            self.wait_one(None);
            self.collect();
        }
    }
}

impl<T> Drop for EngineQueue<T> {
    fn drop(&mut self) {
        if self.owner.is_inherited() {
            // A forked child: the ring and the workers are the parent's.
            // Close this process's copies of the descriptors and leave the
            // rest untouched (its locks may be held by threads that do not
            // exist here); the extra reference keeps `shared` alive, so its
            // eventfd is not closed a second time.
            if let Driver::Ring(rs) = &*self.driver {
                unsafe { libc::close(rs.ring.as_raw_fd()) };
            }
            unsafe { libc::close(self.shared.event.as_raw_fd()) };
            std::mem::forget(self.shared.clone());
            return;
        }
        self.wait_all_started();
        // SAFETY: dropped once, here; nothing started references the ring.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.driver) };
    }
}
