//! The fault backend's shadow descriptors (one per journaled file, for
//! undo snapshots and the simulated power loss), on both backends:
//!
//! - they do not leak: 300 create/write/sync/close/unlink cycles leave as
//!   many descriptors open as on a plain runtime (none); without the sync,
//!   the unlinked files' shadows are released too (at most the last one
//!   lingers until the next file is journaled);
//! - under RLIMIT_NOFILE 128, after 200 short-lived files, a simulated
//!   power loss still rolls back an unsynced write;
//! - when no shadow can be opened, the change fails with EMFILE instead of
//!   running unjournaled: every write that succeeded is rolled back by the
//!   crash, none survives it.
//!
//! The tests count this process's descriptors and change its RLIMIT_NOFILE,
//! so they run one at a time (SERIAL).

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::*;
use rio::{open_flags::*, BackendChoice, CrashMode, DiskFile, Runtime, RuntimeConfig};

static SERIAL: Mutex<()> = Mutex::new(());

fn runtime(backend: BackendChoice, fault_injection: bool) -> Runtime {
    Runtime::new(&RuntimeConfig { backend, fault_injection, ..Default::default() }).unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// One short-lived file: created, written, maybe synced, closed, unlinked.
fn cycle(rt: &Runtime, path: &Path, sync: bool) {
    let f = DiskFile::open(rt, path, READ | WRITE | CREATE | TRUNCATE, 0o644).unwrap();
    f.write_at(&pattern(4096, 1), 0).unwrap();
    f.truncate(8192).unwrap();
    if sync {
        f.datasync().unwrap();
    }
    f.close().unwrap();
    std::fs::remove_file(path).unwrap();
}

/// Descriptors left open by `cycles` cycles on a runtime (after one
/// warm-up cycle, which lets an io_uring thread create its ring).
fn leaked(rt: &Runtime, dir: &Path, cycles: usize, sync: bool) -> usize {
    cycle(rt, &dir.join("warm-up"), sync);
    let before = open_fds();
    for i in 0..cycles {
        cycle(rt, &dir.join(format!("f{i}")), sync);
    }
    open_fds().saturating_sub(before)
}

#[test]
fn shadows_are_released_after_sync_and_unlink() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let plain = leaked(&runtime(backend, false), dir.path(), 300, true);
        let faulty = leaked(&runtime(backend, true), dir.path(), 300, true);
        assert_eq!((plain, faulty), (0, 0), "{backend:?}: descriptors left by 300 synced cycles (plain, fault)");
        let faulty = leaked(&runtime(backend, true), dir.path(), 300, false);
        assert!(faulty <= 1, "{backend:?}: 300 unsynced, unlinked files left {faulty} descriptors");
    }
}

/// Lowers the soft RLIMIT_NOFILE for the guard's life.
struct NofileLimit(libc::rlimit);

impl NofileLimit {
    fn set(soft: u64) -> NofileLimit {
        let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
        let new = libc::rlimit { rlim_cur: soft, rlim_max: old.rlim_max };
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) }, 0);
        NofileLimit(old)
    }
}

impl Drop for NofileLimit {
    fn drop(&mut self) {
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.0) };
    }
}

#[test]
fn power_loss_rolls_back_after_many_short_lived_files_under_a_low_nofile_limit() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(backend, true);
        let path = dir.path().join("kept");
        std::fs::write(&path, b"synced before").unwrap();
        {
            let _limit = NofileLimit::set(128);
            for i in 0..200 {
                cycle(&rt, &dir.path().join(format!("t{i}")), true);
            }
            let f = DiskFile::open(&rt, &path, READ | WRITE, 0).unwrap();
            f.write_at(b"NEVER SYNCED!", 0).unwrap();
            rt.fault_injector().unwrap().crash(CrashMode::DiscardAll);
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"synced before", "{backend:?}: the unsynced write survived");
    }
}

#[test]
fn a_change_that_cannot_be_journaled_fails_instead_of_surviving_power_loss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const FILES: usize = 200;
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..FILES).map(|i| dir.path().join(format!("u{i}"))).collect();
        for p in &paths {
            std::fs::write(p, b"old").unwrap();
        }
        let rt = runtime(backend, true);
        let (mut written, mut refused) = (Vec::new(), 0);
        {
            // Room for a few dozen files: each unsynced one keeps a shadow.
            let _limit = NofileLimit::set(open_fds() as u64 + 40);
            for p in &paths {
                // Short-lived handles: closed, never synced, left in place.
                let Ok(f) = DiskFile::open(&rt, p, WRITE, 0) else { continue };
                match f.write_at(b"new", 0) {
                    Ok(_) => written.push(p),
                    Err(e) => {
                        assert_eq!(e.errno(), libc::EMFILE, "{backend:?}: {e}");
                        refused += 1;
                    }
                }
            }
            rt.fault_injector().unwrap().crash(CrashMode::DiscardAll);
        }
        assert!(written.len() >= 10 && refused > 0, "{backend:?}: {} written, {refused} refused", written.len());
        for p in &paths {
            assert_eq!(std::fs::read(p).unwrap(), b"old", "{backend:?}: {} kept a write never synced", p.display());
        }
    }
}
