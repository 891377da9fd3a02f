//! Shared helpers: every behaviour test runs once per backend.
#![allow(dead_code)]

pub mod entry;
pub use entry::report_line;
pub mod forking;

use rio::{BackendChoice, Runtime, RuntimeConfig};

pub const BACKENDS: [BackendChoice; 2] = [BackendChoice::IoUring, BackendChoice::ThreadPool];

pub fn runtime(backend: BackendChoice) -> Runtime {
    Runtime::new(&RuntimeConfig { backend, ..Default::default() }).expect("runtime opens")
}

/// Runs `test` on a fresh runtime of each backend, naming the backend on failure.
pub fn each_backend(test: impl Fn(&Runtime, &std::path::Path)) {
    for backend in BACKENDS {
        let rt = runtime(backend);
        let dir = tempfile::tempdir().unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&rt, dir.path())));
        if let Err(e) = result {
            eprintln!("failed on backend {:?}", backend);
            std::panic::resume_unwind(e);
        }
    }
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The seed of randomized completion faults: `RIO_FAULT_SEED` replays a
/// failed run, otherwise the clock picks one.
pub fn fault_seed() -> u64 {
    match std::env::var("RIO_FAULT_SEED") {
        Ok(v) => v.trim().parse().expect("RIO_FAULT_SEED: an integer"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    }
}

/// Transient completion faults (short counts, EAGAIN, EINTR, ECANCELED,
/// io_uring_enter EBUSY/EINTR) on about one completion in `one_in`: the
/// engine must hide every one of them from callers.
pub fn transient_faults(seed: u64, one_in: u32) -> rio::CompletionFaults {
    rio::CompletionFaults { seed, one_in, hard_errors: false }
}

/// Runs `test` on each backend with randomized transient completion
/// faults, naming the backend and the seed (`RIO_FAULT_SEED`) on failure.
/// Returns the faults injected on each backend.
pub fn each_backend_with_completion_faults(one_in: u32, test: impl Fn(&Runtime, &std::path::Path)) -> [u64; 2] {
    let seed = fault_seed();
    let mut injected = [0; 2];
    for (i, backend) in BACKENDS.into_iter().enumerate() {
        let config = RuntimeConfig { backend, completion_faults: Some(transient_faults(seed, one_in)), ..Default::default() };
        let rt = Runtime::new(&config).expect("runtime opens");
        let dir = tempfile::tempdir().unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&rt, dir.path())));
        if let Err(e) = result {
            eprintln!("failed on backend {backend:?} with completion faults one in {one_in}, RIO_FAULT_SEED={seed}");
            std::panic::resume_unwind(e);
        }
        injected[i] = rt.completion_faults_injected();
    }
    injected
}

/// A behaviour test that takes any runtime and a scratch directory.
pub type Case = fn(&Runtime, &std::path::Path);

/// The macro list of a test file's `#[test]` wrappers (`src`, one name an
/// indented line) and its CASES table must not drift apart.
pub fn assert_every_case_listed(src: &str, cases: &[(&str, Case)]) {
    for (name, _) in cases {
        assert!(src.contains(&format!("        {name},\n")), "{name} missing from on_both_backends!");
    }
}

/// Runs every case again with randomized transient completion faults on
/// about one kernel call in 3, `RIO_FAULT_RUNS` times (default 1), each
/// with a fresh seed (`RIO_FAULT_SEED` replays one), naming the case, the
/// backend and the seed on failure; asserts faults were injected on both
/// backends, so the run cannot silently inject nothing.
pub fn cases_with_completion_faults(what: &str, cases: &[(&str, Case)]) {
    let runs: u32 = std::env::var("RIO_FAULT_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut injected = [0u64; 2];
    for _ in 0..runs {
        for (name, case) in cases {
            let n = each_backend_with_completion_faults(3, |rt, dir| {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(rt, dir)));
                if let Err(e) = result {
                    eprintln!("{what} case {name} failed under completion faults");
                    std::panic::resume_unwind(e);
                }
            });
            injected = [injected[0] + n[0], injected[1] + n[1]];
        }
    }
    eprintln!("{runs} runs of {} {what} cases; completion faults injected: io_uring {}, thread_pool {}", cases.len(), injected[0], injected[1]);
    assert!(injected.iter().all(|&n| n > 0), "faults were injected on both backends: {injected:?}");
}

/// Runs the `#[ignore]`d test `name` of this test binary in a child
/// process (for process-wide state: rlimits, capabilities) and checks that
/// it passed and printed CHILD-OK.
pub fn run_child(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{name} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("CHILD-OK"), "{stdout}");
}

/// Crash tests: the count from variable `name` (e.g. rounds), else `default`.
pub fn env_count(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Crash tests: the backend a child was told to use, by its name.
pub fn backend_choice(name: &str) -> BackendChoice {
    if name == "io_uring" { BackendChoice::IoUring } else { BackendChoice::ThreadPool }
}

/// Crash tests: xorshift dice for crash moments (seed it from the clock, or
/// from a printed seed to replay a failure).
pub struct Dice(pub u64);

impl Dice {
    pub fn from_clock() -> Dice {
        Dice(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A ramfs mounted on a temporary directory (root only): a filesystem
/// without O_DIRECT and without fallocate. Unmounted on drop.
pub struct Ramfs(pub std::path::PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Ramfs {
    /// None (with a SKIP line) when not root: mounting needs it.
    pub fn mount() -> Option<Ramfs> {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP: mounting ramfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount").args(["-t", "ramfs", "ramfs"]).arg(dir.path()).status().unwrap().success();
        assert!(ok, "mount -t ramfs failed");
        Some(Ramfs(dir.path().to_path_buf(), dir))
    }
}

impl Drop for Ramfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
