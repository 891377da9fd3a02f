//! The fault-injecting backend, on both backends: injected errors surface
//! exactly where they should, EINTR/EAGAIN/short transfers never do, and
//! simulated power loss keeps exactly what was synced.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rio::{open_flags::*, BackendChoice, CrashMode, DiskFile, FaultAction, FaultRule, OpCode, Runtime, RuntimeConfig};

fn faulty(backend: BackendChoice) -> Runtime {
    Runtime::new(&RuntimeConfig { backend, fault_injection: true, ..Default::default() }).unwrap()
}

fn each_faulty_backend(test: impl Fn(&Runtime, &Path)) {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        test(&faulty(backend), dir.path());
    }
}

fn rule(op: Option<OpCode>, nth: u64, count: u64, action: FaultAction) -> FaultRule {
    FaultRule { op, nth, count, action }
}

fn read_all(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn nth_write_fails_with_the_chosen_errno() {
    each_faulty_backend(|rt, dir| {
        let f = DiskFile::open(rt, dir.join("f"), READ | WRITE | CREATE, 0o644).unwrap();
        rt.fault_injector().unwrap().add_rule(rule(Some(OpCode::Write), 3, 1, FaultAction::Error(libc::ENOSPC)));
        f.write_at(b"one", 0).unwrap();
        f.datasync().unwrap(); // not a write: not counted
        f.write_at(b"two", 3).unwrap();
        let e = f.write_at(b"three", 6).unwrap_err();
        assert_eq!(e.errno(), libc::ENOSPC);
        f.write_at(b"four", 6).unwrap();
        assert_eq!(read_all(&dir.join("f")), b"onetwofour");
        assert_eq!(rt.metrics().op_errors(OpCode::Write), 1);
    });
}

#[test]
fn eintr_eagain_and_short_transfers_never_surface() {
    each_faulty_backend(|rt, dir| {
        let f = DiskFile::open(rt, dir.join("f"), READ | WRITE | CREATE, 0o644).unwrap();
        let faults = rt.fault_injector().unwrap();
        faults.add_rule(rule(Some(OpCode::Write), 1, 5, FaultAction::Error(libc::EINTR)));
        faults.add_rule(rule(Some(OpCode::Fdatasync), 1, 5, FaultAction::Error(libc::EAGAIN)));
        faults.add_rule(rule(None, 1, 0, FaultAction::Short));
        let data = pattern(100_000, 3);
        for i in 0..10u64 {
            assert_eq!(f.write_at(&data, i * 100_000).unwrap(), data.len());
            f.datasync().unwrap();
        }
        let mut iov_data = [vec![0u8; 7], vec![0u8; 0], vec![0u8; 50_000]];
        let mut iov: Vec<std::io::IoSliceMut> = iov_data.iter_mut().map(|b| std::io::IoSliceMut::new(b)).collect();
        assert_eq!(f.readv_at(&mut iov, 0).unwrap(), 50_007);
        assert_eq!(&iov_data[0][..], &data[..7]);
        assert_eq!(&iov_data[2][..], &data[7..50_007]);
        let mut back = vec![0u8; 1_000_000];
        assert_eq!(f.read_at(&mut back, 0).unwrap(), 1_000_000);
        for chunk in back.chunks(100_000) {
            assert_eq!(chunk, &data[..]);
        }
    });
}

#[test]
fn delay_is_applied() {
    each_faulty_backend(|rt, dir| {
        let f = DiskFile::open(rt, dir.join("f"), READ | WRITE | CREATE, 0o644).unwrap();
        rt.fault_injector().unwrap().add_rule(rule(Some(OpCode::Fsync), 1, 1, FaultAction::Delay(Duration::from_millis(30))));
        let t = Instant::now();
        f.sync().unwrap();
        assert!(t.elapsed() >= Duration::from_millis(30));
    });
}

#[test]
fn power_loss_discards_everything_unsynced() {
    each_faulty_backend(|rt, dir| {
        let path = dir.join("data");
        let f = DiskFile::open(rt, &path, READ | WRITE | CREATE, 0o644).unwrap();
        rio::sync_dir(rt, dir).unwrap();
        f.write_at(&[1; 4096], 0).unwrap();
        f.datasync().unwrap();
        f.write_at(&[2; 4096], 2048).unwrap(); // overwrites half of the synced block, extends
        f.truncate(100_000).unwrap();
        let fresh = DiskFile::open(rt, dir.join("fresh"), WRITE | CREATE, 0o644).unwrap();
        fresh.write_at(b"never synced dir", 0).unwrap();
        fresh.datasync().unwrap();
        rt.fault_injector().unwrap().crash(CrashMode::DiscardAll);
        assert_eq!(read_all(&path), vec![1u8; 4096]);
        assert!(!dir.join("fresh").exists(), "a file whose directory was never synced vanishes");
        assert_eq!(f.write_at(b"x", 0).unwrap_err().errno(), libc::EIO, "a crashed machine does no I/O");
    });
}

#[test]
fn power_loss_with_torn_prefix_keeps_an_ordered_prefix() {
    for seed in 1..40u64 {
        let backend = BACKENDS[seed as usize % 2];
        let rt = faulty(backend);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let f = DiskFile::open(&rt, &path, READ | WRITE | CREATE, 0o644).unwrap();
        rio::sync_dir(&rt, dir.path()).unwrap();
        let blocks: Vec<Vec<u8>> = (0..8).map(|i| pattern(1000, seed * 100 + i)).collect();
        f.write_at(&blocks[0], 0).unwrap();
        f.datasync().unwrap();
        for (i, b) in blocks.iter().enumerate().skip(1) {
            f.write_at(b, i as u64 * 1000).unwrap();
        }
        rt.fault_injector().unwrap().crash(CrashMode::TornPrefix { seed });
        let after = read_all(&path);
        assert!(after.len() >= 1000, "seed {seed}: synced data lost");
        let expected: Vec<u8> = blocks.concat();
        // What survives is a prefix of the appends: every byte matches what
        // was written, and nothing beyond the surviving length exists.
        assert_eq!(&after[..], &expected[..after.len()], "seed {seed} ({backend:?})");
    }
}

/// A sync makes durable only the changes that completed before it started:
/// a write submitted in the same batch as the sync (ops of a batch run in
/// any order), or still running when the sync begins, is lost by a power
/// loss. It used to count as synced.
#[test]
fn power_loss_discards_a_write_not_ordered_before_the_sync() {
    each_faulty_backend(|rt, dir| {
        let path = dir.join("f");
        std::fs::write(&path, b"durable").unwrap();
        let f = DiskFile::open(rt, &path, READ | WRITE, 0).unwrap();
        let mut batch = rio::Batch::new();
        batch.write(&f, b"RACING!", 0).unwrap();
        batch.fdatasync(&f).unwrap();
        assert!(batch.submit(rt).iter().all(|r| r.is_ok()));
        // Ordered (another file): written in one call, synced in a later one.
        let ordered = dir.join("g");
        std::fs::write(&ordered, b"durable").unwrap();
        let g = DiskFile::open(rt, &ordered, READ | WRITE, 0).unwrap();
        let mut batch = rio::Batch::new();
        batch.write(&g, b"synced!", 0).unwrap();
        assert!(batch.submit(rt).iter().all(|r| r.is_ok()));
        g.datasync().unwrap();
        rt.fault_injector().unwrap().crash(CrashMode::DiscardAll);
        assert_eq!(read_all(&path), b"durable", "the write batched with the sync survived");
        assert_eq!(read_all(&ordered), b"synced!");
    });
}
