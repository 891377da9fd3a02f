//! fork(): a child keeps using the runtime and files it inherited, on its
//! own rings and workers, while the parent's threads carry on with rings
//! and I/O in flight, unaffected. Both backends.
//!
//! Regressions (issue 11, bug 1): on io_uring the child pushed its SQEs into
//! the parent's ring (its submit failed with EEXIST, and the parent's next
//! submit ran the child's read in the parent); on the thread pool any batch
//! of 2+ ops in the child hung forever (no workers); a permit held by a
//! parent thread at fork time was lost in the child forever.
//! `RIO_FORK_ROUNDS` sets the forks per backend.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::forking::{in_child, ChildEnd};
use common::*;
use rio::{open_flags::*, AlignedBuf, Batch, DiskFile, FaultAction, FaultRule, OpCode, Runtime, RuntimeConfig};

const CHILD_DEADLINE: Duration = Duration::from_secs(20);
/// Size of each O_DIRECT read the parent's threads keep in flight.
const BIG: usize = 1 << 20;
const DIRECT_FILE_LEN: usize = 8 * BIG;

fn rounds() -> u32 {
    std::env::var("RIO_FORK_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12)
}

/// A file of known content for O_DIRECT reads (parent and child).
fn direct_file(rt: &Runtime, dir: &Path) -> DiskFile {
    let path = dir.join("direct");
    std::fs::write(&path, pattern(DIRECT_FILE_LEN, 77)).unwrap();
    DiskFile::open(rt, &path, READ | DIRECT, 0).unwrap()
}

/// Batched O_DIRECT reads of `n` big blocks starting at block `first`, checked.
fn direct_reads_ok(rt: &Runtime, f: &DiskFile, first: usize, n: usize) -> bool {
    let expected = pattern(DIRECT_FILE_LEN, 77);
    let mut bufs: Vec<AlignedBuf> = (0..n).map(|_| AlignedBuf::new(BIG)).collect();
    let mut batch = Batch::new();
    for (i, b) in bufs.iter_mut().enumerate() {
        batch.read(f, b, (((first + i) % 8) * BIG) as u64).unwrap();
    }
    let results = batch.submit(rt);
    results.iter().all(|r| matches!(r, Ok(n) if *n == BIG as u64))
        && bufs.iter().enumerate().all(|(i, b)| {
            let at = ((first + i) % 8) * BIG;
            b[..] == expected[at..at + BIG]
        })
}

/// Lone and batched buffered I/O on a file of its own, checked.
fn file_io_ok(rt: &Runtime, dir: &Path, name: &str, seed: u64) -> bool {
    let f = DiskFile::open(rt, dir.join(name), READ | WRITE | CREATE | TRUNCATE, 0o644).unwrap();
    let lone = pattern(100_000, seed);
    if f.write_at(&lone, 0).ok() != Some(lone.len()) {
        return false;
    }
    let mut back = vec![0u8; lone.len()];
    if f.read_at(&mut back, 0).ok() != Some(lone.len()) || back != lone {
        return false;
    }
    let blocks: Vec<Vec<u8>> = (0..8).map(|i| pattern(4096, seed * 100 + i)).collect();
    let mut batch = Batch::new();
    for (i, b) in blocks.iter().enumerate() {
        batch.write(&f, b, 200_000 + i as u64 * 4096).unwrap();
    }
    batch.fdatasync(&f).unwrap();
    if !batch.submit(rt).iter().all(|r| r.is_ok()) {
        return false;
    }
    let mut backs = vec![vec![0u8; 4096]; 8];
    let mut batch = Batch::new();
    for (i, b) in backs.iter_mut().enumerate() {
        batch.read(&f, b, 200_000 + i as u64 * 4096).unwrap();
    }
    batch.submit(rt).iter().all(|r| matches!(r, Ok(4096))) && backs == blocks
}

/// What a child does with the runtime it inherited.
fn child_work(rt: &Runtime, dir: &Path, direct: &DiskFile, round: u32) -> bool {
    file_io_ok(rt, dir, &format!("child-{round}"), 1000 + round as u64)
        && direct_reads_ok(rt, direct, round as usize, 4)
        && rt.ops_in_flight() == 0
}

#[test]
fn a_child_uses_the_inherited_runtime_and_the_parent_is_unaffected() {
    let rounds = rounds();
    each_backend(|rt, dir| {
        let direct = direct_file(rt, dir);
        let stop = AtomicBool::new(false);
        let parent_errors = AtomicU64::new(0);
        let parent_batches = AtomicU64::new(0);
        std::thread::scope(|s| {
            // Parent threads with rings and big O_DIRECT reads in flight
            // whenever the main thread forks.
            for t in 0..4 {
                let (direct, stop, errors, batches) = (&direct, &stop, &parent_errors, &parent_batches);
                s.spawn(move || {
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        let ok = direct_reads_ok(rt, direct, i, 3) && file_io_ok(rt, dir, &format!("parent-{t}"), t as u64);
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        batches.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                });
            }
            for round in 0..rounds {
                // The forking thread has a ring (and history) of its own.
                assert!(direct_reads_ok(rt, &direct, round as usize, 2), "round {round}: parent read before fork");
                let end = in_child(CHILD_DEADLINE, || child_work(rt, dir, &direct, round));
                assert_eq!(end, ChildEnd::Exited(0), "round {round}: the child's I/O on the inherited runtime");
                // The parent's ring on this thread was not used by the child.
                assert!(direct_reads_ok(rt, &direct, round as usize + 1, 4), "round {round}: parent read after fork");
                assert!(file_io_ok(rt, dir, "forker", round as u64), "round {round}: parent file I/O after fork");
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(parent_errors.load(Ordering::Relaxed), 0, "the parent's threads saw wrong data or errors");
        assert!(parent_batches.load(Ordering::Relaxed) > 0);
        assert_eq!(rt.ops_in_flight(), 0, "the parent's in-flight accounting");
        eprintln!("{}: {rounds} forks, {} parent batches verified", rt.backend().name(), parent_batches.load(Ordering::Relaxed));
    });
}

#[test]
fn a_permit_held_by_a_parent_thread_is_not_lost_in_the_child() {
    for backend in BACKENDS {
        // One permit, held by a parent thread (its fsync is delayed) while
        // the main thread forks: the child's I/O needs a permit of its own.
        let rt = Runtime::new(&RuntimeConfig {
            backend,
            max_concurrent_ops: Some(1),
            fault_injection: true,
            ..Default::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = DiskFile::open(&rt, dir.path().join("held"), READ | WRITE | CREATE, 0o644).unwrap();
        let faults = rt.fault_injector().unwrap();
        faults.add_rule(FaultRule { op: Some(OpCode::Fsync), nth: 1, count: 1, action: FaultAction::Delay(Duration::from_millis(1500)) });
        std::thread::scope(|s| {
            let holder = s.spawn(|| f.sync());
            while rt.ops_in_flight() == 0 {
                std::thread::yield_now();
            }
            let end = in_child(CHILD_DEADLINE, || file_io_ok(&rt, dir.path(), "child", 5) && rt.ops_in_flight() == 0);
            assert_eq!(end, ChildEnd::Exited(0), "{backend:?}: the child's I/O while a parent thread held the only permit");
            holder.join().unwrap().unwrap();
        });
        assert_eq!(rt.ops_in_flight(), 0);
        assert!(file_io_ok(&rt, dir.path(), "parent", 6), "{backend:?}: the parent after the fork");
    }
}

#[test]
fn a_grandchild_builds_its_own_rings_and_workers_too() {
    each_backend(|rt, dir| {
        assert!(file_io_ok(rt, dir, "gen0", 0));
        let end = in_child(CHILD_DEADLINE, || {
            file_io_ok(rt, dir, "gen1", 1)
                && in_child(CHILD_DEADLINE / 2, || file_io_ok(rt, dir, "gen2", 2)) == ChildEnd::Exited(0)
                && file_io_ok(rt, dir, "gen1-after", 3)
        });
        assert_eq!(end, ChildEnd::Exited(0));
        assert!(file_io_ok(rt, dir, "gen0-after", 4));
    });
}
