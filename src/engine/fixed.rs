//! One ring's view of the registered-buffer table (`crate::buf::fixed`):
//! a sparse kernel table of `SLOTS` entries, brought up to date on the
//! ring's own thread before SQEs are built, and the lookup that turns a
//! transfer inside a registered region into a buffer index.
//! docs/registered-buffers.md has the design and the measurements.

use io_uring::IoUring;

use crate::buf::fixed::{self, Region, SLOTS};

/// Why registration did not work on a ring, for metrics and capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterFailure {
    /// The sparse table could not be set up (old kernel: EINVAL; ENOMEM).
    Table(i32),
    /// Pinning one buffer was refused (ENOMEM: RLIMIT_MEMLOCK, EFAULT...).
    Buffer(i32),
}

impl RegisterFailure {
    pub fn describe(self) -> String {
        let (what, errno) = match self {
            RegisterFailure::Table(e) => ("the sparse buffer table (IORING_REGISTER_BUFFERS2)", e),
            RegisterFailure::Buffer(e) => ("a buffer (IORING_REGISTER_BUFFERS_UPDATE)", e),
        };
        let hint = if errno == libc::ENOMEM { " (RLIMIT_MEMLOCK, without CAP_IPC_LOCK)" } else { "" };
        format!("registering {what} failed: {}{hint}", crate::error::strerror(errno))
    }
}

#[derive(Default, PartialEq, Eq)]
enum State {
    #[default]
    Untried,
    Ready,
    Unavailable,
}

/// The registered regions of one ring, in slot order and sorted by address.
#[derive(Default)]
pub(crate) struct FixedRing {
    state: State,
    generation: u64,
    slots: Vec<Option<Region>>,
    /// (addr, len, slot) of `slots`, sorted by addr, for the lookup.
    sorted: Vec<(usize, usize, u16)>,
}

impl FixedRing {
    /// Brings the ring's registration up to the shared table. Returns the
    /// failures met (the ring goes on without the refused buffers).
    pub fn sync(&mut self, ring: &IoUring) -> Vec<RegisterFailure> {
        let generation = fixed::generation();
        if generation == self.generation || self.state == State::Unavailable {
            return Vec::new();
        }
        let mut failures = Vec::new();
        if self.state == State::Untried {
            if let Err(e) = ring.submitter().register_buffers_sparse(SLOTS as u32) {
                self.state = State::Unavailable;
                return vec![RegisterFailure::Table(e.raw_os_error().unwrap_or(libc::EIO))];
            }
            self.state = State::Ready;
            self.slots = vec![None; SLOTS];
        }
        let (generation, table) = fixed::snapshot();
        for (slot, (mine, want)) in self.slots.iter_mut().zip(table).enumerate() {
            if *mine == want {
                continue;
            }
            let iov = match want {
                Some(r) => libc::iovec { iov_base: r.addr as *mut libc::c_void, iov_len: r.len },
                None => libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
            };
            // SAFETY: the region is live memory of the shared table (removed
            // from it before it is freed); an empty entry clears the slot.
            match unsafe { ring.submitter().register_buffers_update(slot as u32, &[iov], None) } {
                Ok(_) => *mine = want,
                Err(e) => {
                    failures.push(RegisterFailure::Buffer(e.raw_os_error().unwrap_or(libc::EIO)));
                    if mine.is_some() {
                        // A stale slot that cannot be cleared must never be
                        // used again: stop using registered buffers here.
                        self.state = State::Unavailable;
                        self.sorted.clear();
                        return failures;
                    }
                }
            }
        }
        self.generation = generation;
        self.sorted = self.slots.iter().enumerate().filter_map(|(i, r)| r.map(|r| (r.addr, r.len, i as u16))).collect();
        self.sorted.sort_unstable();
        failures
    }

    /// The slot holding all of `[addr, addr + len)`, if registered here.
    #[inline]
    pub fn index_of(&self, addr: usize, len: usize) -> Option<u16> {
        if self.sorted.is_empty() {
            return None;
        }
        let i = self.sorted.partition_point(|&(start, _, _)| start <= addr).checked_sub(1)?;
        let (start, rlen, slot) = self.sorted[i];
        (addr + len <= start + rlen).then_some(slot)
    }
}
