//! Counters and latency histograms, cheap enough to leave on: one
//! `Instant` pair per engine call and a few relaxed atomic adds per op.
//! Rendered as Prometheus text exposition (0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;


use crate::engine::{Op, OpCode, OpKind};

/// Latency bucket upper bounds: 1 µs · 2^k, k = 0..=24 (1 µs .. ~16.8 s).
const LATENCY_BUCKETS: usize = 25;
/// Batch-size bucket upper bounds: 2^k ops, k = 0..=10.
const SIZE_BUCKETS: usize = 11;

/// A fixed-bucket histogram with atomic counts, shaped like a Prometheus
/// histogram (cumulative buckets are computed when rendering).
pub struct Histogram<const N: usize> {
    buckets: [AtomicU64; N],
    overflow: AtomicU64,
    sum: AtomicU64,
    count: AtomicU64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Histogram<N> {
    /// Records `value` in bucket ceil(log2(value / unit)), i.e. the first
    /// bucket whose bound `unit · 2^k` is >= value.
    pub fn record(&self, value: u64, unit: u64, times: u64) {
        let scaled = value.div_ceil(unit.max(1));
        let k = if scaled <= 1 { 0 } else { (64 - (scaled - 1).leading_zeros()) as usize };
        match self.buckets.get(k) {
            Some(b) => b.fetch_add(times, Relaxed),
            None => self.overflow.fetch_add(times, Relaxed),
        };
        self.sum.fetch_add(value * times, Relaxed);
        self.count.fetch_add(times, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
    }

    /// The upper bound (in recorded units) of the bucket holding quantile
    /// `q`; `u64::MAX` when it lies beyond the last bucket, 0 when empty.
    pub fn quantile(&self, q: f64, unit: u64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut cumulative = 0;
        for (k, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            if cumulative >= rank {
                return unit << k;
            }
        }
        u64::MAX
    }

    /// Writes `_bucket`, `_sum`, `_count` lines; bounds and the sum are
    /// divided by `scale` (e.g. ns → seconds).
    pub fn render(&self, out: &mut String, name: &str, labels: &str, unit: u64, scale: f64) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (k, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let le = (unit << k) as f64 / scale;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum.load(Relaxed) as f64 / scale);
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// One op kind's figures; latency quantiles are bucket upper bounds
/// (powers of two of 1 µs), as precise as the histogram.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpSnapshot {
    pub count: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Weighted latency observations (an estimate of `count`).
    pub latency_samples: u64,
    pub latency_sum_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
}

#[derive(Default)]
struct OpStats {
    count: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    latency_ns: Histogram<LATENCY_BUCKETS>,
}

/// Error counts by errno: Linux's errnos go up to EHWPOISON (133); larger
/// values share slot 0, rendered as errno="other".
const ERRNO_SLOTS: usize = 134;

/// Failed ops by (kind, errno), lock-free: a lock here could be held by a
/// parent thread when the process forks and then never be released in the
/// child, whose first failing op would hang (docs/engine.md, fork).
struct ErrnoCounts([[AtomicU64; ERRNO_SLOTS]; 8]);

impl Default for ErrnoCounts {
    fn default() -> Self {
        ErrnoCounts(std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))))
    }
}

/// Metrics of one runtime's engine.
#[derive(Default)]
pub struct Metrics {
    ops: [OpStats; 8],
    errors_by_errno: ErrnoCounts,
    batch_size: Histogram<SIZE_BUCKETS>,
    /// Ops a queue holds in flight, sampled whenever it starts ops.
    queue_in_flight: Histogram<QUEUE_DEPTH_BUCKETS>,
    /// `write_durable` figures.
    pub durable: DurableMetrics,
}

/// `write_durable` calls that returned success, their bytes, and how many
/// of them had to use the page cache for everything (no O_DIRECT on the
/// file's filesystem, or a borrowed descriptor: `durable_fallback_reason`).
#[derive(Default)]
pub struct DurableMetrics {
    writes: AtomicU64,
    bytes: AtomicU64,
    page_cache_fallbacks: AtomicU64,
    extending: AtomicU64,
}

impl DurableMetrics {
    pub(crate) fn record_write(&self, bytes: u64) {
        self.writes.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn record_fallback(&self) {
        self.page_cache_fallbacks.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_extending(&self) {
        self.extending.fetch_add(1, Relaxed);
    }

    /// Durable writes that grew the file and so went through the page
    /// cache by choice (tried, even when they then failed).
    pub fn extending_writes(&self) -> u64 {
        self.extending.load(Relaxed)
    }

    /// Durable writes that completed.
    pub fn writes(&self) -> u64 {
        self.writes.load(Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// Durable writes that went wholly through the page cache (tried, even
    /// when they then failed), because there is no O_DIRECT path.
    pub fn page_cache_fallbacks(&self) -> u64 {
        self.page_cache_fallbacks.load(Relaxed)
    }

    fn render(&self, out: &mut String) {
        family(out, "rio_durable_writes_total", "counter", "write_durable calls that completed.");
        let _ = writeln!(out, "rio_durable_writes_total {}", self.writes());
        family(out, "rio_durable_write_bytes_total", "counter", "Bytes made durable by write_durable.");
        let _ = writeln!(out, "rio_durable_write_bytes_total {}", self.bytes());
        family(
            out,
            "rio_durable_page_cache_fallbacks_total",
            "counter",
            "write_durable calls that used write + fdatasync (no O_DIRECT on the filesystem, or a borrowed descriptor).",
        );
        let _ = writeln!(out, "rio_durable_page_cache_fallbacks_total {}", self.page_cache_fallbacks());
        family(
            out,
            "rio_durable_extending_writes_total",
            "counter",
            "write_durable calls that grew the file and used write + fdatasync (faster than O_DIRECT there).",
        );
        let _ = writeln!(out, "rio_durable_extending_writes_total {}", self.extending_writes());
    }
}

/// Queue in-flight bucket upper bounds: 2^k ops, k = 0..=12 (1 .. 4096).
const QUEUE_DEPTH_BUCKETS: usize = 13;

/// One in `LONE_RW_SAMPLING` lone reads/writes is timed (and recorded with
/// that weight): two clock reads cost ~50 ns on this machine kind, 7% of a
/// 4 KiB page-cache read (docs/metrics.md). Everything else is timed always.
pub(crate) const LONE_RW_SAMPLING: u64 = 8;

thread_local! {
    static SAMPLER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether to time a lone op, and the weight of its latency sample.
#[inline]
pub(crate) fn latency_weight(op: &Op) -> Option<u64> {
    if !matches!(op.kind, OpKind::Read { .. } | OpKind::Write { .. } | OpKind::Readv { .. } | OpKind::Writev { .. }) {
        return Some(1);
    }
    // A random (xorshift) rather than periodic choice, so a caller's own
    // periodic pattern of reads and writes cannot bias the sample.
    SAMPLER.with(|state| {
        let mut x = state.get();
        if x == 0 {
            x = (state as *const _ as u64) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x % LONE_RW_SAMPLING == 0).then_some(LONE_RW_SAMPLING)
    })
}

impl Metrics {
    /// Records a batch of ops that completed together in `elapsed`.
    pub(crate) fn record_batch(&self, ops: &[Op], elapsed: Duration) {
        let ns = elapsed.as_nanos() as u64;
        for op in ops {
            self.record_op(op, Some((ns, 1)));
        }
        self.batch_size.record(ops.len() as u64, 1, 1);
    }

    /// Records one op, with its latency (ns, sample weight) when timed.
    #[inline(always)]
    pub(crate) fn record_op(&self, op: &Op, latency_ns: Option<(u64, u64)>) {
        let s = &self.ops[op.code().index()];
        s.count.fetch_add(1, Relaxed);
        if let Some((ns, weight)) = latency_ns {
            s.latency_ns.record(ns, 1000, weight);
        }
        if op.result > 0 {
            s.bytes.fetch_add(op.result as u64, Relaxed);
        } else if op.result < 0 {
            self.record_error(op);
        }
    }

    /// Records how many ops one queue has in flight after starting some.
    pub(crate) fn record_queue_depth(&self, in_flight: u64) {
        self.queue_in_flight.record(in_flight, 1, 1);
    }

    /// Queue in-flight samples recorded (one per submit or reap that started ops).
    pub fn queue_depth_samples(&self) -> u64 {
        self.queue_in_flight.count()
    }

    #[cold]
    fn record_error(&self, op: &Op) {
        self.ops[op.code().index()].errors.fetch_add(1, Relaxed);
        let errno = usize::try_from(-op.result).ok().filter(|e| *e < ERRNO_SLOTS).unwrap_or(0);
        self.errors_by_errno.0[op.code().index()][errno].fetch_add(1, Relaxed);
    }

    pub fn op_count(&self, code: OpCode) -> u64 {
        self.ops[code.index()].count.load(Relaxed)
    }

    pub fn op_errors(&self, code: OpCode) -> u64 {
        self.ops[code.index()].errors.load(Relaxed)
    }

    pub fn op_bytes(&self, code: OpCode) -> u64 {
        self.ops[code.index()].bytes.load(Relaxed)
    }

    pub fn batches(&self) -> u64 {
        self.batch_size.count()
    }

    /// A point-in-time copy of one op kind's figures.
    pub fn op_snapshot(&self, code: OpCode) -> OpSnapshot {
        let s = &self.ops[code.index()];
        let h = &s.latency_ns;
        OpSnapshot {
            count: s.count.load(Relaxed),
            bytes: s.bytes.load(Relaxed),
            errors: s.errors.load(Relaxed),
            latency_samples: h.count(),
            latency_sum_ns: h.sum(),
            p50_ns: h.quantile(0.50, 1000),
            p99_ns: h.quantile(0.99, 1000),
            p999_ns: h.quantile(0.999, 1000),
        }
    }

    /// Appends this engine's families to `out`.
    pub(crate) fn render(&self, out: &mut String, in_flight: usize) {
        family(out, "rio_ops_total", "counter", "Operations completed, by kind.");
        for code in OpCode::ALL {
            let _ = writeln!(out, "rio_ops_total{{op=\"{}\"}} {}", code.name(), self.op_count(code));
        }
        family(out, "rio_op_bytes_total", "counter", "Bytes transferred, by kind.");
        for code in OpCode::ALL {
            let _ = writeln!(out, "rio_op_bytes_total{{op=\"{}\"}} {}", code.name(), self.op_bytes(code));
        }
        family(out, "rio_op_errors_total", "counter", "Operations that failed, by kind and errno.");
        for (code, counts) in OpCode::ALL.iter().zip(&self.errors_by_errno.0) {
            for (errno, n) in counts.iter().enumerate().map(|(e, n)| (e, n.load(Relaxed))).filter(|(_, n)| *n > 0) {
                let errno = if errno == 0 { "other".to_string() } else { errno.to_string() };
                let _ = writeln!(out, "rio_op_errors_total{{op=\"{}\",errno=\"{errno}\"}} {n}", code.name());
            }
        }
        family(
            out,
            "rio_op_duration_seconds",
            "histogram",
            "Time from submission to completion, by kind (lone reads/writes sampled 1 in 8, weighted).",
        );
        for code in OpCode::ALL {
            let labels = format!("op=\"{}\"", code.name());
            self.ops[code.index()].latency_ns.render(out, "rio_op_duration_seconds", &labels, 1000, 1e9);
        }
        family(out, "rio_batch_size", "histogram", "Operations per multi-operation submission.");
        self.batch_size.render(out, "rio_batch_size", "", 1, 1.0);
        family(
            out,
            "rio_queue_ops_in_flight",
            "histogram",
            "Ops one asynchronous queue holds in flight, sampled each time it starts ops.",
        );
        self.queue_in_flight.render(out, "rio_queue_ops_in_flight", "", 1, 1.0);
        family(out, "rio_ops_in_flight", "gauge", "Operations currently holding a concurrency permit.");
        let _ = writeln!(out, "rio_ops_in_flight {in_flight}");
        self.durable.render(out);
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
pub(crate) fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Writes the `# HELP` / `# TYPE` header of a metric family.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_bounds() {
        let h: Histogram<4> = Histogram::default();
        h.record(1000, 1000, 1); // 1 µs -> le=1µs
        h.record(1001, 1000, 1); // just above -> le=2µs
        h.record(4000, 1000, 1); // le=4µs
        h.record(9_000_000, 1000, 1); // beyond the last bound
        let mut out = String::new();
        h.render(&mut out, "x", "", 1000, 1e9);
        assert!(out.contains("x_bucket{le=\"0.000001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.000002\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.000004\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count 4\n"), "{out}");
    }
}
