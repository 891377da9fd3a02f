//! Real faults, not simulated ones: a full ext4 filesystem on a loop
//! device, O_DIRECT on a filesystem without it (ramfs), file-descriptor
//! exhaustion and a zero RLIMIT_MEMLOCK. Mounting needs root; without it
//! those tests say so and stop (the rlimit ones run anywhere).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rio::{open_flags::*, BackendChoice, DiskFile, Runtime};

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A filesystem mounted for one test, unmounted on drop.
struct Mount {
    point: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mount {
    fn new(fstype: &str, size_mib: u64) -> Option<Mount> {
        if !is_root() {
            eprintln!("SKIP: mounting {fstype} needs root (euid {})", unsafe { libc::geteuid() });
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("mnt");
        std::fs::create_dir(&point).unwrap();
        let status = if fstype == "ext4" {
            let img = dir.path().join("fs.img");
            std::fs::File::create(&img).unwrap().set_len(size_mib << 20).unwrap();
            let mkfs = Command::new("mkfs.ext4").args(["-q", "-F", "-O", "^has_journal"]).arg(&img).status().unwrap();
            assert!(mkfs.success(), "mkfs.ext4 failed");
            Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&point).status().unwrap()
        } else {
            Command::new("mount").args(["-t", fstype, fstype]).arg(&point).status().unwrap()
        };
        assert!(status.success(), "mount {fstype} failed");
        Some(Mount { point, _dir: dir })
    }

    fn path(&self) -> &Path {
        &self.point
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.point).status();
    }
}

#[test]
fn direct_io_on_a_filesystem_without_it_is_a_clear_error() {
    let Some(ramfs) = Mount::new("ramfs", 0) else { return };
    for backend in BACKENDS {
        let rt = runtime(backend);
        let e = DiskFile::open(&rt, ramfs.path().join("d"), READ | WRITE | CREATE | DIRECT, 0o644).err().unwrap();
        assert_eq!(e.errno(), libc::EINVAL);
        assert!(e.message().contains("does not support O_DIRECT"), "{}", e.message());
        assert!(e.message().contains(&ramfs.path().display().to_string()), "{}", e.message());
    }
}

#[test]
fn disk_full_is_enospc_with_the_path_and_loses_nothing_written_before() {
    let Some(fs) = Mount::new("ext4", 8) else { return };
    for backend in BACKENDS {
        let rt = runtime(backend);
        let path = fs.path().join(format!("fill-{backend:?}"));
        let f = DiskFile::open(&rt, &path, READ | WRITE | CREATE, 0o644).unwrap();
        let chunk = pattern(256 * 1024, 1);
        let mut written = 0u64;
        let err = loop {
            match f.write_at(&chunk, written) {
                Ok(_) => written += chunk.len() as u64,
                Err(e) => break e,
            }
            assert!(written < 64 << 20, "an 8 MiB filesystem took 64 MiB");
        };
        assert_eq!(err.errno(), libc::ENOSPC, "{}", err.message());
        assert!(err.message().contains(&path.display().to_string()), "{}", err.message());
        assert!(written > 0);
        let mut back = vec![0u8; chunk.len()];
        for off in (0..written).step_by(chunk.len()) {
            assert_eq!(f.read_at(&mut back, off).unwrap(), chunk.len());
            assert_eq!(back, chunk);
        }
        drop(f);
        std::fs::remove_file(&path).unwrap();
    }
}

/// Runs `name` (an ignored test of this file) in a child process.
fn set_limit(resource: libc::__rlimit_resource_t, soft: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    assert_eq!(unsafe { libc::getrlimit(resource, &mut lim) }, 0);
    lim.rlim_cur = soft.min(lim.rlim_max);
    assert_eq!(unsafe { libc::setrlimit(resource, &lim) }, 0);
}

#[test]
#[ignore = "runs only as the child of fd_exhaustion_gives_emfile_and_io_keeps_working"]
fn child_fd_exhaustion() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(BackendChoice::IoUring);
    let first = DiskFile::open(&rt, dir.path().join("first"), READ | WRITE | CREATE, 0o644).unwrap();
    let open_fds = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    set_limit(libc::RLIMIT_NOFILE, open_fds + 4);
    let mut files = Vec::new();
    let err = loop {
        match DiskFile::open(&rt, dir.path().join(format!("f{}", files.len())), READ | WRITE | CREATE, 0o644) {
            Ok(f) => files.push(f),
            Err(e) => break e,
        }
        assert!(files.len() < 100, "RLIMIT_NOFILE was not enforced");
    };
    assert_eq!(err.errno(), libc::EMFILE, "{}", err.message());
    assert!(err.message().contains(&dir.path().display().to_string()), "{}", err.message());
    // A new thread needs a ring (an fd) for its first batch: there is none
    // left, and its I/O still works, with blocking syscalls.
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut batch = rio::Batch::new();
            batch.write(&first, b"still ", 0).unwrap();
            batch.write(&first, b"works", 6).unwrap();
            assert!(batch.submit(&rt).iter().all(|r| r.is_ok()));
            first.datasync().unwrap();
            let mut buf = [0u8; 11];
            assert_eq!(first.read_at(&mut buf, 0).unwrap(), 11);
            assert_eq!(&buf, b"still works");
        });
    });
    let text = rt.metrics_prometheus();
    let failures: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("rio_io_uring_ring_failures_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(failures >= 1, "{text}");
    println!("CHILD-OK");
}

#[test]
fn fd_exhaustion_gives_emfile_and_io_keeps_working() {
    run_child("child_fd_exhaustion");
}

#[test]
#[ignore = "runs only as the child of zero_memlock_limit_still_uses_io_uring"]
fn child_zero_memlock() {
    set_limit(libc::RLIMIT_MEMLOCK, 0);
    let rt = Runtime::new(&Default::default()).unwrap();
    let reason = rt.capabilities().io_uring_unavailable_reason.clone();
    println!("backend {:?} reason {reason:?}", rt.backend());
    let dir = tempfile::tempdir().unwrap();
    let f = DiskFile::open(&rt, dir.path().join("m"), READ | WRITE | CREATE, 0o644).unwrap();
    f.write_at(&pattern(8192, 2), 0).unwrap();
    let mut back = vec![0u8; 8192];
    assert_eq!(f.read_at(&mut back, 0).unwrap(), 8192);
    assert_eq!(back, pattern(8192, 2));
    // Rings are charged to the memory cgroup (5.12+), not to RLIMIT_MEMLOCK:
    // io_uring stays in use; where it could not, the reason must say why.
    assert!(rt.backend() == rio::BackendKind::IoUring || reason.is_some_and(|r| r.contains("ENOMEM")));
    println!("CHILD-OK");
}

#[test]
fn zero_memlock_limit_still_uses_io_uring() {
    run_child("child_zero_memlock");
}

#[test]
fn disk_full_poisons_the_wal_and_reopening_recovers_every_acknowledged_entry() {
    let Some(fs) = Mount::new("ext4", 8) else { return };
    for backend in BACKENDS {
        let rt = runtime(backend);
        let dir = fs.path().join(format!("wal-{backend:?}"));
        // Space to give back after the disk fills.
        let filler = fs.path().join("filler");
        std::fs::write(&filler, vec![1u8; 2 << 20]).unwrap();
        let cfg = rio::WalConfig { segment_size: 1 << 20, ..Default::default() };
        let wal = rio::Wal::open(&rt, &dir, cfg.clone()).unwrap();
        let mut acked = Vec::new();
        let err = loop {
            let entry = pattern(60_000, acked.len() as u64);
            match wal.append(&entry) {
                Ok(seq) => acked.push((seq, entry)),
                Err(e) => break e,
            }
            assert!(acked.len() < 1000, "an 8 MiB filesystem took 60 MB of log");
        };
        assert_eq!(err.errno(), libc::ENOSPC, "{}", err.message());
        assert!(err.message().contains(&dir.display().to_string()), "{}", err.message());
        let poisoned = wal.append(b"after").unwrap_err();
        assert_eq!(poisoned.errno(), libc::EIO, "{}", poisoned.message());
        assert!(poisoned.message().contains("poisoned"), "{}", poisoned.message());
        drop(wal);
        std::fs::remove_file(&filler).unwrap();
        let wal = rio::Wal::open(&rt, &dir, cfg).unwrap();
        let mut reader = wal.reader(1).unwrap();
        for (seq, entry) in &acked {
            let (got, data) = reader.next().unwrap().expect("an acknowledged entry is missing");
            assert_eq!(got, *seq);
            assert!(data == &entry[..], "entry {seq} differs");
        }
        let next = wal.append(b"space again").unwrap();
        assert!(next > acked.last().unwrap().0);
        println!("{backend:?}: {} entries acknowledged before ENOSPC, all recovered", acked.len());
        drop(reader);
        drop(wal);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
