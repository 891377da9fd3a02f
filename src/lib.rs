//! librio: a synchronous io_uring I/O engine with a pread/pwrite thread-pool
//! fallback, disk files and a durable write-ahead log, with a C ABI.
//!
//! Layers (see DESIGN.md): `engine` (one `Op` model, two backends) under
//! `runtime` (config, detection), `file` and `wal`, with `ffi` on top.
//!
//! # A sound safe API
//!
//! Safe Rust reaches the engine only through methods that take Rust slices
//! ([`DiskFile::read_at`], [`DiskFile::write_at`], [`DiskFile::readv_at`],
//! [`DiskFile::writev_at`], [`Batch`] with borrowed buffers, [`Wal`]), whose
//! lifetimes keep the memory valid until the kernel is done with it. Raw
//! pointers are taken only by `unsafe fn`s (`DiskFile::read_at_raw` and its
//! siblings, for the C layer). The engine's operation type, its kinds and
//! `DiskFile::prepare` are crate-private, so a program without `unsafe`
//! cannot build an operation from a raw pointer and run it:
//!
//! ```compile_fail,E0603
//! #![forbid(unsafe_code)]
//! use rio::engine::{Op, OpKind};
//! // A garbage iovec pointer, dereferenced by the engine (it used to be
//! // reachable: `Op::transfer_len` read it from safe code).
//! let op = Op::new(0, OpKind::Readv { iov: 16 as *const _, iovcnt: 1 }, 0);
//! let _ = op.transfer_len();
//! ```
//!
//! ```compile_fail,E0432
//! #![forbid(unsafe_code)]
//! use rio::{Op, OpKind};
//! ```
//!
//! ```compile_fail,E0624
//! #![forbid(unsafe_code)]
//! fn run(file: &rio::DiskFile) {
//!     // Builds and checks an engine op from any kind, raw pointers included.
//!     let _ = file.prepare(todo!(), 0);
//! }
//! ```
//!
//! The `ffi` module is the C ABI, public so the Rust test harnesses can
//! drive it as a C program would. Its functions trust their pointer
//! arguments like any C function, so every one that takes a pointer is an
//! `unsafe extern "C" fn` (C callers see no difference):
//!
//! ```compile_fail,E0133
//! let mut ops = [rio::ffi::batch::rio_op_t {
//!     opcode: rio::ffi::batch::RIO_OP_READ,
//!     flags: 0,
//!     file: 16 as *mut _,
//!     buf: 16 as *mut _,
//!     len: 4096,
//!     offset: 0,
//!     result: 0,
//!     user_data: 0,
//! }];
//! rio::ffi::batch::rio_submit_batch(16 as *mut _, ops.as_mut_ptr(), 1);
//! ```
//!
//! The same program shape with the safe API compiles and runs:
//!
//! ```
//! #![forbid(unsafe_code)]
//! use rio::{open_flags::*, Batch, DiskFile, Runtime};
//! let rt = Runtime::from_env().unwrap();
//! let path = std::env::temp_dir().join(format!("rio-doc-{}", std::process::id()));
//! let file = DiskFile::open(&rt, &path, READ | WRITE | CREATE | TRUNCATE, 0o600).unwrap();
//! file.write_at(b"hello", 0).unwrap();
//! let mut back = [0u8; 5];
//! let mut batch = Batch::new();
//! batch.read(&file, &mut back, 0).unwrap();
//! batch.fdatasync(&file).unwrap();
//! assert!(batch.submit(&rt).iter().all(|r| r.is_ok()));
//! assert_eq!(&back, b"hello");
//! std::fs::remove_file(&path).unwrap();
//! ```

pub mod batch;
pub mod buf;
pub mod engine;
pub mod error;
pub mod ffi;
pub mod file;
pub mod log;
pub mod metrics;
pub mod queue;
pub mod runtime;
pub mod wal;

pub use batch::Batch;
pub use buf::AlignedBuf;
pub use engine::{BackendKind, OpCode};
pub use error::{Error, Result};
pub use queue::{Completion, IoBuf, PushError, Queue};
pub use file::{open_flags, sync_dir, DioAlign, DiskFile};
pub use runtime::{
    BackendChoice, Capabilities, CompletionFaults, CrashMode, FaultAction, FaultInjector, FaultRule, Runtime, RuntimeConfig,
};
pub use wal::{RecoveryMode, Wal, WalConfig, WalReader, WalStats};
