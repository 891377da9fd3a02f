//! Registered buffers (AlignedBuf::new_registered, as rio_buf_alloc): on
//! io_uring, transfers inside one go as READ_FIXED/WRITE_FIXED (counted),
//! others as plain READ/WRITE; buffers freed and reallocated never reach a
//! stale registration; the thread pool behaves the same; and where the
//! kernel refuses to pin (RLIMIT_MEMLOCK 512 KiB without CAP_IPC_LOCK) every op
//! still works, the refusal counted and explained.

mod common;

use common::*;
use rio::{open_flags::*, AlignedBuf, Batch, BackendKind, DiskFile, Runtime};

fn check_round_trips(rt: &Runtime, dir: &std::path::Path) {
    let f = DiskFile::open(rt, dir.join("fixed"), READ | WRITE | CREATE | DIRECT, 0o644).unwrap();
    let uring = rt.backend() == BackendKind::IoUring;
    let mut reg = AlignedBuf::new_registered(32 * 4096);
    reg.copy_from_slice(&pattern(32 * 4096, 1));
    let before = rt.fixed_buffer_sqes();
    // A batch of 32 4 KiB writes from inside the registered buffer.
    let mut b = Batch::new();
    for (i, chunk) in reg.chunks(4096).enumerate() {
        b.write(&f, chunk, i as u64 * 4096).unwrap();
    }
    assert!(b.submit(rt).into_iter().all(|r| r.unwrap() == 4096));
    // A lone read into the middle of it.
    let mut back = AlignedBuf::new_registered(32 * 4096);
    assert_eq!(f.read_at(&mut back[4096..12288], 4096).unwrap(), 8192);
    assert!(back[4096..12288] == reg[4096..12288]);
    let fixed = rt.fixed_buffer_sqes() - before;
    if uring {
        assert_eq!(fixed, 33, "32 writes and one read inside registered buffers");
    } else {
        assert_eq!(fixed, 0);
    }
    // Unregistered memory: plain SQEs, same result.
    let mut plain = AlignedBuf::new(32 * 4096);
    assert_eq!(f.read_at(&mut plain, 0).unwrap(), 32 * 4096);
    assert!(plain[..] == reg[..]);
    assert_eq!(rt.fixed_buffer_sqes() - before, fixed);
}

#[test]
fn transfers_inside_registered_buffers_use_fixed_sqes() {
    each_backend(check_round_trips);
}

/// Buffers freed and reallocated (often at the same address) are read and
/// written correctly: a ring never uses a slot of memory that was freed.
#[test]
fn freed_and_reallocated_buffers_never_hit_stale_registrations() {
    each_backend(|rt, dir| {
        let f = DiskFile::open(rt, dir.join("churn"), READ | WRITE | CREATE | DIRECT, 0o644).unwrap();
        let expect = {
            let mut a = AlignedBuf::new(64 * 4096);
            a.copy_from_slice(&pattern(64 * 4096, 3));
            f.write_at(&a, 0).unwrap();
            a.to_vec()
        };
        for round in 0..200usize {
            let blocks = 1 + round % 64;
            let mut buf = AlignedBuf::new_registered(blocks * 4096);
            let off = (round % (65 - blocks)) * 4096;
            assert_eq!(f.read_at(&mut buf, off as u64).unwrap(), blocks * 4096);
            assert!(buf[..] == expect[off..off + blocks * 4096], "round {round}");
            drop(buf);
            // Reallocated over the old region, a different size: still fresh.
            let mut again = AlignedBuf::new_registered((65 - blocks) * 4096);
            assert_eq!(f.read_at(&mut again, 0).unwrap(), (65 - blocks) * 4096);
            assert!(again[..] == expect[..(65 - blocks) * 4096], "round {round} (reallocated)");
        }
        assert_eq!(rt.buffer_registration_failures().0, 0, "{:?}", rt.buffer_registration_failures().1);
    });
}

/// Drops CAP_IPC_LOCK from this (child) process, so RLIMIT_MEMLOCK binds.
fn drop_ipc_lock() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const V3: u32 = 0x2008_0522;
    const CAP_IPC_LOCK: u32 = 14;
    let mut h = Header { version: V3, pid: 0 };
    let mut d = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    assert_eq!(unsafe { libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) }, 0);
    d[0].effective &= !(1 << CAP_IPC_LOCK);
    d[0].permitted &= !(1 << CAP_IPC_LOCK);
    assert_eq!(unsafe { libc::syscall(libc::SYS_capset, &h, d.as_ptr()) }, 0);
}

#[test]
#[ignore = "runs only as the child of memlock_refusal_is_silent_for_callers_and_reported"]
fn child_memlock_refusal() {
    drop_ipc_lock();
    // Room for the rings (charged to it without CAP_IPC_LOCK), not for
    // pinning the 2 MiB buffers.
    let lim = libc::rlimit { rlim_cur: 512 << 10, rlim_max: 512 << 10 };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) }, 0);
    each_backend(|rt, dir| {
        let f = DiskFile::open(rt, dir.join("m"), READ | WRITE | CREATE | DIRECT, 0o644).unwrap();
        let mut buf = AlignedBuf::new_registered(2 << 20);
        buf.copy_from_slice(&pattern(2 << 20, 4));
        assert_eq!(f.write_at(&buf, 0).unwrap(), 2 << 20);
        let mut back = AlignedBuf::new_registered(2 << 20);
        assert_eq!(f.read_at(&mut back, 0).unwrap(), 2 << 20);
        assert!(back[..] == buf[..]);
        assert_eq!(rt.fixed_buffer_sqes(), 0, "nothing could be registered");
        let (failures, reason) = rt.buffer_registration_failures();
        if rt.backend() == BackendKind::IoUring {
            assert!(failures > 0);
            let reason = reason.unwrap();
            assert!(reason.contains("RLIMIT_MEMLOCK"), "{reason}");
            assert!(rt.metrics_prometheus().contains("rio_io_uring_buffer_registration_failures_total"));
        } else {
            assert_eq!((failures, reason), (0, None));
        }
    });
    println!("CHILD-OK");
}

#[test]
fn memlock_refusal_is_silent_for_callers_and_reported() {
    run_child("child_memlock_refusal");
}
