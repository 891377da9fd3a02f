//! The engine: one `Op` model, one `Backend` interface, two implementations.
//!
//! Every I/O of the library (file calls, batches, the WAL) becomes a slice of
//! `Op`s handed to `Engine::execute`, which bounds concurrency, records
//! metrics and hands the ops to the backend. Backends run every op to
//! completion (continuing short transfers, retrying EINTR/EAGAIN) and return
//! only when the kernel no longer references any op's memory.

pub(crate) mod completion_faults;
pub(crate) mod fault;
pub(crate) mod fixed;
pub(crate) mod fork;
pub(crate) mod kernel;
mod limit;
pub(crate) mod sync;
pub(crate) mod pool;
pub(crate) mod queue;
pub(crate) mod uring;

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

pub(crate) use limit::Limit;

use crate::metrics::Metrics;
use completion_faults::Injector;
use fork::ForkLocal;
use kernel::{Call, Shape};

/// Linux caps a single read/write at this many bytes; longer requests are
/// continued as short transfers.
pub(crate) const MAX_RW_CHUNK: usize = 0x7fff_f000;

/// A sync slower than this is logged as a warning: storage that takes this
/// long to make data durable is worth an operator's attention.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(500);

/// What an operation does. Pointers are the caller's memory: it must stay
/// valid (and, for reads, unaliased) until `Engine::execute` returns.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OpKind {
    Read { buf: *mut u8, len: usize },
    Write { buf: *const u8, len: usize },
    Readv { iov: *const libc::iovec, iovcnt: usize },
    Writev { iov: *const libc::iovec, iovcnt: usize },
    Fsync,
    Fdatasync,
    /// `fallocate(2)` of `len` bytes at the op's offset with `mode`.
    Fallocate { mode: i32, len: u64 },
    /// `ftruncate(2)` to `len` bytes.
    Ftruncate { len: u64 },
}

/// One operation on one file descriptor, and its result once executed:
/// bytes transferred (reads: fewer than asked only at end of file), 0, or
/// `-errno`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub fd: RawFd,
    pub kind: OpKind,
    pub offset: u64,
    pub result: i64,
    /// The file goes through the page cache (not O_DIRECT), so a lone read
    /// may be served from it without the ring.
    pub cached: bool,
}

// SAFETY: an Op only carries pointers; whoever builds one promises the memory
// outlives `execute`, which is what lets worker threads run it.
unsafe impl Send for Op {}

impl Op {
    pub fn new(fd: RawFd, kind: OpKind, offset: u64) -> Op {
        Op { fd, kind, offset, result: 0, cached: false }
    }

    /// Total bytes a read/write should move (0 for the others).
    pub fn transfer_len(&self) -> u64 {
        let (row, args) = kernel::decode(&self.kind);
        match row.shape {
            Shape::Buffer => args.len,
            Shape::Vector => {
                iov_slice(args.addr as *const libc::iovec, args.len as usize).iter().map(|v| v.iov_len as u64).sum()
            }
            Shape::Control => 0,
        }
    }

    pub fn is_read(&self) -> bool {
        kernel::decode(&self.kind).0.reads
    }

    pub fn code(&self) -> OpCode {
        kernel::decode(&self.kind).0.code
    }
}

/// The op kinds as plain values, for metrics and capability reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    Read,
    Write,
    Readv,
    Writev,
    Fsync,
    Fdatasync,
    Fallocate,
    Ftruncate,
}

impl OpCode {
    pub const ALL: [OpCode; 8] = [
        OpCode::Read,
        OpCode::Write,
        OpCode::Readv,
        OpCode::Writev,
        OpCode::Fsync,
        OpCode::Fdatasync,
        OpCode::Fallocate,
        OpCode::Ftruncate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpCode::Read => "read",
            OpCode::Write => "write",
            OpCode::Readv => "readv",
            OpCode::Writev => "writev",
            OpCode::Fsync => "fsync",
            OpCode::Fdatasync => "fdatasync",
            OpCode::Fallocate => "fallocate",
            OpCode::Ftruncate => "ftruncate",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Vectored kinds belong to the family of their plain kind.
    pub fn family(self) -> OpCode {
        match self {
            OpCode::Readv => OpCode::Read,
            OpCode::Writev => OpCode::Write,
            other => other,
        }
    }
}

pub(crate) fn iov_slice<'a>(iov: *const libc::iovec, iovcnt: usize) -> &'a [libc::iovec] {
    if iovcnt == 0 {
        &[]
    } else {
        // SAFETY: the Op's builder guarantees iov points at iovcnt entries.
        unsafe { std::slice::from_raw_parts(iov, iovcnt) }
    }
}

/// Which backend a runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    IoUring,
    ThreadPool,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::IoUring => "io_uring",
            BackendKind::ThreadPool => "thread_pool",
        }
    }
}

/// The interface both backends implement.
pub(crate) trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;

    /// Runs every op to completion and stores its result.
    ///
    /// # Safety
    /// Every pointer in `ops` must be valid for the op's length until this
    /// returns; implementations return only when no submitted op is in flight.
    unsafe fn execute(&self, ops: &mut [Op]);

    /// What a queue of `depth` ops runs on (src/engine/queue.rs).
    fn queue_machinery(&self, _depth: u32) -> crate::Result<queue::Machinery> {
        Err(crate::Error::new(libc::EOPNOTSUPP, "queues are not available on this backend"))
    }
}

/// Progress of one op whose transfer may come back short.
///
/// Both backends drive it the same way: `step` describes the next kernel
/// call, `complete` folds in the kernel's result and says whether to
/// resubmit. Vectored ops copy their iovec array only when a short transfer
/// forces it to be advanced.
pub(crate) struct Progress {
    pub done: u64,
    total: u64,
    iov_owned: Option<Vec<libc::iovec>>,
}

/// What to do after a completion.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    Resubmit,
    Done,
}

impl Progress {
    pub fn new(op: &Op) -> Progress {
        Progress { done: 0, total: op.transfer_len(), iov_owned: None }
    }

    /// The next kernel call of `op`: the rest of its transfer (capped at
    /// what one syscall may move), or the whole op for control kinds.
    pub fn step(&self, op: &Op) -> Call {
        let (row, args) = kernel::decode(&op.kind);
        let base = Call { row, fd: op.fd, addr: args.addr, len: args.len, offset: op.offset, mode: args.mode };
        match row.shape {
            Shape::Buffer => Call {
                // wrapping_add: done <= len, so the pointer stays in (or one past) the buffer.
                addr: args.addr.wrapping_add(self.done as usize),
                len: (args.len - self.done).min(MAX_RW_CHUNK as u64),
                offset: op.offset + self.done,
                ..base
            },
            Shape::Vector => {
                let (iov, iovcnt) = match &self.iov_owned {
                    Some(v) => (v.as_ptr() as *mut u8, v.len() as u64),
                    None => (args.addr, args.len),
                };
                Call { addr: iov, len: iovcnt.min(libc::UIO_MAXIOV as u64), offset: op.offset + self.done, ..base }
            }
            Shape::Control => base,
        }
    }

    /// Folds in a kernel result (`res` bytes or `-errno`).
    pub fn complete(&mut self, op: &mut Op, res: i64) -> After {
        if res == -(libc::EINTR as i64) || res == -(libc::EAGAIN as i64) {
            return After::Resubmit;
        }
        if res < 0 {
            op.result = res;
            return After::Done;
        }
        if self.total == 0 {
            // fsync, fallocate, ftruncate, and zero-length transfers.
            op.result = res;
            return After::Done;
        }
        if res == 0 {
            // End of file for reads. A write that moves nothing would loop
            // forever; the kernel reports real causes (ENOSPC...) as errors.
            op.result = if op.is_read() { self.done as i64 } else { -(libc::EIO as i64) };
            return After::Done;
        }
        self.done += res as u64;
        if self.done >= self.total {
            op.result = self.total as i64;
            return After::Done;
        }
        self.advance_iov(op, res as usize);
        After::Resubmit
    }

    fn advance_iov(&mut self, op: &Op, mut n: usize) {
        let (row, args) = kernel::decode(&op.kind);
        if row.shape != Shape::Vector {
            return;
        }
        let v = self
            .iov_owned
            .get_or_insert_with(|| iov_slice(args.addr as *const libc::iovec, args.len as usize).to_vec());
        let mut skip = 0;
        for entry in v.iter_mut() {
            if n < entry.iov_len {
                entry.iov_base = unsafe { (entry.iov_base as *mut u8).add(n) } as *mut libc::c_void;
                entry.iov_len -= n;
                break;
            }
            n -= entry.iov_len;
            skip += 1;
        }
        v.drain(..skip);
    }
}

/// The engine of one runtime: concurrency bound + metrics + backend.
pub(crate) struct Engine {
    backend: Box<dyn Backend>,
    /// Per process: permits held by the parent's threads when it forked
    /// would never be returned in the child (those threads do not exist
    /// there), and its lock may be held; a child starts with a full bound.
    limit: ForkLocal<Arc<Limit>>,
    max_in_flight: usize,
    pub metrics: Arc<Metrics>,
}

impl Engine {
    pub fn new(backend: Box<dyn Backend>, max_in_flight: usize, metrics: Arc<Metrics>) -> Engine {
        Engine { backend, limit: ForkLocal::new(Arc::new(Limit::new(max_in_flight))), max_in_flight, metrics }
    }

    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// This process's concurrency bound, shared with queues (they hold
    /// permits across calls).
    #[inline]
    pub(crate) fn limit(&self) -> &Arc<Limit> {
        self.limit.get_or(|| Arc::new(Limit::new(self.max_in_flight)))
    }

    pub fn in_flight(&self) -> usize {
        self.limit().in_flight()
    }

    pub(crate) fn queue_machinery(&self, depth: u32) -> crate::Result<queue::Machinery> {
        self.backend.queue_machinery(depth)
    }

    /// Runs ops on the backend without taking permits or recording metrics:
    /// for a queue, which holds a permit per op and records its own.
    ///
    /// # Safety
    /// As `execute`.
    pub(crate) unsafe fn execute_held(&self, ops: &mut [Op]) {
        unsafe { self.backend.execute(ops) }
    }

    /// Runs `ops` to completion; every `op.result` is set on return.
    /// Batches larger than the concurrency bound run in bound-sized chunks.
    ///
    /// # Safety
    /// Every pointer in `ops` must be valid for its length until this returns.
    pub unsafe fn execute(&self, ops: &mut [Op]) {
        if let [op] = ops {
            return unsafe { self.execute_single(op) };
        }
        let limit = self.limit();
        for chunk in ops.chunks_mut(limit.capacity()) {
            let _permits = limit.acquire(chunk.len());
            let start = Instant::now();
            unsafe { self.backend.execute(chunk) };
            let elapsed = start.elapsed();
            self.metrics.record_batch(chunk, elapsed);
            self.warn_if_slow_sync(chunk, elapsed);
        }
    }

    /// The common case, kept short: one op, timed only when sampled.
    #[inline]
    unsafe fn execute_single(&self, op: &mut Op) {
        let _permit = self.limit().acquire(1);
        match crate::metrics::latency_weight(op) {
            None => {
                unsafe { self.backend.execute(std::slice::from_mut(op)) };
                self.metrics.record_op(op, None);
            }
            Some(weight) => {
                let start = Instant::now();
                unsafe { self.backend.execute(std::slice::from_mut(op)) };
                let elapsed = start.elapsed();
                self.metrics.record_op(op, Some((elapsed.as_nanos() as u64, weight)));
                self.warn_if_slow_sync(std::slice::from_ref(op), elapsed);
            }
        }
    }

    fn warn_if_slow_sync(&self, ops: &[Op], elapsed: std::time::Duration) {
        if elapsed >= SLOW_SYNC && ops.iter().any(|op| matches!(op.kind, OpKind::Fsync | OpKind::Fdatasync)) {
            tracing::warn!(elapsed_ms = elapsed.as_millis() as u64, ops = ops.len(), "slow fsync/fdatasync");
        }
    }

    /// Runs one op and returns its result.
    pub unsafe fn execute_one(&self, op: Op) -> i64 {
        let mut op = op;
        unsafe { self.execute_single(&mut op) };
        op.result
    }
}

/// Runs one op with plain blocking syscalls until it completes; the thread
/// pool's whole job, and the io_uring backend's path for opcodes the ring
/// does not support.
pub(crate) fn run_blocking(op: &mut Op) {
    finish_blocking(op, &mut Progress::new(op));
}

/// Continues an op from `progress` with blocking syscalls until it completes.
pub(crate) fn finish_blocking(op: &mut Op, progress: &mut Progress) {
    run_blocking_from(op, progress, None);
}

/// Continues `op` from `progress` with blocking syscalls until it
/// completes. `faults` (a test setting) may replace a syscall's result, at
/// the point where the real result would arrive.
pub(crate) fn run_blocking_from(op: &mut Op, progress: &mut Progress, faults: Option<&Injector>) {
    loop {
        let call = progress.step(op);
        // SAFETY: the call's memory is the op's, valid per `execute`'s contract.
        let res = unsafe {
            match faults.and_then(|f| f.at_completion(&call, false)) {
                None => call.run(),
                Some(fault) => fault.apply_blocking(&call),
            }
        };
        if progress.complete(op, res) == After::Done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iov(buf: &mut [u8]) -> libc::iovec {
        libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() }
    }

    #[test]
    fn short_read_is_continued_from_where_it_stopped() {
        let mut buf = [0u8; 100];
        let mut op = Op::new(3, OpKind::Read { buf: buf.as_mut_ptr(), len: 100 }, 1000);
        let mut p = Progress::new(&op);
        assert_eq!(p.complete(&mut op, 30), After::Resubmit);
        let call = p.step(&op);
        assert_eq!((call.addr as usize - buf.as_ptr() as usize, call.len, call.offset), (30, 70, 1030));
        assert_eq!(p.complete(&mut op, -(libc::EINTR as i64)), After::Resubmit);
        assert_eq!(p.complete(&mut op, -(libc::EAGAIN as i64)), After::Resubmit);
        assert_eq!(p.complete(&mut op, 20), After::Resubmit);
        // End of file: the read is short, with what was read so far.
        assert_eq!(p.complete(&mut op, 0), After::Done);
        assert_eq!(op.result, 50);
    }

    #[test]
    fn short_vectored_write_advances_across_iovecs() {
        let (mut a, mut b, mut c) = ([0u8; 10], [0u8; 20], [0u8; 30]);
        let v = [iov(&mut a), iov(&mut b), iov(&mut c)];
        let mut op = Op::new(3, OpKind::Writev { iov: v.as_ptr(), iovcnt: 3 }, 0);
        let mut p = Progress::new(&op);
        assert_eq!(p.complete(&mut op, 15), After::Resubmit);
        let call = p.step(&op);
        let rest = iov_slice(call.addr as *const libc::iovec, call.len as usize);
        assert_eq!((rest.len(), call.offset), (2, 15));
        assert_eq!(rest[0].iov_base as usize, b.as_ptr() as usize + 5);
        assert_eq!(rest[0].iov_len, 15);
        assert_eq!(p.complete(&mut op, 45), After::Done);
        assert_eq!(op.result, 60);
    }

    #[test]
    fn errors_end_the_op_and_zero_byte_writes_do_not_loop() {
        let data = [1u8; 8];
        let mut op = Op::new(3, OpKind::Write { buf: data.as_ptr(), len: 8 }, 0);
        let mut p = Progress::new(&op);
        assert_eq!(p.complete(&mut op, 0), After::Done);
        assert_eq!(op.result, -(libc::EIO as i64));
        let mut op = Op::new(3, OpKind::Fdatasync, 0);
        let mut p = Progress::new(&op);
        assert_eq!(p.complete(&mut op, -(libc::ENOSPC as i64)), After::Done);
        assert_eq!(op.result, -(libc::ENOSPC as i64));
    }
}
