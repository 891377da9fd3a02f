//! docs/wal-format.md is enough to read a log: an independent reader,
//! written from that page only (no librio code), reads logs librio wrote,
//! and the page's worked example matches the bytes on disk.

mod common;

use std::path::Path;

use common::{each_backend, pattern};
use rio::{Wal, WalConfig};

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads every entry of the log in `dir`, following wal-format.md.
fn independent_reader(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.len() == 24 && n.ends_with(".wal") && n[..20].bytes().all(|b| b.is_ascii_digit()))
        .collect();
    names.sort();
    let mut entries = Vec::new();
    let mut next_first: Option<u64> = None;
    for name in names {
        let b = std::fs::read(dir.join(&name)).unwrap();
        assert_eq!(&b[0..8], b"RIOWALSG");
        assert_eq!((u32_at(&b, 8), u32_at(&b, 12)), (1, 64));
        assert_eq!(u32_at(&b, 60), crc32c::crc32c(&b[..60]), "{name}: header crc");
        let (first_seq, salt) = (u64_at(&b, 16), u64_at(&b, 24));
        assert_eq!(first_seq, name[..20].parse::<u64>().unwrap());
        if let Some(want) = next_first {
            assert_eq!(first_seq, want, "{name} continues the previous segment");
        }
        let mut at = 64usize;
        let mut expected = first_seq;
        let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
        loop {
            if at + 32 > b.len() || b[at..at + 32].iter().all(|&x| x == 0) {
                break; // the end of the newest segment
            }
            let h = &b[at..at + 32];
            let (len, seq, kind, flags) = (u32_at(h, 4) as usize, u64_at(h, 8), h[24], h[25]);
            assert!(kind == 1 || kind == 2, "{name}@{at}: kind {kind}");
            assert!(flags & !1 == 0 && h[26..32].iter().all(|&x| x == 0));
            assert!(len <= 64 << 20 && at + 32 + len <= b.len(), "{name}@{at}: len {len}");
            let payload = &b[at + 32..at + 32 + len];
            let crc = crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c(payload), &h[4..32]), &salt.to_le_bytes());
            assert_eq!(u32_at(h, 0), crc, "{name}@{at}: record crc");
            if kind == 2 {
                assert!(batch.is_empty() && len == 0);
                next_first = Some(seq);
                break;
            }
            assert_eq!(seq, expected, "{name}@{at}");
            expected += 1;
            batch.push((seq, payload.to_vec()));
            if flags & 1 == 0 {
                entries.append(&mut batch);
            }
            at += (32 + len + 7) & !7;
        }
        assert!(batch.is_empty(), "{name}: a batch is never cut in a closed log");
    }
    entries
}

#[test]
fn an_independent_reader_reads_what_the_library_wrote() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig { segment_size: 8192, ..Default::default() }).unwrap();
        let mut written = Vec::new();
        for i in 1..=60u64 {
            let entry = pattern((i as usize * 97) % 1500, i);
            if i % 7 == 0 {
                let second = pattern(5, i + 1000);
                let first = wal.append_batch(&[&entry, &[], &second]).unwrap();
                written.extend([(first, entry), (first + 1, Vec::new()), (first + 2, second)]);
            } else {
                written.push((wal.append(&entry).unwrap(), entry));
            }
        }
        wal.truncate_before(20).unwrap();
        let kept = written.iter().position(|(seq, _)| *seq >= 20).unwrap();
        let read = independent_reader(dir);
        assert!(read.len() >= written.len() - kept, "truncation removed whole segments only");
        assert_eq!(read[..], written[written.len() - read.len()..]);
    });
}

#[test]
fn the_worked_example_matches_the_bytes() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        assert_eq!(wal.append_batch(&[b"hi", b""]).unwrap(), 1);
        wal.close().unwrap();
        let b = std::fs::read(dir.join("00000000000000000001.wal")).unwrap();
        let hex = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(0..16), "52494f57414c5347".to_owned() + "01000000" + "40000000");
        assert_eq!(hex(16..24), "0100000000000000");
        // Record 1 at 64: len 2, seq 1, durable 0, entry, BATCH_CONT, "hi", 6 bytes of padding.
        assert_eq!(hex(68..104), "02000000".to_owned() + "0100000000000000" + "0000000000000000" + "0101" + "000000000000" + "6869" + "000000000000");
        // Record 2 at 104: len 0, seq 2, entry, last of its batch.
        assert_eq!(hex(108..136), "00000000".to_owned() + "0200000000000000" + "0000000000000000" + "0100" + "000000000000");
        assert!(b[136..].iter().all(|&x| x == 0));
        assert_eq!(independent_reader(dir), vec![(1, b"hi".to_vec()), (2, Vec::new())]);
    });
}
