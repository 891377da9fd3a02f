//! A mutex and a condition variable that keep working in a forked child.
//!
//! parking_lot parks contended threads in one process-wide hash table whose
//! buckets have locks of their own. A child of `fork()` inherits that table
//! as the parent's threads left it: buckets locked by a thread that was
//! parking or waking at that instant stay locked forever, and the first
//! contended lock or condvar wait in the child (or a new thread that makes
//! the table grow) hangs. This was seen: a child's new pool workers spun in
//! `grow_hashtable`. std's futex-based primitives keep all their state in
//! the object itself, so a fresh one (see `ForkLocal`) works in a child
//! whatever the parent's threads were doing. Everything the engine, its
//! queues and the WAL lock on a child's I/O path uses these.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// A mutex without poisoning (a panic while it is held is already handled
/// by the code that held it), with parking_lot's guard-style API.
#[derive(Default)]
pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

pub(crate) struct MutexGuard<'a, T> {
    mutex: &'a std::sync::Mutex<T>,
    held: Option<std::sync::MutexGuard<'a, T>>,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Mutex<T> {
        Mutex(std::sync::Mutex::new(value))
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard { mutex: &self.0, held: Some(lock(&self.0)) }
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(|e| e.into_inner())
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> MutexGuard<'_, T> {
    /// Runs `f` with the lock released, then takes it again.
    pub fn unlocked<R>(guard: &mut Self, f: impl FnOnce() -> R) -> R {
        drop(guard.held.take().expect("a guard holds its lock"));
        let result = f();
        guard.held = Some(lock(guard.mutex));
        result
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.held.as_ref().expect("a guard holds its lock outside Condvar::wait")
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.held.as_mut().expect("a guard holds its lock outside Condvar::wait")
    }
}

#[derive(Default)]
pub(crate) struct Condvar(std::sync::Condvar);

impl Condvar {
    pub const fn new() -> Condvar {
        Condvar(std::sync::Condvar::new())
    }

    /// Releases the guard's lock while waiting, like parking_lot's.
    pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
        let held = guard.held.take().expect("a guard holds its lock");
        guard.held = Some(self.0.wait(held).unwrap_or_else(|e| e.into_inner()));
    }

    /// Waits at most until `deadline`; true when it passed.
    pub fn wait_until<T>(&self, guard: &mut MutexGuard<'_, T>, deadline: Instant) -> bool {
        self.wait_for(guard, deadline.saturating_duration_since(Instant::now()))
    }

    /// Waits at most `timeout`; true when it passed.
    pub fn wait_for<T>(&self, guard: &mut MutexGuard<'_, T>, timeout: Duration) -> bool {
        let held = guard.held.take().expect("a guard holds its lock");
        let (held, result) = self.0.wait_timeout(held, timeout).unwrap_or_else(|e| e.into_inner());
        guard.held = Some(held);
        result.timed_out()
    }

    pub fn notify_one(&self) {
        self.0.notify_one();
    }

    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}
