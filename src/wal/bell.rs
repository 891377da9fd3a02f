//! One futex word every sleeping waiter of a log waits on.
//!
//! A group commit satisfies up to a few hundred waiters at once. Waking
//! them one `futex(FUTEX_WAKE)` (a thread unpark) at a time cost a syscall
//! and, on a VM, a cross-CPU interrupt per waiter: at 32 blocking
//! appenders on 2 vCPUs a quarter of all CPU time was spent in those wakes,
//! serially, while the next batch waited for its appenders to come back
//! (docs/wal-design.md, "Waking"). Here a leader sets each satisfied
//! waiter's state under the log's lock, `arm`s the bell, and after the lock
//! is released one `ring` bumps the word and wakes every sleeper with a
//! single `FUTEX_WAKE`: the kernel queues them in one pass and interrupts
//! each CPU at most once. A sleeper whose own state did not change (it
//! waits for a later batch) goes back to sleep: one spurious wake-up per
//! batch it is not part of.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::time::Instant;

pub(super) struct Bell {
    /// The futex word: bumped by every ring.
    epoch: AtomicU32,
    /// A waiter's state changed since the last ring.
    armed: AtomicBool,
}

impl Bell {
    pub fn new() -> Bell {
        Bell { epoch: AtomicU32::new(0), armed: AtomicBool::new(false) }
    }

    /// Sets a waiter's `state` and arms the bell; the caller makes sure
    /// `ring` runs afterwards (outside the lock). After the store the
    /// waiter may return at once, so the caller must not touch it again.
    pub fn signal(&self, state: &AtomicU8, value: u8) {
        state.store(value, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Wakes every sleeper if some waiter's state changed since the last ring.
    pub fn ring(&self) {
        if !self.armed.load(Ordering::Relaxed) || !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        self.epoch.fetch_add(1, Ordering::SeqCst);
        // SAFETY: a futex wake on our own word; no memory is passed.
        unsafe {
            libc::syscall(libc::SYS_futex, self.epoch.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX);
        }
    }

    /// Sleeps until `state` is no longer `idle` or `deadline` passes;
    /// returns the state (`idle` on timeout).
    pub fn sleep(&self, state: &AtomicU8, idle: u8, deadline: Option<Instant>) -> u8 {
        loop {
            // The word is read before the state: a signal stored after this
            // read is followed by a bump, so the futex below does not sleep
            // through it (the kernel compares the word under its own lock).
            let epoch = self.epoch.load(Ordering::SeqCst);
            let now = state.load(Ordering::SeqCst);
            if now != idle {
                return now;
            }
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(libc::timespec {
                        tv_sec: left.as_secs() as libc::time_t,
                        tv_nsec: left.subsec_nanos() as libc::c_long,
                    }),
                    _ => return idle,
                },
            };
            let ts = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: waits on our own word with a relative timeout (or
            // none); EAGAIN (the word moved), EINTR and ETIMEDOUT all just
            // loop to look again.
            unsafe {
                libc::syscall(libc::SYS_futex, self.epoch.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, epoch, ts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_signal_wakes_its_sleeper_and_others_sleep_on() {
        let bell = Arc::new(Bell::new());
        let states: Arc<[AtomicU8; 2]> = Arc::new([AtomicU8::new(0), AtomicU8::new(0)]);
        let sleepers: Vec<_> = (0..2)
            .map(|i| {
                let (bell, states) = (bell.clone(), states.clone());
                std::thread::spawn(move || bell.sleep(&states[i], 0, Some(Instant::now() + Duration::from_secs(i as u64 * 30 + 1))))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        bell.signal(&states[1], 7);
        bell.ring();
        let mut sleepers = sleepers.into_iter();
        let first = sleepers.next().unwrap();
        assert_eq!(sleepers.next().unwrap().join().unwrap(), 7, "the signalled sleeper sees its state");
        assert_eq!(first.join().unwrap(), 0, "the other one woke spuriously, slept on, and timed out");
    }

    #[test]
    fn a_signal_before_the_sleep_is_not_missed() {
        let bell = Bell::new();
        let state = AtomicU8::new(0);
        bell.signal(&state, 2);
        assert_eq!(bell.sleep(&state, 0, None), 2);
        bell.ring();
        assert!(!bell.armed.load(Ordering::SeqCst), "a ring disarms");
    }
}
