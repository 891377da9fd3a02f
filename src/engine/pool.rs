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

/// One op handed to a worker, and the latch to count down when it is done.
struct Job {
    op: *mut Op,
    latch: Arc<Latch>,
}

// SAFETY: the submitting thread waits on the latch before the op's memory
// can go away, so the pointer is valid for the whole job.
unsafe impl Send for Job {}

struct Latch {
    remaining: Mutex<usize>,
    zero: Condvar,
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
        job.latch.count_down();
    }
}

impl Backend for PoolBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::ThreadPool
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
        {
            let mut guard = self.queue.jobs.lock();
            guard.0.extend(rest.iter_mut().map(|op| Job { op, latch: latch.clone() }));
        }
        self.queue.ready.notify_all();
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
