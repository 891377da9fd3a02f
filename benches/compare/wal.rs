//! WAL workloads: durable appends at several thread counts and entry sizes,
//! next to the plain single-thread write+fdatasync loop an engineer writes
//! without a WAL. Every run happens in a child process (this executable,
//! `--child ...`) so its peak RSS (VmHWM) is its own.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::files::Env;
use crate::opts::Opts;
use crate::{run_interleaved, Metric, Results, Sample, Unit, Workload, RIO_POOL, RIO_URING, STD};

fn size_name(size: usize) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{}k", size / 1024)
    } else {
        format!("{size}b")
    }
}

fn size_title(size: usize) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

pub fn loop_id(size: usize) -> String {
    format!("wal-loop-{}", size_name(size))
}

pub fn wal_id(size: usize, threads: usize) -> String {
    format!("wal-{}-{}t", size_name(size), threads)
}

pub fn workloads(opts: &Opts) -> Vec<Workload> {
    let mut v = Vec::new();
    for &size in &opts.wal_sizes {
        v.push(Workload {
            id: loop_id(size),
            group: "wal",
            title: format!("write+fdatasync loop {}, 1 thread", size_title(size)),
            metric: Metric::Appends,
            about: format!(
                "The reference: one thread appends {} records to a file with write(2) and makes each durable with fdatasync(2) before the next.",
                size_title(size)
            ),
        });
        for &threads in &opts.wal_threads {
            v.push(Workload {
                id: wal_id(size, threads),
                group: "wal",
                title: format!("WAL append {}, {threads} thread{}", size_title(size), if threads == 1 { "" } else { "s" }),
                metric: Metric::Appends,
                about: format!(
                    "{threads} thread(s) call Wal::append with {} entries, each call returning once its entry is durable (default config: group commit).",
                    size_title(size)
                ),
            });
        }
    }
    v
}

/// What a child runs.
#[derive(Debug, Clone)]
struct ChildSpec {
    what: String, // "loop" | "wal"
    backend: String,
    threads: usize,
    size: usize,
    duration: Duration,
    dir: PathBuf,
    /// RSS-growth mode: report VmHWM after `duration`, then again after 3× more.
    rss_phases: bool,
}

impl ChildSpec {
    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--child".into(),
            self.what.clone(),
            self.backend.clone(),
            self.threads.to_string(),
            self.size.to_string(),
            format!("{}", self.duration.as_micros()),
            self.dir.display().to_string(),
        ];
        if self.rss_phases {
            a.push("rss".into());
        }
        a
    }

    fn parse(a: &[String]) -> Result<ChildSpec, String> {
        if a.len() < 6 {
            return Err("usage: --child loop|wal uring|pool THREADS SIZE MICROS DIR [rss]".into());
        }
        Ok(ChildSpec {
            what: a[0].clone(),
            backend: a[1].clone(),
            threads: a[2].parse().map_err(|_| "threads")?,
            size: a[3].parse().map_err(|_| "size")?,
            duration: Duration::from_micros(a[4].parse().map_err(|_| "micros")?),
            dir: PathBuf::from(&a[5]),
            rss_phases: a.get(6).map(String::as_str) == Some("rss"),
        })
    }
}

/// Runs a child and parses the JSON line it prints last.
fn run_child(spec: &ChildSpec) -> Result<serde_json::Value, String> {
    // /proc/self/exe still runs this very program when `cargo build` has
    // replaced the file meanwhile (other builds share target/).
    let exe = if std::path::Path::new("/proc/self/exe").exists() {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?
    };
    let _ = std::fs::remove_dir_all(&spec.dir);
    let out = Command::new(exe).args(spec.args()).output().map_err(|e| format!("cannot start child: {e}"))?;
    let _ = std::fs::remove_dir_all(&spec.dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "child {} failed ({}): {}{}",
            spec.args().join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            stdout.trim()
        ));
    }
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).ok_or("child printed no result")?;
    serde_json::from_str(line).map_err(|e| format!("child JSON: {e}"))
}

fn child_sample(spec: &ChildSpec) -> Result<Sample, String> {
    let v = run_child(spec)?;
    Ok(Sample {
        ops: v["ops"].as_u64().ok_or("ops")?,
        bytes: v["bytes"].as_u64().ok_or("bytes")?,
        secs: v["secs"].as_f64().ok_or("secs")?,
        peak_rss_kib: v["peak_rss_kib"].as_u64(),
        group_commits: v["group_commits"].as_u64(),
        cpu_secs: None,
    })
}

pub fn run_all(opts: &Opts, env: &Env, res: &mut Results) {
    let all = workloads(opts);
    // A WAL row is read against the loop of its entry size: select it too.
    let sizes_needed: Vec<usize> = opts
        .wal_sizes
        .iter()
        .copied()
        .filter(|&s| opts.wal_threads.iter().any(|&t| opts.selected(&wal_id(s, t), "wal")))
        .collect();
    let chosen: Vec<Workload> = all
        .into_iter()
        .filter(|w| opts.selected(&w.id, w.group) || sizes_needed.iter().any(|&s| w.id == loop_id(s)))
        .collect();
    if chosen.is_empty() {
        return;
    }
    eprintln!("bench: WAL workloads ({} rows, each run in a child process) ...", chosen.len());
    let uring_ok = env.uring.is_ok();
    let mut units: Vec<Unit<'_>> = Vec::new();
    for w in &chosen {
        res.workloads.push(w.clone());
        let size = parse_id_size(&w.id, &opts.wal_sizes);
        if w.id.starts_with("wal-loop-") {
            let spec = ChildSpec {
                what: "loop".into(),
                backend: "none".into(),
                threads: 1,
                size,
                duration: opts.duration,
                dir: env.dir.join(format!("{}.d", w.id)),
                rss_phases: false,
            };
            units.push(Unit {
                workload: w.id.clone(),
                peer: STD.into(),
                run: Box::new(move |d| child_sample(&ChildSpec { duration: d, ..spec.clone() })),
            });
            continue;
        }
        let threads = opts.wal_threads.iter().copied().find(|t| w.id == wal_id(size, *t)).unwrap_or(1);
        for (peer, backend) in [(RIO_URING, "uring"), (RIO_POOL, "pool")] {

            if peer == RIO_URING && !uring_ok {
                res.note(&w.id, peer, "io_uring unavailable");
                continue;
            }
            if !opts.peer_on(peer) {
                continue;
            }
            let spec = ChildSpec {
                what: "wal".into(),
                backend: backend.into(),
                threads,
                size,
                duration: opts.duration,
                dir: env.dir.join(format!("{}-{backend}.d", w.id)),
                rss_phases: false,
            };
            units.push(Unit {
                workload: w.id.clone(),
                peer: peer.into(),
                run: Box::new(move |d| child_sample(&ChildSpec { duration: d, ..spec.clone() })),
            });
        }
    }
    run_interleaved(&mut units, opts, None, res);
    drop(units);
    rss_growth(opts, env, res);
}

fn parse_id_size(id: &str, sizes: &[usize]) -> usize {
    sizes.iter().copied().find(|s| id.contains(&format!("-{}", size_name(*s)))).unwrap_or(128)
}

/// Peak RSS after D seconds of appends and after 4·D (most threads, largest
/// entries): a WAL whose memory grows with the entries appended, or with the
/// segments it rotated through, shows it here.
fn rss_growth(opts: &Opts, env: &Env, res: &mut Results) {
    if env.uring.is_err() || !opts.peer_on(RIO_URING) {
        return;
    }
    let threads = opts.wal_threads.iter().copied().max().unwrap_or(1);
    // The largest entries: the most bytes, so segments rotate during the check.
    let size = opts.wal_sizes.iter().copied().max().unwrap_or(4096);
    let spec = ChildSpec {
        what: "wal".into(),
        backend: "uring".into(),
        threads,
        size,
        duration: opts.duration,
        dir: env.dir.join("wal-rss.d"),
        rss_phases: true,
    };
    match run_child(&spec) {
        Ok(v) => {
            eprintln!("bench: WAL peak RSS check: {v}");
            res.extra.insert("wal_rss_growth".into(), v);
        }
        Err(e) => {
            eprintln!("bench: ERROR WAL RSS check: {e}");
            res.errors.push(format!("WAL RSS check: {e}"));
        }
    }
}

// ------------------------------------------------------------- the child

pub fn child_main(args: &[String]) -> i32 {
    let spec = match ChildSpec::parse(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: {e}");
            return 2;
        }
    };
    let out = match spec.what.as_str() {
        "loop" => fdatasync_loop(&spec),
        "wal" => wal_appends(&spec),
        other => Err(format!("unknown child workload {other:?}")),
    };
    match out {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => {
            eprintln!("child: {e}");
            1
        }
    }
}

fn entry(size: usize, seed: u64) -> Vec<u8> {
    (0..size).map(|i| (i as u64).wrapping_mul(31).wrapping_add(seed) as u8).collect()
}

/// The reference: append with write(2), fdatasync(2) each record.
fn fdatasync_loop(spec: &ChildSpec) -> Result<serde_json::Value, String> {
    use std::io::Write;
    std::fs::create_dir_all(&spec.dir).map_err(|e| format!("{}: {e}", spec.dir.display()))?;
    let path = spec.dir.join("plain.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let rec = entry(spec.size, 1);
    let start = Instant::now();
    let deadline = start + spec.duration;
    let mut ops = 0u64;
    while Instant::now() < deadline {
        f.write_all(&rec).map_err(|e| format!("write: {e}"))?;
        f.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
        ops += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(json!({ "ops": ops, "bytes": ops * spec.size as u64, "secs": secs, "peak_rss_kib": crate::sys::peak_rss_kib() }))
}

fn runtime_for(backend: &str) -> Result<rio::Runtime, String> {
    let backend = match backend {
        "uring" => rio::BackendChoice::IoUring,
        "pool" => rio::BackendChoice::ThreadPool,
        other => return Err(format!("unknown backend {other:?}")),
    };
    rio::Runtime::new(&rio::RuntimeConfig { backend, ..Default::default() }).map_err(|e| e.to_string())
}

/// `threads` appenders for `duration` (and, in RSS mode, 3× longer again:
/// the peak RSS after the first phase and after the second are reported).
fn wal_appends(spec: &ChildSpec) -> Result<serde_json::Value, String> {
    let rt = runtime_for(&spec.backend)?;
    let wal = Arc::new(rio::Wal::open(&rt, &spec.dir, rio::WalConfig::default()).map_err(|e| e.to_string())?);
    let phases: &[u32] = if spec.rss_phases { &[1, 3] } else { &[1] };
    let count = Arc::new(AtomicU64::new(0));
    let mut out = serde_json::Map::new();
    let (mut ops_total, mut secs_total) = (0u64, 0.0f64);
    for (k, &mult) in phases.iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(spec.threads + 1));
        let before = count.load(Ordering::Relaxed);
        let workers: Vec<_> = (0..spec.threads)
            .map(|t| {
                let (wal, stop, ready, count) = (wal.clone(), stop.clone(), ready.clone(), count.clone());
                let rec = entry(spec.size, t as u64 + 1);
                std::thread::spawn(move || -> Result<(), String> {
                    ready.wait();
                    let mut mine = 0u64;
                    let mut last = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let seq = wal.append(&rec).map_err(|e| format!("append: {e}"))?;
                        if seq <= last {
                            return Err(format!("sequence went from {last} to {seq}"));
                        }
                        last = seq;
                        mine += 1;
                    }
                    count.fetch_add(mine, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        std::thread::sleep(spec.duration * mult);
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().map_err(|_| "appender panicked".to_string())??;
        }
        // Every append has returned: its entry is durable.
        let secs = start.elapsed().as_secs_f64();
        let ops = count.load(Ordering::Relaxed) - before;
        ops_total += ops;
        secs_total += secs;
        let n = k + 1;
        out.insert(format!("entries_{n}"), json!(count.load(Ordering::Relaxed)));
        out.insert(format!("peak_rss_kib_{n}"), json!(crate::sys::peak_rss_kib()));
    }
    if wal.last_seq() != count.load(Ordering::Relaxed) {
        return Err(format!("last_seq {} but {} appends acknowledged", wal.last_seq(), count.load(Ordering::Relaxed)));
    }
    let st = wal.stats();
    let wal = Arc::try_unwrap(wal).map_err(|_| "wal still shared".to_string())?;
    wal.close().map_err(|e| format!("close: {e}"))?;
    out.insert("ops".into(), json!(ops_total));
    out.insert("bytes".into(), json!(ops_total * spec.size as u64));
    out.insert("secs".into(), json!(secs_total));
    out.insert("peak_rss_kib".into(), json!(crate::sys::peak_rss_kib()));
    out.insert("threads".into(), json!(spec.threads));
    out.insert("entry_size".into(), json!(spec.size));
    out.insert("group_commits".into(), json!(st.group_commits));
    out.insert("largest_group".into(), json!(st.largest_group));
    out.insert("peak_pending_bytes".into(), json!(st.peak_pending_bytes));
    out.insert("rotations".into(), json!(st.rotations));
    Ok(serde_json::Value::Object(out))
}
