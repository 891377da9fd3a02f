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

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use io_uring::{opcode, squeue, types, IoUring, Probe};
use parking_lot::Mutex;

use super::{run_blocking, After, Backend, BackendKind, Op, OpKind, Progress, Step};

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
const EARLY_SUBMIT: usize = 4;

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
    registry: Arc<Registry>,
    pub sqes_submitted: AtomicU64,
    pub enter_calls: AtomicU64,
    /// Lone ops run with a direct syscall instead of the ring (`runs_direct`).
    pub direct_ops: AtomicU64,
    /// Calls that ran with blocking syscalls because no ring could be created.
    pub ring_failures: AtomicU64,
    /// io_uring_enter calls that returned EBUSY/EAGAIN/EINTR and were retried
    /// after reaping (CQ backpressure, memory pressure, signals).
    pub busy_retries: AtomicU64,
}

/// A thread's handle on one runtime's ring; removes the ring from the
/// registry when the thread exits.
struct LocalRing {
    registry: Weak<Registry>,
    ring: Weak<Mutex<ThreadRing>>,
}

impl Drop for LocalRing {
    fn drop(&mut self) {
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
    pub fn probe(params: RingParams) -> Result<UringBackend, String> {
        let mut last_err = None;
        for (name, flags) in &LADDER[params.first_rung.min(LADDER.len() - 1)..] {
            match build_ring(*flags, &params) {
                Ok(ring) => return Self::from_probe_ring(ring, *flags, name, params),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
                Err(e) => return Err(setup_failure_reason(&e)),
            }
        }
        Err(setup_failure_reason(&last_err.expect("the ladder is not empty")))
    }

    fn from_probe_ring(ring: IoUring, flags: u32, name: &'static str, params: RingParams) -> Result<UringBackend, String> {
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
            registry: Arc::new(Mutex::new(Vec::new())),
            sqes_submitted: AtomicU64::new(0),
            enter_calls: AtomicU64::new(0),
            direct_ops: AtomicU64::new(0),
            ring_failures: AtomicU64::new(0),
            busy_retries: AtomicU64::new(0),
        })
    }

    pub fn info(&self) -> &RingInfo {
        &self.info
    }

    /// The calling thread's ring for this backend, created on first use.
    fn local_ring(&self) -> io::Result<SharedRing> {
        LOCAL_RINGS.with(|cell| {
            let mut rings = cell.borrow_mut();
            let mine = Arc::downgrade(&self.registry);
            if let Some(ring) = rings.iter().find(|r| r.registry.ptr_eq(&mine)).and_then(|r| r.ring.upgrade()) {
                return Ok(ring);
            }
            // Drop entries of closed runtimes, and a ring discarded after a
            // fatal error, before adding the new one.
            rings.retain(|r| r.registry.strong_count() > 0 && !r.registry.ptr_eq(&mine));
            let ring = build_ring(self.info.setup_flags, &self.params)?;
            let ring = Arc::new(Mutex::new(ThreadRing { ring, flight: Flight::default(), progress: Vec::new() }));
            self.registry.lock().push(ring.clone());
            rings.push(LocalRing { registry: mine, ring: Arc::downgrade(&ring) });
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
        self.registry.lock().retain(|r| !Arc::ptr_eq(r, ring));
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
        Ok(super::queue::Machinery::Ring(ring))
    }

    unsafe fn execute(&self, ops: &mut [Op]) {
        if let [op] = ops {
            if runs_direct(op) {
                run_blocking(op);
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
        let mut guard = ring.lock();
        let outcome = unsafe { self.drive(&mut guard, ops) };
        drop(guard);
        if let Err(errno) = outcome {
            tracing::warn!(errno, "io_uring_enter failed; dropping this thread's ring");
            self.discard_ring(&ring);
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
        let ThreadRing { ring, flight, progress } = tr;
        flight.reset();
        for i in (0..ops.len()).rev() {
            if self.info.supports(uring_code(&ops[i])) {
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
            let (early, early_enters) = unsafe { flight.fill(ring, ops, progress, cq_cap) };
            let want = usize::from(flight.in_flight + flight.queued.len() > 0);
            self.enter_calls.fetch_add(1 + early_enters, Ordering::Relaxed);
            let entered = ring.submit_and_wait(want);
            let consumed = early + flight.account_consumed(ring);
            self.sqes_submitted.fetch_add(consumed as u64, Ordering::Relaxed);
            if let Err(e) = entered {
                if is_transient(&e) {
                    self.busy_retries.fetch_add(1, Ordering::Relaxed);
                } else {
                    let errno = e.raw_os_error().unwrap_or(libc::EIO);
                    unsafe { flight.abandon(ring, ops, progress, errno) };
                    return Err(errno);
                }
            }
            flight.reap(ring, ops, progress);
        }
        Ok(())
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
}

impl Flight {
    fn reset(&mut self) {
        self.todo.clear();
        self.queued.clear();
        self.in_flight = 0;
    }

    /// Queues ops while the SQ has room and the CQ could take every
    /// completion. While more remain, every `EARLY_SUBMIT` queued SQEs are
    /// handed to the kernel at once, so the device starts on them while the
    /// rest are prepared (docs/engine.md). Returns the SQEs the kernel took
    /// and the io_uring_enter calls that took them.
    unsafe fn fill(&mut self, ring: &mut IoUring, ops: &[Op], progress: &[Progress], cq_cap: usize) -> (usize, u64) {
        let (mut consumed, mut enters) = (0, 0);
        loop {
            let mut pushed = 0;
            {
                let mut sq = ring.submission();
                while pushed < EARLY_SUBMIT && self.in_flight + self.queued.len() < cq_cap && !sq.is_full() {
                    let Some(i) = self.todo.pop() else { break };
                    // SAFETY: the entry's memory belongs to ops[i], valid until execute returns.
                    unsafe { sq.push(&sqe_for(&ops[i], &progress[i], i)).expect("SQ has room") };
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

    fn reap(&mut self, ring: &mut IoUring, ops: &mut [Op], progress: &mut [Progress]) {
        for cqe in ring.completion() {
            let i = cqe.user_data() as usize;
            self.in_flight -= 1;
            if cqe.result() == -libc::ECANCELED {
                // We never cancel: the kernel could not run the op, e.g. it
                // failed to start an io-wq worker while a signal was pending
                // for this thread. The op did nothing; do it here instead.
                run_blocking(&mut ops[i]);
                continue;
            }
            if progress[i].complete(&mut ops[i], cqe.result() as i64) == After::Resubmit {
                self.todo.push(i);
            }
        }
    }

    /// After a fatal enter error: fails what the kernel never took, waits for
    /// what it holds (its memory is the caller's), fails what would have
    /// needed another submission.
    unsafe fn abandon(&mut self, ring: &mut IoUring, ops: &mut [Op], progress: &mut [Progress], errno: i32) {
        while self.in_flight > 0 {
            // SAFETY: a plain wait; nothing is submitted.
            let _ = unsafe { ring.submitter().enter::<libc::sigset_t>(0, 1, setup::IORING_ENTER_GETEVENTS, None) };
            self.reap(ring, ops, progress);
        }
        for i in self.queued.drain(..).chain(self.todo.drain(..)) {
            ops[i].result = -(errno as i64);
        }
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

fn uring_code(op: &Op) -> u8 {
    match op.kind {
        OpKind::Read { .. } => opcode::Read::CODE,
        OpKind::Write { .. } => opcode::Write::CODE,
        OpKind::Readv { .. } => opcode::Readv::CODE,
        OpKind::Writev { .. } => opcode::Writev::CODE,
        OpKind::Fsync | OpKind::Fdatasync => opcode::Fsync::CODE,
        OpKind::Fallocate { .. } => opcode::Fallocate::CODE,
        OpKind::Ftruncate { .. } => opcode::Ftruncate::CODE,
    }
}

pub(crate) fn sqe_for(op: &Op, progress: &Progress, index: usize) -> squeue::Entry {
    let fd = types::Fd(op.fd);
    let entry = match (op.kind, progress.step(op)) {
        (OpKind::Read { .. }, Step::Buf { addr, len, offset }) => {
            opcode::Read::new(fd, addr, len as u32).offset(offset).build()
        }
        (OpKind::Write { .. }, Step::Buf { addr, len, offset }) => {
            opcode::Write::new(fd, addr, len as u32).offset(offset).build()
        }
        (OpKind::Readv { .. }, Step::Iov { iov, iovcnt, offset }) => {
            opcode::Readv::new(fd, iov, iovcnt as u32).offset(offset).build()
        }
        (OpKind::Writev { .. }, Step::Iov { iov, iovcnt, offset }) => {
            opcode::Writev::new(fd, iov, iovcnt as u32).offset(offset).build()
        }
        (OpKind::Fsync, _) => opcode::Fsync::new(fd).build(),
        (OpKind::Fdatasync, _) => opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build(),
        (OpKind::Fallocate { mode, len }, _) => opcode::Fallocate::new(fd, len).offset(op.offset).mode(mode).build(),
        (OpKind::Ftruncate { len }, _) => opcode::Ftruncate::new(fd, len).build(),
        _ => unreachable!("Progress::step matches the op kind"),
    };
    entry.user_data(index as u64)
}
