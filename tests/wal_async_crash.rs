//! Crash tests of asynchronous acknowledgement, on both backends.
//!
//! Writers keep many entries in flight with `append_async` (every fifth
//! unit an atomic `append_batch` of 3) and call `wait` on the newest one
//! when a random number of them is outstanding; only once `wait` returned
//! 0 do they report those seqs as acknowledged. A log may cross many
//! segments (64 KiB) meanwhile.
//!
//! - SIGKILL: the writers run in a child process (this binary re-executed
//!   with `RIO_WAL_ASYNC_CRASH_CHILD` set) that reports through a pipe; the
//!   parent kills it at a random moment.
//! - Power loss: the same writers in-process on a fault-injecting runtime,
//!   which at a random moment loses the unsynced page cache (all of it, or
//!   all but a random prefix with a torn last write).
//!
//! After each crash the log is reopened and checked: every acknowledged
//! entry is there and intact, seqs are contiguous from 1, batches are all
//! or nothing, and appending continues. `RIO_WAL_CRASH_ROUNDS` sets the
//! rounds per backend (short by default for `make test`; `make stress`
//! runs many more). The seed of each run is printed; `RIO_WAL_CRASH_SEED`
//! replays one.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::entry::EntryId as Id;
use common::{backend_choice, each_backend, Dice as Rng};
use rio::{CrashMode, Runtime, RuntimeConfig, Wal, WalConfig};

const CHILD_ENV: &str = "RIO_WAL_ASYNC_CRASH_CHILD";
const BACKEND_ENV: &str = "RIO_WAL_ASYNC_CRASH_BACKEND";
const ROUND_ENV: &str = "RIO_WAL_ASYNC_CRASH_ROUND";
const ROUNDS_ENV: &str = "RIO_WAL_CRASH_ROUNDS";
const SEED_ENV: &str = "RIO_WAL_CRASH_SEED";
const WRITERS: u64 = 3;

fn config() -> WalConfig {
    WalConfig { segment_size: 64 << 10, buffer_size: 256 << 10, ..Default::default() }
}

fn rounds(default: u32) -> u32 {
    common::env_count(ROUNDS_ENV, default)
}

/// The crash dice, seeded from `SEED_ENV` or the clock; the seed is
/// printed so a failure can be replayed.
fn seeded() -> Rng {
    let seed = std::env::var(SEED_ENV).ok().and_then(|v| v.parse().ok()).map_or_else(Rng::from_clock, |s: u64| Rng(s | 1));
    eprintln!("wal_async_crash: {SEED_ENV}={}", seed.0);
    seed
}

/// seq -> the entry acknowledged there (reported only after `wait` or a
/// blocking batch returned 0).
type Acked = BTreeMap<u64, Id>;

fn ack(acked: &mut Acked, first_seq: u64, id: Id) {
    for pos in 0..id.count {
        acked.insert(first_seq + pos, Id { pos, ..id });
    }
}

/// One writer: lone entries with `append_async`, waiting on the newest
/// whenever `1 + rand(64)` are outstanding, and blocking atomic batches.
/// Stops at the first error (after a power loss the log is poisoned).
fn writer_loop(wal: &Wal, round: u64, writer: u64, seed: u64, report: &mut dyn FnMut(u64, Id)) {
    let mut rng = Rng(seed | 1);
    let mut outstanding: Vec<(u64, Id)> = Vec::new();
    let mut limit = 1 + rng.below(64);
    for index in 0.. {
        if index % 5 == 4 {
            let ids: Vec<Id> = (0..3).map(|pos| Id { round, writer, index, pos, count: 3 }).collect();
            let payloads: Vec<Vec<u8>> = ids.iter().map(Id::payload).collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            match wal.append_batch(&refs) {
                Ok(seq) => report(seq, ids[0]),
                Err(_) => return,
            }
            continue;
        }
        let id = Id { round, writer, index, pos: 0, count: 1 };
        match wal.append_async(&id.payload()) {
            Ok(seq) => outstanding.push((seq, id)),
            Err(_) => return,
        }
        if outstanding.len() as u64 >= limit {
            let newest = outstanding.last().unwrap().0;
            if wal.wait(newest, None).is_err() {
                return;
            }
            for (seq, id) in outstanding.drain(..) {
                report(seq, id);
            }
            limit = 1 + rng.below(64);
        }
    }
}

/// Reopens the log and checks it against what was acknowledged; appends
/// one entry (acknowledged too) to show appending continues.
fn verify(rt: &Runtime, dir: &Path, acked: &mut Acked, round: u64) {
    let wal = Wal::open(rt, dir, config()).unwrap_or_else(|e| panic!("round {round}: reopen: {e}"));
    let last = wal.last_seq();
    let max_acked = acked.keys().next_back().copied().unwrap_or(0);
    assert!(last >= max_acked, "round {round}: last_seq {last} < acknowledged {max_acked}");
    assert_eq!(wal.durable_seq(), last, "round {round}: everything recovered is durable");
    let mut reader = wal.reader(1).unwrap();
    let mut next = 1;
    while let Some((seq, data)) = reader.next().unwrap() {
        assert_eq!(seq, next, "round {round}: seqs are contiguous from 1");
        next += 1;
        let id = Id::parse(data);
        if let Some(want) = acked.get(&seq) {
            assert_eq!(&id, want, "round {round}: entry {seq} is the acknowledged one");
        }
        assert!(seq - id.pos >= 1 && seq - id.pos + id.count - 1 <= last, "round {round}: the batch at {seq} is cut");
    }
    assert_eq!(next - 1, last, "round {round}: the reader reaches last_seq");
    let id = Id { round, writer: 99, index: 0, pos: 0, count: 1 };
    let seq = wal.append_async(&id.payload()).unwrap();
    assert_eq!(seq, last + 1, "round {round}: appending continues");
    wal.wait(seq, None).unwrap();
    ack(acked, seq, id);
    wal.close().unwrap();
}

/// The child's body: append until killed.
#[test]
fn async_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let rt = Runtime::new(&RuntimeConfig { backend: backend_choice(&std::env::var(BACKEND_ENV).unwrap()), ..Default::default() }).unwrap();
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let wal = Wal::open(&rt, &dir, config()).unwrap();
    let say = common::report_line;
    say("\nREADY\n".into());
    std::thread::scope(|s| {
        for writer in 0..WRITERS {
            let (wal, say) = (&wal, &say);
            s.spawn(move || {
                writer_loop(wal, round, writer, round << 8 | writer, &mut |seq, id| {
                    say(format!("A {seq} {} {} {} {}\n", id.writer, id.index, id.pos, id.count))
                })
            });
        }
    });
}

/// Runs one child and returns the acknowledgements it reported before it
/// was killed.
fn kill_round(rt: &Runtime, dir: &Path, round: u64, rng: &mut Rng, acked: &mut Acked) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "async_crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(BACKEND_ENV, rt.backend().name())
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let pump = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the child reports READY") != "READY" {}
    std::thread::sleep(Duration::from_micros(1000 + rng.below(120_000)));
    child.kill().unwrap();
    child.wait().unwrap();
    pump.join().unwrap();
    for line in rx.try_iter() {
        let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|w| w.parse().ok()).collect();
        if let (Some("A"), &[seq, writer, index, pos, count]) = (line.split_whitespace().next(), f.as_slice()) {
            ack(acked, seq, Id { round, writer, index, pos, count });
        }
    }
}

#[test]
fn sigkill_while_waiting_loses_no_acknowledged_entry() {
    let rounds = rounds(8);
    each_backend(|rt, dir| {
        let mut rng = seeded();
        let mut acked = Acked::new();
        for round in 1..=rounds as u64 {
            kill_round(rt, dir, round, &mut rng, &mut acked);
            verify(rt, dir, &mut acked, round);
        }
        eprintln!("{}: {rounds} SIGKILL rounds, {} acknowledged entries verified", rt.backend().name(), acked.len());
    });
}

#[test]
fn power_loss_while_waiting_loses_no_acknowledged_entry() {
    let rounds = rounds(8);
    each_backend(|rt, dir| {
        let mut rng = seeded();
        let acked = Mutex::new(Acked::new());
        for round in 1..=rounds as u64 {
            let cfg = RuntimeConfig { backend: backend_choice(rt.backend().name()), fault_injection: true, ..Default::default() };
            let faulty = Runtime::new(&cfg).unwrap();
            let wal = Wal::open(&faulty, dir, config()).unwrap();
            std::thread::scope(|s| {
                for writer in 0..WRITERS {
                    let (wal, acked, seed) = (&wal, &acked, rng.below(u64::MAX));
                    s.spawn(move || writer_loop(wal, round, writer, seed, &mut |seq, id| ack(&mut acked.lock().unwrap(), seq, id)));
                }
                std::thread::sleep(Duration::from_micros(500 + rng.below(60_000)));
                let mode = if round % 2 == 0 { CrashMode::DiscardAll } else { CrashMode::TornPrefix { seed: rng.below(u64::MAX) } };
                faulty.fault_injector().unwrap().crash(mode);
            });
            drop(wal);
            verify(rt, dir, &mut acked.lock().unwrap(), round);
        }
        eprintln!("{}: {rounds} power-loss rounds, {} acknowledged entries verified", rt.backend().name(), acked.lock().unwrap().len());
    });
}
