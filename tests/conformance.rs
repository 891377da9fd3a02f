//! The conformance suite: every file and batch behaviour, run on both
//! backends through the same code. `seccomp_fallback` re-runs all of it in a
//! child process where io_uring_setup is blocked.

mod common;

use std::io::{IoSlice, IoSliceMut};
use std::path::Path;
use std::sync::Arc;

use common::*;
use rio::{open_flags::*, AlignedBuf, Batch, DiskFile, Runtime};


fn rw(rt: &Runtime, dir: &Path, name: &str) -> DiskFile {
    DiskFile::open(rt, dir.join(name), READ | WRITE | CREATE, 0o644).unwrap()
}

fn round_trip(rt: &Runtime, dir: &Path) {
    let f = rw(rt, dir, "rt");
    let data = pattern(3 * 1024 * 1024 + 17, 1);
    assert_eq!(f.write_at(&data, 512).unwrap(), data.len());
    let mut back = vec![0u8; data.len()];
    assert_eq!(f.read_at(&mut back, 512).unwrap(), data.len());
    assert_eq!(back, data);
    assert_eq!(f.size().unwrap(), 512 + data.len() as u64);
}

fn short_read_only_at_eof(rt: &Runtime, dir: &Path) {
    let f = rw(rt, dir, "eof");
    f.write_at(&pattern(1000, 2), 0).unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(f.read_at(&mut buf, 900).unwrap(), 100);
    assert_eq!(&buf[..100], &pattern(1000, 2)[900..]);
    assert_eq!(f.read_at(&mut buf, 1000).unwrap(), 0);
    assert_eq!(f.read_at(&mut buf, 1 << 40).unwrap(), 0);
    assert_eq!(f.read_at(&mut [], 0).unwrap(), 0);
    // Offsets beyond i64::MAX are invalid (io_uring would read at the file position).
    assert_eq!(f.read_at(&mut buf, u64::MAX).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(f.write_at(b"x", 1 << 63).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(f.write_at(&[], 0).unwrap(), 0);
}

fn vectored(rt: &Runtime, dir: &Path) {
    let f = rw(rt, dir, "vec");
    let parts: Vec<Vec<u8>> = (0..40).map(|i| pattern(1000 + i * 37, i as u64)).collect();
    let slices: Vec<IoSlice> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let total: usize = parts.iter().map(Vec::len).sum();
    assert_eq!(f.writev_at(&slices, 10).unwrap(), total);
    let mut backs: Vec<Vec<u8>> = parts.iter().map(|p| vec![0; p.len()]).collect();
    let mut iov: Vec<IoSliceMut> = backs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
    assert_eq!(f.readv_at(&mut iov, 10).unwrap(), total);
    assert_eq!(backs, parts);
    // Past EOF the vectored read is short, like the plain one.
    let mut tail = [vec![0u8; 100], vec![0u8; 100]];
    let mut iov: Vec<IoSliceMut> = tail.iter_mut().map(|b| IoSliceMut::new(b)).collect();
    assert_eq!(f.readv_at(&mut iov, 10 + total as u64 - 150).unwrap(), 150);
}

fn sync_allocate_truncate(rt: &Runtime, dir: &Path) {
    let f = rw(rt, dir, "meta");
    f.write_at(b"hello", 0).unwrap();
    f.sync().unwrap();
    f.datasync().unwrap();
    f.allocate(0, 1 << 20).unwrap();
    assert_eq!(f.size().unwrap(), 1 << 20);
    f.truncate(3).unwrap();
    assert_eq!(f.size().unwrap(), 3);
    let mut buf = [0u8; 8];
    assert_eq!(f.read_at(&mut buf, 0).unwrap(), 3);
    assert_eq!(&buf[..3], b"hel");
    f.truncate(10).unwrap();
    assert_eq!(f.read_at(&mut buf, 0).unwrap(), 8);
    assert_eq!(&buf, b"hel\0\0\0\0\0");
    assert_eq!(f.allocate(0, 0).unwrap_err().errno(), libc::EINVAL);
}

fn open_flags_behave(rt: &Runtime, dir: &Path) {
    let p = dir.join("flags");
    let e = DiskFile::open(rt, &p, READ, 0).err().unwrap();
    assert_eq!(e.errno(), libc::ENOENT);
    assert!(e.message().contains("flags"), "{}", e.message());
    let f = DiskFile::open(rt, &p, WRITE | CREATE | EXCL, 0o600).unwrap();
    f.write_at(b"abcdef", 0).unwrap();
    assert_eq!(DiskFile::open(rt, &p, WRITE | CREATE | EXCL, 0o600).err().unwrap().errno(), libc::EEXIST);
    let ro = DiskFile::open(rt, &p, READ, 0).unwrap();
    assert_eq!(ro.write_at(b"x", 0).unwrap_err().errno(), libc::EBADF);
    let wo = DiskFile::open(rt, &p, WRITE | TRUNCATE, 0).unwrap();
    assert_eq!(wo.size().unwrap(), 0);
    let ap = DiskFile::open(rt, &p, WRITE | APPEND, 0).unwrap();
    ap.write_at(b"12", 0).unwrap();
    ap.write_at(b"34", 0).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(ro.read_at(&mut buf, 0).unwrap(), 4);
    assert_eq!(&buf, b"1234");
    let ds = DiskFile::open(rt, &p, READ | WRITE | DSYNC, 0).unwrap();
    ds.write_at(b"Z", 0).unwrap();
    for bad in [0, TRUNCATE | READ, EXCL | WRITE, 1 << 20] {
        assert_eq!(DiskFile::open(rt, &p, bad, 0).err().unwrap().errno(), libc::EINVAL, "flags {bad:#x}");
    }
    for f in [f, ro, wo, ap, ds] {
        f.close().unwrap();
    }
}

fn direct_io_alignment(rt: &Runtime, dir: &Path) {
    let f = DiskFile::open(rt, dir.join("direct"), READ | WRITE | CREATE | DIRECT, 0o644).unwrap();
    let align = f.dio_align().unwrap();
    assert!(align.offset.is_power_of_two() && align.memory.is_power_of_two());
    let mut buf = AlignedBuf::new(64 * 1024);
    buf.copy_from_slice(&pattern(64 * 1024, 9));
    assert_eq!(f.write_at(&buf, 8192).unwrap(), 64 * 1024);
    let mut back = AlignedBuf::new(64 * 1024);
    assert_eq!(f.read_at(&mut back, 8192).unwrap(), 64 * 1024);
    assert_eq!(&back[..], &buf[..]);
    let off = align.offset as u64;
    let e = f.write_at(&buf[..4096], off + 1).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(e.message().contains(&align.offset.to_string()), "{}", e.message());
    assert_eq!(f.write_at(&buf[1..4097], 0).unwrap_err().errno(), libc::EINVAL);
    assert_eq!(f.write_at(&buf[..100], 0).unwrap_err().errno(), libc::EINVAL);
}

fn batch_mixed(rt: &Runtime, dir: &Path) {
    let a = rw(rt, dir, "ba");
    let b = rw(rt, dir, "bb");
    let chunks: Vec<Vec<u8>> = (0..64).map(|i| pattern(4096, 100 + i)).collect();
    let mut batch = Batch::new();
    for (i, c) in chunks.iter().enumerate() {
        let f = if i % 2 == 0 { &a } else { &b };
        batch.write(f, c, (i as u64 / 2) * 4096).unwrap();
    }
    assert!(batch.submit(rt).iter().all(|r| *r.as_ref().unwrap() == 4096));
    let mut batch = Batch::new();
    batch.fsync(&a).unwrap();
    batch.fdatasync(&b).unwrap();
    assert!(batch.submit(rt).iter().all(|r| *r.as_ref().unwrap() == 0));
    let mut backs: Vec<Vec<u8>> = vec![vec![0; 4096]; 65];
    let mut batch = Batch::new();
    for (i, buf) in backs.iter_mut().enumerate() {
        let f = if i % 2 == 0 { &a } else { &b };
        batch.read(f, buf, (i as u64 / 2) * 4096).unwrap();
    }
    let results = batch.submit(rt);
    assert_eq!(*results[64].as_ref().unwrap(), 0, "read past EOF in a batch");
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(*results[i].as_ref().unwrap(), 4096);
        assert_eq!(&backs[i], c);
    }
}

fn batch_per_op_errors(rt: &Runtime, dir: &Path) {
    let w = rw(rt, dir, "ok");
    w.write_at(b"data", 0).unwrap();
    let ro = DiskFile::open(rt, dir.join("ok"), READ, 0).unwrap();
    let mut buf = [0u8; 4];
    let mut batch = Batch::new();
    batch.write(&ro, b"nope", 0).unwrap();
    batch.read(&ro, &mut buf, 0).unwrap();
    let r = batch.submit(rt);
    assert_eq!(r[0].as_ref().unwrap_err().errno(), libc::EBADF);
    assert_eq!(*r[1].as_ref().unwrap(), 4);
    assert_eq!(&buf, b"data");
}

fn batch_larger_than_ring(rt: &Runtime, dir: &Path) {
    let small = Runtime::new(&rio::RuntimeConfig {
        backend: match rt.backend() {
            rio::BackendKind::IoUring => rio::BackendChoice::IoUring,
            rio::BackendKind::ThreadPool => rio::BackendChoice::ThreadPool,
        },
        queue_depth: Some(4),
        max_concurrent_ops: Some(16),
        worker_threads: Some(2),
        ..Default::default()
    })
    .unwrap();
    let f = rw(&small, dir, "big");
    let data = pattern(1000 * 512, 5);
    let mut batch = Batch::new();
    for (i, c) in data.chunks(512).enumerate() {
        batch.write(&f, c, i as u64 * 512).unwrap();
    }
    assert!(batch.submit(&small).iter().all(|r| r.is_ok()));
    let mut back = vec![0u8; data.len()];
    assert_eq!(f.read_at(&mut back, 0).unwrap(), data.len());
    assert_eq!(back, data);
}

fn many_threads_one_file(rt: &Runtime, dir: &Path) {
    let f = Arc::new(rw(rt, dir, "threads"));
    const THREADS: usize = 12;
    const BLOCKS: usize = 64;
    const BS: usize = 8192;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let f = f.clone();
            s.spawn(move || {
                for b in 0..BLOCKS {
                    let block = b * THREADS + t;
                    let data = pattern(BS, block as u64);
                    f.write_at(&data, (block * BS) as u64).unwrap();
                    if b % 16 == 0 {
                        f.datasync().unwrap();
                    }
                    let mut back = vec![0; BS];
                    assert_eq!(f.read_at(&mut back, (block * BS) as u64).unwrap(), BS);
                    assert_eq!(back, data);
                }
            });
        }
    });
    let mut all = vec![0u8; THREADS * BLOCKS * BS];
    assert_eq!(f.read_at(&mut all, 0).unwrap(), all.len());
    for (block, chunk) in all.chunks(BS).enumerate() {
        assert_eq!(chunk, &pattern(BS, block as u64)[..], "block {block}");
    }
}

fn metrics_count_ops(rt: &Runtime, dir: &Path) {
    let f = rw(rt, dir, "metrics");
    let before = rt.metrics().op_count(rio::OpCode::Write);
    f.write_at(&[1; 100], 0).unwrap();
    f.write_at(&[1; 100], 100).unwrap();
    assert_eq!(rt.metrics().op_count(rio::OpCode::Write) - before, 2);
    let text = rt.metrics_prometheus();
    assert!(text.contains("# TYPE rio_ops_total counter"));
    assert!(text.contains("rio_op_duration_seconds_bucket{op=\"write\",le=\"+Inf\"}"));
}

/// Every behaviour, by name; the seccomp child runs the same list.
const CASES: &[(&str, Case)] = &[
    ("round_trip", round_trip),
    ("short_read_only_at_eof", short_read_only_at_eof),
    ("vectored", vectored),
    ("sync_allocate_truncate", sync_allocate_truncate),
    ("open_flags_behave", open_flags_behave),
    ("direct_io_alignment", direct_io_alignment),
    ("batch_mixed", batch_mixed),
    ("batch_per_op_errors", batch_per_op_errors),
    ("batch_larger_than_ring", batch_larger_than_ring),
    ("many_threads_one_file", many_threads_one_file),
    ("metrics_count_ops", metrics_count_ops),
];

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { each_backend(super::$name); } )*
    };
}

mod both {
    use super::*;
    on_both_backends!(
        round_trip,
        short_read_only_at_eof,
        vectored,
        sync_allocate_truncate,
        open_flags_behave,
        direct_io_alignment,
        batch_mixed,
        batch_per_op_errors,
        batch_larger_than_ring,
        many_threads_one_file,
        metrics_count_ops,
    );
}

/// Every case again, with randomized completion faults inside the
/// backends (a short count, EAGAIN, EINTR, ECANCELED on about one
/// completion in 3, io_uring_enter EBUSY/EINTR): callers must see exactly
/// the fault-free behaviour. `RIO_FAULT_SEED` replays a failure;
/// `RIO_FAULT_RUNS` repeats with fresh seeds.
#[test]
fn every_case_with_completion_faults() {
    cases_with_completion_faults("conformance", CASES);
}

#[test]
fn every_case_runs_on_both_backends() {
    assert_every_case_listed(include_str!("conformance.rs"), CASES);
}

#[test]
fn io_uring_is_really_used() {
    let rt = runtime(rio::BackendChoice::IoUring);
    let caps = rt.capabilities();
    assert_eq!(caps.backend, rio::BackendKind::IoUring);
    assert!(caps.io_uring_unavailable_reason.is_none());
    let ring = caps.ring.as_ref().unwrap();
    assert!(ring.supports(io_uring::opcode::Read::CODE));
    let dir = tempfile::tempdir().unwrap();
    // Batches go through the ring: one SQE per op.
    let f = rw(&rt, dir.path(), "used");
    let before = rt.sqes_submitted();
    let (a, b) = ([7u8; 4096], [8u8; 4096]);
    let mut batch = Batch::new();
    batch.write(&f, &a, 0).unwrap();
    batch.write(&f, &b, 4096).unwrap();
    assert!(batch.submit(&rt).iter().all(|r| r.is_ok()));
    assert_eq!(rt.sqes_submitted() - before, 2);
    // So do lone O_DIRECT reads and writes.
    let d = DiskFile::open(&rt, dir.path().join("direct"), READ | WRITE | CREATE | DIRECT, 0o644).unwrap();
    let mut buf = AlignedBuf::new(4096);
    let before = rt.sqes_submitted();
    d.write_at(&buf, 0).unwrap();
    assert_eq!(d.read_at(&mut buf, 0).unwrap(), 4096);
    assert_eq!(rt.sqes_submitted() - before, 2);
    // Lone buffered I/O and syncs are direct syscalls: the ring would only
    // hand them to a kernel worker (docs/engine.md).
    let (sqes, direct) = (rt.sqes_submitted(), rt.direct_ops());
    f.write_at(&a, 0).unwrap();
    f.datasync().unwrap();
    let mut back = [0u8; 4096];
    assert_eq!(f.read_at(&mut back, 4096).unwrap(), 4096);
    assert_eq!(back, b);
    assert_eq!((rt.sqes_submitted() - sqes, rt.direct_ops() - direct), (0, 3));
    // The thread pool never touches a ring.
    let pool = runtime(rio::BackendChoice::ThreadPool);
    let g = rw(&pool, dir.path(), "pool");
    let mut batch = Batch::new();
    batch.write(&g, &a, 0).unwrap();
    batch.write(&g, &b, 4096).unwrap();
    assert!(batch.submit(&pool).iter().all(|r| r.is_ok()));
    assert_eq!(pool.sqes_submitted(), 0);
    assert!(pool.capabilities().io_uring_unavailable_reason.as_deref().unwrap().contains("thread_pool"));
    assert!(pool
        .metrics_prometheus()
        .contains("rio_io_uring_unavailable_info{reason=\"thread_pool backend requested in the runtime config\"} 1\n"));
    assert!(!rt.metrics_prometheus().contains("rio_io_uring_unavailable_info{"));
}

/// Installs a seccomp filter that makes io_uring_setup fail with EPERM, as
/// Docker's default profile does. Irreversible: only for child processes.
fn block_io_uring_setup() {
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let nr = libc::SYS_io_uring_setup as u32;
    let filter = [
        // A = seccomp_data.nr
        libc::sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt: 0, jf: 1, k: nr },
        libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: RET_ERRNO | libc::EPERM as u32 },
        libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: RET_ALLOW },
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const _ as usize, 0, 0), 0);
    }
}

/// Child side of `seccomp_fallback`; ignored in normal runs.
#[test]
#[ignore = "runs only as the child of seccomp_fallback"]
fn seccomp_child() {
    block_io_uring_setup();
    let rt = Runtime::new(&Default::default()).unwrap();
    assert_eq!(rt.backend(), rio::BackendKind::ThreadPool);
    let reason = rt.capabilities().io_uring_unavailable_reason.clone().unwrap();
    assert!(reason.contains("EPERM") && reason.contains("seccomp"), "{reason}");
    let forced = Runtime::new(&rio::RuntimeConfig { backend: rio::BackendChoice::IoUring, ..Default::default() });
    let err = forced.err().unwrap();
    assert_eq!(err.errno(), libc::EOPNOTSUPP);
    assert!(err.message().contains("EPERM"), "{}", err.message());
    for (name, case) in CASES {
        let dir = tempfile::tempdir().unwrap();
        case(&rt, dir.path());
        println!("seccomp child: {name} passed on the fallback");
    }
    println!("SECCOMP-CHILD-OK {}", CASES.len());
}

#[test]
fn seccomp_fallback() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "seccomp_child", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("SECCOMP-CHILD-OK {}", CASES.len())), "{stdout}");
}
