//! Crash tests, on both backends.
//!
//! - SIGKILL: a child process (this test binary re-executed with
//!   `RIO_WAL_CRASH_CHILD` set) appends lone entries and atomic batches from
//!   several threads, truncates now and then, and reports every
//!   acknowledged sequence number through a pipe. The parent kills it at a
//!   random moment (sometimes while it is still recovering), reopens the
//!   log, and checks that every acknowledged entry is there and intact,
//!   sequence numbers are contiguous, batches are whole, and appending
//!   continues. Then the next round starts on the same log.
//! - Power loss: the same workload in-process on a fault-injecting runtime;
//!   at a random moment the "machine" loses its unsynced page cache (all of
//!   it, or all but a random prefix with a torn last write).
//!
//! - Both again with randomized completion faults inside the backends
//!   (short completions, EAGAIN/EINTR/ECANCELED, io_uring_enter
//!   EBUSY/EINTR), which must change nothing a writer can see; the seed is
//!   printed on failure and `RIO_FAULT_SEED` replays it.
//!
//! `RIO_WAL_CRASH_ROUNDS` sets the rounds per backend (default: a short
//! run for `make test`; `make wal-crash-long` runs many more).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::entry::EntryId as Id;
use common::{backend_choice, each_backend, fault_seed, transient_faults, Dice as Rng};
use rio::{CompletionFaults, CrashMode, Runtime, RuntimeConfig, Wal, WalConfig};

const CHILD_ENV: &str = "RIO_WAL_CRASH_CHILD";
const BACKEND_ENV: &str = "RIO_WAL_CRASH_BACKEND";
const ROUND_ENV: &str = "RIO_WAL_CRASH_ROUND";
const ROUNDS_ENV: &str = "RIO_WAL_CRASH_ROUNDS";
/// The child's completion-fault seed, when its runtime has them.
const FAULT_SEED_ENV: &str = "RIO_WAL_CRASH_FAULT_SEED";
/// Completion faults hit about one completion in this many.
const FAULT_ONE_IN: u32 = 4;
const WRITERS: u64 = 4;

fn config() -> WalConfig {
    WalConfig { segment_size: 64 << 10, ..Default::default() }
}

fn rounds(default: u32) -> u64 {
    common::env_count(ROUNDS_ENV, default).into()
}

/// What the writers report: acknowledged units and announced truncations.
#[derive(Default)]
struct Reports {
    /// seq -> the entry acknowledged there.
    acked: BTreeMap<u64, Id>,
    /// The largest `truncate_before` argument announced (before the call).
    truncated: u64,
}

impl Reports {
    fn ack(&mut self, first_seq: u64, id: Id) {
        for pos in 0..id.count {
            self.acked.insert(first_seq + pos, Id { pos, ..id });
        }
    }

    /// Parses a report line of the child ("A seq round writer index count" or "T seq").
    fn line(&mut self, line: &str) {
        let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|w| w.parse().ok()).collect();
        match (line.split_whitespace().next(), f.as_slice()) {
            (Some("A"), &[seq, round, writer, index, count]) => {
                self.ack(seq, Id { round, writer, index, pos: 0, count })
            }
            (Some("T"), &[seq]) => self.truncated = self.truncated.max(seq),
            _ => {}
        }
    }
}

/// One writer's loop: every fifth unit is an atomic batch of 3. Stops at
/// the first error (the log is poisoned after a simulated power loss).
fn writer_loop(wal: &Wal, round: u64, writer: u64, report: &mut dyn FnMut(u64, Id)) {
    for index in 0.. {
        let count = if index % 5 == 4 { 3 } else { 1 };
        let ids: Vec<Id> = (0..count).map(|pos| Id { round, writer, index, pos, count }).collect();
        let payloads: Vec<Vec<u8>> = ids.iter().map(Id::payload).collect();
        let result = if count == 1 {
            wal.append(&payloads[0])
        } else {
            wal.append_batch(&payloads.iter().map(|p| p.as_slice()).collect::<Vec<_>>())
        };
        match result {
            Ok(seq) => report(seq, ids[0]),
            Err(_) => return,
        }
    }
}

/// Truncates all but the newest ~200 entries now and then.
fn truncator_loop(wal: &Wal, stop: &AtomicBool, announce: &mut dyn FnMut(u64)) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        let last = wal.last_seq();
        if last > 300 {
            announce(last - 200);
            if wal.truncate_before(last - 200).is_err() {
                return;
            }
        }
    }
}

/// Reopens the log after a crash and checks it against the reports:
/// every acknowledged entry present and intact, contiguous sequence
/// numbers, whole batches, and appending continues (that entry is
/// recorded as acknowledged too).
fn verify(rt: &Runtime, dir: &Path, reports: &mut Reports, round: u64) -> u64 {
    let wal = Wal::open(rt, dir, config()).unwrap_or_else(|e| panic!("round {round}: reopen: {e}"));
    let last = wal.last_seq();
    let max_acked = reports.acked.keys().next_back().copied().unwrap_or(0);
    assert!(last >= max_acked, "round {round}: last_seq {last} < acknowledged {max_acked}");
    let mut reader = wal.reader(1).unwrap();
    let mut expected: Option<u64> = None;
    let mut first = 0;
    while let Some((seq, data)) = reader.next().unwrap() {
        let id = Id::parse(data);
        match expected {
            None => first = seq,
            Some(e) => assert_eq!(seq, e, "round {round}: sequence numbers are contiguous"),
        }
        expected = Some(seq + 1);
        if let Some(acked) = reports.acked.get(&seq) {
            assert_eq!(&id, acked, "round {round}: entry {seq} is the acknowledged one");
        }
        // Batches are whole: the batch's last entry exists.
        assert!(seq - id.pos + id.count - 1 <= last, "round {round}: batch at {seq} is cut");
        // Batches never span segments, so truncation never splits one either.
        assert!(seq >= first + id.pos, "round {round}: batch at {seq} lost its start");
    }
    assert_eq!(expected.map_or(last, |e| e - 1), last, "round {round}: reader reaches last_seq");
    // Entries below the first one kept were truncated on purpose.
    if first > 1 {
        assert!(first <= reports.truncated, "round {round}: entries before {first} vanished, truncated only below {}", reports.truncated);
    }
    let missing = reports.acked.range(first.max(1)..).filter(|(seq, _)| **seq > last).count();
    assert_eq!(missing, 0, "round {round}: acknowledged entries missing");
    let id = Id { round, writer: 99, index: 0, pos: 0, count: 1 };
    let seq = wal.append(&id.payload()).unwrap();
    assert_eq!(seq, last + 1, "round {round}: appending continues");
    reports.ack(seq, id);
    wal.close().unwrap();
    seq
}

fn backend_name(rt: &Runtime) -> &'static str {
    rt.backend().name()
}

/// The child's body: append until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let backend = backend_choice(&std::env::var(BACKEND_ENV).unwrap());
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let completion_faults = std::env::var(FAULT_SEED_ENV).ok().map(|s| transient_faults(s.parse().unwrap(), FAULT_ONE_IN));
    let rt = Runtime::new(&RuntimeConfig { backend, completion_faults, ..Default::default() }).unwrap();
    let wal = Wal::open(&rt, &dir, config()).unwrap();
    let say = common::report_line;
    // On a line of its own: libtest has printed "test crash_child ... ".
    say("\nREADY\n".into());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for writer in 0..WRITERS {
            let (wal, say) = (&wal, &say);
            s.spawn(move || {
                writer_loop(wal, round, writer, &mut |seq, id| {
                    say(format!("A {seq} {} {} {} {}\n", id.round, id.writer, id.index, id.count))
                })
            });
        }
        truncator_loop(&wal, &stop, &mut |seq| say(format!("T {seq}\n")));
    });
}

/// Runs one child round and records what it reported before it was killed.
fn kill_round(rt: &Runtime, dir: &Path, round: u64, rng: &mut Rng, reports: &mut Reports, faults: Option<CompletionFaults>) {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(BACKEND_ENV, backend_name(rt))
        .env(ROUND_ENV, round.to_string());
    if let Some(f) = faults {
        // Each round its own seed, derived from the printed one.
        command.env(FAULT_SEED_ENV, (f.seed ^ round).to_string());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let pump = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // One round in five dies during open (recovery); the others while appending.
    if rng.below(5) == 0 {
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
    } else {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("child reports READY");
            let ready = line == "READY";
            lines.push(line);
            if ready {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(1000 + rng.below(150_000)));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    pump.join().unwrap();
    lines.extend(rx.try_iter());
    for line in &lines {
        reports.line(line);
    }
}

/// SIGKILL rounds; `faults` gives the children's runtimes completion faults.
fn sigkill_rounds(rounds: u64, faults: Option<CompletionFaults>) {
    each_backend(|rt, dir| {
        let mut rng = Rng::from_clock();
        let mut reports = Reports::default();
        let start = Instant::now();
        for round in 1..=rounds {
            kill_round(rt, dir, round, &mut rng, &mut reports, faults);
            verify(rt, dir, &mut reports, round);
        }
        eprintln!(
            "{}: {rounds} SIGKILL rounds{}, {} acknowledged entries verified, in {:?}",
            backend_name(rt),
            faults.map_or(String::new(), |f| format!(" with completion faults (seed {})", f.seed)),
            reports.acked.len(),
            start.elapsed()
        );
    });
}

/// Power-loss rounds; `faults` adds completion faults to the faulty runtime.
/// Returns the completion faults injected.
fn power_loss_rounds(rounds: u64, faults: Option<CompletionFaults>) -> u64 {
    let injected = AtomicU64::new(0);
    each_backend(|rt, dir| {
        let mut rng = Rng::from_clock();
        let reports = Mutex::new(Reports::default());
        for round in 1..=rounds {
            let faulty = Runtime::new(&RuntimeConfig {
                backend: backend_choice(backend_name(rt)),
                fault_injection: true,
                completion_faults: faults.map(|f| CompletionFaults { seed: f.seed ^ round, ..f }),
                ..Default::default()
            })
            .unwrap();
            let wal = Wal::open(&faulty, dir, config()).unwrap();
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                for writer in 0..WRITERS {
                    let (wal, reports) = (&wal, &reports);
                    s.spawn(move || writer_loop(wal, round, writer, &mut |seq, id| reports.lock().unwrap().ack(seq, id)));
                }
                let (wal, reports, stop_ref) = (&wal, &reports, &stop);
                s.spawn(move || {
                    truncator_loop(wal, stop_ref, &mut |seq| {
                        let mut r = reports.lock().unwrap();
                        r.truncated = r.truncated.max(seq);
                    })
                });
                std::thread::sleep(Duration::from_micros(500 + rng.below(40_000)));
                let mode = if round % 2 == 0 { CrashMode::DiscardAll } else { CrashMode::TornPrefix { seed: rng.below(u64::MAX) } };
                faulty.fault_injector().unwrap().crash(mode);
                stop.store(true, Ordering::Relaxed);
            });
            drop(wal);
            injected.fetch_add(faulty.completion_faults_injected(), Ordering::Relaxed);
            verify(rt, dir, &mut reports.lock().unwrap(), round);
        }
        eprintln!(
            "{}: {rounds} power-loss rounds{}, {} acknowledged entries verified",
            backend_name(rt),
            faults.map_or(String::new(), |f| format!(" with completion faults (seed {})", f.seed)),
            reports.lock().unwrap().acked.len()
        );
    });
    injected.into_inner()
}

/// Names the seed when a run with completion faults fails.
fn with_seed_reported(seed: u64, run: impl FnOnce()) {
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        eprintln!("failed with completion faults, RIO_FAULT_SEED={seed}");
        std::panic::resume_unwind(e);
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_entry() {
    sigkill_rounds(rounds(25), None);
}

#[test]
fn power_loss_at_random_moments_loses_no_acknowledged_entry() {
    power_loss_rounds(rounds(25), None);
}

#[test]
fn sigkill_with_completion_faults_loses_no_acknowledged_entry() {
    let seed = fault_seed();
    with_seed_reported(seed, || sigkill_rounds(rounds(25).div_ceil(2), Some(transient_faults(seed, FAULT_ONE_IN))));
}

#[test]
fn power_loss_with_completion_faults_loses_no_acknowledged_entry() {
    let seed = fault_seed();
    with_seed_reported(seed, || {
        let injected = power_loss_rounds(rounds(25).div_ceil(2), Some(transient_faults(seed, FAULT_ONE_IN)));
        assert!(injected > 0, "completion faults were injected");
        eprintln!("completion faults injected: {injected}");
    });
}
