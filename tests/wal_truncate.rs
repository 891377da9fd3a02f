//! `truncate_before` on both backends: whole segments go, disk usage
//! shrinks, kept entries stay intact, sequence numbers continue, readers
//! cope, and a crash in the middle leaves a log that opens.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{each_backend, pattern};
use rio::{Wal, WalConfig};

fn config() -> WalConfig {
    WalConfig { segment_size: 16384, ..Default::default() }
}

fn fill(wal: &Wal, from: u64, to: u64) {
    for seq in from..=to {
        assert_eq!(wal.append(&pattern(500, seq)).unwrap(), seq);
    }
}

/// Bytes the directory's files occupy on disk.
fn disk_usage(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().blocks() * 512).sum()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "wal")).collect();
    files.sort();
    files
}

/// Reads from `from`; checks entries are contiguous and intact up to
/// `last`; returns the first sequence number read.
fn check_entries(wal: &Wal, from: u64, last: u64) -> u64 {
    let mut reader = wal.reader(from).unwrap();
    let (first, data) = reader.next().unwrap().expect("an entry");
    assert_eq!(data, pattern(500, first));
    let mut expected = first + 1;
    while let Some((seq, data)) = reader.next().unwrap() {
        assert_eq!(seq, expected);
        assert_eq!(data, pattern(500, seq), "entry {seq} intact");
        expected += 1;
    }
    assert_eq!(expected - 1, last);
    first
}

#[test]
fn whole_segments_go_and_disk_usage_shrinks() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, config()).unwrap();
        fill(&wal, 1, 200);
        let (before, files_before) = (disk_usage(dir), segments(dir).len());
        assert!(files_before >= 6, "{files_before} segments");
        wal.truncate_before(150).unwrap();
        let (after, files_after) = (disk_usage(dir), segments(dir).len());
        assert!(after < before, "disk usage {before} -> {after}");
        assert!(files_after < files_before && files_after >= 1);
        // Everything >= 150 is kept; what remains below it is a whole segment.
        let first = check_entries(&wal, 1, 200);
        assert!(first <= 150 && first > 100, "first kept entry {first}");
        assert_eq!(check_entries(&wal, 150, 200), 150);
        // A reader from a truncated-away seq starts at the first kept entry.
        let mut reader = wal.reader(3).unwrap();
        assert_eq!(reader.next().unwrap().unwrap().0, first);
        assert_eq!(wal.last_seq(), 200);
        assert_eq!(wal.append(&pattern(500, 201)).unwrap(), 201);
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, config()).unwrap();
        assert_eq!(wal.last_seq(), 201);
        assert_eq!(check_entries(&wal, 0, 201), first);
    });
}

#[test]
fn truncating_everything_keeps_the_sequence_going() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, config()).unwrap();
        fill(&wal, 1, 100);
        wal.truncate_before(0).unwrap();
        wal.truncate_before(1).unwrap();
        assert_eq!(check_entries(&wal, 1, 100), 1, "nothing below 1 to remove");
        let err = wal.truncate_before(102).unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL, "{err}");
        assert!(err.message().contains("102"), "{err}");
        wal.truncate_before(101).unwrap();
        // Only the segment being appended to is left.
        assert_eq!(segments(dir).len(), 1);
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, config()).unwrap();
        assert_eq!(wal.last_seq(), 100);
        assert_eq!(wal.append(&pattern(500, 101)).unwrap(), 101);
        // Fill the last segment and more, then remove all but the newest.
        fill(&wal, 102, 140);
        wal.truncate_before(141).unwrap();
        assert_eq!(segments(dir).len(), 1);
        drop(wal);
        let wal = Wal::open(rt, dir, config()).unwrap();
        assert_eq!(wal.last_seq(), 140);
        assert_eq!(wal.append(&pattern(500, 141)).unwrap(), 141);
    });
}

#[test]
fn readers_keep_reading_segments_removed_under_them() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, config()).unwrap();
        fill(&wal, 1, 120);
        let mut reader = wal.reader(1).unwrap();
        for seq in 1..=5 {
            assert_eq!(reader.next().unwrap().unwrap().0, seq);
        }
        // The reader's segment goes; the reader still has it open.
        wal.truncate_before(120).unwrap();
        let mut next = 6;
        let mut jumped = false;
        while let Some((seq, data)) = reader.next().unwrap() {
            assert_eq!(data, pattern(500, seq));
            if seq != next {
                // Segments removed before the reader reached them: it
                // resumes at the first kept entry.
                assert!(!jumped && seq > next, "{seq} after {next}");
                jumped = true;
            }
            next = seq + 1;
        }
        assert!(jumped, "segments after the reader's were removed too");
        assert_eq!(next, 121);
    });
}

#[test]
fn truncation_concurrent_with_appenders_and_readers() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, config()).unwrap();
        fill(&wal, 1, 50);
        std::thread::scope(|s| {
            let wal = &wal;
            s.spawn(move || {
                for _ in 0..200 {
                    wal.append(&pattern(300, 7)).unwrap();
                }
            });
            s.spawn(move || {
                for _ in 0..20 {
                    let last = wal.last_seq();
                    wal.truncate_before(last.saturating_sub(30).max(1)).unwrap();
                    std::thread::yield_now();
                }
            });
            s.spawn(move || {
                for _ in 0..20 {
                    let mut reader = wal.reader(1).unwrap();
                    let mut prev = 0;
                    while let Some((seq, _)) = reader.next().unwrap() {
                        assert!(seq > prev);
                        prev = seq;
                    }
                }
            });
        });
        assert_eq!(wal.last_seq(), 250);
        drop(wal);
        let wal = Wal::open(rt, dir, config()).unwrap();
        assert_eq!(wal.last_seq(), 250);
    });
}

#[test]
fn a_crash_during_truncation_leaves_a_log_that_opens() {
    each_backend(|rt, dir| {
        let pristine = dir.join("pristine");
        let wal = Wal::open(rt, &pristine, config()).unwrap();
        fill(&wal, 1, 150);
        wal.close().unwrap();
        let files = segments(&pristine);
        // Removal goes oldest first, each one made durable before the next:
        // a crash leaves the first k segments removed.
        for k in 0..files.len() {
            let case = dir.join("case");
            let _ = std::fs::remove_dir_all(&case);
            std::fs::create_dir_all(&case).unwrap();
            for f in &files[k..] {
                std::fs::copy(f, case.join(f.file_name().unwrap())).unwrap();
            }
            let wal = Wal::open(rt, &case, config()).unwrap();
            assert_eq!(wal.last_seq(), 150, "k = {k}");
            let first = check_entries(&wal, 1, 150);
            let expected_first: u64 = files[k].file_stem().unwrap().to_str().unwrap().parse().unwrap();
            assert_eq!(first, expected_first);
            assert_eq!(wal.append(&pattern(500, 151)).unwrap(), 151);
        }
    });
}
