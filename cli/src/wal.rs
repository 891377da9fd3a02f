//! `rio wal verify|dump|stats`: read-only views of a log through
//! `rio::wal::inspect` (the same checks and rules as recovery, no repair).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;

use rio::wal::inspect::{Event, Inspector, Options, Report, SegmentEnd, SegmentReport};
use rio::RecoveryMode;
use serde_json::{json, Value};

use crate::progress::{human_bytes, Progress};
use crate::{DumpArgs, Failure, Outcome, StatsArgs, VerifyArgs};

fn runtime() -> Result<rio::Runtime, Failure> {
    rio::Runtime::new(&Default::default()).map_err(|e| Failure::Io(format!("cannot start the I/O runtime: {e}")))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Runs an inspection with a progress line on a terminal; `on_entry` sees
/// every entry shown.
fn inspect(
    dir: &Path,
    opts: &Options,
    what: &'static str,
    mut on_entry: impl FnMut(&rio::wal::inspect::Entry<'_>) -> ControlFlow<()>,
) -> Result<Report, Failure> {
    let rt = runtime()?;
    let inspector = Inspector::open(&rt, dir)?;
    let total: u64 = inspector.segments().iter().map(|s| s.size).sum();
    let mut progress = Progress::new(what, total);
    if what == "dump" && io::stdout().is_terminal() {
        // The entries go to the same terminal: a progress line would garble them.
        progress = Progress::disabled();
    }
    let mut done_before = 0u64;
    let mut entries = 0u64;
    let report = inspector.run(opts, |event| match event {
        Event::SegmentStart { .. } => ControlFlow::Continue(()),
        Event::Entry(e) => {
            entries += 1;
            progress.update(done_before + e.offset, entries);
            on_entry(&e)
        }
        Event::SegmentEnd { report, .. } => {
            done_before += report.file_size;
            progress.update(done_before, entries);
            ControlFlow::Continue(())
        }
    });
    progress.finish();
    Ok(report?)
}

fn end_name(end: SegmentEnd) -> &'static str {
    match end {
        SegmentEnd::Sealed { .. } => "sealed",
        SegmentEnd::Open => "open",
        SegmentEnd::TornTail => "torn_tail",
        SegmentEnd::Corrupt => "corrupt",
        SegmentEnd::Unfinished => "unfinished",
    }
}

fn segment_json(s: &SegmentReport) -> Value {
    json!({
        "path": s.path.display().to_string(),
        "first_seq": s.first_seq,
        "file_size": s.file_size,
        "used_bytes": s.used_bytes,
        "entries": s.entries,
        "payload_bytes": s.payload_bytes,
        "end": end_name(s.end),
        "next_seq": match s.end { SegmentEnd::Sealed { next_seq } => Some(next_seq), _ => None },
        "in_log": s.in_log,
    })
}

fn used_bytes(report: &Report) -> u64 {
    report.segments.iter().map(|s| s.used_bytes).sum()
}

fn report_json(dir: &Path, report: &Report) -> Value {
    json!({
        "dir": dir.display().to_string(),
        "ok": !report.is_corrupt(),
        "segment_count": report.segments.len(),
        "segments": report.segments.iter().map(segment_json).collect::<Vec<_>>(),
        "entries": report.entries,
        "first_seq": report.first_seq,
        "last_seq": report.last_seq,
        "payload_bytes": report.payload_bytes,
        "file_bytes": report.file_bytes,
        "used_bytes": used_bytes(report),
        "torn_tail": report.torn_tail.as_ref().map(|t| json!({
            "path": t.path.display().to_string(),
            "file": file_name(&t.path),
            "offset": t.offset,
            "bytes": t.bytes,
            "entries": t.entries,
            "reason": t.reason,
        })),
        "corruption": report.corruption.iter().map(|c| json!({
            "path": c.path.display().to_string(),
            "file": file_name(&c.path),
            "offset": c.offset,
            "message": c.message,
        })).collect::<Vec<_>>(),
        "temp_files": report.temp_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    })
}

fn seq_range(report: &Report) -> String {
    match (report.first_seq, report.last_seq) {
        (Some(a), Some(b)) => format!("seq {a}..={b}"),
        _ => "empty".into(),
    }
}

/// Torn tail and corruption lines, shared by the text outputs.
fn defects_text(report: &Report, out: &mut String) {
    match &report.torn_tail {
        None => out.push_str("torn tail:    none\n"),
        Some(t) => {
            let _ = writeln!(
                out,
                "torn tail:    {} at offset {}: {} bytes{} ({}); Wal::open cuts it",
                t.path.display(),
                t.offset,
                t.bytes,
                if t.entries > 0 { format!(", {} entries of an unfinished atomic batch", t.entries) } else { String::new() },
                t.reason
            );
        }
    }
    if report.corruption.is_empty() {
        out.push_str("corruption:   none\n");
    }
    for c in &report.corruption {
        let _ = writeln!(out, "corruption:   {} at offset {}: {}", c.path.display(), c.offset, c.message);
    }
    for t in &report.temp_files {
        let _ = writeln!(out, "temp file:    {} (an interrupted segment creation; Wal::open removes it)", t.display());
    }
}

pub fn verify(args: &VerifyArgs) -> Outcome {
    let mode = if args.strict { RecoveryMode::Strict } else { RecoveryMode::TolerateTail };
    let opts = Options { from_seq: 1, payloads: false, mode };
    let report = inspect(&args.dir, &opts, "verify", |_| ControlFlow::Continue(()))?;
    let mut out = String::new();
    if args.json {
        out = report_json(&args.dir, &report).to_string();
        out.push('\n');
    } else {
        let _ = writeln!(out, "log:          {}", args.dir.display());
        let _ = writeln!(
            out,
            "segments:     {} ({} in files, {} used)",
            report.segments.len(),
            human_bytes(report.file_bytes),
            human_bytes(used_bytes(&report))
        );
        if args.verbose {
            for s in &report.segments {
                let end = match s.end {
                    SegmentEnd::Sealed { next_seq } => format!("sealed, next seq {next_seq}"),
                    other => end_name(other).replace('_', " "),
                };
                let _ = writeln!(
                    out,
                    "  {}  first seq {}, {} entries, {} of {} bytes used, {}{}",
                    file_name(&s.path),
                    s.first_seq,
                    s.entries,
                    s.used_bytes,
                    s.file_size,
                    end,
                    if s.in_log { "" } else { " (after a corruption: not part of the log)" }
                );
            }
        }
        let _ = writeln!(out, "entries:      {} ({})", report.entries, seq_range(&report));
        let _ = writeln!(out, "payload:      {} bytes", report.payload_bytes);
        defects_text(&report, &mut out);
        let verdict = match (report.is_corrupt(), &report.torn_tail) {
            (true, _) => "CORRUPT (Wal::open fails with EBADMSG)",
            (false, Some(_)) => "OK (with a torn tail)",
            (false, None) => "OK",
        };
        let _ = writeln!(out, "result:       {verdict}");
    }
    io::stdout().lock().write_all(out.as_bytes())?;
    if report.is_corrupt() {
        return Err(Failure::Corrupt);
    }
    Ok(())
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize]);
        s.push(DIGITS[(b & 15) as usize]);
    }
    String::from_utf8(s).expect("hex digits are ASCII")
}

pub fn dump(args: &DumpArgs) -> Outcome {
    let opts = Options { from_seq: args.from.max(1), payloads: true, mode: RecoveryMode::TolerateTail };
    let mut out = BufWriter::new(io::stdout().lock());
    let mut printed = 0u64;
    let mut write_error: Option<io::Error> = None;
    let limit = args.limit.unwrap_or(u64::MAX);
    if limit == 0 {
        return Ok(());
    }
    let report = inspect(&args.dir, &opts, "dump", |e| {
        let shown = &e.payload[..args.max_bytes.unwrap_or(usize::MAX).min(e.payload.len())];
        let cut = shown.len() < e.payload.len();
        let line = if args.json {
            let mut v = json!({
                "seq": e.seq,
                "len": e.len,
                "segment": file_name(e.segment),
                "offset": e.offset,
                "hex": hex(shown),
                "text": std::str::from_utf8(shown).ok(),
            });
            if cut {
                v["truncated"] = Value::Bool(true);
            }
            writeln!(out, "{v}")
        } else {
            let more = if cut { "..." } else { "" };
            if args.hex {
                writeln!(out, "{}\t{}\t{}{more}", e.seq, e.len, hex(shown))
            } else {
                writeln!(out, "{}\t{}\t{}{more}", e.seq, e.len, shown.escape_ascii())
            }
        };
        if let Err(err) = line {
            write_error = Some(err);
            return ControlFlow::Break(());
        }
        printed += 1;
        if printed >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    out.flush()?;
    drop(out);
    // Defects matter only if the dump reached them.
    if report.complete {
        if let Some(t) = &report.torn_tail {
            eprintln!(
                "rio: note: the log ends in a torn tail at {} offset {} ({} bytes): {}",
                t.path.display(),
                t.offset,
                t.bytes,
                t.reason
            );
        }
    }
    if let Some(c) = report.corruption.first().filter(|_| report.complete) {
        eprintln!("rio: corruption: {}", c.message);
        return Err(Failure::Corrupt);
    }
    Ok(())
}

/// Exact distribution of entry sizes (one counter per distinct size, so
/// memory grows with the variety of sizes, not with the number of entries).
#[derive(Default)]
struct Sizes {
    counts: HashMap<u32, u64>,
    n: u64,
    sum: u64,
}

impl Sizes {
    fn add(&mut self, len: u32) {
        *self.counts.entry(len).or_default() += 1;
        self.n += 1;
        self.sum += len as u64;
    }

    fn sorted(&self) -> Vec<(u32, u64)> {
        let mut v: Vec<(u32, u64)> = self.counts.iter().map(|(&k, &c)| (k, c)).collect();
        v.sort_unstable();
        v
    }

    /// The smallest size with at least `q` of the entries at or below it.
    fn quantile(sorted: &[(u32, u64)], n: u64, q: f64) -> Option<u32> {
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n.max(1));
        let mut seen = 0;
        for &(len, c) in sorted {
            seen += c;
            if seen >= rank {
                return Some(len);
            }
        }
        None
    }

    /// Power-of-two buckets: [0], [1], [2, 3], [4, 7], ... (non-empty ones).
    fn histogram(sorted: &[(u32, u64)]) -> Vec<(u64, u64, u64)> {
        let mut buckets: Vec<(u64, u64, u64)> = Vec::new();
        for &(len, c) in sorted {
            let (lo, hi) = match len {
                0 => (0, 0),
                l => {
                    let lo = 1u64 << (31 - l.leading_zeros());
                    (lo, lo * 2 - 1)
                }
            };
            match buckets.last_mut() {
                Some(b) if b.0 == lo => b.2 += c,
                _ => buckets.push((lo, hi, c)),
            }
        }
        buckets
    }
}

pub fn stats(args: &StatsArgs) -> Outcome {
    let opts = Options { from_seq: 1, payloads: false, mode: RecoveryMode::TolerateTail };
    let mut sizes = Sizes::default();
    let report = inspect(&args.dir, &opts, "stats", |e| {
        sizes.add(e.len);
        ControlFlow::Continue(())
    })?;
    let sorted = sizes.sorted();
    let q = |q: f64| Sizes::quantile(&sorted, sizes.n, q);
    let min = sorted.first().map(|s| s.0);
    let max = sorted.last().map(|s| s.0);
    let mean = (sizes.n > 0).then(|| sizes.sum as f64 / sizes.n as f64);
    let histogram = Sizes::histogram(&sorted);
    let seg_sizes: Vec<u64> = report.segments.iter().map(|s| s.file_size).collect();
    let mut out = String::new();
    if args.json {
        let v = json!({
            "dir": args.dir.display().to_string(),
            "segments": {
                "count": report.segments.len(),
                "file_bytes": report.file_bytes,
                "used_bytes": used_bytes(&report),
                "min_file_size": seg_sizes.iter().min(),
                "max_file_size": seg_sizes.iter().max(),
                "list": report.segments.iter().map(segment_json).collect::<Vec<_>>(),
            },
            "entries": report.entries,
            "first_seq": report.first_seq,
            "last_seq": report.last_seq,
            "payload_bytes": report.payload_bytes,
            "entry_size": {
                "min": min, "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "p999": q(0.999), "max": max, "mean": mean,
            },
            "histogram": histogram.iter().map(|&(lo, hi, count)| json!({"min": lo, "max": hi, "count": count})).collect::<Vec<_>>(),
            "torn_tail": report.torn_tail.is_some(),
            "corrupt": report.is_corrupt(),
        });
        out = v.to_string();
        out.push('\n');
    } else {
        let _ = writeln!(out, "log:          {}", args.dir.display());
        let _ = writeln!(
            out,
            "segments:     {} files, {} total, {} used",
            report.segments.len(),
            human_bytes(report.file_bytes),
            human_bytes(used_bytes(&report))
        );
        for s in &report.segments {
            let _ = writeln!(
                out,
                "  {}  {:>12} bytes, {:>12} used, {} entries",
                file_name(&s.path),
                s.file_size,
                s.used_bytes,
                s.entries
            );
        }
        let _ = writeln!(out, "entries:      {} ({})", report.entries, seq_range(&report));
        let _ = writeln!(out, "payload:      {} ({} bytes)", human_bytes(report.payload_bytes), report.payload_bytes);
        let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "entry size:   min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}",
            opt(min),
            opt(q(0.50)),
            opt(q(0.90)),
            opt(q(0.99)),
            opt(q(0.999)),
            opt(max),
            mean.map_or("-".to_string(), |m| format!("{m:.1}"))
        );
        if !histogram.is_empty() {
            out.push_str("histogram (payload bytes: entries):\n");
            let widest = histogram.iter().map(|b| b.2).max().unwrap_or(1);
            for &(lo, hi, count) in &histogram {
                let range = if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") };
                let bar = "#".repeat(((count as f64 / widest as f64) * 40.0).ceil() as usize);
                let _ = writeln!(out, "  {range:>21}  {count:>10}  {bar}");
            }
        }
        if report.torn_tail.is_some() || report.is_corrupt() {
            defects_text(&report, &mut out);
        }
    }
    io::stdout().lock().write_all(out.as_bytes())?;
    if report.is_corrupt() {
        if args.json {
            eprintln!("rio: corruption: {}", report.corruption[0].message);
        }
        return Err(Failure::Corrupt);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Sizes;

    #[test]
    fn quantiles_and_histogram() {
        let mut s = Sizes::default();
        for len in [0, 1, 2, 3, 4, 100, 100, 100, 100, 4096] {
            s.add(len);
        }
        let sorted = s.sorted();
        assert_eq!(Sizes::quantile(&sorted, s.n, 0.5), Some(4));
        assert_eq!(Sizes::quantile(&sorted, s.n, 0.9), Some(100));
        assert_eq!(Sizes::quantile(&sorted, s.n, 0.99), Some(4096));
        assert_eq!(Sizes::quantile(&sorted, s.n, 0.0), Some(0));
        let h = Sizes::histogram(&sorted);
        assert_eq!(h, vec![(0, 0, 1), (1, 1, 1), (2, 3, 2), (4, 7, 1), (64, 127, 4), (4096, 8191, 1)]);
    }
}
