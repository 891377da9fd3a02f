//! Faults injected where a backend learns an op's result: the io_uring
//! backend's completions and `io_uring_enter` calls, and the thread pool's
//! syscalls (`RuntimeConfig::completion_faults`, a testing tool).
//!
//! The fault backend (`engine/fault.rs`) sits above the backends and runs
//! faulted ops as plain syscalls, so it never exercises the ring's
//! completion path. These faults do: a completion comes back short, or
//! with `-EAGAIN`/`-EINTR`/`-ECANCELED` (and, with `hard_errors`, `-EIO`),
//! and `io_uring_enter` fails with `EBUSY`/`EINTR` (or, with `hard_errors`,
//! a fatal `EEXIST`) without entering. The kernel's side always matches
//! the injected result: a short count comes from a shortened SQE, an error
//! from a NOP whose completion carries it (the op did nothing, as a real
//! `EAGAIN` or `ECANCELED` means), so an O_APPEND write redone after an
//! injected fault must still land exactly once.
//!
//! Off (the default) it costs one `Option` test per submission.

#[cfg(test)]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};

use super::kernel::Call;

/// Randomized completion faults for a runtime: a testing tool. The same
/// seed makes the same choices for the same sequence of events (thread
/// scheduling still varies that sequence), so print it with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletionFaults {
    pub seed: u64,
    /// About one completion (and one `io_uring_enter`) in `one_in` is
    /// faulted; 1 faults every one. Must be positive.
    pub one_in: u32,
    /// Besides the transient faults the engine must hide from callers,
    /// inject `-EIO` completions and fatal `io_uring_enter` errors, which
    /// reach them.
    pub hard_errors: bool,
}

/// What happens to one kernel call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The kernel moves at most half of what was asked.
    Short,
    /// The call does nothing and completes with `-errno`.
    Fail(i32),
    /// The code handling the completion panics (unwinding tests only:
    /// their scripts are the only source of this fault).
    #[cfg_attr(not(test), allow(dead_code))]
    Panic,
    /// The call runs after this long (blocking paths of unit tests only).
    #[cfg(test)]
    Stall(std::time::Duration),
}

impl Fault {
    /// The result of `call` under this fault, on a blocking path.
    ///
    /// # Safety
    /// As `Call::run`.
    pub unsafe fn apply_blocking(self, call: &Call) -> i64 {
        match self {
            Fault::Short => unsafe { call.halved().run() },
            Fault::Fail(errno) => -(errno as i64),
            Fault::Panic => panic!("injected panic at the completion of a {} op", call.row.code.name()),
            #[cfg(test)]
            Fault::Stall(pause) => {
                std::thread::sleep(pause);
                unsafe { call.run() }
            }
        }
    }
}

enum Source {
    Dice(CompletionFaults),
    /// Faults for calls at given file offsets, each used once (unit tests).
    #[cfg(test)]
    Script(Vec<(u64, Fault, AtomicBool)>),
}

/// A runtime's completion-fault state; lock-free, so a forked child can
/// use an inherited copy.
pub(crate) struct Injector {
    source: Source,
    events: AtomicU64,
    /// Faults injected so far.
    pub injected: AtomicU64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const TRANSIENT: [i32; 3] = [libc::EAGAIN, libc::EINTR, libc::ECANCELED];

impl Injector {
    pub fn new(config: CompletionFaults) -> Injector {
        Injector { source: Source::Dice(config), events: AtomicU64::new(0), injected: AtomicU64::new(0) }
    }

    #[cfg(test)]
    pub fn scripted(script: &[(u64, Fault)]) -> Injector {
        let script = script.iter().map(|&(offset, fault)| (offset, fault, AtomicBool::new(false))).collect();
        Injector { source: Source::Script(script), events: AtomicU64::new(0), injected: AtomicU64::new(0) }
    }

    /// A die roll for the next event when it is to be faulted.
    fn roll(&self, config: &CompletionFaults) -> Option<u64> {
        let n = self.events.fetch_add(1, Ordering::Relaxed);
        let x = splitmix(config.seed ^ splitmix(n));
        (x % config.one_in.max(1) as u64 == 0).then_some(x >> 32)
    }

    fn counted<T>(&self, fault: Option<T>) -> Option<T> {
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        fault
    }

    /// The fault the completion of `call` suffers, if any. `ring`: the
    /// io_uring backend, where `-ECANCELED` is a real kernel answer.
    pub fn at_completion(&self, call: &Call, ring: bool) -> Option<Fault> {
        let fault = match &self.source {
            Source::Dice(config) => self.roll(config).map(|x| {
                let errors: &[i32] = if ring { &TRANSIENT } else { &TRANSIENT[..2] };
                let choices = errors.len() as u64 + u64::from(call.moves_data()) + u64::from(config.hard_errors);
                match x % choices {
                    k if (k as usize) < errors.len() => Fault::Fail(errors[k as usize]),
                    k if k == errors.len() as u64 && call.moves_data() => Fault::Short,
                    _ => Fault::Fail(libc::EIO),
                }
            }),
            #[cfg(test)]
            Source::Script(script) => script
                .iter()
                .find(|(offset, _, used)| *offset == call.offset && !used.swap(true, Ordering::Relaxed))
                .map(|(_, fault, _)| *fault),
        };
        self.counted(fault)
    }

    /// An error `io_uring_enter` returns instead of entering, if any.
    pub fn at_enter(&self) -> Option<i32> {
        let errno = match &self.source {
            Source::Dice(config) => self.roll(config).map(|x| match x % (2 + u64::from(config.hard_errors)) {
                0 => libc::EBUSY,
                1 => libc::EINTR,
                // What a ring used from the wrong task gets (SINGLE_ISSUER).
                _ => libc::EEXIST,
            }),
            #[cfg(test)]
            Source::Script(_) => None,
        };
        self.counted(errno)
    }
}
