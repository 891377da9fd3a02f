//! `rio_runtime_t`: a boxed `Runtime` (itself a shared reference to the
//! engine; files and WALs opened from it hold their own references).

use std::ffi::{c_char, c_int};

use super::{check_c_bool, check_null, fail, ffi_boundary, fill_c_chars, finish, read_versioned, write_versioned};
use crate::runtime::{BackendChoice, Runtime, RuntimeConfig};
use crate::{BackendKind, Error};

/// An open runtime. Create with `rio_runtime_open`, free with
/// `rio_runtime_close`. Thread-safe.
pub struct rio_runtime_t(pub(crate) Runtime);

/// Use io_uring when it works, else the thread pool (`RUSTFS_ENABLE_IO_URING` may force either).
pub const RIO_BACKEND_AUTO: u32 = 0;
/// io_uring, or fail `rio_runtime_open` with `-EOPNOTSUPP` and the reason.
pub const RIO_BACKEND_IO_URING: u32 = 1;
/// The pread/pwrite thread pool.
pub const RIO_BACKEND_THREAD_POOL: u32 = 2;

/// Runtime configuration. Fill with `rio_runtime_config_default`, then
/// change fields. Zero in a numeric field means "environment, else default".
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rio_runtime_config_t {
    /// sizeof(rio_runtime_config_t), set by rio_runtime_config_default.
    pub struct_size: u32,
    /// RIO_BACKEND_AUTO (default), RIO_BACKEND_IO_URING or RIO_BACKEND_THREAD_POOL.
    pub backend: u32,
    /// Submission queue entries per ring (0 = 256; rounded up to a power of two).
    pub queue_depth: u32,
    /// Bound on operations in flight (0 = RUSTFS_MAX_CONCURRENT_FILE_OPS, else 1024).
    /// Callers beyond the bound wait.
    pub max_concurrent_ops: u32,
    /// Thread-pool workers and io-wq worker bound (0 = 2 x CPUs, 4..64).
    pub worker_threads: u32,
    /// Wrap the backend in the fault-injecting backend (default false): a
    /// testing tool for callers, see rio_runtime_add_fault and
    /// rio_runtime_simulate_power_loss.
    pub fault_injection: bool,
}

impl rio_runtime_config_t {
    fn defaults() -> Self {
        rio_runtime_config_t {
            struct_size: std::mem::size_of::<Self>() as u32,
            backend: RIO_BACKEND_AUTO,
            queue_depth: 0,
            max_concurrent_ops: 0,
            worker_threads: 0,
            fault_injection: false,
        }
    }

    fn to_config(self) -> crate::Result<RuntimeConfig> {
        let backend = match self.backend {
            RIO_BACKEND_AUTO => BackendChoice::Auto,
            RIO_BACKEND_IO_URING => BackendChoice::IoUring,
            RIO_BACKEND_THREAD_POOL => BackendChoice::ThreadPool,
            other => return Err(Error::invalid(format!("cfg.backend: unknown value {other}"))),
        };
        let nonzero = |v: u32| (v != 0).then_some(v);
        Ok(RuntimeConfig {
            backend,
            queue_depth: nonzero(self.queue_depth),
            max_concurrent_ops: nonzero(self.max_concurrent_ops),
            worker_threads: nonzero(self.worker_threads),
            fault_injection: self.fault_injection,
            completion_faults: None,
        })
    }
}

/// What a runtime can do and, when io_uring is not used, why. Output only,
/// versioned: set `struct_size` to `sizeof(rio_capabilities_t)` before
/// calling `rio_runtime_capabilities`, which fills at most that many bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rio_capabilities_t {
    /// In: the caller's sizeof(rio_capabilities_t). Out: the bytes filled
    /// (the smaller of that and the library's size).
    pub struct_size: u32,
    /// RIO_BACKEND_IO_URING or RIO_BACKEND_THREAD_POOL.
    pub backend: c_int,
    /// io_uring was set up successfully (even if the thread pool was requested).
    pub io_uring_available: bool,
    /// Ring sizes in use (0 without io_uring).
    pub sq_entries: u32,
    pub cq_entries: u32,
    /// IORING_SETUP_* flags the rings were created with.
    pub ring_setup_flags: u32,
    /// Effective bound on operations in flight.
    pub max_concurrent_ops: u32,
    /// Thread-pool workers / io-wq worker bound.
    pub worker_threads: u32,
    /// Bit n (byte n/8, bit n%8) set when io_uring opcode n is supported,
    /// from IORING_REGISTER_PROBE.
    pub io_uring_opcodes: [u8; 32],
    /// uname -r.
    pub kernel_release: [c_char; 65],
    /// The setup flags as text, e.g. "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL".
    pub ring_setup: [c_char; 64],
    /// Why io_uring is not in use (empty when it is).
    pub io_uring_unavailable_reason: [c_char; 256],
    /// Times the kernel refused to register rio_buf_alloc memory with a
    /// ring (RLIMIT_MEMLOCK, old kernel): those buffers' I/O then runs
    /// unregistered, which callers do not otherwise notice.
    pub buffer_registration_failures: u64,
    /// Why the last registration was refused (empty when none was).
    pub buffer_registration_failure_reason: [c_char; 256],
}

/// Fills `cfg` with defaults (including `struct_size`). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_config_default(cfg: *mut rio_runtime_config_t) {
    ffi_boundary!("rio_runtime_config_default", {
        if !cfg.is_null() {
            unsafe { cfg.write(rio_runtime_config_t::defaults()) };
        }
    })
}

/// Opens a runtime. `cfg` NULL means defaults plus environment. On success
/// stores a new handle in `*out` (free with `rio_runtime_close`) and returns
/// 0. Errors: `-EINVAL` (bad field, struct_size, environment variable),
/// `-EOPNOTSUPP` (io_uring required but unavailable, with the reason).
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_open(cfg: *const rio_runtime_config_t, out: *mut *mut rio_runtime_t) -> c_int {
    ffi_boundary!("rio_runtime_open", {
        check_null!("rio_runtime_open", out);
        unsafe { *out = std::ptr::null_mut() };
        let config = if cfg.is_null() {
            Ok(RuntimeConfig::default())
        } else {
            let at = std::mem::offset_of!(rio_runtime_config_t, fault_injection);
            unsafe { check_c_bool(cfg, at, "cfg.fault_injection") }
                .and_then(|()| unsafe { read_versioned(cfg, rio_runtime_config_t::defaults(), "cfg") })
                .and_then(|c| c.to_config())
        };
        match config.and_then(|c| Runtime::new(&c)) {
            Ok(rt) => {
                unsafe { *out = Box::into_raw(Box::new(rio_runtime_t(rt))) };
                0
            }
            Err(e) => fail("rio_runtime_open", e),
        }
    })
}

fn backend_code(kind: BackendKind) -> c_int {
    match kind {
        BackendKind::IoUring => RIO_BACKEND_IO_URING as c_int,
        BackendKind::ThreadPool => RIO_BACKEND_THREAD_POOL as c_int,
    }
}

/// The backend in use: RIO_BACKEND_IO_URING or RIO_BACKEND_THREAD_POOL;
/// `-EINVAL` for NULL.
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_backend(rt: *const rio_runtime_t) -> c_int {
    ffi_boundary!("rio_runtime_backend", {
        check_null!("rio_runtime_backend", rt);
        backend_code(unsafe { &*rt }.0.backend())
    })
}

/// Fills `*out` with the runtime's capabilities, writing at most
/// `out->struct_size` bytes (the caller sets it, normally to
/// `sizeof(rio_capabilities_t)`; a program built against an older, smaller
/// struct gets its prefix and nothing past it). On return `struct_size`
/// holds the bytes filled: the smaller of the caller's and the library's
/// size. Returns 0, or `-EINVAL` for NULL arguments or a `struct_size`
/// below 8 (the `struct_size` + `backend` prefix; 0 usually means unset).
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_capabilities(rt: *const rio_runtime_t, out: *mut rio_capabilities_t) -> c_int {
    ffi_boundary!("rio_runtime_capabilities", {
        check_null!("rio_runtime_capabilities", rt);
        check_null!("rio_runtime_capabilities", out);
        let runtime = &unsafe { &*rt }.0;
        let caps = runtime.capabilities();
        let ring = caps.ring.as_ref();
        let registration = runtime.buffer_registration_failures();
        let mut c = rio_capabilities_t {
            struct_size: 0,
            backend: backend_code(caps.backend),
            io_uring_available: ring.is_some(),
            sq_entries: ring.map_or(0, |r| r.sq_entries),
            cq_entries: ring.map_or(0, |r| r.cq_entries),
            ring_setup_flags: ring.map_or(0, |r| r.setup_flags),
            max_concurrent_ops: caps.settings.max_concurrent_ops,
            worker_threads: caps.settings.worker_threads,
            io_uring_opcodes: ring.map_or([0; 32], |r| r.opcodes),
            kernel_release: [0; 65],
            ring_setup: [0; 64],
            io_uring_unavailable_reason: [0; 256],
            buffer_registration_failures: registration.0,
            buffer_registration_failure_reason: [0; 256],
        };
        fill_c_chars(&mut c.kernel_release, &caps.kernel_release);
        fill_c_chars(&mut c.ring_setup, ring.map_or("", |r| r.setup_flags_name));
        fill_c_chars(&mut c.io_uring_unavailable_reason, caps.io_uring_unavailable_reason.as_deref().unwrap_or(""));
        fill_c_chars(&mut c.buffer_registration_failure_reason, registration.1.as_deref().unwrap_or(""));
        // SAFETY: the caller's struct has out->struct_size bytes.
        finish("rio_runtime_capabilities", unsafe { write_versioned(out, c, "rio_capabilities_t") }.map(|()| 0))
    })
}

/// Writes the runtime's metrics as Prometheus text exposition (0.0.4).
/// Returns the length of the text (excluding the NUL); when `cap` exceeds
/// it, a NUL-terminated copy is written to `buf`. `buf` may be NULL when
/// `cap` is 0 (to ask for the length). `-EINVAL` for a NULL `rt`, or a NULL
/// `buf` with non-zero `cap`.
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_metrics_prometheus(rt: *mut rio_runtime_t, buf: *mut c_char, cap: usize) -> i64 {
    ffi_boundary!("rio_runtime_metrics_prometheus", {
        check_null!("rio_runtime_metrics_prometheus", rt);
        super::check_buf!("rio_runtime_metrics_prometheus", buf, cap);
        let text = unsafe { &*rt }.0.metrics_prometheus();
        if cap > text.len() {
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, text.len());
                *buf.add(text.len()) = 0;
            }
        }
        finish("rio_runtime_metrics_prometheus", Ok(text.len() as i64))
    })
}

/// Releases the caller's handle. Files and WALs opened from it keep the
/// engine alive until they are closed; then its rings and threads are
/// freed. NULL is a no-op. Using `rt` afterwards is the caller's bug.
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_close(rt: *mut rio_runtime_t) {
    ffi_boundary!("rio_runtime_close", {
        if !rt.is_null() {
            drop(unsafe { Box::from_raw(rt) });
        }
    })
}

/// Index of reads (rio_file_read_at, batch reads) in `rio_metrics_t.ops`.
pub const RIO_METRIC_OP_READ: u32 = 0;
/// Writes (rio_file_write_at, batch writes).
pub const RIO_METRIC_OP_WRITE: u32 = 1;
/// Vectored reads (rio_file_readv_at).
pub const RIO_METRIC_OP_READV: u32 = 2;
/// Vectored writes (rio_file_writev_at, WAL group commits).
pub const RIO_METRIC_OP_WRITEV: u32 = 3;
/// fsync of files and directories.
pub const RIO_METRIC_OP_FSYNC: u32 = 4;
/// fdatasync.
pub const RIO_METRIC_OP_FDATASYNC: u32 = 5;
/// fallocate.
pub const RIO_METRIC_OP_FALLOCATE: u32 = 6;
/// ftruncate.
pub const RIO_METRIC_OP_FTRUNCATE: u32 = 7;
/// Number of entries in `rio_metrics_t.ops`.
pub const RIO_METRIC_OPS: usize = 8;

/// One operation kind's figures. Latency quantiles are histogram bucket
/// upper bounds (1 µs x 2^k); lone reads/writes are timed 1 in 8, so
/// `latency_samples` (weighted) estimates `count`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rio_op_metrics_t {
    pub count: u64,
    pub bytes: u64,
    pub errors: u64,
    pub latency_samples: u64,
    pub latency_sum_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
}

/// A snapshot of a runtime's metrics, for programs that do not speak
/// Prometheus. Output only, versioned: set `struct_size` to
/// `sizeof(rio_metrics_t)` before calling `rio_runtime_metrics`, which fills
/// at most that many bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rio_metrics_t {
    /// In: the caller's sizeof(rio_metrics_t). Out: the bytes filled (the
    /// smaller of that and the library's size).
    pub struct_size: u32,
    /// RIO_BACKEND_IO_URING or RIO_BACKEND_THREAD_POOL.
    pub backend: c_int,
    /// Operations holding a concurrency permit right now.
    pub ops_in_flight: u64,
    /// Submissions of more than one operation.
    pub batches: u64,
    /// SQEs handed to the kernel (0 on the thread pool).
    pub io_uring_sqes_submitted: u64,
    /// io_uring_enter system calls.
    pub io_uring_enter_calls: u64,
    /// Lone buffered I/O and syncs the io_uring backend ran as direct
    /// syscalls (the ring would hand them to a kernel worker thread).
    pub io_uring_direct_ops: u64,
    /// Calls run with blocking syscalls because a thread could not get a ring.
    pub io_uring_ring_failures: u64,
    /// Per operation kind, indexed by RIO_METRIC_OP_*.
    pub ops: [rio_op_metrics_t; RIO_METRIC_OPS],
}

/// Fills `*out` with a snapshot of the runtime's metrics, writing at most
/// `out->struct_size` bytes (set by the caller, normally to
/// `sizeof(rio_metrics_t)`); on return `struct_size` holds the bytes
/// filled, as for `rio_runtime_capabilities`. Returns 0, or `-EINVAL` for
/// NULL arguments or a `struct_size` below 8. Thread-safe; counters are
/// read one by one, so a snapshot taken under load is not atomic across
/// fields.
#[no_mangle]
pub unsafe extern "C" fn rio_runtime_metrics(rt: *const rio_runtime_t, out: *mut rio_metrics_t) -> c_int {
    ffi_boundary!("rio_runtime_metrics", {
        check_null!("rio_runtime_metrics", rt);
        check_null!("rio_runtime_metrics", out);
        let rt = &unsafe { &*rt }.0;
        let m = rt.metrics();
        let ops = std::array::from_fn(|i| {
            let s = m.op_snapshot(crate::OpCode::ALL[i]);
            rio_op_metrics_t {
                count: s.count,
                bytes: s.bytes,
                errors: s.errors,
                latency_samples: s.latency_samples,
                latency_sum_ns: s.latency_sum_ns,
                p50_ns: s.p50_ns,
                p99_ns: s.p99_ns,
                p999_ns: s.p999_ns,
            }
        });
        let snapshot = rio_metrics_t {
            struct_size: 0,
            backend: backend_code(rt.backend()),
            ops_in_flight: rt.ops_in_flight() as u64,
            batches: m.batches(),
            io_uring_sqes_submitted: rt.sqes_submitted(),
            io_uring_enter_calls: rt.uring_enter_calls(),
            io_uring_direct_ops: rt.direct_ops(),
            io_uring_ring_failures: rt.uring_ring_failures(),
            ops,
        };
        // SAFETY: the caller's struct has out->struct_size bytes.
        finish("rio_runtime_metrics", unsafe { write_versioned(out, snapshot, "rio_metrics_t") }.map(|()| 0))
    })
}

// The C indexes must follow OpCode's order.
const _: () = {
    assert!(crate::OpCode::Read as u32 == RIO_METRIC_OP_READ);
    assert!(crate::OpCode::Write as u32 == RIO_METRIC_OP_WRITE);
    assert!(crate::OpCode::Readv as u32 == RIO_METRIC_OP_READV);
    assert!(crate::OpCode::Writev as u32 == RIO_METRIC_OP_WRITEV);
    assert!(crate::OpCode::Fsync as u32 == RIO_METRIC_OP_FSYNC);
    assert!(crate::OpCode::Fdatasync as u32 == RIO_METRIC_OP_FDATASYNC);
    assert!(crate::OpCode::Fallocate as u32 == RIO_METRIC_OP_FALLOCATE);
    assert!(crate::OpCode::Ftruncate as u32 == RIO_METRIC_OP_FTRUNCATE);
    assert!(crate::OpCode::ALL.len() == RIO_METRIC_OPS);
};
