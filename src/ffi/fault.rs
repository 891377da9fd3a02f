//! Fault injection controls of a runtime opened with
//! `rio_runtime_config_t.fault_injection` — a testing tool for callers who
//! want to see how their engine copes with EIO, ENOSPC, short transfers,
//! latency and power loss underneath it.

use std::ffi::c_int;
use std::time::Duration;

use super::runtime::rio_runtime_t;
use super::{check_null, ffi_boundary, finish, read_versioned};
use crate::runtime::{CrashMode, FaultAction, FaultInjector, FaultRule};
use crate::{Error, OpCode};

/// Any operation.
pub const RIO_FAULT_ON_ANY: u32 = 0;
/// Reads (plain and vectored).
pub const RIO_FAULT_ON_READ: u32 = 1;
/// Writes (plain and vectored).
pub const RIO_FAULT_ON_WRITE: u32 = 2;
/// fsync of files and directories.
pub const RIO_FAULT_ON_FSYNC: u32 = 3;
/// fdatasync.
pub const RIO_FAULT_ON_FDATASYNC: u32 = 4;
/// fallocate (rio_file_allocate, WAL segment preallocation).
pub const RIO_FAULT_ON_FALLOCATE: u32 = 5;
/// ftruncate (rio_file_truncate, WAL tail cleanup).
pub const RIO_FAULT_ON_FTRUNCATE: u32 = 6;

/// The first attempt fails with `error` (EINTR/EAGAIN are retried inside
/// and never reach the caller; EIO, ENOSPC... do).
pub const RIO_FAULT_ERROR: u32 = 0;
/// Every attempt moves at most half of what is left (continued inside).
pub const RIO_FAULT_SHORT: u32 = 1;
/// The operation is delayed by `delay_us` first.
pub const RIO_FAULT_DELAY: u32 = 2;
/// The machine loses power just before the operation runs, as
/// rio_runtime_simulate_power_loss(rt, crash_mode, seed) would: it and every
/// later operation fail with -EIO. Crash at the Nth fdatasync, say.
pub const RIO_FAULT_POWER_LOSS: u32 = 3;

/// Every change since the file's last sync is lost.
pub const RIO_CRASH_DISCARD_ALL: u32 = 0;
/// A random prefix (chosen by `seed`) of each file's unsynced changes
/// survives, the last surviving write torn at a random byte.
pub const RIO_CRASH_TORN_PREFIX: u32 = 1;

/// One fault rule. Fill with `rio_fault_default`, then set fields.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rio_fault_t {
    /// sizeof(rio_fault_t), set by rio_fault_default.
    pub struct_size: u32,
    /// RIO_FAULT_ON_* (default RIO_FAULT_ON_ANY).
    pub target: u32,
    /// The first matching operation hit, 1-based, counted from when the
    /// rule is added (default 1).
    pub nth: u64,
    /// How many consecutive matching operations are hit; 0 = all from `nth` (default 1).
    pub count: u64,
    /// RIO_FAULT_ERROR (default), RIO_FAULT_SHORT or RIO_FAULT_DELAY.
    pub action: u32,
    /// Positive errno for RIO_FAULT_ERROR (default EIO).
    pub error: c_int,
    /// Microseconds for RIO_FAULT_DELAY.
    pub delay_us: u64,
    /// RIO_CRASH_* for RIO_FAULT_POWER_LOSS (default RIO_CRASH_DISCARD_ALL).
    pub crash_mode: u32,
    /// Seed of RIO_CRASH_TORN_PREFIX for RIO_FAULT_POWER_LOSS.
    pub seed: u64,
}

impl rio_fault_t {
    fn defaults() -> Self {
        rio_fault_t {
            struct_size: std::mem::size_of::<Self>() as u32,
            target: RIO_FAULT_ON_ANY,
            nth: 1,
            count: 1,
            action: RIO_FAULT_ERROR,
            error: libc::EIO,
            delay_us: 0,
            crash_mode: RIO_CRASH_DISCARD_ALL,
            seed: 0,
        }
    }

    fn to_rule(self) -> crate::Result<FaultRule> {
        let op = match self.target {
            RIO_FAULT_ON_ANY => None,
            RIO_FAULT_ON_READ => Some(OpCode::Read),
            RIO_FAULT_ON_WRITE => Some(OpCode::Write),
            RIO_FAULT_ON_FSYNC => Some(OpCode::Fsync),
            RIO_FAULT_ON_FDATASYNC => Some(OpCode::Fdatasync),
            RIO_FAULT_ON_FALLOCATE => Some(OpCode::Fallocate),
            RIO_FAULT_ON_FTRUNCATE => Some(OpCode::Ftruncate),
            other => return Err(Error::invalid(format!("fault.target: unknown value {other}"))),
        };
        let action = match self.action {
            RIO_FAULT_ERROR if self.error > 0 && self.error < 4096 => FaultAction::Error(self.error),
            RIO_FAULT_ERROR => return Err(Error::invalid(format!("fault.error: {} is not a positive errno", self.error))),
            RIO_FAULT_SHORT => FaultAction::Short,
            RIO_FAULT_DELAY => FaultAction::Delay(Duration::from_micros(self.delay_us)),
            RIO_FAULT_POWER_LOSS => FaultAction::PowerLoss(crash_mode(self.crash_mode, self.seed)?),
            other => return Err(Error::invalid(format!("fault.action: unknown value {other}"))),
        };
        if self.nth == 0 {
            return Err(Error::invalid("fault.nth: operations are counted from 1"));
        }
        Ok(FaultRule { op, nth: self.nth, count: self.count, action })
    }
}

fn crash_mode(mode: u32, seed: u64) -> crate::Result<CrashMode> {
    match mode {
        RIO_CRASH_DISCARD_ALL => Ok(CrashMode::DiscardAll),
        RIO_CRASH_TORN_PREFIX => Ok(CrashMode::TornPrefix { seed }),
        other => Err(Error::invalid(format!("crash mode: unknown value {other}"))),
    }
}

fn injector(rt: *mut rio_runtime_t) -> crate::Result<FaultInjector> {
    unsafe { &*rt }.0.fault_injector().ok_or_else(|| {
        Error::new(libc::EOPNOTSUPP, "rt: not opened with rio_runtime_config_t.fault_injection")
    })
}

/// Fills `fault` with defaults (EIO on the next operation). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn rio_fault_default(fault: *mut rio_fault_t) {
    ffi_boundary!("rio_fault_default", {
        if !fault.is_null() {
            unsafe { fault.write(rio_fault_t::defaults()) };
        }
    })
}

/// Adds a fault rule to a runtime opened with `fault_injection`. Returns 0;
/// `-EOPNOTSUPP` for a runtime without fault injection; `-EINVAL` for NULL
/// arguments or bad fields.
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_add_fault(rt: *mut rio_runtime_t, fault: *const rio_fault_t) -> c_int {
    ffi_boundary!("rio_runtime_add_fault", {
        check_null!("rio_runtime_add_fault", rt);
        check_null!("rio_runtime_add_fault", fault);
        let r = unsafe { read_versioned(fault, rio_fault_t::defaults(), "fault") }
            .and_then(rio_fault_t::to_rule)
            .and_then(|rule| injector(rt).map(|i| i.add_rule(rule)));
        finish("rio_runtime_add_fault", r.map(|_| 0))
    })
}

/// Removes every fault rule. Returns 0, `-EOPNOTSUPP` or `-EINVAL` as above.
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_clear_faults(rt: *mut rio_runtime_t) -> c_int {
    ffi_boundary!("rio_runtime_clear_faults", {
        check_null!("rio_runtime_clear_faults", rt);
        finish("rio_runtime_clear_faults", injector(rt).map(|i| i.clear_rules()).map(|_| 0))
    })
}

/// Simulates power loss under a runtime opened with `fault_injection`:
/// every change made through it since the file's last fsync/fdatasync is
/// rolled back (`RIO_CRASH_DISCARD_ALL`) or all but a random, torn prefix
/// (`RIO_CRASH_TORN_PREFIX`, repeatable with `seed`); files whose
/// directory was not fsynced after their creation vanish. Every later
/// operation on the runtime fails with `-EIO`: close its handles and
/// reopen with a new runtime to "reboot".
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_simulate_power_loss(rt: *mut rio_runtime_t, mode: u32, seed: u64) -> c_int {
    ffi_boundary!("rio_runtime_simulate_power_loss", {
        check_null!("rio_runtime_simulate_power_loss", rt);
        let r = crash_mode(mode, seed).and_then(|m| injector(rt).map(|i| i.crash(m)));
        finish("rio_runtime_simulate_power_loss", r.map(|_| 0))
    })
}
