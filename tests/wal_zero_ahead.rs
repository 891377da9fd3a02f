//! Segments keep written zeros ahead of small batches (docs/wal-design.md,
//! "Zeros ahead of the records"): after small appends, the extents past the
//! records are written, not fallocate's unwritten ones (FIEMAP says which),
//! the zeros never reach a record, and large batches get no zeros (they
//! would double the bytes written), and where fallocate is missing (ramfs)
//! no zeros grow the file. Both backends, on the test directory's
//! filesystem (ext4 here; FIEMAP must work on it).

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use common::{each_backend, pattern, Ramfs};
use rio::{Wal, WalConfig};

const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
const FIEMAP_FLAG_SYNC: u32 = 1;
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const MAX_EXTENTS: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Extent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [Extent; MAX_EXTENTS],
}

/// (logical start, length, unwritten) of the extents of `path` in [0, len).
fn extents(path: &Path, len: u64) -> Vec<(u64, u64, bool)> {
    let file = std::fs::File::open(path).unwrap();
    let mut map = Fiemap {
        start: 0,
        length: len,
        flags: FIEMAP_FLAG_SYNC,
        mapped_extents: 0,
        extent_count: MAX_EXTENTS as u32,
        reserved: 0,
        extents: [Extent::default(); MAX_EXTENTS],
    };
    // SAFETY: FS_IOC_FIEMAP fills the struct, whose extent array has the
    // capacity given in extent_count.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP, &mut map as *mut Fiemap) };
    assert_eq!(r, 0, "FIEMAP on {}: {}", path.display(), std::io::Error::last_os_error());
    let n = map.mapped_extents as usize;
    map.extents[..n].iter().map(|e| (e.logical, e.length, e.flags & FIEMAP_EXTENT_UNWRITTEN != 0)).collect()
}

/// Whether every byte of [from, to) lies in a written extent.
fn written(path: &Path, from: u64, to: u64) -> bool {
    let mut at = from;
    for (start, len, unwritten) in extents(path, to) {
        if start <= at && at < start + len {
            if unwritten {
                return false;
            }
            at = start + len;
        }
    }
    at >= to
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    assert_eq!(segments.len(), 1, "one segment: {segments:?}");
    segments.pop().unwrap()
}

#[test]
fn small_appends_leave_written_zeros_ahead_and_replay_intact() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        for i in 1..=20u64 {
            wal.append(&pattern(128, i)).unwrap();
        }
        let segment = only_segment(dir);
        // 20 records of 128 B end within the first 8 KiB; the first commit
        // zeroed 1 MiB past its records.
        assert!(written(&segment, 0, 1 << 20), "the first MiB is written: {:?}", extents(&segment, 64 << 20));
        assert!(!written(&segment, 8 << 20, 16 << 20), "far ahead stays fallocate'd: {:?}", extents(&segment, 64 << 20));
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let mut reader = wal.reader(1).unwrap();
        for i in 1..=20u64 {
            let (seq, data) = reader.next().unwrap().expect("every entry replays");
            assert_eq!((seq, data.to_vec()), (i, pattern(128, i)));
        }
        assert!(reader.next().unwrap().is_none());
        // Appends after reopening zero ahead of the recovered end, never over it.
        for i in 21..=40u64 {
            wal.append(&pattern(128, i)).unwrap();
        }
        let mut reader = wal.reader(1).unwrap();
        let mut count = 0;
        while let Some((seq, data)) = reader.next().unwrap() {
            assert_eq!(data.to_vec(), pattern(128, seq));
            count += 1;
        }
        assert_eq!(count, 40);
        wal.close().unwrap();
    });
}

#[test]
fn large_batches_get_no_zeros_ahead() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let entry = pattern(64 << 10, 7);
        wal.append(&entry).unwrap();
        let segment = only_segment(dir);
        assert!(!written(&segment, 256 << 10, 1 << 20), "no zeros past a 64 KiB batch: {:?}", extents(&segment, 64 << 20));
        wal.close().unwrap();
    });
}

/// ramfs has no fallocate: the segment is as long as its records, and
/// zeros ahead must not make it longer.
#[test]
fn without_fallocate_no_zeros_grow_the_segment() {
    let Some(ramfs) = Ramfs::mount() else { return };
    each_backend(|rt, _| {
        let dir = ramfs.0.join(format!("log-{:?}", rt.backend()));
        let wal = Wal::open(rt, &dir, WalConfig::default()).unwrap();
        for i in 1..=20u64 {
            wal.append(&pattern(128, i)).unwrap();
        }
        let size = std::fs::metadata(only_segment(&dir)).unwrap().len();
        assert!(size < 8192, "the segment holds 20 records of 128 B in {size} bytes, no zeros past them");
        let mut reader = wal.reader(1).unwrap();
        for i in 1..=20u64 {
            assert_eq!(reader.next().unwrap().map(|(s, d)| (s, d.to_vec())), Some((i, pattern(128, i))));
        }
        wal.close().unwrap();
    });
}
