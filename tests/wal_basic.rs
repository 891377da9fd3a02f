//! WAL basics on both backends: sequence numbers, replay, reopen, rotation,
//! entry sizes, config checks, page-cache mode, the directory lock.

mod common;

use common::{each_backend, pattern};
use rio::{Wal, WalConfig};

fn small_segments() -> WalConfig {
    WalConfig { segment_size: 8192, ..Default::default() }
}

/// Every entry from `from`, as (seq, payload).
fn replay(wal: &Wal, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut reader = wal.reader(from).unwrap();
    let mut out = Vec::new();
    while let Some((seq, data)) = reader.next().unwrap() {
        out.push((seq, data.to_vec()));
    }
    out
}

#[test]
fn sequence_numbers_start_at_one_and_replay_in_order() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir.join("log"), WalConfig::default()).unwrap();
        assert_eq!(wal.last_seq(), 0);
        assert_eq!(replay(&wal, 1), vec![]);
        for i in 1..=10u64 {
            assert_eq!(wal.append(&pattern(i as usize * 7, i)).unwrap(), i);
        }
        assert_eq!(wal.last_seq(), 10);
        let all = replay(&wal, 0);
        assert_eq!(all.len(), 10);
        for (i, (seq, data)) in all.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(*data, pattern((i + 1) * 7, i as u64 + 1));
        }
        assert_eq!(replay(&wal, 7).iter().map(|e| e.0).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        assert_eq!(replay(&wal, 11), vec![]);
        wal.close().unwrap();
    });
}

#[test]
fn reopen_continues_sequence_and_keeps_entries() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, small_segments()).unwrap();
        for i in 1..=50u64 {
            wal.append(&pattern(300, i)).unwrap();
        }
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, small_segments()).unwrap();
        assert_eq!(wal.last_seq(), 50);
        assert_eq!(wal.append(b"after").unwrap(), 51);
        let all = replay(&wal, 1);
        assert_eq!(all.len(), 51);
        assert!(all[..50].iter().all(|(seq, data)| *data == pattern(300, *seq)));
        assert_eq!(all[50].1, b"after");
        drop(wal);
        // Dropping without close also leaves a log that opens.
        let wal = Wal::open(rt, dir, small_segments()).unwrap();
        assert_eq!(wal.last_seq(), 51);
    });
}

#[test]
fn segments_rotate_and_are_preallocated() {
    each_backend(|rt, dir| {
        let cfg = WalConfig { segment_size: 16384, ..Default::default() };
        let wal = Wal::open(rt, dir, cfg.clone()).unwrap();
        for i in 1..=40u64 {
            wal.append(&pattern(1000, i)).unwrap();
        }
        let segments: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
            .collect();
        assert!(segments.len() >= 3, "{} segments", segments.len());
        for s in &segments {
            assert!(s.metadata().unwrap().len() >= 16384, "preallocated to the segment size");
        }
        assert_eq!(replay(&wal, 1).len(), 40);
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, cfg).unwrap();
        assert_eq!(replay(&wal, 1).len(), 40);
        assert_eq!(wal.append(b"x").unwrap(), 41);
    });
}

#[test]
fn empty_large_and_oversized_entries() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, small_segments()).unwrap();
        assert_eq!(wal.append(b"").unwrap(), 1);
        // Larger than a segment: it gets a segment of its own.
        let big = pattern(100_000, 9);
        assert_eq!(wal.append(&big).unwrap(), 2);
        assert_eq!(wal.append(b"tail").unwrap(), 3);
        let too_big = vec![0u8; rio::wal::MAX_ENTRY + 1];
        let err = wal.append(&too_big).unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL, "{err}");
        assert!(err.message().contains("maximum entry size"), "{err}");
        let max = vec![7u8; rio::wal::MAX_ENTRY];
        assert_eq!(wal.append(&max).unwrap(), 4);
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, small_segments()).unwrap();
        let all = replay(&wal, 1);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].1, b"");
        assert_eq!(all[1].1, big);
        assert_eq!(all[2].1, b"tail");
        assert!(all[3].1.len() == rio::wal::MAX_ENTRY && all[3].1.iter().all(|&b| b == 7));
    });
}

#[test]
fn append_batch_assigns_consecutive_sequence_numbers() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, small_segments()).unwrap();
        wal.append(b"solo").unwrap();
        let entries: Vec<Vec<u8>> = (0..20).map(|i| pattern(i * 50, i as u64)).collect();
        let refs: Vec<&[u8]> = entries.iter().map(|e| e.as_slice()).collect();
        assert_eq!(wal.append_batch(&refs).unwrap(), 2);
        assert_eq!(wal.last_seq(), 21);
        assert_eq!(wal.append_batch(&[]).unwrap_err().errno(), libc::EINVAL);
        let all = replay(&wal, 2);
        assert_eq!(all.len(), 20);
        for (i, (seq, data)) in all.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 2);
            assert_eq!(*data, entries[i]);
        }
    });
}

#[test]
fn invalid_configs_are_rejected_with_the_field_named() {
    each_backend(|rt, dir| {
        let cases = [
            (WalConfig { batch_size: 0, ..Default::default() }, "batch_size"),
            (WalConfig { segment_size: 100, ..Default::default() }, "segment_size"),
            (WalConfig { buffer_size: 0, ..Default::default() }, "buffer_size"),
            (WalConfig { flush_timeout_us: 10_000_000, ..Default::default() }, "flush_timeout_us"),
        ];
        for (cfg, field) in cases {
            let err = Wal::open(rt, dir, cfg).err().expect("rejected");
            assert_eq!(err.errno(), libc::EINVAL);
            assert!(err.message().contains(field), "{err}");
        }
    });
}

#[test]
fn page_cache_mode_syncs_on_request() {
    each_backend(|rt, dir| {
        let cfg = WalConfig { sync_after_batch: false, ..small_segments() };
        let wal = Wal::open(rt, dir, cfg.clone()).unwrap();
        let syncs_before = rt.metrics().op_count(rio::OpCode::Fdatasync);
        for i in 1..=20u64 {
            wal.append(&pattern(100, i)).unwrap();
        }
        let syncs_during = rt.metrics().op_count(rio::OpCode::Fdatasync) - syncs_before;
        // Only rotations sync (sealing a full segment) in page-cache mode.
        assert!(syncs_during <= 1, "{syncs_during} fdatasyncs while appending");
        wal.sync().unwrap();
        wal.sync().unwrap();
        assert_eq!(replay(&wal, 1).len(), 20);
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, cfg).unwrap();
        assert_eq!(wal.last_seq(), 20);
    });
}

#[test]
fn durable_mode_syncs_every_append() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let before = rt.metrics().op_count(rio::OpCode::Fdatasync);
        for i in 0..5 {
            wal.append(&pattern(10, i)).unwrap();
        }
        assert_eq!(rt.metrics().op_count(rio::OpCode::Fdatasync) - before, 5);
    });
}

#[test]
fn a_log_is_opened_once_at_a_time() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let err = Wal::open(rt, dir, WalConfig::default()).err().expect("locked");
        assert_eq!(err.errno(), libc::EBUSY, "{err}");
        let reader = wal.reader(1).unwrap();
        wal.close().unwrap();
        // A reader that outlives the log does not keep it locked.
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        drop(reader);
        wal.close().unwrap();
    });
}

#[test]
fn open_creates_nested_directories_and_rejects_files() {
    each_backend(|rt, dir| {
        let nested = dir.join("a/b/c");
        Wal::open(rt, &nested, WalConfig::default()).unwrap().close().unwrap();
        assert!(nested.is_dir());
        let file = dir.join("plain");
        std::fs::write(&file, b"x").unwrap();
        let err = Wal::open(rt, &file, WalConfig::default()).err().expect("not a directory");
        assert!(err.message().contains("plain"), "{err}");
    });
}

#[test]
fn wal_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Wal>();
    fn send<T: Send>() {}
    send::<rio::WalReader>();
}
