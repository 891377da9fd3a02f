//! Runtime: configuration, environment, backend detection, capabilities.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::engine::completion_faults::Injector;
pub use crate::engine::completion_faults::CompletionFaults;
use crate::engine::fault::FaultBackend;
pub use crate::engine::fault::{CrashMode, FaultAction, FaultRule};
use crate::engine::pool::PoolBackend;
use crate::engine::uring::{RingInfo, RingParams, UringBackend};
use crate::engine::{Backend, BackendKind, Engine};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::wal::WalMetrics;

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring when it works, else the thread pool (the reason is recorded).
    /// `RUSTFS_ENABLE_IO_URING` may force either.
    #[default]
    Auto,
    /// io_uring or fail with the reason.
    IoUring,
    /// Never io_uring.
    ThreadPool,
}

pub const ENV_ENABLE_IO_URING: &str = "RUSTFS_ENABLE_IO_URING";
pub const ENV_MAX_CONCURRENT: &str = "RUSTFS_MAX_CONCURRENT_FILE_OPS";
/// Diagnostic: the best io_uring setup rung to try (`defer_taskrun`,
/// `coop_taskrun`, `plain`); lower rungs are still tried when it fails.
pub const ENV_URING_SETUP: &str = "RIO_IO_URING_SETUP";
pub const DEFAULT_QUEUE_DEPTH: u32 = 256;
pub const DEFAULT_MAX_CONCURRENT_OPS: u32 = 1024;

/// Runtime configuration. `None` fields take the environment, then the default.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub backend: BackendChoice,
    /// Submission queue entries per ring (the CQ gets twice as many).
    pub queue_depth: Option<u32>,
    /// Bound on operations in flight in this runtime; callers beyond it wait.
    pub max_concurrent_ops: Option<u32>,
    /// Thread-pool workers, and the io-wq worker bound per ring.
    pub worker_threads: Option<u32>,
    /// Wrap the backend in the fault-injecting backend (a testing tool:
    /// see `Runtime::fault_injector`).
    pub fault_injection: bool,
    /// Inject randomized faults where the backend learns results (short
    /// completions, EAGAIN/EINTR/ECANCELED, failing io_uring_enter): a
    /// testing tool for the engine itself (docs/engine.md). `None` costs
    /// nothing.
    pub completion_faults: Option<CompletionFaults>,
}

/// The settings actually in use, after environment and defaults.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// First io_uring setup rung tried (0 = SINGLE_ISSUER|DEFER_TASKRUN).
    pub first_rung: usize,
    pub queue_depth: u32,
    pub max_concurrent_ops: u32,
    pub worker_threads: u32,
}

/// What a runtime can do and why, for `rio_runtime_capabilities` and `rio probe`.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub backend: BackendKind,
    pub kernel_release: String,
    /// Present when io_uring was set up (it may still be unused: thread_pool requested).
    pub ring: Option<RingInfo>,
    /// Why io_uring is not in use, when it is not.
    pub io_uring_unavailable_reason: Option<String>,
    pub settings: Resolved,
}

pub(crate) struct RuntimeInner {
    pub engine: Engine,
    pub caps: Capabilities,
    uring: Option<Arc<UringBackend>>,
    faults: Option<Arc<FaultBackend>>,
    completion_faults: Option<Arc<Injector>>,
    /// WALs opened on this runtime, for the Prometheus exposition.
    wals: crate::engine::sync::Mutex<Vec<std::sync::Weak<WalMetrics>>>,
}

/// Controls a runtime opened with `fault_injection`: rules that fail,
/// shorten or delay operations, and simulated power loss. A testing tool.
#[derive(Clone)]
pub struct FaultInjector(Arc<FaultBackend>);

impl FaultInjector {
    /// Adds a rule; rules count operations from the moment they are added.
    pub fn add_rule(&self, rule: FaultRule) {
        self.0.add_rule(rule)
    }

    pub fn clear_rules(&self) {
        self.0.clear_rules()
    }

    /// Simulates power loss: unsynced changes are rolled back (all, or all
    /// but a torn prefix), unsynced new files vanish, and every later
    /// operation of this runtime fails with EIO.
    pub fn crash(&self, mode: CrashMode) {
        self.0.crash(mode)
    }

    pub(crate) fn file_created(&self, path: &std::path::Path) {
        self.0.file_created(path)
    }
}

/// A runtime: one engine (io_uring or thread pool) shared by its files and
/// WALs. Cheap to clone; the engine lives until the last clone and the last
/// file/WAL using it are dropped.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

fn env_bool(name: &str) -> Result<Option<bool>> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(_) => Err(Error::invalid(format!("{name}: value is not valid UTF-8"))),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(Error::invalid(format!("{name}={v:?}: expected \"true\" or \"false\""))),
        },
    }
}

fn env_count(name: &str) -> Result<Option<u32>> {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(_) => Err(Error::invalid(format!("{name}: value is not valid UTF-8"))),
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::invalid(format!("{name}={v:?}: expected a positive integer"))),
        },
    }
}

fn env_rung() -> Result<usize> {
    use crate::engine::uring::RUNG_NAMES;
    match std::env::var(ENV_URING_SETUP) {
        Err(std::env::VarError::NotPresent) => Ok(0),
        Err(_) => Err(Error::invalid(format!("{ENV_URING_SETUP}: value is not valid UTF-8"))),
        Ok(v) => RUNG_NAMES.iter().position(|n| *n == v.trim()).ok_or_else(|| {
            Error::invalid(format!("{ENV_URING_SETUP}={v:?}: expected one of {}", RUNG_NAMES.join(", ")))
        }),
    }
}

/// Why io_uring is off when the thread pool was chosen, not forced on us.
fn thread_pool_reason(explicit: BackendChoice) -> String {
    if explicit == BackendChoice::ThreadPool {
        "thread_pool backend requested in the runtime config".into()
    } else {
        format!("thread_pool backend requested by {ENV_ENABLE_IO_URING}=false")
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn default_workers() -> u32 {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) as u32;
    (cpus * 2).clamp(4, 64)
}

impl RuntimeConfig {
    fn resolve(&self) -> Result<(BackendChoice, Resolved)> {
        if let Some(0) = self.queue_depth {
            return Err(Error::invalid("queue_depth: must be positive"));
        }
        if self.queue_depth.is_some_and(|q| q > 32768) {
            return Err(Error::invalid("queue_depth: at most 32768"));
        }
        if let Some(0) = self.max_concurrent_ops {
            return Err(Error::invalid("max_concurrent_ops: must be positive"));
        }
        if self.completion_faults.is_some_and(|f| f.one_in == 0) {
            return Err(Error::invalid("completion_faults.one_in: must be positive"));
        }
        if self.worker_threads.is_some_and(|w| w == 0 || w > 1024) {
            return Err(Error::invalid("worker_threads: must be between 1 and 1024"));
        }
        // Both variables are checked even when a field overrides them: an
        // invalid value is an error, never silently ignored.
        let env_uring = env_bool(ENV_ENABLE_IO_URING)?;
        let env_max = env_count(ENV_MAX_CONCURRENT)?;
        let first_rung = env_rung()?;
        let backend = match (self.backend, env_uring) {
            (BackendChoice::Auto, Some(true)) => BackendChoice::IoUring,
            (BackendChoice::Auto, Some(false)) => BackendChoice::ThreadPool,
            (explicit, _) => explicit,
        };
        Ok((
            backend,
            Resolved {
                first_rung,
                queue_depth: self.queue_depth.unwrap_or(DEFAULT_QUEUE_DEPTH),
                max_concurrent_ops: self.max_concurrent_ops.or(env_max).unwrap_or(DEFAULT_MAX_CONCURRENT_OPS),
                worker_threads: self.worker_threads.unwrap_or_else(default_workers),
            },
        ))
    }
}

impl Runtime {
    /// Opens a runtime. With `BackendChoice::Auto`, any io_uring setup
    /// failure falls back to the thread pool and is recorded in
    /// `capabilities().io_uring_unavailable_reason`.
    pub fn new(config: &RuntimeConfig) -> Result<Runtime> {
        crate::log::init(false)?;
        // Before any per-process state exists: a child of fork() must know
        // it is one (engine/fork.rs).
        crate::engine::fork::watch();
        let (choice, settings) = config.resolve()?;
        let completion_faults = config.completion_faults.map(|c| Arc::new(Injector::new(c)));
        let faults = || completion_faults.clone();
        let metrics = Arc::new(Metrics::default());
        let (uring, reason) = match choice {
            BackendChoice::ThreadPool => (None, Some(thread_pool_reason(config.backend))),
            _ => match UringBackend::probe(ring_params(&settings), faults()) {
                Ok(b) => (Some(Arc::new(b)), None),
                Err(why) if choice == BackendChoice::IoUring => {
                    return Err(Error::new(libc::EOPNOTSUPP, format!("io_uring backend required but unavailable: {why}")));
                }
                Err(why) => {
                    tracing::warn!(reason = %why, "io_uring unavailable; using the thread pool");
                    (None, Some(why))
                }
            },
        };
        let backend: Box<dyn Backend> = match &uring {
            Some(u) => Box::new(Shared(u.clone())),
            None => Box::new(
                PoolBackend::new(settings.worker_threads as usize, faults())
                    .map_err(|e| Error::from_io(e, "thread pool: cannot start workers"))?,
            ),
        };
        let (backend, faults): (Box<dyn Backend>, _) = if config.fault_injection {
            let f = Arc::new(FaultBackend::new(backend));
            (Box::new(Shared(f.clone())), Some(f))
        } else {
            (backend, None)
        };
        let kind = backend.kind();
        let caps = Capabilities {
            backend: kind,
            kernel_release: kernel_release(),
            ring: uring.as_ref().map(|u| u.info().clone()),
            io_uring_unavailable_reason: reason,
            settings: settings.clone(),
        };
        tracing::info!(backend = kind.name(), "runtime opened");
        let engine = Engine::new(backend, settings.max_concurrent_ops as usize, metrics);
        Ok(Runtime { inner: Arc::new(RuntimeInner { engine, caps, uring, faults, completion_faults, wals: Default::default() }) })
    }

    /// A runtime from defaults and the environment.
    pub fn from_env() -> Result<Runtime> {
        Runtime::new(&RuntimeConfig::default())
    }

    pub fn backend(&self) -> BackendKind {
        self.inner.engine.kind()
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.engine.metrics
    }

    /// SQEs this runtime has handed to the kernel (0 on the thread pool):
    /// proof that io_uring is really used.
    pub fn sqes_submitted(&self) -> u64 {
        self.uring_counter(|u| &u.sqes_submitted)
    }

    /// io_uring_enter calls, ring-creation fallbacks (0 on the pool).
    pub fn uring_enter_calls(&self) -> u64 {
        self.uring_counter(|u| &u.enter_calls)
    }

    pub fn uring_ring_failures(&self) -> u64 {
        self.uring_counter(|u| &u.ring_failures)
    }

    /// Operations currently holding a concurrency permit.
    pub fn ops_in_flight(&self) -> usize {
        self.inner.engine.in_flight()
    }

    fn uring_counter(&self, counter: fn(&UringBackend) -> &AtomicU64) -> u64 {
        self.inner.uring.as_ref().map_or(0, |u| counter(u).load(Ordering::Relaxed))
    }

    /// Completion faults injected so far (`RuntimeConfig::completion_faults`;
    /// 0 without them).
    pub fn completion_faults_injected(&self) -> u64 {
        self.inner.completion_faults.as_ref().map_or(0, |f| f.injected.load(Ordering::Relaxed))
    }

    /// SQEs that used a registered buffer (READ_FIXED/WRITE_FIXED).
    pub fn fixed_buffer_sqes(&self) -> u64 {
        self.uring_counter(|u| &u.fixed_buffer_sqes)
    }

    /// Buffer registrations the kernel refused, and why the last one failed
    /// (None: none refused, or no io_uring).
    pub fn buffer_registration_failures(&self) -> (u64, Option<String>) {
        let reason = self.inner.uring.as_ref().and_then(|u| u.buffer_registration_reason.lock().clone());
        (self.uring_counter(|u| &u.buffer_registration_failures), reason)
    }

    /// The fault controls, when opened with `fault_injection`.
    pub fn fault_injector(&self) -> Option<FaultInjector> {
        self.inner.faults.clone().map(FaultInjector)
    }

    /// Lone ops the io_uring backend ran as direct syscalls because the
    /// ring could not run them asynchronously (0 on the thread pool).
    pub fn direct_ops(&self) -> u64 {
        self.uring_counter(|u| &u.direct_ops)
    }

    /// Prometheus text exposition of this runtime's metrics.
    pub fn metrics_prometheus(&self) -> String {
        let mut out = String::new();
        crate::metrics::family(&mut out, "rio_backend_info", "gauge", "The backend in use (1 for the active one).");
        for kind in [BackendKind::IoUring, BackendKind::ThreadPool] {
            let on = u8::from(kind == self.backend());
            out.push_str(&format!("rio_backend_info{{backend=\"{}\"}} {on}\n", kind.name()));
        }
        crate::metrics::family(
            &mut out,
            "rio_io_uring_unavailable_info",
            "gauge",
            "1, labelled with the reason, when io_uring is not in use (setup failed or the thread pool was requested).",
        );
        if let Some(reason) = &self.capabilities().io_uring_unavailable_reason {
            let reason = crate::metrics::escape_label(reason);
            out.push_str(&format!("rio_io_uring_unavailable_info{{reason=\"{reason}\"}} 1\n"));
        }
        for (name, help, counter) in URING_COUNTERS {
            crate::metrics::family(&mut out, name, "counter", help);
            out.push_str(&format!("{name} {}\n", self.uring_counter(counter)));
        }
        self.inner.engine.metrics.render(&mut out, self.inner.engine.in_flight());
        let wals: Vec<Arc<WalMetrics>> = {
            let mut registry = self.inner.wals.lock();
            registry.retain(|w| w.strong_count() > 0);
            registry.iter().filter_map(|w| w.upgrade()).collect()
        };
        crate::wal::metrics::render(&mut out, &wals);
        out
    }

    /// Lists a WAL's metrics in this runtime's exposition while it is open.
    pub(crate) fn register_wal_metrics(&self, metrics: &Arc<WalMetrics>) {
        let mut registry = self.inner.wals.lock();
        registry.retain(|w| w.strong_count() > 0);
        registry.push(Arc::downgrade(metrics));
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}

/// The io_uring backend's counters, as Prometheus families (0 on the pool).
const URING_COUNTERS: [(&str, &str, fn(&UringBackend) -> &AtomicU64); 7] = [
    ("rio_io_uring_sqes_submitted_total", "SQEs handed to the kernel.", |u| &u.sqes_submitted),
    ("rio_io_uring_enter_calls_total", "io_uring_enter system calls.", |u| &u.enter_calls),
    (
        "rio_io_uring_direct_ops_total",
        "Lone buffered I/O and syncs run as direct syscalls: the ring would hand them to a kernel worker.",
        |u| &u.direct_ops,
    ),
    (
        "rio_io_uring_ring_failures_total",
        "Calls run with blocking syscalls because no ring could be created for the thread (EMFILE, ENOMEM).",
        |u| &u.ring_failures,
    ),
    (
        "rio_io_uring_busy_retries_total",
        "io_uring_enter calls that returned EBUSY/EAGAIN/EINTR and were retried after reaping completions.",
        |u| &u.busy_retries,
    ),
    (
        "rio_io_uring_fixed_buffer_sqes_total",
        "SQEs sent as READ_FIXED/WRITE_FIXED: their buffer (rio_buf_alloc) was registered with the ring.",
        |u| &u.fixed_buffer_sqes,
    ),
    (
        "rio_io_uring_buffer_registration_failures_total",
        "Buffer registrations the kernel refused (RLIMIT_MEMLOCK, old kernel); those buffers are used unregistered.",
        |u| &u.buffer_registration_failures,
    ),
];

fn ring_params(s: &Resolved) -> RingParams {
    let sq = s.queue_depth.next_power_of_two();
    RingParams {
        sq_entries: sq,
        cq_entries: sq * 2,
        iowq_max_workers: [s.worker_threads, s.worker_threads],
        first_rung: s.first_rung,
    }
}

/// Lets the engine own a backend the runtime also inspects (counters,
/// fault controls).
struct Shared<B>(Arc<B>);

impl<B: Backend> Backend for Shared<B> {
    fn kind(&self) -> BackendKind {
        self.0.kind()
    }
    unsafe fn execute(&self, ops: &mut [crate::engine::Op]) {
        unsafe { self.0.execute(ops) }
    }
    fn queue_machinery(&self, depth: u32) -> Result<crate::engine::queue::Machinery> {
        self.0.queue_machinery(depth)
    }
}
