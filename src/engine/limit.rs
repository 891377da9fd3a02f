//! The per-runtime bound on operations in flight. Blocking callers beyond
//! the bound wait; they never fail. Queues take permits without waiting
//! (`try_acquire_up_to`) and keep the ops that got none queued. The
//! uncontended path is one CAS.

use super::sync::{Condvar, Mutex};
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct Limit {
    capacity: usize,
    available: AtomicUsize,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
}

/// Permits held for one chunk of ops; released on drop.
pub(crate) struct Permits<'a> {
    limit: &'a Limit,
    n: usize,
}

impl Limit {
    pub fn new(capacity: usize) -> Limit {
        let capacity = capacity.max(1);
        Limit {
            capacity,
            available: AtomicUsize::new(capacity),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Takes `n` (<= capacity) permits at once, waiting until they are free.
    /// All-or-nothing, so two large batches cannot deadlock each holding half.
    pub fn acquire(&self, n: usize) -> Permits<'_> {
        debug_assert!(n <= self.capacity);
        if !self.try_take(n) {
            let mut guard = self.lock.lock();
            self.waiters.fetch_add(1, Ordering::SeqCst);
            while !self.try_take(n) {
                self.freed.wait(&mut guard);
            }
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
        Permits { limit: self, n }
    }

    /// Takes as many of `n` permits as are free right now, without waiting;
    /// returns how many. The caller gives each back with `release` when its
    /// op completes (queues hold permits across calls, so no guard type).
    pub fn try_acquire_up_to(&self, n: usize) -> usize {
        let mut cur = self.available.load(Ordering::SeqCst);
        loop {
            let take = cur.min(n);
            if take == 0 {
                return 0;
            }
            match self.available.compare_exchange_weak(cur, cur - take, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return take,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Gives back `n` permits taken with `try_acquire_up_to`, waking
    /// blocked callers.
    pub fn release(&self, n: usize) {
        self.available.fetch_add(n, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this notify after a waiter's failed
            // try_take, so the wakeup cannot be lost.
            let _guard = self.lock.lock();
            self.freed.notify_all();
        }
    }

    fn try_take(&self, n: usize) -> bool {
        let mut cur = self.available.load(Ordering::SeqCst);
        loop {
            if cur < n {
                return false;
            }
            match self.available.compare_exchange_weak(cur, cur - n, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Operations currently holding a permit.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.available.load(Ordering::Relaxed)
    }
}

impl Drop for Permits<'_> {
    fn drop(&mut self) {
        self.limit.release(self.n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn callers_beyond_the_bound_wait_and_all_finish() {
        let limit = Arc::new(Limit::new(3));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (limit, peak) = (limit.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _p = limit.acquire(1 + i % 3);
                        peak.fetch_max(limit.in_flight(), Ordering::SeqCst);
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(limit.in_flight(), 0);
    }

    #[test]
    fn non_blocking_acquire_takes_what_is_free_and_release_wakes_waiters() {
        let limit = Arc::new(Limit::new(4));
        assert_eq!(limit.try_acquire_up_to(3), 3);
        assert_eq!(limit.try_acquire_up_to(3), 1);
        assert_eq!(limit.try_acquire_up_to(1), 0);
        assert_eq!(limit.in_flight(), 4);
        let waiter = {
            let limit = limit.clone();
            std::thread::spawn(move || drop(limit.acquire(2)))
        };
        limit.release(1);
        limit.release(1);
        waiter.join().unwrap();
        limit.release(2);
        assert_eq!(limit.in_flight(), 0);
    }
}
