//! Asynchronous queues: keep operations in flight from one thread without
//! blocking (docs/queues.md).
//!
//! [`Queue`] is the safe API: buffers are moved in with each op and handed
//! back with its completion, and the queue keeps every file it has an op on
//! open, so nothing the kernel or a worker may still touch can be freed or
//! reused. `RawQueue` is the layer under it (and under the C API): ops
//! carry raw pointers and the caller keeps their memory valid until reaped.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::buf::AlignedBuf;
use crate::engine::queue::{EngineQueue, MAX_QUEUE_DEPTH};
use crate::engine::{Op, OpKind};
use crate::error::{Error, Result};
use crate::file::DiskFile;
use crate::runtime::Runtime;

/// A queue whose ops carry raw pointers; `T` is kept per op and handed back
/// when the op is reaped. Used by one thread at a time, from any thread.
pub(crate) struct RawQueue<T> {
    core: EngineQueue<T>,
    /// Keeps the runtime (its engine, workers and permits) alive while ops
    /// run; `None` only while dropping in a forked child.
    rt: Option<Runtime>,
}

impl<T> RawQueue<T> {
    /// Opens a queue of at most `depth` ops pushed and not reaped
    /// (1..=4096; 0 = the runtime's queue_depth, capped at 4096).
    pub fn open(rt: &Runtime, depth: u32) -> Result<RawQueue<T>> {
        let depth = if depth == 0 { rt.capabilities().settings.queue_depth.min(MAX_QUEUE_DEPTH) } else { depth };
        Ok(RawQueue { core: EngineQueue::open(rt.engine(), depth)?, rt: Some(rt.clone()) })
    }

    /// Queues `n` ops built by `make(i)`, each keeping `payload(i)`: all of
    /// them, or none when one fails (its error) or fewer than `n` slots are
    /// free (EAGAIN; `payload` is then never called). Nothing starts before
    /// `submit`.
    ///
    /// # Safety
    /// Every pointer of every op must stay valid for the op's length, and
    /// its fd open, until the op is reaped or the queue is dropped.
    pub unsafe fn push(&mut self, n: usize, make: impl FnMut(usize) -> Result<Op>, payload: impl FnMut(usize) -> T) -> Result<()> {
        self.core.push(n, make, payload)
    }

    /// Starts the pushed ops; returns how many started. Ops beyond the
    /// runtime's max_concurrent_ops stay queued and start at a later
    /// submit or reap. Never waits for the device.
    pub fn submit(&mut self) -> Result<usize> {
        self.core.submit()
    }

    /// Waits until at least `min` ops are complete (`timeout` None: no
    /// limit, zero: poll), then hands up to `max` of them, with their
    /// results (bytes, 0 or -errno), to `sink`; returns how many.
    /// ETIMEDOUT (nothing handed over) when fewer completed in time; EINVAL
    /// when `min` exceeds `pending()`.
    pub fn reap(&mut self, max: usize, min: usize, timeout: Option<Duration>, sink: impl FnMut(T, i64)) -> Result<usize> {
        self.core.reap(max, min, timeout, sink)
    }

    /// Ops pushed and not yet reaped.
    pub fn pending(&self) -> usize {
        self.core.pending()
    }

    pub fn depth(&self) -> usize {
        self.core.depth()
    }

    /// An eventfd, owned by the queue, that polls readable when a reap may
    /// find complete ops.
    pub fn fd(&mut self) -> Result<RawFd> {
        self.core.fd()
    }

    /// EBUSY when the queue was inherited through fork (it belongs to the parent).
    pub fn check_usable(&self) -> Result<()> {
        self.core.check_usable()
    }
}

impl<T> Drop for RawQueue<T> {
    fn drop(&mut self) {
        if self.core.check_usable().is_err() {
            // A forked child must not run the runtime's teardown (joining
            // workers it does not have); see engine/queue.rs for the rest.
            std::mem::forget(self.rt.take());
        }
        // `core` drops next: it waits for every started op.
    }
}

/// A buffer that can be moved into a queue: its memory stays where it is
/// when the value moves, and it is exclusively the queue's until handed back.
///
/// # Safety
/// `as_mut_ptr` must return a pointer valid for `len` bytes of reads and
/// writes for as long as the value lives and is not accessed otherwise,
/// unchanged by moving the value.
pub unsafe trait IoBuf: Send + 'static {
    fn as_mut_ptr(&mut self) -> *mut u8;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: a Vec's heap buffer does not move with the Vec; reads fill its
// initialised length.
unsafe impl IoBuf for Vec<u8> {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_slice().as_mut_ptr()
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

unsafe impl IoBuf for Box<[u8]> {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        (**self).as_mut_ptr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

unsafe impl IoBuf for AlignedBuf {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        (**self).as_mut_ptr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

/// What the queue holds for one op of a [`Queue`].
struct Held<B> {
    _file: Arc<DiskFile>,
    buf: Option<B>,
    user_data: u64,
}

/// A finished op of a [`Queue`].
pub struct Completion<B> {
    /// As given when the op was pushed.
    pub user_data: u64,
    /// Bytes transferred (reads: fewer than the buffer only at end of file), 0 for syncs.
    pub result: Result<usize>,
    /// The op's buffer, back to the caller (None for syncs).
    pub buf: Option<B>,
}

/// A push the queue refused; the buffer comes back.
pub struct PushError<B> {
    pub error: Error,
    pub buf: Option<B>,
}

impl<B> std::fmt::Debug for PushError<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushError").field("error", &self.error).finish_non_exhaustive()
    }
}

/// A safe asynchronous queue over owned buffers of type `B`.
///
/// ```no_run
/// # use std::sync::Arc;
/// # fn main() -> rio::Result<()> {
/// let rt = rio::Runtime::from_env()?;
/// let file = Arc::new(rio::DiskFile::open(&rt, "data", rio::open_flags::READ, 0)?);
/// let mut q: rio::Queue<Vec<u8>> = rio::Queue::new(&rt, 32)?;
/// q.read(&file, vec![0; 4096], 0, 7).map_err(|e| e.error)?;
/// q.submit()?;
/// for c in q.reap(1, 32, None)? {
///     let n = c.result?;
///     println!("op {} read {n} bytes", c.user_data);
/// }
/// # Ok(()) }
/// ```
///
/// Dropping the queue waits for every started op; unreaped buffers are
/// then dropped with it.
pub struct Queue<B: IoBuf = Vec<u8>> {
    raw: RawQueue<Held<B>>,
}

impl<B: IoBuf> Queue<B> {
    /// A queue of at most `depth` ops pushed and not reaped (0 = the runtime's queue_depth).
    pub fn new(rt: &Runtime, depth: u32) -> Result<Queue<B>> {
        Ok(Queue { raw: RawQueue::open(rt, depth)? })
    }

    fn push(&mut self, file: &Arc<DiskFile>, kind: impl FnOnce(Option<&mut B>) -> OpKind, mut buf: Option<B>, offset: u64, user_data: u64) -> std::result::Result<(), PushError<B>> {
        let op = match file.prepare(kind(buf.as_mut()), offset) {
            Ok(op) => op,
            Err(error) => return Err(PushError { error, buf }),
        };
        let mut held = Some(Held { _file: file.clone(), buf, user_data });
        // SAFETY: the op points into `held.buf`, which the queue owns until
        // the op is reaped (moving a B does not move its memory), and the
        // queue holds the file open.
        let pushed = unsafe { self.raw.push(1, |_| Ok(op), |_| held.take().expect("one payload for one op")) };
        match pushed {
            Ok(()) => Ok(()),
            Err(error) => {
                let buf = held.and_then(|h| h.buf);
                Err(PushError { error, buf })
            }
        }
    }

    /// Queues a read of `buf.len()` bytes at `offset`.
    pub fn read(&mut self, file: &Arc<DiskFile>, buf: B, offset: u64, user_data: u64) -> std::result::Result<(), PushError<B>> {
        let kind = |b: Option<&mut B>| {
            let b = b.expect("a read has a buffer");
            OpKind::Read { buf: b.as_mut_ptr(), len: b.len() }
        };
        self.push(file, kind, Some(buf), offset, user_data)
    }

    /// Queues a write of all of `buf` at `offset`.
    pub fn write(&mut self, file: &Arc<DiskFile>, buf: B, offset: u64, user_data: u64) -> std::result::Result<(), PushError<B>> {
        let kind = |b: Option<&mut B>| {
            let b = b.expect("a write has a buffer");
            OpKind::Write { buf: b.as_mut_ptr(), len: b.len() }
        };
        self.push(file, kind, Some(buf), offset, user_data)
    }

    /// Queues an fsync of the file.
    pub fn fsync(&mut self, file: &Arc<DiskFile>, user_data: u64) -> Result<()> {
        self.push(file, |_| OpKind::Fsync, None, 0, user_data).map_err(|e| e.error)
    }

    /// Queues an fdatasync of the file.
    pub fn fdatasync(&mut self, file: &Arc<DiskFile>, user_data: u64) -> Result<()> {
        self.push(file, |_| OpKind::Fdatasync, None, 0, user_data).map_err(|e| e.error)
    }

    /// Starts the pushed ops; returns how many started. Ops beyond the
    /// runtime's max_concurrent_ops stay queued and start at a later submit
    /// or reap. Never waits for the device.
    pub fn submit(&mut self) -> Result<usize> {
        self.raw.submit()
    }

    /// Waits until at least `min` ops are complete (`timeout` None: no
    /// limit, zero: poll) and returns up to `max` of them. ETIMEDOUT
    /// (nothing returned) when fewer completed in time; EINVAL when `min`
    /// exceeds `pending()`, or with no time limit when `min` ops can never
    /// complete because some were never submitted.
    pub fn reap(&mut self, min: usize, max: usize, timeout: Option<Duration>) -> Result<Vec<Completion<B>>> {
        let mut out = Vec::with_capacity(max.min(self.pending()));
        self.reap_into(&mut out, min, max, timeout)?;
        Ok(out)
    }

    /// Like `reap`, appending to `out`; returns how many were appended.
    pub fn reap_into(&mut self, out: &mut Vec<Completion<B>>, min: usize, max: usize, timeout: Option<Duration>) -> Result<usize> {
        self.raw.reap(max, min, timeout, |held, result| {
            let result = if result < 0 { Err(Error::os((-result) as i32, "queue op")) } else { Ok(result as usize) };
            out.push(Completion { user_data: held.user_data, result, buf: held.buf });
        })
    }

    pub fn pending(&self) -> usize {
        self.raw.pending()
    }

    pub fn depth(&self) -> usize {
        self.raw.depth()
    }

    /// An eventfd, owned by the queue, that polls readable when a reap may
    /// find complete ops; valid while the queue lives.
    pub fn fd(&mut self) -> Result<RawFd> {
        self.raw.fd()
    }
}
