//! Fork awareness.
//!
//! A child of `fork()` inherits copies of everything the parent had: the
//! shared SQ/CQ memory of its rings (pushing an SQE there queues it in the
//! *parent's* ring), thread-pool bookkeeping for workers the child does not
//! have, and locks that threads of the parent held at the moment of the
//! fork (they stay locked forever in the child). DESIGN.md requires that a
//! runtime keeps working in the child without ever using the parent's rings
//! or workers, and that handles owned by the parent (a WAL) refuse to work
//! there.
//!
//! The tool is a process *generation*: a counter that a `pthread_atfork`
//! child handler increments in every new child. Per-process state lives in
//! a [`ForkLocal`], which hands the child a fresh value on first use and
//! never touches (locks, uses, drops) the parent's copy. [`Owner`] lets a
//! handle tell whether it was created in this process.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static WATCH: Once = Once::new();

/// Runs in the child right after fork (async-signal-safe: one atomic add).
extern "C" fn entered_child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Installs the fork handler, once per process (children inherit it).
/// Called whenever a runtime is opened, before any per-process state exists.
pub(crate) fn watch() {
    WATCH.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic. glibc
        // links pthread_atfork statically with this object's __dso_handle,
        // so the handler is unregistered if the library is unloaded.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(entered_child)) };
        assert_eq!(rc, 0, "pthread_atfork failed: {rc}");
    });
}

/// The current process generation: 0 in the process that first loaded the
/// library, different in every child forked since.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Remembers the process that created a handle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner(u64);

impl Owner {
    pub fn current() -> Owner {
        watch();
        Owner(generation())
    }

    /// True in a forked child of the process that created the handle.
    #[inline]
    pub fn is_inherited(self) -> bool {
        self.0 != generation()
    }
}

struct Slot<T> {
    generation: u64,
    value: T,
}

/// A value that belongs to one process. In a forked child, the first
/// `get` builds a new value; the parent's is leaked there on purpose: its
/// locks may be held by threads that do not exist in the child, its
/// destructor would join workers or unmap rings the child never had.
pub(crate) struct ForkLocal<T> {
    current: AtomicPtr<Slot<T>>,
}

// SAFETY: a ForkLocal hands out `&T` to any thread, like an Arc<T> would.
unsafe impl<T: Send + Sync> Send for ForkLocal<T> {}
unsafe impl<T: Send + Sync> Sync for ForkLocal<T> {}

impl<T> ForkLocal<T> {
    pub fn new(value: T) -> ForkLocal<T> {
        watch();
        let slot = Box::new(Slot { generation: generation(), value });
        ForkLocal { current: AtomicPtr::new(Box::into_raw(slot)) }
    }

    /// This process's value; in a child, `make` builds it on first use.
    #[inline]
    pub fn get_or(&self, make: impl FnOnce() -> T) -> &T {
        let slot = self.current.load(Ordering::Acquire);
        // SAFETY: slots are freed only by Drop, which needs `&mut self`.
        let s = unsafe { &*slot };
        if s.generation == generation() {
            return &s.value;
        }
        self.renew(slot, make)
    }

    /// The value only when it belongs to this process.
    #[inline]
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn get_if_mine(&self) -> Option<&T> {
        // SAFETY: as in `get_or`.
        let s = unsafe { &*self.current.load(Ordering::Acquire) };
        (s.generation == generation()).then_some(&s.value)
    }

    #[cold]
    fn renew(&self, stale: *mut Slot<T>, make: impl FnOnce() -> T) -> &T {
        let fresh = Box::into_raw(Box::new(Slot { generation: generation(), value: make() }));
        match self.current.compare_exchange(stale, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // The parent's slot is leaked: see the type's comment.
            Ok(_) => unsafe { &(*fresh).value },
            Err(winner) => {
                // Another thread of this child renewed it first.
                drop(unsafe { Box::from_raw(fresh) });
                unsafe { &(*winner).value }
            }
        }
    }
}

impl<T> Drop for ForkLocal<T> {
    fn drop(&mut self) {
        let slot = *self.current.get_mut();
        // SAFETY: we own the slot; a parent's slot is leaked, never dropped here.
        if unsafe { (*slot).generation } == generation() {
            drop(unsafe { Box::from_raw(slot) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forks; the child runs `f` and exits 0 if it returns true, else 1.
    fn in_child(f: impl FnOnce() -> bool) -> i32 {
        // SAFETY: the child only runs `f` (no locks the harness could hold)
        // and leaves with _exit.
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(if f() { 0 } else { 1 }) },
            pid => {
                let mut status = 0;
                unsafe { libc::waitpid(pid, &mut status, 0) };
                libc::WEXITSTATUS(status)
            }
        }
    }

    #[test]
    fn a_child_gets_its_own_value_and_the_parent_keeps_its() {
        let local = ForkLocal::new(String::from("parent"));
        let owner = Owner::current();
        assert_eq!(local.get_or(|| unreachable!()), "parent");
        assert!(!owner.is_inherited());
        let status = in_child(|| {
            owner.is_inherited()
                && local.get_if_mine().is_none()
                && local.get_or(|| String::from("child")) == "child"
                && local.get_or(|| String::from("again")) == "child"
        });
        assert_eq!(status, 0, "the child saw the parent's value or did not know it was a child");
        assert_eq!(local.get_or(|| unreachable!()), "parent");
        assert!(!owner.is_inherited());
    }
}
