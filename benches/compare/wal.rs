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
use crate::{run_interleaved, Metric, Results, Sample, Unit, Workload, FIO, RIO_POOL, RIO_URING, STD};

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

/// `threads` threads × `size` B with `append_async`, each waiting only when
/// its share of `ASYNC_WINDOW` entries is outstanding.
pub fn async_id(size: usize, threads: usize) -> String {
    format!("wal-async-{}-{}t", size_name(size), threads)
}

/// fio's sequential buffered write with an fdatasync every `FIO_SYNC_EVERY` writes.
pub fn fio_id(size: usize) -> String {
    format!("wal-fio-{}", size_name(size))
}

/// Entries outstanding (appended, not yet waited for) across the threads
/// of an async row before they wait.
const ASYNC_WINDOW: usize = 4096;
/// The async rows: (entry size, threads).
const ASYNC_ROWS: [(usize, usize); 2] = [(128, 1), (4096, 4)];
/// fio's `--fdatasync=N` next to the 4 KiB async row: one sync per 64
/// writes (256 KiB), about the group a 4-thread async log commits at once.
const FIO_SYNC_EVERY: usize = 64;

/// The entry size in a WAL workload id (`-128b-`, `-4k`...).
pub fn size_of_id(id: &str, sizes: &[usize]) -> Option<usize> {
    sizes.iter().copied().chain(ASYNC_ROWS.map(|(s, _)| s)).find(|s| {
        let n = size_name(*s);
        id.contains(&format!("-{n}-")) || id.ends_with(&format!("-{n}"))
    })
}

fn async_workloads() -> Vec<Workload> {
    let mut v = Vec::new();
    for (size, threads) in ASYNC_ROWS {
        let per = ASYNC_WINDOW / threads;
        v.push(Workload {
            id: async_id(size, threads),
            group: "wal",
            title: format!("WAL append_async {}, {threads} thread{} (wait at {per} outstanding)", size_title(size), if threads == 1 { "" } else { "s" }),
            metric: Metric::Appends,
            about: format!(
                "{threads} thread(s) call Wal::append_async with {} entries and Wal::wait on the newest whenever {per} of theirs are outstanding; counted once wait returned (durable).",
                size_title(size)
            ),
        });
    }
    v.push(Workload {
        id: fio_id(4096),
        group: "wal",
        title: format!("fio sequential buffered write 4 KiB + fdatasync every {FIO_SYNC_EVERY} writes"),
        metric: Metric::Appends,
        about: format!("The log's bandwidth bound: fio --rw=write --bs=4k --ioengine=sync --fdatasync={FIO_SYNC_EVERY} (writes/s; × 4096 B for MB/s)."),
    });
    v
}

pub fn workloads(opts: &Opts) -> Vec<Workload> {
    let mut v = async_workloads();
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
        let size = size_of_id(&w.id, &opts.wal_sizes).unwrap_or(128);
        if w.id.starts_with("wal-fio-") {
            let Some(fio) = env.fio.clone() else {
                res.note(&w.id, FIO, env.fio_absent.clone().unwrap_or_else(|| "fio not found".into()));
                continue;
            };
            let path = env.dir.join(format!("{}.dat", w.id));
            units.push(Unit {
                workload: w.id.clone(),
                peer: FIO.into(),
                run: Box::new(move |d| fio_sync_every(&fio, &path, size, d)),
            });
            continue;
        }
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
        let asynchronous = ASYNC_ROWS.iter().find(|(s, t)| w.id == async_id(*s, *t));
        let threads = match asynchronous {
            Some(&(_, t)) => t,
            None => opts.wal_threads.iter().copied().find(|t| w.id == wal_id(size, *t)).unwrap_or(1),
        };
        for (peer, backend) in [(RIO_URING, "uring"), (RIO_POOL, "pool")] {

            if peer == RIO_URING && !uring_ok {
                res.note(&w.id, peer, "io_uring unavailable");
                continue;
            }
            if !opts.peer_on(peer) {
                continue;
            }
            let spec = ChildSpec {
                what: if asynchronous.is_some() { "async" } else { "wal" }.into(),
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
    cost_per_append(opts, env, res);
}

/// CPU time and context switches per durable append (getrusage of the
/// child, all its threads), for the blocking 32-thread row and the async
/// 1-thread row, on io_uring.
fn cost_per_append(opts: &Opts, env: &Env, res: &mut Results) {
    if env.uring.is_err() || !opts.peer_on(RIO_URING) {
        return;
    }
    let mut out = serde_json::Map::new();
    for (what, threads, name) in [("wal", 32, "blocking-128b-32t"), ("async", 1, "async-128b-1t")] {
        if !opts.selected(&if what == "wal" { wal_id(128, threads) } else { async_id(128, threads) }, "wal") {
            continue;
        }
        let spec = ChildSpec {
            what: what.into(),
            backend: "uring".into(),
            threads,
            size: 128,
            duration: opts.duration,
            dir: env.dir.join(format!("wal-cost-{name}.d")),
            rss_phases: false,
        };
        match run_child(&spec) {
            Ok(v) => {
                let keep = ["cpu_us_per_append", "csw_per_append", "group_commits", "ops"];
                let row: serde_json::Map<_, _> = keep.iter().map(|k| (k.to_string(), v[*k].clone())).collect();
                eprintln!("bench: WAL cost {name}: {}", serde_json::Value::Object(row.clone()));
                out.insert(name.into(), serde_json::Value::Object(row));
            }
            Err(e) => res.errors.push(format!("WAL cost {name}: {e}")),
        }
    }
    res.extra.insert("wal_cost_per_append".into(), serde_json::Value::Object(out));
}

/// fio: sequential buffered writes of `size` with an fdatasync every
/// `FIO_SYNC_EVERY` writes; one sample in writes per second.
fn fio_sync_every(fio: &std::path::Path, path: &std::path::Path, size: usize, dur: Duration) -> Result<Sample, String> {
    let _ = std::fs::remove_file(path);
    let args = [
        "--name=rio-wal-bound".to_string(),
        format!("--filename={}", path.display()),
        "--ioengine=sync".into(),
        "--rw=write".into(),
        format!("--bs={size}"),
        "--size=1g".into(),
        format!("--fdatasync={FIO_SYNC_EVERY}"),
        "--time_based=1".into(),
        format!("--runtime={}ms", dur.as_millis().max(1)),
        "--output-format=json".into(),
    ];
    let out = Command::new(fio).args(&args).output().map_err(|e| format!("cannot run fio: {e}"))?;
    let _ = std::fs::remove_file(path);
    if !out.status.success() {
        return Err(format!("fio {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text[text.find('{').ok_or("fio printed no JSON")?..]).map_err(|e| format!("fio JSON: {e}"))?;
    let side = &v["jobs"][0]["write"];
    let ops = side["total_ios"].as_u64().ok_or("fio JSON lacks total_ios")?;
    let secs = side["runtime"].as_f64().ok_or("fio JSON lacks runtime")? / 1000.0;
    if ops == 0 || secs <= 0.0 {
        return Err("fio did no I/O".into());
    }
    Ok(Sample { ops, bytes: ops * size as u64, secs, peak_rss_kib: None, group_commits: None, cpu_secs: None })
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
        "async" => wal_appends(&spec),
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
    let usage_before = rusage();
    for (k, &mult) in phases.iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(spec.threads + 1));
        let before = count.load(Ordering::Relaxed);
        let workers: Vec<_> = (0..spec.threads)
            .map(|t| {
                let (wal, stop, ready, count) = (wal.clone(), stop.clone(), ready.clone(), count.clone());
                let rec = entry(spec.size, t as u64 + 1);
                // Async: wait only when this thread's share of the window is outstanding.
                let window = if spec.what == "async" { (ASYNC_WINDOW / spec.threads).max(1) as u64 } else { 0 };
                std::thread::spawn(move || -> Result<(), String> {
                    ready.wait();
                    let (mut mine, mut last, mut outstanding) = (0u64, 0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let seq = if window == 0 { wal.append(&rec) } else { wal.append_async(&rec) }
                            .map_err(|e| format!("append: {e}"))?;
                        if seq <= last {
                            return Err(format!("sequence went from {last} to {seq}"));
                        }
                        last = seq;
                        outstanding += 1;
                        if outstanding >= window {
                            if window > 0 {
                                wal.wait(seq, None).map_err(|e| format!("wait: {e}"))?;
                            }
                            mine += outstanding;
                            outstanding = 0;
                        }
                    }
                    // Only what wait acknowledged counts; the rest is waited for, uncounted.
                    if outstanding > 0 {
                        wal.wait(last, None).map_err(|e| format!("wait: {e}"))?;
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
    let (cpu_us, csw) = rusage().since(&usage_before);
    if spec.what == "wal" && wal.last_seq() != count.load(Ordering::Relaxed) {
        return Err(format!("last_seq {} but {} appends acknowledged", wal.last_seq(), count.load(Ordering::Relaxed)));
    }
    if wal.last_seq() < count.load(Ordering::Relaxed) {
        return Err(format!("last_seq {} below the {} acknowledged", wal.last_seq(), count.load(Ordering::Relaxed)));
    }
    let total = wal.last_seq().max(1) as f64;
    out.insert("cpu_us_per_append".into(), json!(cpu_us / total));
    out.insert("csw_per_append".into(), json!(csw / total));
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

/// The process's CPU time (µs, user + system) and context switches
/// (voluntary + involuntary), all threads.
struct Usage {
    cpu_us: f64,
    csw: f64,
}

fn rusage() -> Usage {
    // SAFETY: getrusage fills the struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    Usage { cpu_us: us(ru.ru_utime) + us(ru.ru_stime), csw: (ru.ru_nvcsw + ru.ru_nivcsw) as f64 }
}

impl Usage {
    fn since(&self, before: &Usage) -> (f64, f64) {
        (self.cpu_us - before.cpu_us, self.csw - before.csw)
    }
}
