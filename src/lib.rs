//! librio: a synchronous io_uring I/O engine with a pread/pwrite thread-pool
//! fallback, disk files and a durable write-ahead log, with a C ABI.
//!
//! Layers (see DESIGN.md): `engine` (one `Op` model, two backends) under
//! `runtime` (config, detection), `file` and `wal`, with `ffi` on top.

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
pub use engine::{BackendKind, Op, OpCode, OpKind};
pub use error::{Error, Result};
pub use queue::{Completion, IoBuf, PushError, Queue, RawQueue};
pub use file::{open_flags, sync_dir, DioAlign, DiskFile};
pub use runtime::{BackendChoice, Capabilities, CrashMode, FaultAction, FaultInjector, FaultRule, Runtime, RuntimeConfig};
pub use wal::{RecoveryMode, Wal, WalConfig, WalReader, WalStats};
