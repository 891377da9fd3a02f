//! `compare`: librio next to its peers, measured in the same run.
//!
//! `make bench` runs it (`cargo bench --bench compare -- [options]`); see
//! `--help` and docs/benchmarks.md. Every workload is run for every peer in
//! the same process, interleaved (peer order rotates each repetition),
//! several times; the table shows medians and the ratio rio/peer, and
//! bench-results/ gets results.json, table.md and chart.svg.
//!
//! Benchmarks are not tests: nothing here asserts a time. The tool fails
//! (exit 1) only when an operation fails or returns wrong data.

mod files;
mod opts;
mod queue;
mod report;
mod sys;
mod wal;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use opts::Opts;

/// One measurement: `ops` operations moving `bytes` bytes in `secs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub ops: u64,
    pub bytes: u64,
    pub secs: f64,
    /// Peak resident set (KiB) of the process that ran it, where measured.
    pub peak_rss_kib: Option<u64>,
    /// WAL runs: group commits (one write + one fdatasync each) it took.
    pub group_commits: Option<u64>,
    /// CPU time (user + system) the run used, where measured (queue rows).
    pub cpu_secs: Option<f64>,
}

impl Sample {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }
    pub fn mbps(&self) -> f64 {
        if self.secs > 0.0 {
            self.bytes as f64 / self.secs / 1e6
        } else {
            0.0
        }
    }
}

/// What a row of the table reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// MB/s (10^6 bytes per second).
    Mbps,
    /// Operations per second.
    Iops,
    /// WAL appends acknowledged durable per second.
    Appends,
}

impl Metric {
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Mbps => "MB/s",
            Metric::Iops => "IOPS",
            Metric::Appends => "appends/s",
        }
    }
    pub fn of(self, s: &Sample) -> f64 {
        match self {
            Metric::Mbps => s.mbps(),
            Metric::Iops | Metric::Appends => s.rate(),
        }
    }
}

/// The peers. `Loop` is the WAL rows' reference (a single-thread
/// write+fdatasync loop); it is its own workload row in each entry size.
pub const RIO_URING: &str = "rio-uring";
pub const RIO_POOL: &str = "rio-pool";
pub const STD: &str = "std";
pub const TOKIO: &str = "tokio";
pub const FIO: &str = "fio";
pub const ALL_PEERS: [&str; 5] = [RIO_URING, RIO_POOL, STD, TOKIO, FIO];
/// Peers of the queue rows (benches/compare/queue.rs), next to FIO.
pub const RIO_QUEUE: &str = "rio-queue";
pub const RIO_QUEUE_POOL: &str = "rio-queue-pool";
pub const RIO_BATCH: &str = "rio-batch";
pub const PY_ASYNCIO: &str = "py-asyncio";
pub const PY_EXECUTOR: &str = "py-executor";
pub const PY_AIOFILES: &str = "py-aiofiles";
pub const GO_GOROUTINES: &str = "go-goroutines";
pub const QUEUE_PEERS: [&str; 7] = [RIO_QUEUE, RIO_QUEUE_POOL, RIO_BATCH, GO_GOROUTINES, PY_ASYNCIO, PY_EXECUTOR, PY_AIOFILES];

pub fn peer_title(p: &str) -> &'static str {
    match p {
        RIO_URING => "rio io_uring",
        RIO_POOL => "rio thread pool",
        STD => "std pread/pwrite",
        TOKIO => "tokio::fs",
        FIO => "fio io_uring",
        RIO_QUEUE => "rio queue (io_uring)",
        RIO_QUEUE_POOL => "rio queue (thread pool)",
        RIO_BATCH => "rio batch-then-drain",
        GO_GOROUTINES => "Go: 32 goroutines × File.ReadAt/WriteAt",
        PY_ASYNCIO => "Python AsyncFile",
        PY_EXECUTOR => "Python run_in_executor(os.preadv)",
        PY_AIOFILES => "Python aiofiles (seek + readinto)",
        _ => "?",
    }
}

/// A workload as reported.
#[derive(Debug, Clone)]
pub struct Workload {
    pub id: String,
    pub group: &'static str,
    pub title: String,
    pub metric: Metric,
    /// What it measures, one sentence (for results.json and the docs).
    pub about: String,
}

/// One thing to measure: a workload run by one peer. `run` gets the
/// duration of a timed run (workloads of a fixed size ignore it).
pub struct Unit<'a> {
    pub workload: String,
    pub peer: String,
    pub run: Box<dyn FnMut(Duration) -> Result<Sample, String> + 'a>,
}

/// Everything measured, keyed by (workload, peer).
#[derive(Default)]
pub struct Results {
    pub workloads: Vec<Workload>,
    pub samples: BTreeMap<(String, String), Vec<Sample>>,
    /// Peers that were skipped or failed, with the reason.
    pub notes: BTreeMap<(String, String), String>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Results {
    pub fn median(&self, workload: &str, peer: &str) -> Option<f64> {
        let w = self.workloads.iter().find(|w| w.id == workload)?;
        let s = self.samples.get(&(workload.to_string(), peer.to_string()))?;
        median(s.iter().map(|x| w.metric.of(x)).collect())
    }

    pub fn note(&mut self, workload: &str, peer: &str, why: impl Into<String>) {
        self.notes.insert((workload.to_string(), peer.to_string()), why.into());
    }
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Runs `units` `reps` times, rotating the order each repetition so no peer
/// always runs first (after another's writeback) or last. A warm-up pass
/// (short, unrecorded) comes first when `warmup` is set.
pub fn run_interleaved(units: &mut [Unit<'_>], opts: &Opts, warmup: Option<Duration>, res: &mut Results) {
    if units.is_empty() {
        return;
    }
    let mut failed = vec![false; units.len()];
    if let Some(w) = warmup {
        // fio is a fresh process every run: nothing of it stays warm.
        for (i, u) in units.iter_mut().enumerate().filter(|(_, u)| u.peer != FIO) {
            if let Err(e) = (u.run)(w) {
                fail(res, u, &e);
                failed[i] = true;
            }
        }
    }
    let n = units.len();
    for rep in 0..opts.reps {
        for k in 0..n {
            let i = (k + rep) % n;
            if failed[i] {
                continue;
            }
            let u = &mut units[i];
            let t = Instant::now();
            match (u.run)(opts.duration) {
                Ok(s) => {
                    if opts.verbose {
                        eprintln!(
                            "    {:<22} {:<10} rep {} {:>12.1} ops/s {:>9.1} MB/s ({:.2}s wall)",
                            u.workload,
                            u.peer,
                            rep + 1,
                            s.rate(),
                            s.mbps(),
                            t.elapsed().as_secs_f64()
                        );
                    }
                    res.samples.entry((u.workload.clone(), u.peer.clone())).or_default().push(s);
                }
                Err(e) => {
                    fail(res, u, &e);
                    failed[i] = true;
                }
            }
        }
    }
}

fn fail(res: &mut Results, u: &Unit<'_>, e: &str) {
    let msg = format!("{} / {}: {e}", u.workload, u.peer);
    eprintln!("bench: ERROR {msg}");
    res.errors.push(msg);
    res.note(&u.workload, &u.peer, format!("failed: {e}"));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Child processes (WAL runs measured for peak RSS) re-enter here.
    if args.first().map(String::as_str) == Some("--child") {
        std::process::exit(wal::child_main(&args[1..]));
    }
    let opts = match Opts::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compare: {e}\n\n{}", opts::USAGE);
            std::process::exit(2);
        }
    };
    if opts.help {
        println!("{}", opts::USAGE);
        return;
    }
    if opts.list {
        for w in files::workloads(&opts).iter().chain(wal::workloads(&opts).iter()).chain(queue::workloads(&opts).iter()) {
            println!("{:<22} {}", w.id, w.title);
        }
        return;
    }
    std::process::exit(run(opts));
}

fn run(opts: Opts) -> i32 {
    let started = Instant::now();
    if let Err(e) = std::fs::create_dir_all(&opts.dir).and_then(|_| std::fs::create_dir_all(&opts.out)) {
        eprintln!("compare: cannot create {} / {}: {e}", opts.dir.display(), opts.out.display());
        return 1;
    }
    let machine = sys::Machine::probe(&opts);
    let mut res = Results::default();
    for w in &machine.warnings {
        eprintln!("bench: WARNING {w}");
        res.warnings.push(w.clone());
    }
    eprintln!("{}", machine.summary());
    eprintln!(
        "bench: {} repetitions × {:.2}s per peer and workload, scratch dir {}",
        opts.reps,
        opts.duration.as_secs_f64(),
        opts.dir.display()
    );

    let env = match files::Env::new(&opts, &machine) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("compare: {e}");
            return 1;
        }
    };
    files::run_all(&opts, &env, &mut res);
    wal::run_all(&opts, &env, &mut res);
    queue::run_all(&opts, &env, &mut res);
    env.cleanup(&opts);

    let elapsed = started.elapsed();
    let report = report::Report { opts: &opts, machine: &machine, res: &res, elapsed };
    let table = report.markdown();
    println!("{table}");
    if let Err(e) = report.write_files() {
        eprintln!("compare: cannot write results: {e}");
        return 1;
    }
    eprintln!(
        "bench: wrote {}/results.json, table.md, chart.svg in {:.0}s",
        opts.out.display(),
        elapsed.as_secs_f64()
    );
    if !res.errors.is_empty() {
        eprintln!("bench: {} error(s):", res.errors.len());
        for e in &res.errors {
            eprintln!("  {e}");
        }
        return 1;
    }
    0
}
