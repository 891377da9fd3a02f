//! The report: a Markdown table of medians and ratios, the target verdicts,
//! results.json with every sample, and a hand-written SVG chart.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::opts::Opts;
use crate::sys::Machine;
use crate::{
    peer_title, wal, Metric, Results, ALL_PEERS, FIO, GO_GOROUTINES, PY_AIOFILES, PY_ASYNCIO, PY_EXECUTOR, QUEUE_PEERS, RIO_BATCH, RIO_POOL, RIO_QUEUE,
    RIO_QUEUE_POOL, RIO_URING, STD, TOKIO,
};

pub struct Report<'a> {
    pub opts: &'a Opts,
    pub machine: &'a Machine,
    pub res: &'a Results,
    pub elapsed: Duration,
}

/// One target of issue 4, as measured.
pub struct Target {
    pub name: String,
    pub want: String,
    pub measured: Option<f64>,
    pub shown: String,
    pub met: Option<bool>,
}

/// A workload's title, unit and (peer, median) bars.
type ChartBlock = (String, Metric, Vec<(String, f64)>);

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn show_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "–".into())
}

impl Report<'_> {
    fn cell(&self, w: &str, p: &str) -> String {
        match self.res.median(w, p) {
            Some(v) => num(v),
            None => match self.res.notes.get(&(w.to_string(), p.to_string())) {
                Some(n) if n.starts_with("failed") => "FAILED".into(),
                _ => "–".into(),
            },
        }
    }

    /// The largest (max - min) / median over the peers of a row: how much
    /// to trust its last digit.
    fn spread(&self, w: &str, peers: &[&str]) -> Option<f64> {
        let metric = self.res.workloads.iter().find(|x| x.id == w)?.metric;
        peers
            .iter()
            .filter_map(|p| {
                let v: Vec<f64> = self.res.samples.get(&(w.to_string(), p.to_string()))?.iter().map(|s| metric.of(s)).collect();
                let med = crate::median(v.clone())?;
                let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                (med > 0.0 && v.len() > 1).then(|| (hi - lo) / med)
            })
            .fold(None, |acc: Option<f64>, x| Some(acc.map_or(x, |a| a.max(x))))
    }

    fn loop_of(&self, wal_id: &str) -> Option<String> {
        Some(wal::loop_id(wal::size_of_id(wal_id, &self.opts.wal_sizes)?))
    }

    /// Median CPU seconds (user + system) per op of a peer's runs.
    fn cpu_per_op(&self, w: &str, p: &str) -> Option<f64> {
        let v: Vec<f64> = self
            .res
            .samples
            .get(&(w.to_string(), p.to_string()))?
            .iter()
            .filter_map(|s| s.cpu_secs.filter(|_| s.ops > 0).map(|c| c / s.ops as f64))
            .collect();
        crate::median(v)
    }

    fn show_cpu(&self, w: &str, p: &str) -> String {
        self.cpu_per_op(w, p).map(|c| format!("{:.2}", c * 1e6)).unwrap_or_else(|| "–".into())
    }

    /// The queue rows (benches/compare/queue.rs): their own peers.
    fn queue_tables(&self, s: &mut String) {
        let rows: Vec<_> = self.res.workloads.iter().filter(|w| w.group == "queue" && w.id != "queue-python-asyncio-32").collect();
        if !rows.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "| queue workload (IOPS) | rio queue | rio queue (pool) | rio batch-then-drain | Go goroutines | fio io_uring | queue/fio | queue/batch | queue/Go | CPU µs/op queue | CPU µs/op batch | CPU µs/op Go | CPU µs/op fio | CPU queue/fio | spread |"
            );
            let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for w in rows {
                let q = self.res.median(&w.id, RIO_QUEUE);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    w.title,
                    self.cell(&w.id, RIO_QUEUE),
                    self.cell(&w.id, RIO_QUEUE_POOL),
                    self.cell(&w.id, RIO_BATCH),
                    self.cell(&w.id, GO_GOROUTINES),
                    self.cell(&w.id, FIO),
                    show_ratio(ratio(q, self.res.median(&w.id, FIO))),
                    show_ratio(ratio(q, self.res.median(&w.id, RIO_BATCH))),
                    show_ratio(ratio(q, self.res.median(&w.id, GO_GOROUTINES))),
                    self.show_cpu(&w.id, RIO_QUEUE),
                    self.show_cpu(&w.id, RIO_BATCH),
                    self.show_cpu(&w.id, GO_GOROUTINES),
                    self.show_cpu(&w.id, FIO),
                    show_ratio(ratio(self.cpu_per_op(&w.id, RIO_QUEUE), self.cpu_per_op(&w.id, FIO))),
                    show_spread(self.spread(&w.id, &[RIO_QUEUE, RIO_QUEUE_POOL, RIO_BATCH, GO_GOROUTINES, FIO]))
                );
            }
        }
        if let Some(w) = self.res.workloads.iter().find(|w| w.id == "queue-python-asyncio-32") {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "| Python asyncio workload (IOPS) | rio.AsyncFile | run_in_executor(os.preadv) | aiofiles | AsyncFile/executor | AsyncFile/aiofiles | CPU µs/op AsyncFile | CPU µs/op executor | CPU µs/op aiofiles | CPU executor/AsyncFile | spread |"
            );
            let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                w.title,
                self.cell(&w.id, PY_ASYNCIO),
                self.cell(&w.id, PY_EXECUTOR),
                self.cell(&w.id, PY_AIOFILES),
                show_ratio(ratio(self.res.median(&w.id, PY_ASYNCIO), self.res.median(&w.id, PY_EXECUTOR))),
                show_ratio(ratio(self.res.median(&w.id, PY_ASYNCIO), self.res.median(&w.id, PY_AIOFILES))),
                self.show_cpu(&w.id, PY_ASYNCIO),
                self.show_cpu(&w.id, PY_EXECUTOR),
                self.show_cpu(&w.id, PY_AIOFILES),
                show_ratio(ratio(self.cpu_per_op(&w.id, PY_EXECUTOR), self.cpu_per_op(&w.id, PY_ASYNCIO))),
                show_spread(self.spread(&w.id, &[PY_ASYNCIO, PY_EXECUTOR, PY_AIOFILES]))
            );
        }
    }

    fn peak_rss(&self, w: &str, p: &str) -> Option<u64> {
        self.res.samples.get(&(w.to_string(), p.to_string()))?.iter().filter_map(|s| s.peak_rss_kib).max()
    }

    pub fn targets(&self) -> Vec<Target> {
        let r = self.res;
        let mut t = Vec::new();
        let mut vs = |name: &str, w: &str, a: &str, b: &str, min: f64| {
            let m = ratio(r.median(w, a), r.median(w, b));
            t.push(Target {
                name: name.into(),
                want: format!("≥ {min}×"),
                measured: m,
                shown: show_ratio(m),
                met: m.map(|m| m >= min),
            });
        };
        vs("O_DIRECT rand read 4 KiB QD32: rio / fio", "direct-rand-read-4k-qd32", RIO_URING, FIO, 0.9);
        vs("O_DIRECT rand write 4 KiB QD32: rio / fio", "direct-rand-write-4k-qd32", RIO_URING, FIO, 0.9);
        vs("O_DIRECT seq write 1 MiB QD8: rio / fio", "direct-seq-write-1m-qd8", RIO_URING, FIO, 0.9);
        vs("O_DIRECT seq read 1 MiB QD8: rio / fio", "direct-seq-read-1m-qd8", RIO_URING, FIO, 0.9);
        vs("seed write+fsync: rio / tokio::fs", "seed-write-fsync", RIO_URING, TOKIO, 3.0);
        vs("seed write+fsync: rio / std", "seed-write-fsync", RIO_URING, STD, 0.9);
        vs("queue O_DIRECT rand read 4 KiB kept 32 deep: queue / fio", "queue-randread-4k-qd32", RIO_QUEUE, FIO, 1.0);
        vs("queue O_DIRECT rand write 4 KiB kept 32 deep: queue / fio", "queue-randwrite-4k-qd32", RIO_QUEUE, FIO, 1.0);
        vs("Python asyncio 32 tasks: AsyncFile / run_in_executor(os.preadv)", "queue-python-asyncio-32", PY_ASYNCIO, PY_EXECUTOR, 3.0);
        vs("Python asyncio 32 tasks: AsyncFile / aiofiles", "queue-python-asyncio-32", PY_ASYNCIO, PY_AIOFILES, 3.0);
        // Per-op cost ratio is the inverse of the rate ratio.
        {
            let w = "cached-rand-read-4k-qd1";
            let (u, s) = (r.median(w, RIO_URING), r.median(w, STD));
            let cost = ratio(s, u);
            let shown = match (u, s, cost) {
                (Some(u), Some(s), Some(c)) => format!("{c:.2}× ({:.0} ns vs {:.0} ns per read)", 1e9 / u, 1e9 / s),
                _ => "–".into(),
            };
            t.push(Target {
                name: "page-cache read 4 KiB QD1: rio per-op cost / pread".into(),
                want: "≤ 1.2×".into(),
                measured: cost,
                shown,
                met: cost.map(|c| c <= 1.2),
            });
        }
        for w in ["queue-randread-4k-qd32", "queue-randwrite-4k-qd32"] {
            let cost = ratio(self.cpu_per_op(w, RIO_QUEUE), self.cpu_per_op(w, FIO));
            t.push(Target {
                name: format!("{w}: CPU per op, queue / fio"),
                want: "≤ 1.1×".into(),
                measured: cost,
                shown: show_ratio(cost),
                met: cost.map(|c| c <= 1.1),
            });
        }
        let mut wal_vs_loop = |name: &str, size: usize, threads: usize, min: f64| {
            let m = ratio(r.median(&wal::wal_id(size, threads), RIO_URING), r.median(&wal::loop_id(size), STD));
            t.push(Target {
                name: name.into(),
                want: format!("≥ {min}×"),
                measured: m,
                shown: show_ratio(m),
                met: m.map(|m| m >= min),
            });
        };
        wal_vs_loop("WAL 1 thread × 4 KiB: rio / write+fdatasync loop", 4096, 1, 0.9);
        wal_vs_loop("WAL 32 threads × 128 B: rio / write+fdatasync loop", 128, 32, 20.0);
        let m = ratio(r.median(&wal::async_id(128, 1), RIO_URING), r.median(&wal::loop_id(128), STD));
        t.push(Target {
            name: "WAL 1 thread × 128 B append_async (wait at 4096): rio / write+fdatasync loop".into(),
            want: "≥ 50×".into(),
            measured: m,
            shown: show_ratio(m),
            met: m.map(|m| m >= 50.0),
        });
        if let Some(g) = r.extra.get("wal_rss_growth") {
            let (h1, h2) = (g["peak_rss_kib_1"].as_u64(), g["peak_rss_kib_2"].as_u64());
            let (n1, n2) = (g["entries_1"].as_u64().unwrap_or(0), g["entries_2"].as_u64().unwrap_or(0));
            let (shown, met, measured) = match (h1, h2) {
                (Some(a), Some(b)) => {
                    let grew = b.saturating_sub(a);
                    (
                        format!(
                            "{:.1} MiB after {n1} entries, {:.1} MiB after {n2} (+{:.1} MiB; {} threads × {} B, {} segment rotations)",
                            a as f64 / 1024.0,
                            b as f64 / 1024.0,
                            grew as f64 / 1024.0,
                            g["threads"],
                            g["entry_size"],
                            g["rotations"]
                        ),
                        Some(grew <= (a / 20).max(2048)),
                        Some(b as f64 / a.max(1) as f64),
                    )
                }
                _ => ("–".into(), None, None),
            };
            t.push(Target {
                name: "WAL peak RSS independent of entries appended".into(),
                want: "flat (≤ +5% or 2 MiB)".into(),
                measured,
                shown,
                met,
            });
        }
        t
    }

    pub fn markdown(&self) -> String {
        let m = self.machine;
        let o = self.opts;
        let mut s = String::new();
        let _ = writeln!(s, "## librio benchmark — {}", m.date_utc);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Machine: {} CPUs ({}), {:.1} GiB RAM, Linux {}, scratch dir on {} ({}). rio io_uring: {}. fio: {}. Commit {}.",
            m.cpus,
            m.cpu_model,
            m.mem_total_kib as f64 / (1 << 20) as f64,
            m.kernel,
            m.fs_type,
            m.fs_device,
            m.uring_summary(),
            m.fio.version.as_deref().unwrap_or_else(|| m.fio.absent.as_deref().unwrap_or("absent")),
            m.git_commit
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Medians of {} interleaved runs of {} each{}; O_DIRECT file {} MiB, page-cache file {} MiB. Ratios are rio io_uring's rate over the peer's (> 1: rio is faster); spread is half the largest (max − min) / median of the row's peers. Load average at start: {}.",
            o.reps,
            fmt_dur(o.duration),
            if o.quick { " (--quick)" } else { "" },
            o.file_size >> 20,
            o.cache_size >> 20,
            m.loadavg_start
        );
        let file_rows: Vec<_> = self.res.workloads.iter().filter(|w| w.group != "wal" && w.group != "queue").collect();
        if !file_rows.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "| workload | unit | rio io_uring | rio thread pool | std | tokio::fs | fio io_uring | rio/pool | rio/std | rio/tokio | rio/fio | spread |"
            );
            let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for w in file_rows {
                let u = self.res.median(&w.id, RIO_URING);
                let _ = write!(s, "| {} | {} |", w.title, w.metric.unit());
                for p in ALL_PEERS {
                    let _ = write!(s, " {} |", self.cell(&w.id, p));
                }
                for p in [RIO_POOL, STD, TOKIO, FIO] {
                    let _ = write!(s, " {} |", show_ratio(ratio(u, self.res.median(&w.id, p))));
                }
                let _ = writeln!(s, " {} |", show_spread(self.spread(&w.id, &ALL_PEERS)));
            }
        }
        let wal_rows: Vec<_> = self.res.workloads.iter().filter(|w| w.group == "wal").collect();
        if !wal_rows.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "| WAL workload (durable appends) | rio io_uring | rio thread pool | write+fdatasync loop | rio/loop | pool/loop | entries per group commit | peak RSS rio (MiB) | spread |"
            );
            let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
            for w in wal_rows {
                if w.id.starts_with("wal-fio-") {
                    let _ = writeln!(s, "| {} | | | {} (fio) | | | {} | – | {} |", w.title, self.cell(&w.id, FIO), "–", show_spread(self.spread(&w.id, &[FIO])));
                    continue;
                }
                if w.id.starts_with("wal-loop-") {
                    let rss = self.peak_rss(&w.id, STD).map(|k| format!("{:.1} (loop)", k as f64 / 1024.0));
                    let _ = writeln!(
                        s,
                        "| {} | | | {} | | | 1 | {} | {} |",
                        w.title,
                        self.cell(&w.id, STD),
                        rss.unwrap_or_else(|| "–".into()),
                        show_spread(self.spread(&w.id, &[STD]))
                    );
                    continue;
                }
                let lp = self.loop_of(&w.id);
                let lv = lp.as_deref().and_then(|l| self.res.median(l, STD));
                let rss = self.peak_rss(&w.id, RIO_URING).map(|k| format!("{:.1}", k as f64 / 1024.0));
                let per_commit = self.res.samples.get(&(w.id.clone(), RIO_URING.to_string())).and_then(|v| {
                    let (e, g) = v.iter().fold((0u64, 0u64), |(e, g), x| (e + x.ops, g + x.group_commits.unwrap_or(0)));
                    (g > 0).then(|| format!("{:.1}", e as f64 / g as f64))
                });
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    w.title,
                    self.cell(&w.id, RIO_URING),
                    self.cell(&w.id, RIO_POOL),
                    lv.map(num).unwrap_or_else(|| "–".into()),
                    show_ratio(ratio(self.res.median(&w.id, RIO_URING), lv)),
                    show_ratio(ratio(self.res.median(&w.id, RIO_POOL), lv)),
                    per_commit.unwrap_or_else(|| "–".into()),
                    rss.unwrap_or_else(|| "–".into()),
                    show_spread(self.spread(&w.id, &[RIO_URING, RIO_POOL]))
                );
            }
        }
        self.queue_tables(&mut s);
        let targets = self.targets();
        let _ = writeln!(s);
        let _ = writeln!(s, "| target | wanted | measured | verdict |");
        let _ = writeln!(s, "|---|---|---|---|");
        for t in &targets {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(s, "| {} | {} | {} | {} |", t.name, t.want, t.shown, verdict);
        }
        let notes: Vec<String> = self
            .res
            .notes
            .iter()
            .filter(|((w, _), _)| self.res.workloads.iter().any(|x| &x.id == w))
            .map(|((w, p), n)| format!("{w} / {}: {n}", peer_title(p)))
            .collect();
        if !notes.is_empty() || !self.res.warnings.is_empty() {
            let _ = writeln!(s);
            for w in &self.res.warnings {
                let _ = writeln!(s, "- warning: {w}");
            }
            for n in notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    pub fn json(&self) -> Value {
        let r = self.res;
        let workloads: Vec<Value> = r
            .workloads
            .iter()
            .map(|w| {
                let mut peers = serde_json::Map::new();
                for p in ALL_PEERS.iter().chain(&QUEUE_PEERS).copied() {
                    let key = (w.id.clone(), p.to_string());
                    let samples = r.samples.get(&key);
                    let note = r.notes.get(&key);
                    if samples.is_none() && note.is_none() {
                        continue;
                    }
                    let ss: Vec<Value> = samples
                        .map(|v| {
                            v.iter()
                                .map(|x| {
                                    json!({ "ops": x.ops, "bytes": x.bytes, "secs": x.secs, "rate": w.metric.of(x), "peak_rss_kib": x.peak_rss_kib, "group_commits": x.group_commits, "cpu_secs": x.cpu_secs })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    peers.insert(
                        p.to_string(),
                        json!({ "title": peer_title(p), "median": r.median(&w.id, p), "samples": ss, "note": note }),
                    );
                }
                let u = r.median(&w.id, RIO_URING);
                let mut ratios = serde_json::Map::new();
                for p in [RIO_POOL, STD, TOKIO, FIO] {
                    if let Some(x) = ratio(u, r.median(&w.id, p)) {
                        ratios.insert(format!("rio-uring/{p}"), json!(x));
                    }
                }
                for (a, b) in [(RIO_QUEUE, FIO), (RIO_QUEUE, RIO_BATCH), (RIO_QUEUE, GO_GOROUTINES), (PY_ASYNCIO, PY_EXECUTOR), (PY_ASYNCIO, PY_AIOFILES)] {
                    if let Some(x) = ratio(r.median(&w.id, a), r.median(&w.id, b)) {
                        ratios.insert(format!("{a}/{b}"), json!(x));
                    }
                }
                if let Some(x) = ratio(self.cpu_per_op(&w.id, RIO_QUEUE), self.cpu_per_op(&w.id, FIO)) {
                    ratios.insert("cpu-per-op rio-queue/fio".into(), json!(x));
                }
                if let Some(l) = self.loop_of(&w.id) {
                    let lv = r.median(&l, STD);
                    for p in [RIO_URING, RIO_POOL] {
                        if let Some(x) = ratio(r.median(&w.id, p), lv) {
                            ratios.insert(format!("{p}/loop"), json!(x));
                        }
                    }
                }
                json!({
                    "id": w.id, "group": w.group, "title": w.title, "unit": w.metric.unit(),
                    "about": w.about, "peers": peers, "ratios": ratios,
                })
            })
            .collect();
        let targets: Vec<Value> = self
            .targets()
            .iter()
            .map(|t| json!({ "target": t.name, "wanted": t.want, "measured": t.measured, "shown": t.shown, "met": t.met }))
            .collect();
        json!({
            "tool": "librio benches/compare",
            "machine": self.machine.json(),
            "config": {
                "argv": self.opts.argv, "quick": self.opts.quick, "reps": self.opts.reps,
                "duration_secs": self.opts.duration.as_secs_f64(), "file_size": self.opts.file_size,
                "cache_size": self.opts.cache_size, "seed_mib": self.opts.seed_mib,
                "wal_threads": self.opts.wal_threads, "wal_sizes": self.opts.wal_sizes,
                "dir": self.opts.dir.display().to_string(),
            },
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "workloads": workloads,
            "targets": targets,
            "extra": r.extra,
            "warnings": r.warnings,
            "errors": r.errors,
        })
    }

    /// Bars per workload, each peer's median relative to the best peer of
    /// that workload (WAL rows also show their write+fdatasync loop).
    pub fn svg(&self) -> String {
        let r = self.res;
        let colors = [
            (RIO_URING, "#d62728"),
            (RIO_POOL, "#ff9896"),
            (STD, "#1f77b4"),
            (TOKIO, "#2ca02c"),
            (FIO, "#7f7f7f"),
            ("loop", "#1f77b4"),
            (RIO_QUEUE, "#9467bd"),
            (RIO_QUEUE_POOL, "#c5b0d5"),
            (RIO_BATCH, "#d62728"),
            (GO_GOROUTINES, "#8c564b"),
            (PY_ASYNCIO, "#9467bd"),
            (PY_EXECUTOR, "#17becf"),
        ];
        let color = |p: &str| colors.iter().find(|(n, _)| *n == p).map(|(_, c)| *c).unwrap_or("#999");
        let mut blocks: Vec<ChartBlock> = Vec::new();
        for w in &r.workloads {
            if w.id.starts_with("wal-loop-") {
                continue;
            }
            let mut bars: Vec<(String, f64)> = ALL_PEERS
                .iter()
                .chain(&QUEUE_PEERS)
                .filter_map(|p| r.median(&w.id, p).map(|v| (p.to_string(), v)))
                .collect();
            if let Some(l) = self.loop_of(&w.id) {
                if let Some(v) = r.median(&l, STD) {
                    bars.push(("loop".into(), v));
                }
            }
            if bars.iter().any(|(p, _)| p != "loop") {
                blocks.push((w.title.clone(), w.metric, bars));
            }
        }
        let (label_w, bar_w, row_h, head_h, gap) = (170.0, 430.0, 15.0, 18.0, 8.0);
        let width = label_w + bar_w + 190.0;
        let mut y = 48.0;
        let mut body = String::new();
        for (title, metric, bars) in &blocks {
            let _ = writeln!(
                body,
                r#"<text x="10" y="{:.0}" font-weight="bold">{}</text>"#,
                y + 12.0,
                esc(title)
            );
            y += head_h;
            let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-9);
            // The row's rio reference: io_uring, the queue, or AsyncFile.
            let reference = [RIO_URING, RIO_QUEUE, PY_ASYNCIO].into_iter().find(|r| bars.iter().any(|b| b.0 == *r));
            let rio = bars.iter().find(|b| Some(b.0.as_str()) == reference).map(|b| b.1);
            for (p, v) in bars {
                let vs = match rio {
                    Some(r) if Some(p.as_str()) != reference && *v > 0.0 => format!(" (rio {:.2}×)", r / v),
                    _ => String::new(),
                };
                let len = (v / max * bar_w).max(1.0);
                let name = if p == "loop" { "write+fdatasync loop" } else { peer_title(p) };
                let _ = writeln!(
                    body,
                    r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text><rect x="{:.0}" y="{:.0}" width="{:.1}" height="{:.0}" fill="{}"/><text x="{:.1}" y="{:.0}">{} {}{}</text>"#,
                    label_w - 6.0,
                    y + 11.0,
                    esc(name),
                    label_w,
                    y + 2.0,
                    len,
                    row_h - 3.0,
                    color(p),
                    label_w + len + 4.0,
                    y + 11.0,
                    num(*v),
                    metric.unit(),
                    vs
                );
                y += row_h;
            }
            y += gap;
        }
        let m = self.machine;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{:.0}" font-family="sans-serif" font-size="11">"#,
            y + 10.0
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="10" y="18" font-size="14" font-weight="bold">librio vs peers: medians of {} interleaved runs (longer is better)</text>"#,
            self.opts.reps
        );
        let _ = writeln!(
            s,
            r#"<text x="10" y="36">{}</text>"#,
            esc(&format!(
                "{} · {} CPUs {} · Linux {} · {} · fio {} · bars relative to the best peer of each workload",
                m.date_utc,
                m.cpus,
                m.cpu_model,
                m.kernel,
                m.fs_type,
                m.fio.version.as_deref().unwrap_or("absent")
            ))
        );
        s.push_str(&body);
        s.push_str("</svg>\n");
        s
    }

    pub fn write_files(&self) -> std::io::Result<()> {
        let out = &self.opts.out;
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&self.json())? + "\n")?;
        std::fs::write(out.join("table.md"), self.markdown())?;
        std::fs::write(out.join("chart.svg"), self.svg())?;
        Ok(())
    }
}

fn show_spread(s: Option<f64>) -> String {
    s.map(|s| format!("±{:.0}%", s * 50.0)).unwrap_or_else(|| "–".into())
}

fn fmt_dur(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
