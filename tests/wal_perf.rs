//! A quick throughput check of durable appends, next to the plain
//! write+fdatasync loop, measured in the same run (interleaved rounds,
//! medians). Not part of `make test` (timing on a shared machine is not a
//! pass/fail matter); `make wal-perf` runs it:
//!
//!     cargo test --release --test wal_perf -- --ignored --nocapture
//!
//! `make bench` (benches/compare) is the full comparison with peers.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::runtime;
use rio::{BackendChoice, Wal, WalConfig};

const RUN: Duration = Duration::from_millis(700);
const ROUNDS: usize = 3;

fn plain_loop(dir: &std::path::Path, size: usize) -> f64 {
    let path = dir.join("plain.log");
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let rec = vec![7u8; size];
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < RUN {
        f.write_all(&rec).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn wal_appends(backend: BackendChoice, dir: &std::path::Path, size: usize, threads: usize) -> (f64, f64) {
    let rt = runtime(backend);
    let path = dir.join(format!("wal-{backend:?}-{size}-{threads}"));
    let _ = std::fs::remove_dir_all(&path);
    let wal = Wal::open(&rt, &path, WalConfig::default()).unwrap();
    let (stop, count) = (AtomicBool::new(false), AtomicU64::new(0));
    let rec = vec![7u8; size];
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = 0;
                while !stop.load(Ordering::Relaxed) {
                    wal.append(&rec).unwrap();
                    mine += 1;
                }
                count.fetch_add(mine, Ordering::Relaxed);
            });
        }
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
    });
    let rate = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let stats = wal.stats();
    (rate, stats.entries as f64 / stats.group_commits.max(1) as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore = "timing; run with --ignored (make wal-perf)"]
fn durable_appends_next_to_a_plain_fdatasync_loop() {
    let dir = tempfile::tempdir_in(std::env::var("RIO_WAL_PERF_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    println!("| entry | threads | backend | appends/s | plain loop/s | ratio | entries/commit |");
    println!("|---|---|---|---|---|---|---|");
    for size in [128usize, 4096] {
        for threads in [1usize, 16, 32] {
            for backend in [BackendChoice::IoUring, BackendChoice::ThreadPool] {
                let (mut wal, mut plain, mut group) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..ROUNDS {
                    plain.push(plain_loop(dir.path(), size));
                    let (rate, per_commit) = wal_appends(backend, dir.path(), size, threads);
                    wal.push(rate);
                    group.push(per_commit);
                }
                let (wal, plain) = (median(wal), median(plain));
                println!(
                    "| {size} B | {threads} | {backend:?} | {wal:.0} | {plain:.0} | {:.2}x | {:.1} |",
                    wal / plain,
                    median(group)
                );
            }
        }
    }
}
