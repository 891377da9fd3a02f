//! The io_uring backend.
//!
//! Threading model (docs/engine.md has the measurements): each calling
//! thread gets its own ring per runtime, created on first use. A caller
//! submits its whole batch with one `io_uring_enter` and reaps its own
//! completions, so there is no completion dispatch between threads, no lock
//! on the hot path, and the ring can be created `SINGLE_ISSUER |
//! DEFER_TASKRUN`. Rings are owned by the backend's registry (so closing the
//! runtime frees them all); the thread keeps a weak reference and, when the
//! thread exits, removes its ring from the registry.
//!
//! Fork (docs/engine.md): the registry is per process (`ForkLocal`) and a
//! thread's ring entries remember the process that made them, so a child
//! never pushes into, enters, locks or frees a ring it inherited; it builds
//! its own on first use.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use io_uring::{opcode, squeue, IoUring, Probe};
use super::sync::Mutex;

use super::completion_faults::{Fault, Injector};
use super::fixed::FixedRing;
use super::fork::{ForkLocal, Owner};
use super::{kernel, run_blocking, run_blocking_from, After, Backend, BackendKind, Op, OpKind, Progress};

/// Kernel ABI values (include/uapi/linux/io_uring.h); the crate keeps its
/// copies private.
mod setup {
    pub(super) const IORING_SETUP_SUBMIT_ALL: u32 = 1 << 7;
    pub(super) const IORING_SETUP_COOP_TASKRUN: u32 = 1 << 8;
    pub(super) const IORING_SETUP_TASKRUN_FLAG: u32 = 1 << 9;
    pub(super) const IORING_SETUP_SINGLE_ISSUER: u32 = 1 << 12;
    pub(super) const IORING_SETUP_DEFER_TASKRUN: u32 = 1 << 13;
    pub(super) const IORING_ENTER_GETEVENTS: u32 = 1 << 0;
}

/// `user_data` of an SQE: the op's index, and for an injected fault (a NOP
/// standing in for the op) the flag and the errno its completion reports
/// (0: the reaper panics, for unwinding tests).
const INJECTED: u64 = 1 << 63;

fn injected_user_data(index: usize, fault: Fault) -> u64 {
    let errno = match fault {
        Fault::Fail(errno) => errno as u64,
        _ => 0,
    };
    INJECTED | errno << 32 | index as u64
}

/// Setup flag sets, best first. A rung the kernel rejects with EINVAL is
/// skipped; any other error means io_uring is unavailable.
const LADDER: &[(&str, u32)] = &[
    (
        "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL",
        setup::IORING_SETUP_SINGLE_ISSUER | setup::IORING_SETUP_DEFER_TASKRUN | setup::IORING_SETUP_SUBMIT_ALL,
    ),
    (
        "COOP_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL",
        setup::IORING_SETUP_COOP_TASKRUN | setup::IORING_SETUP_TASKRUN_FLAG | setup::IORING_SETUP_SUBMIT_ALL,
    ),
    ("none", 0),
];

/// SQEs queued before they are handed to the kernel while a batch is still
/// being prepared. One enter for a whole 32-op batch let the device idle
/// until the last SQE was built; submitting every 4 took random 4 KiB
/// O_DIRECT QD32 reads from 0.83x to 1.08x fio (docs/benchmarks.md).
/// Queues start the ops of a submit the same way (docs/queues.md).
pub(crate) const EARLY_SUBMIT: usize = 4;

/// Opcodes without which the backend is not used.
const REQUIRED: &[(u8, &str)] = &[
    (opcode::Read::CODE, "READ"),
    (opcode::Write::CODE, "WRITE"),
    (opcode::Readv::CODE, "READV"),
    (opcode::Writev::CODE, "WRITEV"),
    (opcode::Fsync::CODE, "FSYNC"),
];

/// How rings of this runtime are built.
#[derive(Debug, Clone)]
pub(crate) struct RingParams {
    pub sq_entries: u32,
    pub cq_entries: u32,
    /// Bound on io-wq workers [bounded, unbounded] per submitting thread.
    pub iowq_max_workers: [u32; 2],
    /// First rung of `LADDER` to try (0 = best); see `ladder_start`.
    pub first_rung: usize,
}

/// The `RIO_IO_URING_SETUP` names of the ladder's rungs, best first.
pub(crate) const RUNG_NAMES: [&str; 3] = ["defer_taskrun", "coop_taskrun", "plain"];

/// What setup found out, for the capability report.
#[derive(Debug, Clone)]
pub struct RingInfo {
    pub setup_flags: u32,
    pub setup_flags_name: &'static str,
    /// Bit n set when io_uring opcode n is supported.
    pub opcodes: [u8; 32],
    pub sq_entries: u32,
    pub cq_entries: u32,
}

impl RingInfo {
    pub fn supports(&self, code: u8) -> bool {
        self.opcodes[code as usize / 8] & (1 << (code % 8)) != 0
    }
}

/// A ring and the bookkeeping buffers every call on it reuses, so the hot
/// path allocates nothing.
pub(crate) struct ThreadRing {
    ring: IoUring,
    flight: Flight,
    progress: Vec<Progress>,
    /// This ring's registration of the shared buffer table.
    fixed: FixedRing,
}

// SAFETY: `progress` holds copies of caller iovec pointers only during a
// `drive` call on the owning thread; between calls nothing dereferences
// them, so moving the ring (e.g. dropping it on the closing thread) is sound.
unsafe impl Send for ThreadRing {}

type SharedRing = Arc<Mutex<ThreadRing>>;
type Registry = Mutex<Vec<SharedRing>>;

pub(crate) struct UringBackend {
    params: RingParams,
    info: RingInfo,
    /// This process's rings; a forked child starts with an empty registry.
    registry: ForkLocal<Arc<Registry>>,
    faults: Option<Arc<Injector>>,
    pub sqes_submitted: AtomicU64,
    pub enter_calls: AtomicU64,
    /// Lone ops run with a direct syscall instead of the ring (`runs_direct`).
    pub direct_ops: AtomicU64,
    /// Calls that ran with blocking syscalls because no ring could be created.
    pub ring_failures: AtomicU64,
    /// io_uring_enter calls that returned EBUSY/EAGAIN/EINTR and were retried
    /// after reaping (CQ backpressure, memory pressure, signals).
    pub busy_retries: AtomicU64,
    /// SQEs sent as READ_FIXED/WRITE_FIXED (their buffer was registered).
    pub fixed_buffer_sqes: AtomicU64,
    /// Buffer registrations the kernel refused (the ops ran unregistered).
    pub buffer_registration_failures: AtomicU64,
    /// Why the last refused registration failed.
    pub buffer_registration_reason: Mutex<Option<String>>,
}

/// A thread's handle on one runtime's ring; removes the ring from the
/// registry when the thread exits.
struct LocalRing {
    registry: Weak<Registry>,
    ring: Weak<Mutex<ThreadRing>>,
    /// In a forked child, the entry is the parent's: its registry lock may
    /// be held by a thread that does not exist here.
    owner: Owner,
}

impl Drop for LocalRing {
    fn drop(&mut self) {
        if self.owner.is_inherited() {
            return;
        }
        if let (Some(registry), Some(ring)) = (self.registry.upgrade(), self.ring.upgrade()) {
            registry.lock().retain(|r| !Arc::ptr_eq(r, &ring));
        }
    }
}

thread_local! {
    static LOCAL_RINGS: RefCell<Vec<LocalRing>> = const { RefCell::new(Vec::new()) };
}

fn build_ring(flags: u32, params: &RingParams) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_cqsize(params.cq_entries).setup_clamp();
    if flags & setup::IORING_SETUP_SINGLE_ISSUER != 0 {
        b.setup_single_issuer();
    }
    if flags & setup::IORING_SETUP_DEFER_TASKRUN != 0 {
        b.setup_defer_taskrun();
    }
    if flags & setup::IORING_SETUP_COOP_TASKRUN != 0 {
        b.setup_coop_taskrun();
    }
    if flags & setup::IORING_SETUP_TASKRUN_FLAG != 0 {
        b.setup_taskrun_flag();
    }
    if flags & setup::IORING_SETUP_SUBMIT_ALL != 0 {
        b.setup_submit_all();
    }
    let ring = b.build(params.sq_entries)?;
    let mut max = params.iowq_max_workers;
    // Best effort (5.15+): without it buffered writes could spawn a kernel
    // worker per blocked request.
    let _ = ring.submitter().register_iowq_max_workers(&mut max);
    Ok(ring)
}

impl UringBackend {
    /// Sets up a first ring to choose flags and probe opcodes. The error is
    /// the reason io_uring cannot be used, as text.
    pub fn probe(params: RingParams, faults: Option<Arc<Injector>>) -> Result<UringBackend, String> {
        let mut last_err = None;
        for (name, flags) in &LADDER[params.first_rung.min(LADDER.len() - 1)..] {
            match build_ring(*flags, &params) {
                Ok(ring) => return Self::from_probe_ring(ring, *flags, name, params, faults),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
                Err(e) => return Err(setup_failure_reason(&e)),
            }
        }
        Err(setup_failure_reason(&last_err.expect("the ladder is not empty")))
    }

    fn from_probe_ring(
        ring: IoUring,
        flags: u32,
        name: &'static str,
        params: RingParams,
        faults: Option<Arc<Injector>>,
    ) -> Result<UringBackend, String> {
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| format!("io_uring: IORING_REGISTER_PROBE failed: {e}"))?;
        let mut opcodes = [0u8; 32];
        for code in 0..=255u8 {
            if probe.is_supported(code) {
                opcodes[code as usize / 8] |= 1 << (code % 8);
            }
        }
        let missing: Vec<&str> =
            REQUIRED.iter().filter(|(code, _)| !probe.is_supported(*code)).map(|(_, n)| *n).collect();
        if !missing.is_empty() {
            return Err(format!("io_uring: kernel lacks required opcodes {}", missing.join(", ")));
        }
        let info = RingInfo {
            setup_flags: flags,
            setup_flags_name: name,
            opcodes,
            sq_entries: ring.params().sq_entries(),
            cq_entries: ring.params().cq_entries(),
        };
        tracing::debug!(flags = name, sq = info.sq_entries, cq = info.cq_entries, "io_uring backend ready");
        Ok(UringBackend {
            params,
            info,
            registry: ForkLocal::new(Arc::default()),
            faults,
            sqes_submitted: AtomicU64::new(0),
            enter_calls: AtomicU64::new(0),
            direct_ops: AtomicU64::new(0),
            ring_failures: AtomicU64::new(0),
            busy_retries: AtomicU64::new(0),
            fixed_buffer_sqes: AtomicU64::new(0),
            buffer_registration_failures: AtomicU64::new(0),
            buffer_registration_reason: Mutex::new(None),
        })
    }

    pub fn info(&self) -> &RingInfo {
        &self.info
    }

    /// This process's ring registry (a forked child's starts empty).
    fn registry(&self) -> &Arc<Registry> {
        self.registry.get_or(Arc::default)
    }

    /// The calling thread's ring for this backend, created on first use.
    fn local_ring(&self) -> io::Result<SharedRing> {
        LOCAL_RINGS.with(|cell| {
            let mut rings = cell.borrow_mut();
            let mine = Arc::downgrade(self.registry());
            if let Some(ring) = rings.iter().find(|r| r.registry.ptr_eq(&mine)).and_then(|r| r.ring.upgrade()) {
                return Ok(ring);
            }
            // Drop entries of closed runtimes, a ring discarded after a
            // fatal error, and entries inherited through fork (their Drop
            // leaves the parent's registry alone) before adding the new one.
            rings.retain(|r| !r.owner.is_inherited() && r.registry.strong_count() > 0 && !r.registry.ptr_eq(&mine));
            let ring = build_ring(self.info.setup_flags, &self.params)?;
            let fixed = FixedRing::default();
            let ring = Arc::new(Mutex::new(ThreadRing { ring, flight: Flight::default(), progress: Vec::new(), fixed }));
            self.registry().lock().push(ring.clone());
            rings.push(LocalRing { registry: mine, ring: Arc::downgrade(&ring), owner: Owner::current() });
            Ok(ring)
        })
    }

    /// A ring for one asynchronous queue: no SINGLE_ISSUER/DEFER_TASKRUN
    /// (nor COOP_TASKRUN), because the queue may be used from a different
    /// thread at every call and a thread asleep in poll() on the queue's fd
    /// must be woken by completions (docs/queues.md).
    fn queue_ring(&self, depth: u32) -> io::Result<IoUring> {
        let sq = depth.next_power_of_two();
        let params = RingParams { sq_entries: sq, cq_entries: sq * 2, ..self.params.clone() };
        build_ring(self.info.setup_flags & setup::IORING_SETUP_SUBMIT_ALL, &params)
    }

    fn discard_ring(&self, ring: &SharedRing) {
        self.registry().lock().retain(|r| !Arc::ptr_eq(r, ring));
    }

    /// Rings this process has open for this backend (tests check that a
    /// forked child builds its own and the parent's are untouched).
    #[cfg(test)]
    fn rings(&self) -> usize {
        self.registry().lock().len()
    }
}

fn setup_failure_reason(e: &io::Error) -> String {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)",
        Some(libc::EPERM) => {
            "io_uring_setup was denied (EPERM): a seccomp filter (e.g. Docker's default profile) or kernel.io_uring_disabled=2"
        }
        Some(libc::EACCES) => "io_uring_setup was denied (EACCES): kernel.io_uring_disabled=1 and not in io_uring_group",
        Some(libc::ENOMEM) => "io_uring_setup could not allocate the ring (ENOMEM): RLIMIT_MEMLOCK or memory cgroup",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "no file descriptor left for the ring (EMFILE/ENFILE)",
        _ => "io_uring_setup failed",
    };
    format!("{why}: {e}")
}

impl Backend for UringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::IoUring
    }

    fn queue_machinery(&self, depth: u32) -> crate::Result<super::queue::Machinery> {
        let ring = self.queue_ring(depth).map_err(|e| crate::Error::from_io(e, "io_uring: cannot create the queue's ring"))?;
        Ok(super::queue::Machinery::Ring(ring, self.faults.clone()))
    }

    unsafe fn execute(&self, ops: &mut [Op]) {
        if let [op] = ops {
            if runs_direct(op) {
                run_blocking_from(op, &mut Progress::new(op), self.faults.as_deref());
                self.direct_ops.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let ring = match self.local_ring() {
            Ok(ring) => ring,
            Err(e) => {
                // No ring for this thread (EMFILE under RLIMIT_NOFILE, ENOMEM):
                // the I/O itself can still be done, with blocking syscalls.
                self.ring_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot create an io_uring for this thread; running its ops with blocking syscalls");
                ops.iter_mut().for_each(run_blocking);
                return;
            }
        };
        let discard_on_unwind = DiscardOnUnwind { backend: self, ring: &ring };
        let mut guard = ring.lock();
        let outcome = unsafe { self.drive(&mut guard, ops) };
        drop(guard);
        std::mem::forget(discard_on_unwind);
        if let Err(errno) = outcome {
            tracing::warn!(errno, "io_uring_enter failed; dropping this thread's ring");
            self.discard_ring(&ring);
        }
    }
}

/// A panic inside `drive` unwinds past `execute`: the drained ring's state
/// is not trusted again, so it leaves the registry (and is freed).
struct DiscardOnUnwind<'a> {
    backend: &'a UringBackend,
    ring: &'a SharedRing,
}

impl Drop for DiscardOnUnwind<'_> {
    fn drop(&mut self) {
        self.backend.discard_ring(self.ring);
    }
}

/// Holds a ring for one `drive` call. Whenever it is dropped with SQEs in
/// the SQ or in the kernel's hands (a panic unwinding through `drive`),
/// it hands the queued ones over and waits for every completion: their
/// memory is the caller's, and the caller is about to get control back.
struct Drain<'a>(&'a mut ThreadRing);

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let ThreadRing { ring, flight, .. } = &mut *self.0;
        if flight.in_flight > 0 || !flight.queued.is_empty() {
            flight.drain(ring);
        }
    }
}

impl UringBackend {
    /// Submits and reaps until every op is done. Ops in flight never exceed
    /// the CQ size, so completions cannot overflow. On a non-transient
    /// `io_uring_enter` error, the ops not yet consumed by the kernel fail
    /// with it, in-flight ones are waited for, and `Err` asks the caller to
    /// drop the ring (its SQ still holds the unconsumed entries).
    unsafe fn drive(&self, tr: &mut ThreadRing, ops: &mut [Op]) -> Result<(), i32> {
        let drain = Drain(tr);
        let ThreadRing { ring, flight, progress, fixed } = &mut *drain.0;
        self.sync_fixed(fixed, ring);
        flight.reset();
        let faults = self.faults.as_deref();
        for i in (0..ops.len()).rev() {
            if self.info.supports(kernel::decode(&ops[i].kind).0.uring) {
                flight.todo.push(i);
            } else {
                run_blocking(&mut ops[i]);
            }
        }
        progress.clear();
        progress.extend(ops.iter().map(Progress::new));
        let progress = progress.as_mut_slice();
        let cq_cap = ring.params().cq_entries() as usize;
        while !flight.todo.is_empty() || flight.in_flight > 0 || !flight.queued.is_empty() {
            let (early, early_enters) = unsafe { flight.fill(ring, ops, progress, fixed, cq_cap, faults) };
            let want = usize::from(flight.in_flight + flight.queued.len() > 0);
            self.enter_calls.fetch_add(1 + early_enters, Ordering::Relaxed);
            let entered = enter_with_faults(faults, || ring.submit_and_wait(want));
            let consumed = early + flight.account_consumed(ring);
            self.sqes_submitted.fetch_add(consumed as u64, Ordering::Relaxed);
            if let Err(e) = entered {
                if is_transient(&e) {
                    self.busy_retries.fetch_add(1, Ordering::Relaxed);
                } else {
                    let errno = e.raw_os_error().unwrap_or(libc::EIO);
                    unsafe { flight.abandon(ring, ops, progress, errno, faults) };
                    return Err(errno);
                }
            }
            flight.reap(ring, ops, progress, faults);
        }
        self.fixed_buffer_sqes.fetch_add(flight.fixed_sqes, Ordering::Relaxed);
        Ok(())
    }

    /// Updates the ring's buffer registration (owning thread only), and
    /// records refusals: they are silent for the caller, not for operators.
    #[inline]
    fn sync_fixed(&self, fixed: &mut FixedRing, ring: &IoUring) {
        let failures = fixed.sync(ring);
        if let Some(last) = failures.last() {
            self.buffer_registration_failures.fetch_add(failures.len() as u64, Ordering::Relaxed);
            let reason = last.describe();
            tracing::debug!(%reason, "io_uring buffer registration refused; those buffers are used unregistered");
            *self.buffer_registration_reason.lock() = Some(reason);
        }
    }
}

/// Bookkeeping of one `drive` call: ops waiting to be queued, ops queued in
/// the SQ but not yet consumed by the kernel (in FIFO order, as the kernel
/// consumes them), and the count the kernel holds.
#[derive(Default)]
struct Flight {
    todo: Vec<usize>,
    queued: std::collections::VecDeque<usize>,
    in_flight: usize,
    /// SQEs of this call that used a registered buffer.
    fixed_sqes: u64,
}

impl Flight {
    fn reset(&mut self) {
        self.todo.clear();
        self.queued.clear();
        self.in_flight = 0;
        self.fixed_sqes = 0;
    }

    /// Queues ops while the SQ has room and the CQ could take every
    /// completion. While more remain, every `EARLY_SUBMIT` queued SQEs are
    /// handed to the kernel at once, so the device starts on them while the
    /// rest are prepared (docs/engine.md). Returns the SQEs the kernel took
    /// and the io_uring_enter calls that took them.
    unsafe fn fill(
        &mut self,
        ring: &mut IoUring,
        ops: &[Op],
        progress: &[Progress],
        fixed: &FixedRing,
        cq_cap: usize,
        faults: Option<&Injector>,
    ) -> (usize, u64) {
        let (mut consumed, mut enters) = (0, 0);
        loop {
            let mut pushed = 0;
            {
                let mut sq = ring.submission();
                while pushed < EARLY_SUBMIT && self.in_flight + self.queued.len() < cq_cap && !sq.is_full() {
                    let Some(i) = self.todo.pop() else { break };
                    // SAFETY: the entry's memory belongs to ops[i], valid until execute returns.
                    let (sqe, registered) = unsafe { sqe_with_faults(&ops[i], &progress[i], i, Some(fixed), faults) };
                    unsafe { sq.push(&sqe).expect("SQ has room") };
                    self.fixed_sqes += u64::from(registered);
                    self.queued.push_back(i);
                    pushed += 1;
                }
            }
            // The last group goes with the caller's submit_and_wait; an
            // error here is left for that call to meet and handle.
            if pushed < EARLY_SUBMIT || self.todo.is_empty() {
                return (consumed, enters);
            }
            enters += 1;
            if ring.submit().is_err() {
                return (consumed, enters);
            }
            consumed += self.account_consumed(ring);
        }
    }

    /// Moves what the kernel consumed from `queued` to `in_flight`.
    fn account_consumed(&mut self, ring: &mut IoUring) -> usize {
        let consumed = self.queued.len() - ring.submission().len();
        self.queued.drain(..consumed);
        self.in_flight += consumed;
        consumed
    }

    fn reap(&mut self, ring: &mut IoUring, ops: &mut [Op], progress: &mut [Progress], faults: Option<&Injector>) {
        for cqe in ring.completion() {
            self.in_flight -= 1;
            let (i, res) = completion_of(&cqe);
            if res == -(libc::ECANCELED as i64) {
                // We never cancel: the kernel could not run this piece, e.g.
                // it failed to start an io-wq worker while a signal was
                // pending for this thread. The piece did nothing; the op
                // continues here from what earlier pieces transferred (an
                // O_APPEND write must not write its start twice).
                run_blocking_from(&mut ops[i], &mut progress[i], faults);
                continue;
            }
            if progress[i].complete(&mut ops[i], res) == After::Resubmit {
                self.todo.push(i);
            }
        }
    }

    /// After a fatal enter error: fails what the kernel never took, waits for
    /// what it holds (its memory is the caller's), fails what would have
    /// needed another submission.
    unsafe fn abandon(
        &mut self,
        ring: &mut IoUring,
        ops: &mut [Op],
        progress: &mut [Progress],
        errno: i32,
        faults: Option<&Injector>,
    ) {
        let mut backoff = Backoff::default();
        while self.in_flight > 0 {
            // SAFETY: a plain wait; nothing is submitted.
            let waited = unsafe { ring.submitter().enter::<libc::sigset_t>(0, 1, setup::IORING_ENTER_GETEVENTS, None) };
            backoff.after(waited.is_ok());
            self.reap(ring, ops, progress, faults);
        }
        for i in self.queued.drain(..).chain(self.todo.drain(..)) {
            ops[i].result = -(errno as i64);
        }
    }

    /// Unwinding: hands queued SQEs to the kernel and waits until nothing
    /// is in flight, without looking at results. SQEs the kernel refuses
    /// stay in the SQ of a ring that is about to be discarded, never entered
    /// again.
    fn drain(&mut self, ring: &mut IoUring) {
        let mut backoff = Backoff::default();
        while self.in_flight > 0 || !self.queued.is_empty() {
            let entered = if self.queued.is_empty() {
                // SAFETY: a plain wait; nothing is submitted.
                unsafe { ring.submitter().enter::<libc::sigset_t>(0, 1, setup::IORING_ENTER_GETEVENTS, None) }.map(|_| 0)
            } else {
                ring.submit_and_wait(1)
            };
            self.account_consumed(ring);
            if entered.as_ref().is_err_and(|e| !is_transient(e)) {
                self.queued.clear();
            }
            backoff.after(entered.is_ok());
            self.in_flight -= ring.completion().count();
        }
    }
}

/// Waits between failed `io_uring_enter` waits, so a wait that keeps failing
/// (a signal storm, a broken ring) does not spin a core: 1 us doubling to
/// 10 ms, reset by a wait that succeeds.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const MAX: std::time::Duration = std::time::Duration::from_millis(10);

    fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_micros(1u64 << self.failures.min(14)).min(Self::MAX)
    }

    fn after(&mut self, ok: bool) {
        if ok {
            self.failures = 0;
            return;
        }
        std::thread::sleep(self.delay());
        self.failures = self.failures.saturating_add(1);
    }
}

/// The op index and result a CQE reports, with an injected fault's result
/// in place of its NOP's.
pub(crate) fn completion_of(cqe: &io_uring::cqueue::Entry) -> (usize, i64) {
    let data = cqe.user_data();
    let index = (data & 0xffff_ffff) as usize;
    if data & INJECTED == 0 {
        return (index, cqe.result() as i64);
    }
    match (data >> 32) as i32 & 0xffff {
        0 => panic!("injected panic while reaping op {index}"),
        errno => (index, -(errno as i64)),
    }
}

/// Whether a lone op is better done with a direct syscall on the calling
/// thread than through the ring. The caller waits either way; the ring only
/// pays off when the kernel can run the op asynchronously. It cannot for
/// fsync, fdatasync, fallocate and ftruncate (io_uring forces them onto an
/// io-wq worker) nor for buffered writes on ext4 (no async buffered-write
/// support: a worker again), and a buffered read of cached data is a copy.
/// Each hand-off to a worker costs two context switches: a lone 4 KiB
/// buffered write took 8-9 us through the ring and 1.2-2 us with pwrite,
/// write+fdatasync 238-385 us against 152-171 us (docs/engine.md). O_DIRECT
/// reads and writes, and every batch, go through the ring.
fn runs_direct(op: &Op) -> bool {
    op.cached || matches!(op.kind, OpKind::Fsync | OpKind::Fdatasync | OpKind::Fallocate { .. } | OpKind::Ftruncate { .. })
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY))
}

/// The SQE for the next piece of `op`, identified by `user_data` in its
/// completion (read it back with `completion_of`; the op-to-kernel table is
/// `engine/kernel.rs`), with completion faults applied. For callers that
/// own their ring (queues), which register no buffers.
///
/// # Safety
/// As `sqe_with_faults`.
pub(crate) unsafe fn sqe_for(op: &Op, progress: &Progress, index: usize, faults: Option<&Injector>) -> squeue::Entry {
    unsafe { sqe_with_faults(op, progress, index, None, faults) }.0
}

/// An error an injected fault puts in place of `io_uring_enter`, if any;
/// `enter` runs otherwise.
pub(crate) fn enter_with_faults(faults: Option<&Injector>, enter: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
    match faults.and_then(Injector::at_enter) {
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        None => enter(),
    }
}

/// The SQE of a call, and whether it uses a registered buffer (a call
/// whose row has a fixed-buffer form and whose piece lies inside one of the
/// ring's slots).
fn sqe_with_fixed(call: &kernel::Call, index: usize, fixed: Option<&FixedRing>) -> (squeue::Entry, bool) {
    let registered = fixed.filter(|_| call.row.has_fixed_form()).and_then(|f| f.index_of(call.addr as usize, call.len as usize));
    if let Some(slot) = registered {
        return (call.sqe_fixed(slot, index as u64), true);
    }
    (call.sqe(index as u64), false)
}

/// `sqe_with_fixed` with completion faults applied: a short count comes
/// from a shortened SQE, an error from a NOP whose CQE is read as that error.
unsafe fn sqe_with_faults(
    op: &Op,
    progress: &Progress,
    index: usize,
    fixed: Option<&FixedRing>,
    faults: Option<&Injector>,
) -> (squeue::Entry, bool) {
    let call = progress.step(op);
    match faults.and_then(|f| f.at_completion(&call, true)) {
        None => sqe_with_fixed(&call, index, fixed),
        // SAFETY: the iovec array is the op's, valid per `execute`'s contract.
        Some(Fault::Short) => sqe_with_fixed(&unsafe { call.halved() }, index, fixed),
        Some(fault) => (opcode::Nop::new().build().user_data(injected_user_data(index, fault)), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn backend(script: &[(u64, Fault)]) -> UringBackend {
        let params = RingParams { sq_entries: 8, cq_entries: 16, iowq_max_workers: [2, 2], first_rung: 0 };
        UringBackend::probe(params, Some(Arc::new(Injector::scripted(script)))).expect("io_uring works here")
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    /// Issue 11, bug 4: a piece that completes with ECANCELED did nothing;
    /// the op goes on from the bytes earlier pieces moved. Restarting it
    /// wrote the start of an O_APPEND write twice.
    #[test]
    fn an_ecanceled_piece_continues_from_the_bytes_already_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("append");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let data = pattern(64 << 10);
        // The first piece comes back short (32 KiB), the second is cancelled.
        let b = backend(&[(0, Fault::Short), (32 << 10, Fault::Fail(libc::ECANCELED))]);
        let mut op = Op::new(file.as_raw_fd(), OpKind::Write { buf: data.as_ptr(), len: data.len() }, 0);
        unsafe { b.execute(std::slice::from_mut(&mut op)) };
        assert_eq!(op.result, data.len() as i64);
        assert_eq!(std::fs::read(&path).unwrap(), data, "the file holds the write exactly once");
        assert_eq!(b.sqes_submitted.load(Ordering::Relaxed), 2, "two pieces went through the ring");
    }

    /// Issue 11, bug 8: a panic while reaping must not unwind past `drive`
    /// while reads are in flight; the ring is drained, discarded, and the
    /// thread's next call gets a fresh one.
    #[test]
    fn a_panic_while_reaping_drains_the_ring_before_unwinding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        const LEN: usize = 4 << 20;
        std::fs::write(&path, pattern(LEN)).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let b = backend(&[(0, Fault::Panic)]);
        let mut bufs = vec![vec![0u8; LEN]; 4];
        let mut ops: Vec<Op> = bufs
            .iter_mut()
            .map(|buf| Op::new(file.as_raw_fd(), OpKind::Read { buf: buf.as_mut_ptr(), len: LEN }, 0))
            .collect();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { b.execute(&mut ops) }));
        assert!(unwound.is_err(), "the injected panic unwinds to the caller");
        assert_eq!(b.rings(), 0, "the ring that panicked was discarded");
        // Nothing writes into the buffers after the unwind reached us.
        let snapshot = bufs.clone();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(bufs == snapshot, "a read landed after the unwind returned");
        // The same thread's next batch runs on a fresh ring, with no stale completions.
        let mut again: Vec<Op> = bufs
            .iter_mut()
            .map(|buf| Op::new(file.as_raw_fd(), OpKind::Read { buf: buf.as_mut_ptr(), len: LEN }, 0))
            .collect();
        unsafe { b.execute(&mut again) };
        assert!(again.iter().all(|op| op.result == LEN as i64));
        assert!(bufs.iter().all(|buf| *buf == pattern(LEN)));
        assert_eq!(b.rings(), 1);
    }

    /// Issue 11, bug 9: a wait that keeps failing is retried with growing
    /// sleeps (1 us doubling, capped at 10 ms), not in a busy loop.
    #[test]
    fn failing_waits_back_off_up_to_a_cap() {
        let mut backoff = Backoff::default();
        let mut delays = Vec::new();
        for _ in 0..16 {
            delays.push(backoff.delay());
            backoff.failures += 1;
        }
        assert_eq!(delays[0], std::time::Duration::from_micros(1));
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*delays.last().unwrap(), Backoff::MAX);
        backoff.after(true);
        assert_eq!(backoff.delay(), std::time::Duration::from_micros(1), "a successful wait resets it");
    }
}
