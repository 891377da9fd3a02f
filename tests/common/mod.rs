//! Shared helpers: every behaviour test runs once per backend.
#![allow(dead_code)]

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
