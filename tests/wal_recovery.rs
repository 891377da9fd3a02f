//! Recovery from damaged logs, on both backends: truncation at every byte
//! of the last record, bit flips in headers and payloads, zero-filled and
//! garbage tails, stale records of another segment, torn atomic batches,
//! corruption before the tail, damaged or missing segments.
//!
//! Offsets follow docs/wal-format.md: a 64-byte segment header, then
//! records of a 32-byte header and the payload, padded to 8 bytes.

mod common;

use std::path::{Path, PathBuf};

use common::{each_backend, pattern};
use rio::{RecoveryMode, Runtime, Wal, WalConfig};

const SEGMENT_HEADER: u64 = 64;
const RECORD_HEADER: u64 = 32;
const SEGMENT_SIZE: u64 = 8192;

fn config(mode: RecoveryMode) -> WalConfig {
    WalConfig { segment_size: SEGMENT_SIZE, recovery_mode: mode, ..Default::default() }
}

fn open(rt: &Runtime, dir: &Path, mode: RecoveryMode) -> rio::Result<Wal> {
    Wal::open(rt, dir, config(mode))
}

fn record_size(len: usize) -> u64 {
    (RECORD_HEADER + len as u64).next_multiple_of(8)
}

/// Offsets of consecutive records with these payload lengths in one segment.
fn record_offsets(lens: &[usize]) -> Vec<u64> {
    lens.iter()
        .scan(SEGMENT_HEADER, |at, &len| {
            let here = *at;
            *at += record_size(len);
            Some(here)
        })
        .collect()
}

/// The segment files of a log, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

fn entries(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    let mut reader = wal.reader(1).unwrap();
    let mut out = Vec::new();
    while let Some((seq, data)) = reader.next().unwrap() {
        out.push((seq, data.to_vec()));
    }
    out
}

/// Writes a log of `lens.len()` entries (payload i = pattern(lens[i], i + 1)).
fn write_log(rt: &Runtime, dir: &Path, lens: &[usize]) {
    let wal = open(rt, dir, RecoveryMode::TolerateTail).unwrap();
    for (i, &len) in lens.iter().enumerate() {
        assert_eq!(wal.append(&pattern(len, i as u64 + 1)).unwrap(), i as u64 + 1);
    }
    wal.close().unwrap();
}

/// A fresh copy of the log in `from`, at `to`.
fn copy_log(from: &Path, to: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for f in segments(from) {
        std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
    segments(to).pop().unwrap()
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

/// The log opens with exactly the first `n` entries of `lens`, and
/// appending continues at n + 1.
fn assert_recovered(rt: &Runtime, dir: &Path, lens: &[usize], n: usize, what: &str) {
    let wal = open(rt, dir, RecoveryMode::TolerateTail).unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = entries(&wal);
    assert_eq!(got.len(), n, "{what}");
    for (i, (seq, data)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "{what}");
        assert_eq!(*data, pattern(lens[i], i as u64 + 1), "{what}");
    }
    assert_eq!(wal.append(b"next").unwrap(), n as u64 + 1, "{what}");
    wal.close().unwrap();
    // The tail was physically cleaned: even strict recovery finds nothing wrong now.
    let wal = open(rt, dir, RecoveryMode::Strict).unwrap_or_else(|e| panic!("{what}: strict reopen: {e}"));
    assert_eq!(wal.last_seq(), n as u64 + 1, "{what}");
}

fn assert_badmsg(result: rio::Result<Wal>, needles: &[&str], what: &str) {
    let err = result.err().unwrap_or_else(|| panic!("{what}: opened, expected EBADMSG"));
    assert_eq!(err.errno(), libc::EBADMSG, "{what}: {err}");
    for needle in needles {
        assert!(err.message().contains(needle), "{what}: {err:?} lacks {needle:?}");
    }
}

/// Damages a fresh copy (at `case`) of the log at `pristine`: strict
/// recovery refuses it, naming the segment file and `needles`; tolerant
/// recovery keeps the first `n` entries of `lens`.
#[allow(clippy::too_many_arguments)]
fn assert_torn_tail(
    rt: &Runtime,
    pristine: &Path,
    case: &Path,
    damage: impl FnOnce(&mut Vec<u8>),
    lens: &[usize],
    n: usize,
    needles: &[&str],
    what: &str,
) {
    let seg = copy_log(pristine, case);
    edit(&seg, damage);
    let mut all = vec![file_name(&seg)];
    all.extend(needles.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
    assert_badmsg(open(rt, case, RecoveryMode::Strict), &all, what);
    assert_recovered(rt, case, lens, n, what);
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

const LENS: [usize; 3] = [20, 100, 37];

#[test]
fn truncation_at_every_byte_of_the_last_record() {
    each_backend(|rt, dir| {
        let pristine = dir.join("pristine");
        write_log(rt, &pristine, &LENS);
        let last = record_offsets(&LENS)[2];
        let end = last + RECORD_HEADER + LENS[2] as u64;
        for cut in last..end {
            for zero_fill in [false, true] {
                let what = format!("cut at {cut}, zero_fill {zero_fill}");
                let case = dir.join("case");
                let damage = |b: &mut Vec<u8>| if zero_fill { b[cut as usize..].fill(0) } else { b.truncate(cut as usize) };
                if cut == last {
                    // A clean end: nothing of the record was written.
                    edit(&copy_log(&pristine, &case), damage);
                    open(rt, &case, RecoveryMode::Strict).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_recovered(rt, &case, &LENS, 2, &what);
                } else {
                    assert_torn_tail(rt, &pristine, &case, damage, &LENS, 2, &[&format!("offset {last}")], &what);
                }
            }
        }
    });
}

#[test]
fn bit_flips_in_the_last_record_are_a_torn_tail() {
    each_backend(|rt, dir| {
        let pristine = dir.join("pristine");
        write_log(rt, &pristine, &LENS);
        let last = record_offsets(&LENS)[2];
        for byte in last..last + RECORD_HEADER + LENS[2] as u64 {
            let flip = |b: &mut Vec<u8>| b[byte as usize] ^= 1 << (byte % 8);
            assert_torn_tail(rt, &pristine, &dir.join("case"), flip, &LENS, 2, &[], &format!("flip in byte {byte}"));
        }
    });
}

#[test]
fn a_bit_flip_before_the_tail_is_corruption() {
    each_backend(|rt, dir| {
        let lens = [50usize; 6];
        let pristine = dir.join("pristine");
        write_log(rt, &pristine, &lens);
        let offsets = record_offsets(&lens);
        // A payload byte, the length, the sequence number, the kind byte.
        for delta in [RECORD_HEADER + 10, 4, 9, 24] {
            let at = offsets[2] + delta;
            let case = dir.join("case");
            let seg = copy_log(&pristine, &case);
            edit(&seg, |b| b[at as usize] ^= 0x10);
            let needles = [file_name(&seg), format!("offset {}", offsets[2]), "corruption before the tail".to_string()];
            let needles: Vec<&str> = needles.iter().map(|s| s.as_str()).collect();
            assert_badmsg(open(rt, &case, RecoveryMode::TolerateTail), &needles, &format!("flip at {at}"));
            assert_badmsg(open(rt, &case, RecoveryMode::Strict), &needles[..2], &format!("strict, flip at {at}"));
        }
    });
}

#[test]
fn unsynced_records_after_a_hole_are_a_torn_tail() {
    // In page-cache mode nothing was synced when the records were written,
    // so a hole followed by valid records is what a power loss leaves when
    // pages reach the disk out of order: cut, not corruption.
    each_backend(|rt, dir| {
        let lens = [50usize; 6];
        let wal = Wal::open(rt, dir, WalConfig { sync_after_batch: false, ..config(RecoveryMode::TolerateTail) }).unwrap();
        for (i, &len) in lens.iter().enumerate() {
            wal.append(&pattern(len, i as u64 + 1)).unwrap();
        }
        drop(wal);
        let offsets = record_offsets(&lens);
        let seg = segments(dir).pop().unwrap();
        edit(&seg, |b| b[(offsets[2] + RECORD_HEADER) as usize..(offsets[3]) as usize].fill(0));
        assert_recovered(rt, dir, &lens, 2, "hole in unsynced records");
    });
}

#[test]
fn zeroed_and_garbage_tails() {
    each_backend(|rt, dir| {
        let pristine = dir.join("pristine");
        write_log(rt, &pristine, &LENS);
        let last = record_offsets(&LENS)[2] as usize;
        // The whole last record zeroed: a clean end, even for strict recovery.
        let case = dir.join("case");
        let seg = copy_log(&pristine, &case);
        edit(&seg, |b| b[last..].fill(0));
        open(rt, &case, RecoveryMode::Strict).unwrap();
        assert_recovered(rt, &case, &LENS, 2, "zeroed last record");
        // Garbage after the last record, far into the preallocated space.
        let end = last + record_size(LENS[2]) as usize;
        for (at, len) in [(end, 8), (end + 1, 1), (end + 3000, 500), (SEGMENT_SIZE as usize - 5, 5)] {
            let garbage = |b: &mut Vec<u8>| b[at..at + len].copy_from_slice(&pattern(len, at as u64));
            assert_torn_tail(rt, &pristine, &case, garbage, &LENS, 3, &[], &format!("garbage at {at}..{}", at + len));
        }
    });
}

#[test]
fn stale_records_of_another_segment_are_rejected() {
    each_backend(|rt, dir| {
        // Two logs with the same sequence numbers and payloads: only their
        // segments' salts differ.
        let lens = [64usize; 6];
        let (a, b) = (dir.join("a"), dir.join("b"));
        write_log(rt, &a, &lens);
        write_log(rt, &b, &lens[..2]);
        let offsets = record_offsets(&lens);
        let stale = std::fs::read(segments(&a).pop().unwrap()).unwrap();
        // Records 3.. of log A land exactly where B's record 3 would go.
        let (from, to) = (offsets[2] as usize, (offsets[5] + record_size(64)) as usize);
        let transplant = |bytes: &mut Vec<u8>| bytes[from..to].copy_from_slice(&stale[from..to]);
        assert_torn_tail(rt, &b, &dir.join("case"), transplant, &lens, 2, &[&format!("offset {from}")], "stale records");
    });
}

#[test]
fn a_torn_atomic_batch_is_dropped_whole() {
    each_backend(|rt, dir| {
        let pristine = dir.join("pristine");
        let batch: Vec<Vec<u8>> = (2..=6).map(|seq| pattern(30, seq)).collect();
        let lens = [30usize; 6];
        {
            let wal = open(rt, &pristine, RecoveryMode::TolerateTail).unwrap();
            wal.append(&pattern(30, 1)).unwrap();
            let refs: Vec<&[u8]> = batch.iter().map(|e| e.as_slice()).collect();
            assert_eq!(wal.append_batch(&refs).unwrap(), 2);
            wal.close().unwrap();
        }
        let offsets = record_offsets(&lens);
        let (start, end) = (offsets[1], offsets[5] + record_size(30));
        for cut in (start..=end).step_by(4) {
            let what = format!("batch cut at {cut}");
            let case = dir.join("case");
            let seg = copy_log(&pristine, &case);
            edit(&seg, |b| b.truncate(cut as usize));
            let whole = cut == end;
            if cut == start || whole {
                open(rt, &case, RecoveryMode::Strict).unwrap_or_else(|e| panic!("{what}: {e}"));
            } else if cut >= offsets[2] {
                // At least one record of the batch is complete.
                assert_badmsg(open(rt, &case, RecoveryMode::Strict), &[&file_name(&seg), "atomic batch starting at entry 2"], &what);
            } else {
                assert_badmsg(open(rt, &case, RecoveryMode::Strict), &[&file_name(&seg), "where entry 2 was expected"], &what);
            }
            assert_recovered(rt, &case, &lens, if whole { 6 } else { 1 }, &what);
        }
    });
}

/// A log spread over several small segments.
fn write_segmented_log(rt: &Runtime, dir: &Path) -> usize {
    let wal = Wal::open(rt, dir, WalConfig { segment_size: 4096, ..Default::default() }).unwrap();
    for i in 1..=30u64 {
        wal.append(&pattern(500, i)).unwrap();
    }
    wal.close().unwrap();
    let n = segments(dir).len();
    assert!(n >= 4, "{n} segments");
    n
}

#[test]
fn damage_to_a_sealed_segment_is_corruption() {
    each_backend(|rt, dir| {
        let pristine = dir.join("pristine");
        write_segmented_log(rt, &pristine);
        let case = dir.join("case");
        for mode in [RecoveryMode::TolerateTail, RecoveryMode::Strict] {
            // A flipped payload byte in the first segment.
            copy_log(&pristine, &case);
            let first = segments(&case)[0].clone();
            edit(&first, |b| b[(SEGMENT_HEADER + RECORD_HEADER + 7) as usize] ^= 1);
            assert_badmsg(open(rt, &case, mode), &[&file_name(&first), &format!("offset {SEGMENT_HEADER}")], "flip");
            // A sealed segment cut short.
            copy_log(&pristine, &case);
            let second = segments(&case)[1].clone();
            edit(&second, |b| b.truncate(1000));
            assert_badmsg(open(rt, &case, mode), &[&file_name(&second)], "cut short");
            // A missing segment in the middle.
            copy_log(&pristine, &case);
            std::fs::remove_file(&segments(&case)[1]).unwrap();
            assert_badmsg(open(rt, &case, mode), &["a segment is missing"], "missing");
            // A damaged segment header.
            copy_log(&pristine, &case);
            let third = segments(&case)[2].clone();
            edit(&third, |b| b[3] ^= 0xff);
            assert_badmsg(open(rt, &case, mode), &[&file_name(&third), "magic"], "header");
        }
    });
}

#[test]
fn a_crash_between_seal_and_next_segment_continues_in_a_new_segment() {
    each_backend(|rt, dir| {
        let n = write_segmented_log(rt, dir);
        // Entries of the newest segment vanish with it; the one before is sealed.
        let newest = segments(dir).pop().unwrap();
        let first_lost: u64 = file_name(&newest).trim_end_matches(".wal").parse().unwrap();
        std::fs::remove_file(&newest).unwrap();
        let wal = open(rt, dir, RecoveryMode::Strict).unwrap();
        assert_eq!(wal.last_seq(), first_lost - 1);
        assert_eq!(wal.append(b"again").unwrap(), first_lost);
        assert_eq!(segments(dir).len(), n);
        assert_eq!(entries(&wal).len() as u64, first_lost);
    });
}

#[test]
fn leftovers_of_an_interrupted_segment_creation_are_removed() {
    each_backend(|rt, dir| {
        write_log(rt, dir, &LENS);
        let temp = dir.join("00000000000000000004.wal.tmp");
        std::fs::write(&temp, b"half-made segment").unwrap();
        let unrelated = dir.join("notes.txt");
        std::fs::write(&unrelated, b"not part of the log").unwrap();
        let wal = open(rt, dir, RecoveryMode::Strict).unwrap();
        assert!(!temp.exists());
        assert!(unrelated.exists());
        assert_eq!(wal.last_seq(), 3);
    });
}
