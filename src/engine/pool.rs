//! The thread-pool backend: pread/pwrite/fsync on worker threads, with the
//! same semantics as io_uring (complete transfers, EINTR/EAGAIN retried).
//!
//! A single op runs on the calling thread: the caller blocks either way, and
//! a hand-off to a worker only adds two context switches (docs/engine.md).
//! Batches are spread over the workers, the caller taking a share, so a batch
//! of N reads has up to `workers + 1` syscalls in flight at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::{run_blocking, Backend, BackendKind, Op};

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

pub(crate) struct PoolBackend {
    queue: Arc<Queue>,
    workers: Vec<JoinHandle<()>>,
}

impl PoolBackend {
    pub fn new(threads: usize) -> std::io::Result<PoolBackend> {
        let queue = Arc::new(Queue { jobs: Mutex::new((VecDeque::new(), false)), ready: Condvar::new() });
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let q = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("rio-pool-{i}")).spawn(move || worker(&q));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => {
                    // Stop the workers already started before reporting.
                    drop(PoolBackend { queue, workers });
                    return Err(e);
                }
            }
        }
        Ok(PoolBackend { queue, workers })
    }
}

fn worker(queue: &Queue) {
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
        run_blocking(unsafe { &mut *job.op });
        job.done.job_done(job.index);
    }
}

impl PoolBackend {
    pub fn jobs(&self) -> Jobs {
        Jobs(self.queue.clone())
    }
}

impl Backend for PoolBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::ThreadPool
    }

    fn queue_machinery(&self, _depth: u32) -> crate::Result<super::queue::Machinery> {
        Ok(super::queue::Machinery::Pool(self.jobs()))
    }

    unsafe fn execute(&self, ops: &mut [Op]) {
        let Some((mine, rest)) = ops.split_first_mut() else {
            return;
        };
        if rest.is_empty() {
            run_blocking(mine);
            return;
        }
        let latch = Arc::new(Latch { remaining: Mutex::new(rest.len()), zero: Condvar::new() });
        let done: Arc<dyn JobDone> = latch.clone();
        self.jobs().spawn(rest.iter_mut().map(|op| Job { op, done: done.clone(), index: 0 }));
        run_blocking(mine);
        // Workers still hold pointers into `rest` until the latch reaches zero.
        latch.wait();
    }
}

impl Drop for PoolBackend {
    fn drop(&mut self) {
        self.queue.jobs.lock().1 = true;
        self.queue.ready.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
