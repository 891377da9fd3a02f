//! Per-WAL metrics in the runtime's Prometheus exposition, on both
//! backends: appends, bytes, group commits, fdatasync latency, segments
//! created and removed, recovery results, poisoning.

mod common;

use std::io::Write;

use common::{each_backend, BACKENDS};
use rio::{FaultAction, FaultRule, OpCode, Runtime, RuntimeConfig, Wal, WalConfig};

/// The value of the sample `name{wal="<dir>"...}` (first match).
fn sample(text: &str, name: &str, wal: &std::path::Path) -> f64 {
    let prefix = format!("{name}{{wal=\"{}\"", wal.display());
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"))
}

#[test]
fn appends_group_commits_syncs_and_segments_are_counted() {
    each_backend(|rt, dir| {
        let path = dir.join("wal");
        let wal = Wal::open(rt, &path, WalConfig { segment_size: 8192, ..Default::default() }).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let wal = &wal;
                s.spawn(move || {
                    for i in 0..25 {
                        wal.append(format!("t{t} e{i} {}", "x".repeat(100)).as_bytes()).unwrap();
                    }
                });
            }
        });
        wal.truncate_before(wal.last_seq()).unwrap();
        let text = rt.metrics_prometheus();
        assert_eq!(sample(&text, "rio_wal_appends_total", &path), 100.0);
        assert!(sample(&text, "rio_wal_bytes_total", &path) >= 100.0 * 132.0);
        let groups = sample(&text, "rio_wal_group_commit_entries_count", &path);
        assert!((1.0..=100.0).contains(&groups));
        assert_eq!(sample(&text, "rio_wal_group_commit_entries_sum", &path), 100.0);
        // One fdatasync per group commit, plus one per sealed segment.
        let created = sample(&text, "rio_wal_segments_created_total", &path);
        assert!(created >= 2.0, "8 KiB segments must rotate: {created}");
        assert_eq!(sample(&text, "rio_wal_fdatasync_seconds_count", &path), groups + created - 1.0);
        assert_eq!(sample(&text, "rio_wal_segments_removed_total", &path), created - 1.0);
        assert_eq!(sample(&text, "rio_wal_poisoned", &path), 0.0);
        assert_eq!(wal.metrics().group_commits() as f64, groups);
        drop(wal);
        assert!(!rt.metrics_prometheus().contains(&format!("wal=\"{}\"", path.display())), "a closed WAL leaves the exposition");
    });
}

#[test]
fn recovery_results_are_reported() {
    each_backend(|rt, dir| {
        let path = dir.join("wal");
        let wal = Wal::open(rt, &path, WalConfig::default()).unwrap();
        for i in 0..10u32 {
            wal.append(&i.to_le_bytes()).unwrap();
        }
        wal.close().unwrap();
        // Garbage after the last record: a torn write of a record that never completed.
        let segment = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|e| e == "wal")).unwrap();
        let end = {
            let wal = Wal::open(rt, &path, WalConfig::default()).unwrap();
            let text = rt.metrics_prometheus();
            assert_eq!(sample(&text, "rio_wal_recovered_entries", &path), 10.0);
            assert_eq!(sample(&text, "rio_wal_recovery_tail_bytes_cut", &path), 0.0);
            drop(wal);
            10 * 40 + 64
        };
        let mut f = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(end as u64)).unwrap();
        f.write_all(&[0xAB; 20]).unwrap();
        drop(f);
        let wal = Wal::open(rt, &path, WalConfig::default()).unwrap();
        let text = rt.metrics_prometheus();
        assert_eq!(sample(&text, "rio_wal_recovered_entries", &path), 10.0);
        assert!(sample(&text, "rio_wal_recovery_tail_bytes_cut", &path) >= 20.0, "{text}");
        assert_eq!(wal.last_seq(), 10);
    });
}

#[test]
fn a_failed_sync_shows_as_poisoned() {
    for backend in BACKENDS {
        let rt = Runtime::new(&RuntimeConfig { backend, fault_injection: true, ..Default::default() }).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let wal = Wal::open(&rt, &path, WalConfig::default()).unwrap();
        wal.append(b"fine").unwrap();
        rt.fault_injector().unwrap().add_rule(FaultRule { op: Some(OpCode::Fdatasync), nth: 1, count: 1, action: FaultAction::Error(libc::EIO) });
        assert_eq!(wal.append(b"lost").unwrap_err().errno(), libc::EIO);
        let text = rt.metrics_prometheus();
        assert_eq!(sample(&text, "rio_wal_poisoned", &path), 1.0);
        assert_eq!(sample(&text, "rio_wal_appends_total", &path), 1.0);
    }
}
