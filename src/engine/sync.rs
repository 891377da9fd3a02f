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
//! whatever the parent's threads were doing. Everything the engine locks
//! on a child's I/O path uses these.

use std::ops::{Deref, DerefMut};

/// A mutex without poisoning (a panic while it is held is already handled
/// by the code that held it), with parking_lot's guard-style API.
#[derive(Default)]
pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

pub(crate) struct MutexGuard<'a, T>(Option<std::sync::MutexGuard<'a, T>>);

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Mutex<T> {
        Mutex(std::sync::Mutex::new(value))
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("a guard holds its lock outside Condvar::wait")
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("a guard holds its lock outside Condvar::wait")
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
        let held = guard.0.take().expect("a guard holds its lock");
        guard.0 = Some(self.0.wait(held).unwrap_or_else(|e| e.into_inner()));
    }

    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}
