//! The thread-pool backend: pread/pwrite/fsync on worker threads, with the
//! same semantics as io_uring (complete transfers, EINTR/EAGAIN retried).
//!
//! A single op runs on the calling thread: the caller blocks either way, and
//! a hand-off to a worker only adds two context switches (docs/engine.md).
//! Batches are spread over the workers, the caller taking a share, so a batch
//! of N reads has up to `workers + 1` syscalls in flight at once.
//!
//! Fork: workers and their job queue are per process (`ForkLocal`); a
//! forked child starts its own workers on first use and never touches the
//! parent's queue (its lock may be held by a worker that does not exist in
//! the child).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::sync::{Condvar, Mutex};

use super::completion_faults::Injector;
use super::fork::ForkLocal;
use super::{run_blocking_from, Backend, BackendKind, Op, Progress};

/// Told when a worker has finished an op: a batch's latch, or a queue's
/// completion list (src/engine/queue.rs).
pub(crate) trait JobDone: Send + Sync {
    /// The op `index` of this submitter is complete; the worker no longer
    /// references its memory once this returns.
    fn job_done(&self, index: u32);
}

/// One op handed to a worker, and whom to tell when it is done.
pub(crate) struct Job {
    pub op: *mut Op,
    pub done: Arc<dyn JobDone>,
    pub index: u32,
}

// SAFETY: the submitter keeps the op's memory alive until `job_done` (a
// batch waits on its latch, a queue's close waits for its completions), so
// the pointer is valid for the whole job.
unsafe impl Send for Job {}

struct Latch {
    remaining: Mutex<usize>,
    zero: Condvar,
}

impl JobDone for Latch {
    fn job_done(&self, _index: u32) {
        self.count_down();
    }
}

impl Latch {
    fn count_down(&self) {
        let mut left = self.remaining.lock();
        *left -= 1;
        if *left == 0 {
            self.zero.notify_all();
        }
    }

    fn wait(&self) {
        let mut left = self.remaining.lock();
        while *left > 0 {
            self.zero.wait(&mut left);
        }
    }
}

/// Waits for the workers when dropped, so no path out of `execute` (a
/// panic in the caller's own share included) returns while a worker still
/// writes into the caller's ops or buffers.
struct WaitForWorkers<'a>(&'a Latch);

impl Drop for WaitForWorkers<'_> {
    fn drop(&mut self) {
        self.0.wait();
    }
}

struct Queue {
    jobs: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
}

/// A handle on a pool's job queue, for submitters that do not wait (queues).
#[derive(Clone)]
pub(crate) struct Jobs(Arc<Queue>);

impl Jobs {
    /// Hands jobs to the workers; returns at once.
    pub fn spawn(&self, jobs: impl Iterator<Item = Job>) {
        self.0.jobs.lock().0.extend(jobs);
        self.0.ready.notify_all();
    }
}

/// One process's workers. `None` in a child that could not start any: its
/// batches then run on the calling thread.
struct Workers {
    queue: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

pub(crate) struct PoolBackend {
    threads: usize,
    workers: ForkLocal<Option<Workers>>,
    faults: Option<Arc<Injector>>,
}

impl PoolBackend {
    pub fn new(threads: usize, faults: Option<Arc<Injector>>) -> std::io::Result<PoolBackend> {
        let workers = Workers::start(threads, &faults)?;
        Ok(PoolBackend { threads, workers: ForkLocal::new(Some(workers)), faults })
    }

    /// This process's workers; a forked child starts its own here.
    fn workers(&self) -> Option<&Workers> {
        self.workers
            .get_or(|| match Workers::start(self.threads, &self.faults) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "thread pool: cannot start workers in this process; batches run on the calling thread");
                    None
                }
            })
            .as_ref()
    }
}

impl Workers {
    fn start(threads: usize, faults: &Option<Arc<Injector>>) -> std::io::Result<Workers> {
        let queue = Arc::new(Queue { jobs: Mutex::new((VecDeque::new(), false)), ready: Condvar::new() });
        let mut workers = Workers { queue, threads: Vec::with_capacity(threads) };
        for i in 0..threads.max(1) {
            let (q, faults) = (workers.queue.clone(), faults.clone());
            let spawned = std::thread::Builder::new().name(format!("rio-pool-{i}")).spawn(move || worker(&q, faults.as_deref()));
            // On error, dropping `workers` stops the ones already started.
            workers.threads.push(spawned?);
        }
        Ok(workers)
    }
}

fn worker(queue: &Queue, faults: Option<&Injector>) {
    loop {
        let job = {
            let mut guard = queue.jobs.lock();
            loop {
                if let Some(job) = guard.0.pop_front() {
                    break job;
                }
                if guard.1 {
                    return;
                }
                queue.ready.wait(&mut guard);
            }
        };
        // SAFETY: see `Job`.
        let op = unsafe { &mut *job.op };
        run_guarded(op, faults);
        job.done.job_done(job.index);
    }
}

impl PoolBackend {
    /// This process's job queue (a forked child's own workers), for queues.
    pub fn jobs(&self) -> Option<Jobs> {
        self.workers().map(|w| Jobs(w.queue.clone()))
    }
}

/// Runs an op on a worker. A panic (a bug, never an I/O error) fails the
/// op with ENOTRECOVERABLE: the worker lives on and the caller, waiting on
/// the latch, is neither hung nor unwound from another thread.
fn run_guarded(op: &mut Op, faults: Option<&Injector>) {
    let mut progress = Progress::new(op);
    if catch_unwind(AssertUnwindSafe(|| run_blocking_from(op, &mut progress, faults))).is_err() {
        tracing::error!(op = op.code().name(), "thread pool: an operation panicked; it fails with ENOTRECOVERABLE");
        op.result = -(libc::ENOTRECOVERABLE as i64);
    }
}

impl Backend for PoolBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::ThreadPool
    }

    fn queue_machinery(&self, _depth: u32) -> crate::Result<super::queue::Machinery> {
        match self.jobs() {
            Some(jobs) => Ok(super::queue::Machinery::Pool(jobs)),
            None => Err(crate::Error::new(libc::EAGAIN, "thread pool: no worker threads in this process")),
        }
    }

    unsafe fn execute(&self, ops: &mut [Op]) {
        let faults = self.faults.as_deref();
        let workers = match ops {
            [] => return,
            [op] => return run_blocking_from(op, &mut Progress::new(op), faults),
            _ => match self.workers() {
                Some(w) => w,
                None => return ops.iter_mut().for_each(|op| run_blocking_from(op, &mut Progress::new(op), faults)),
            },
        };
        let (mine, rest) = ops.split_first_mut().expect("two or more ops");
        let latch = Arc::new(Latch { remaining: Mutex::new(rest.len()), zero: Condvar::new() });
        let done: Arc<dyn JobDone> = latch.clone();
        // Workers hold pointers into `rest` until the latch reaches zero.
        let _wait = WaitForWorkers(&latch);
        Jobs(workers.queue.clone()).spawn(rest.iter_mut().map(|op| Job { op, done: done.clone(), index: 0 }));
        run_blocking_from(mine, &mut Progress::new(mine), faults);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.queue.jobs.lock().1 = true;
        self.queue.ready.notify_all();
        for w in self.threads.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::completion_faults::Fault;
    use crate::engine::OpKind;
    use std::os::fd::AsRawFd;

    fn file_of(len: usize) -> (tempfile::TempDir, std::fs::File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![7u8; len]).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        (dir, f)
    }

    fn reads(fd: i32, bufs: &mut [Vec<u8>]) -> Vec<Op> {
        let mut offset = 0;
        bufs.iter_mut()
            .map(|b| {
                let op = Op::new(fd, OpKind::Read { buf: b.as_mut_ptr(), len: b.len() }, offset);
                offset += b.len() as u64;
                op
            })
            .collect()
    }

    /// Issue 11, bug 8: a worker's panic fails its op; the batch returns.
    #[test]
    fn a_panicking_worker_fails_its_op_with_enotrecoverable() {
        let (_dir, f) = file_of(4 * 4096);
        let pool = PoolBackend::new(2, Some(Arc::new(Injector::scripted(&[(8192, Fault::Panic)])))).unwrap();
        let mut bufs = vec![vec![0u8; 4096]; 4];
        let mut ops = reads(f.as_raw_fd(), &mut bufs);
        unsafe { pool.execute(&mut ops) };
        let results: Vec<i64> = ops.iter().map(|op| op.result).collect();
        assert_eq!(results, [4096, 4096, -(libc::ENOTRECOVERABLE as i64), 4096]);
        // The worker lives on.
        let mut ops = reads(f.as_raw_fd(), &mut bufs);
        unsafe { pool.execute(&mut ops) };
        assert!(ops.iter().all(|op| op.result == 4096));
    }

    /// Issue 11, bug 8: a panic in the caller's own share unwinds only after
    /// the workers are done with the other ops (one of them stalls).
    #[test]
    fn a_panic_in_the_callers_share_waits_for_the_workers() {
        const LEN: usize = 1 << 20;
        let (_dir, f) = file_of(4 * LEN);
        let stall = Fault::Stall(std::time::Duration::from_millis(300));
        let script = [(0, Fault::Panic), (LEN as u64, stall)];
        let pool = PoolBackend::new(3, Some(Arc::new(Injector::scripted(&script)))).unwrap();
        let mut bufs = vec![vec![0u8; LEN]; 4];
        let mut ops = reads(f.as_raw_fd(), &mut bufs);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { pool.execute(&mut ops) }));
        assert!(unwound.is_err());
        assert!(ops[1..].iter().all(|op| op.result == LEN as i64), "the workers finished before the unwind returned");
    }
}
