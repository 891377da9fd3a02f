//! Per-WAL metrics, rendered by the runtime's Prometheus exposition with a
//! `wal="<dir>"` label. Updated by the group-commit leader (one thread at a
//! time), so they cost a few relaxed atomics per group commit.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{family, Histogram};

/// Entries-per-group-commit bucket bounds: 2^k, k = 0..=12.
const GROUP_BUCKETS: usize = 13;
/// fdatasync latency bucket bounds: 1 µs · 2^k, k = 0..=24.
const SYNC_BUCKETS: usize = 25;

#[derive(Default)]
pub struct WalMetrics {
    /// The directory, as the label value.
    pub(crate) label: String,
    pub appends: AtomicU64,
    pub bytes: AtomicU64,
    group_commits: Histogram<GROUP_BUCKETS>,
    syncs: Histogram<SYNC_BUCKETS>,
    pub segments_created: AtomicU64,
    pub segments_removed: AtomicU64,
    pub recovered_entries: AtomicU64,
    pub tail_bytes_cut: AtomicU64,
    pub poisoned: AtomicBool,
}

impl WalMetrics {
    pub(crate) fn new(dir: &std::path::Path) -> Arc<WalMetrics> {
        let label = crate::metrics::escape_label(&dir.display().to_string());
        Arc::new(WalMetrics { label, ..Default::default() })
    }

    /// A successful group commit of `entries` entries and `bytes` record bytes.
    pub(crate) fn group_commit(&self, entries: u64, bytes: u64) {
        self.appends.fetch_add(entries, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        self.group_commits.record(entries, 1, 1);
    }

    pub(crate) fn fdatasync(&self, elapsed: Duration) {
        self.syncs.record(elapsed.as_nanos() as u64, 1000, 1);
    }

    pub fn group_commits(&self) -> u64 {
        self.group_commits.count()
    }

    pub fn syncs(&self) -> u64 {
        self.syncs.count()
    }
}

/// Renders every live WAL's families, each family once with one sample
/// (set) per WAL, as the text format requires.
pub(crate) fn render(out: &mut String, wals: &[Arc<WalMetrics>]) {
    if wals.is_empty() {
        return;
    }
    let counters: [(&str, &str, fn(&WalMetrics) -> u64); 6] = [
        ("rio_wal_appends_total", "Entries acknowledged.", |m| m.appends.load(Relaxed)),
        ("rio_wal_bytes_total", "Record bytes written (headers and padding included).", |m| m.bytes.load(Relaxed)),
        ("rio_wal_segments_created_total", "Segment files created.", |m| m.segments_created.load(Relaxed)),
        ("rio_wal_segments_removed_total", "Segment files removed by truncate_before.", |m| m.segments_removed.load(Relaxed)),
        ("rio_wal_recovered_entries", "Entries found by recovery when the log was opened.", |m| m.recovered_entries.load(Relaxed)),
        ("rio_wal_recovery_tail_bytes_cut", "Bytes of torn tail recovery cut off when the log was opened.", |m| m.tail_bytes_cut.load(Relaxed)),
    ];
    for (name, help, value) in counters {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        family(out, name, kind, help);
        for m in wals {
            let _ = writeln!(out, "{name}{{wal=\"{}\"}} {}", m.label, value(m));
        }
    }
    family(out, "rio_wal_poisoned", "gauge", "1 once a failed write or sync poisoned the log (appends fail with EIO).");
    for m in wals {
        let _ = writeln!(out, "rio_wal_poisoned{{wal=\"{}\"}} {}", m.label, u8::from(m.poisoned.load(Relaxed)));
    }
    family(out, "rio_wal_group_commit_entries", "histogram", "Entries per group commit (one write + one fdatasync).");
    for m in wals {
        m.group_commits.render(out, "rio_wal_group_commit_entries", &format!("wal=\"{}\"", m.label), 1, 1.0);
    }
    family(out, "rio_wal_fdatasync_seconds", "histogram", "fdatasync latency of the log's segments.");
    for m in wals {
        m.syncs.render(out, "rio_wal_fdatasync_seconds", &format!("wal=\"{}\"", m.label), 1000, 1e9);
    }
}
