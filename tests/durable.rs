//! DiskFile::write_durable on both backends: what returned survives a
//! simulated power loss (the fault backend journals the O_DIRECT second
//! descriptor's writes too), buffered reads see the new bytes (coherency
//! of the page cache with the direct span), every head and tail size
//! 0..8191 around aligned middles, the page-cache fallback on ramfs, bad
//! inputs, and failures naming the part that failed.

mod common;

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use common::*;
use rio::{open_flags::*, AlignedBuf, BackendChoice, CrashMode, DiskFile, FaultAction, FaultRule, OpCode, Runtime, RuntimeConfig};

fn rw(rt: &Runtime, path: &Path) -> DiskFile {
    DiskFile::open(rt, path, READ | WRITE | CREATE, 0o644).unwrap()
}

/// What is on the device, bypassing the page cache (an O_DIRECT read).
fn read_direct(path: &Path) -> Vec<u8> {
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let mut buf = AlignedBuf::new(len.div_ceil(4096) * 4096);
    let mut done = 0;
    while done < buf.len() {
        let n = f.read_at(&mut buf[done..], done as u64).unwrap();
        if n == 0 {
            break;
        }
        done += n;
    }
    buf[..len].to_vec()
}

fn faulty(backend: BackendChoice) -> Runtime {
    Runtime::new(&RuntimeConfig { backend, fault_injection: true, ..Default::default() }).unwrap()
}

/// Writes `data` at `off` into the model of the file too.
fn put(model: &mut Vec<u8>, off: usize, data: &[u8]) {
    if model.len() < off + data.len() {
        model.resize(off + data.len(), 0);
    }
    model[off..off + data.len()].copy_from_slice(data);
}

#[test]
fn buffered_reads_see_what_write_durable_wrote() {
    each_backend(|rt, dir| {
        let path = dir.join("coherent");
        let f = rw(rt, &path);
        let mut model = Vec::new();
        // Dirty page-cache pages under, around and past the durable spans.
        let old = pattern(3 << 20, 1);
        f.write_at(&old, 0).unwrap();
        put(&mut model, 0, &old);
        let mut cached = vec![0u8; 64];
        f.read_at(&mut cached, 4096).unwrap(); // and cached clean ones
        for (i, (off, len)) in [(0, 1 << 20), (100, 1 << 20), (4095, 3 * 4096 + 2), (8192, 4096), (3 << 20, 777_777)]
            .into_iter()
            .enumerate()
        {
            let data = pattern(len, 10 + i as u64);
            assert_eq!(f.write_durable(&data, off as u64).unwrap(), len);
            put(&mut model, off, &data);
            let mut back = vec![0u8; model.len()];
            assert_eq!(f.read_at(&mut back, 0).unwrap(), model.len());
            assert!(back == model, "buffered read after write_durable({off}, {len}) differs");
        }
        assert!(read_direct(&path) == model, "the device holds what the page cache shows");
        assert_eq!(f.size().unwrap(), model.len() as u64);
        assert!(f.durable_fallback_reason().is_none());
    });
}

#[test]
fn one_mib_aligned_goes_out_as_one_batch() {
    each_backend(|rt, dir| {
        let f = rw(rt, &dir.join("batch"));
        // Within the size: the O_DIRECT path (a write that grows the file
        // goes through the page cache, see extending_writes_use_the_page_cache).
        f.truncate(2 << 20).unwrap();
        let mut data = AlignedBuf::new(1 << 20);
        data.copy_from_slice(&pattern(1 << 20, 4));
        let (batches, writes) = (rt.metrics().batches(), rt.metrics().op_count(OpCode::Write));
        f.write_durable(&data, 0).unwrap();
        assert_eq!(rt.metrics().batches(), batches + 1, "the chunks are one engine batch");
        assert_eq!(rt.metrics().op_count(OpCode::Write), writes + 4, "1 MiB in 256 KiB chunks");
        assert_eq!(rt.metrics().durable.writes(), 1);
        assert_eq!(rt.metrics().durable.bytes(), 1 << 20);
        assert_eq!(rt.metrics().durable.page_cache_fallbacks(), 0);
        let text = rt.metrics_prometheus();
        assert!(text.contains("rio_durable_writes_total 1\n"), "{text}");
        // Misaligned memory is bounced through an aligned copy, same result.
        let mut odd = vec![0u8; (1 << 20) + 1];
        odd[1..].copy_from_slice(&pattern(1 << 20, 5));
        f.write_durable(&odd[1..], 1 << 20).unwrap();
        let mut back = vec![0u8; 2 << 20];
        f.read_at(&mut back, 0).unwrap();
        assert!(back[..1 << 20] == data[..] && back[1 << 20..] == odd[1..]);
        assert_eq!(rt.metrics().durable.extending_writes(), 0);
    });
}

#[test]
fn extending_writes_use_the_page_cache() {
    each_backend(|rt, dir| {
        let path = dir.join("grow");
        let f = rw(rt, &path);
        let data = pattern(1 << 20, 6);
        let writes = rt.metrics().op_count(OpCode::Write);
        assert_eq!(f.write_durable(&data, 4096).unwrap(), data.len());
        assert_eq!(rt.metrics().op_count(OpCode::Write), writes + 1, "one page-cache write");
        assert_eq!(rt.metrics().durable.extending_writes(), 1);
        // The same range again is an overwrite: O_DIRECT middle, 4 chunks + head/tail none.
        assert_eq!(f.write_durable(&data, 4096).unwrap(), data.len());
        assert_eq!(rt.metrics().op_count(OpCode::Write), writes + 1 + 4);
        assert!(read_direct(&path)[4096..] == data[..]);
        assert!(rt.metrics_prometheus().contains("rio_durable_extending_writes_total 1\n"));
    });
}

/// Every head and tail size 0..8191 (head h with tail (h * 4099) % 8192)
/// around an aligned 8 KiB middle, on tmpfs (O_DIRECT there, and a cheap
/// fdatasync, so the whole loop runs); a sampled grid on the test dir.
#[test]
fn every_head_and_tail_size_around_aligned_middles() {
    let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs at /dev/shm");
    for backend in BACKENDS {
        let rt = runtime(backend);
        let pairs: Vec<(usize, usize)> = (0..8192).map(|h| (h, (h * 4099) % 8192)).collect();
        heads_and_tails(&rt, &shm.path().join(format!("ht-{backend:?}")), &pairs);
        let grid = [0, 1, 511, 512, 513, 4095, 4096, 4097, 8191];
        let pairs: Vec<(usize, usize)> = grid.iter().flat_map(|&h| grid.iter().map(move |&t| (h, t))).collect();
        let dir = tempfile::tempdir().unwrap();
        heads_and_tails(&rt, &dir.path().join("ht"), &pairs);
    }
}

fn heads_and_tails(rt: &Runtime, path: &Path, pairs: &[(usize, usize)]) {
    const SLOT: usize = 32 * 1024;
    let f = rw(rt, path);
    assert!(f.durable_fallback_reason().is_none(), "{}: O_DIRECT expected", path.display());
    let mut model = pattern(SLOT * 4, 99);
    f.write_at(&model, 0).unwrap();
    let data = pattern(8192 * 4, 7);
    for (i, &(head, tail)) in pairs.iter().enumerate() {
        // The middle starts page-aligned at 8192 within a slot that rotates.
        let base = (i % 3) * SLOT + 8192;
        let (off, len) = (base - head, head + 8192 + tail);
        let bytes = &data[i % 8192..i % 8192 + len];
        assert_eq!(f.write_durable(bytes, off as u64).unwrap(), len, "head {head} tail {tail}");
        put(&mut model, off, bytes);
        let mut back = vec![0u8; SLOT + 16384];
        let from = base - 8192;
        let n = f.read_at(&mut back, from as u64).unwrap();
        let want = &model[from..(from + back.len()).min(model.len())];
        assert!(back[..n] == *want, "head {head} tail {tail}: buffered read differs around the write");
    }
    assert!(read_direct(path) == model, "{}: device differs", path.display());
}

/// A random-ish sequence of durable and plain writes; after a simulated
/// power loss every durable one is there. Durable writes use their own
/// ranges; plain writes (never synced) may land anywhere else.
#[test]
fn every_returned_durable_write_survives_power_loss() {
    for backend in BACKENDS {
        for (round, mode) in [CrashMode::DiscardAll, CrashMode::TornPrefix { seed: 7 }, CrashMode::TornPrefix { seed: 1234 }]
            .into_iter()
            .enumerate()
        {
            let rt = faulty(backend);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("durable");
            let f = rw(&rt, &path);
            rio::sync_dir(&rt, dir.path()).unwrap();
            let mut durable: Vec<(usize, Vec<u8>)> = Vec::new();
            let mut x = 0x9E37_79B9u64 + round as u64;
            for i in 0..40usize {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let slot = i * 300_000;
                let (off, len) = (slot + (x % 9000) as usize, 1 + (x >> 20) as usize % 280_000);
                let data = pattern(len, x);
                f.write_durable(&data, off as u64).unwrap();
                durable.push((off, data));
                // An unsynced write into the gap after it, lost or torn.
                f.write_at(&pattern(500, i as u64), (slot + 295_000) as u64).unwrap();
            }
            rt.fault_injector().unwrap().crash(mode);
            let disk = std::fs::read(&path).unwrap();
            for (off, data) in &durable {
                assert!(disk.len() >= off + data.len(), "{backend:?} {mode:?}: file shorter than a durable write");
                assert!(disk[*off..off + data.len()] == data[..], "{backend:?} {mode:?}: durable write at {off} lost");
            }
        }
    }
}

/// A durable write whose sync fails promised nothing: after a power loss
/// the old bytes are back, which also shows that the fault backend
/// journals writes made through the O_DIRECT second descriptor.
#[test]
fn a_failed_durable_write_is_rolled_back_by_power_loss() {
    for backend in BACKENDS {
        let rt = faulty(backend);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rolled");
        let f = rw(&rt, &path);
        rio::sync_dir(&rt, dir.path()).unwrap();
        let old = pattern(1 << 20, 1);
        f.write_durable(&old, 0).unwrap();
        let faults = rt.fault_injector().unwrap();
        faults.add_rule(FaultRule { op: Some(OpCode::Fdatasync), nth: 1, count: 1, action: FaultAction::Error(libc::EIO) });
        let e = f.write_durable(&pattern(1 << 20, 2), 0).unwrap_err();
        assert_eq!(e.errno(), libc::EIO);
        assert!(e.message().contains("fdatasync"), "{e}");
        faults.crash(CrashMode::DiscardAll);
        assert!(std::fs::read(&path).unwrap() == old, "{backend:?}: the unsynced direct writes were not rolled back");
    }
}

#[test]
fn a_failed_part_is_named_and_nothing_is_durable_claimed() {
    for backend in BACKENDS {
        let rt = faulty(backend);
        let dir = tempfile::tempdir().unwrap();
        let f = rw(&rt, &dir.path().join("fail"));
        f.truncate(1 << 16).unwrap(); // an overwrite: the split path
        let faults = rt.fault_injector().unwrap();
        let data = pattern(3 * 4096 + 10, 3);
        // The 1st write of the batch is the page-cache head, then the tail, then the direct middle.
        for (nth, part) in [(1, "page-cache"), (3, "O_DIRECT")] {
            faults.clear_rules();
            faults.add_rule(FaultRule { op: Some(OpCode::Write), nth, count: 1, action: FaultAction::Error(libc::ENOSPC) });
            let syncs = rt.metrics().op_count(OpCode::Fdatasync);
            let e = f.write_durable(&data, 5).unwrap_err();
            assert_eq!(e.errno(), libc::ENOSPC, "{e}");
            assert!(e.message().contains(part) && e.message().contains("durable write"), "{e}");
            assert_eq!(rt.metrics().op_count(OpCode::Fdatasync), syncs, "no sync after a failed write");
        }
        assert_eq!(rt.metrics().durable.writes(), 0);
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    each_backend(|rt, dir| {
        let path = dir.join("bad");
        let f = rw(rt, &path);
        let e = f.write_durable(b"x", 1 << 63).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        assert!(e.message().contains("largest file offset"), "{e}");
        let e = f.write_durable(b"xy", i64::MAX as u64).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        assert_eq!(f.write_durable(&[], 0).unwrap(), 0);
        assert_eq!(f.size().unwrap(), 0);
        let ro = DiskFile::open(rt, &path, READ, 0).unwrap();
        let e = ro.write_durable(b"x", 0).unwrap_err();
        assert_eq!(e.errno(), libc::EBADF);
        assert!(e.message().contains("not open for writing"), "{e}");
        let ap = DiskFile::open(rt, &path, WRITE | APPEND, 0).unwrap();
        let e = ap.write_durable(b"x", 0).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        assert!(e.message().contains("O_APPEND"), "{e}");
        let direct = DiskFile::open(rt, &path, READ | WRITE | DIRECT, 0).unwrap();
        let e = direct.write_durable(b"abc", 0).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        assert!(e.message().contains("O_DIRECT needs"), "{e}");
        let mut a = AlignedBuf::new(8192);
        a.copy_from_slice(&pattern(8192, 9));
        assert_eq!(direct.write_durable(&a, 4096).unwrap(), 8192);
        let mut back = vec![0u8; 8192];
        f.read_at(&mut back, 4096).unwrap();
        assert!(back == a[..]);
    });
}

/// A filesystem without O_DIRECT (ramfs): write + fdatasync, counted, and
/// the reason reported.
#[test]
fn ramfs_falls_back_to_the_page_cache() {
    let Some(ramfs) = Ramfs::mount() else { return };
    each_backend(|rt, _| {
        let path = ramfs.0.join(format!("fallback-{:?}", rt.backend()));
        let f = rw(rt, &path);
        let data = pattern(3 * 4096 + 5, 8);
        assert_eq!(f.write_durable(&data, 7).unwrap(), data.len());
        assert!(f.durable_fallback_reason().unwrap().contains("does not support O_DIRECT"));
        assert_eq!(rt.metrics().durable.page_cache_fallbacks(), 1);
        assert_eq!(rt.metrics().durable.writes(), 1);
        let mut back = vec![0u8; data.len()];
        f.read_at(&mut back, 7).unwrap();
        assert!(back == data);
    });
}

