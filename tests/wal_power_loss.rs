//! Power loss at every sync point of a scripted multi-threaded run, on both
//! backends: for k = 1, 2, ... the machine dies just before the k-th
//! fdatasync (and, separately, the k-th fsync, which syncs directories),
//! losing its unsynced page cache entirely or all but a torn prefix.
//! After each, recovery must return every acknowledged entry, intact, with
//! contiguous sequence numbers and whole atomic batches, and accept appends.
//! `RIO_POWER_LOSS_UNITS` sets the units per writer (long mode).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{pattern, BACKENDS};
use parking_lot::Mutex;
use rio::{BackendChoice, CrashMode, FaultAction, FaultRule, OpCode, Runtime, RuntimeConfig, Wal, WalConfig};

const WRITERS: u64 = 4;

fn units_per_writer() -> u64 {
    std::env::var("RIO_POWER_LOSS_UNITS").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

fn config() -> WalConfig {
    // Small segments: rotations (seal, new file, directory fsync) are sync points too.
    WalConfig { segment_size: 8192, ..Default::default() }
}

/// Payload of entry `part` of unit `unit` of `writer`: self-describing.
fn payload(writer: u64, unit: u64, part: u64) -> Vec<u8> {
    let id = writer << 32 | unit << 8 | part;
    let mut p = id.to_le_bytes().to_vec();
    p.extend(pattern(40 + (id % 300) as usize, id));
    p
}

/// Acknowledged units: first seq -> (writer, unit, entries).
type Acked = Mutex<BTreeMap<u64, (u64, u64, u64)>>;

fn workload(wal: &Wal, acked: &Acked) {
    std::thread::scope(|s| {
        for writer in 0..WRITERS {
            s.spawn(move || {
                for unit in 0..units_per_writer() {
                    let parts = if unit % 4 == 3 { 3 } else { 1 };
                    let entries: Vec<Vec<u8>> = (0..parts).map(|p| payload(writer, unit, p)).collect();
                    let slices: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
                    let result = if parts == 1 { wal.append(slices[0]) } else { wal.append_batch(&slices) };
                    match result {
                        Ok(seq) => {
                            acked.lock().insert(seq, (writer, unit, parts));
                        }
                        Err(e) => {
                            assert_eq!(e.errno(), libc::EIO, "{}", e.message());
                            return;
                        }
                    }
                }
            });
        }
    });
}

fn faulty(backend: BackendChoice) -> Runtime {
    Runtime::new(&RuntimeConfig { backend, fault_injection: true, ..Default::default() }).unwrap()
}

/// Recovers and checks the log against what was acknowledged.
fn verify(backend: BackendChoice, dir: &Path, acked: &Acked, what: &str) {
    let rt = Runtime::new(&RuntimeConfig { backend, ..Default::default() }).unwrap();
    let wal = Wal::open(&rt, dir, config()).unwrap_or_else(|e| panic!("{what}: recovery failed: {}", e.message()));
    let mut found: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut reader = wal.reader(1).unwrap();
    while let Some((seq, data)) = reader.next().unwrap() {
        found.insert(seq, data.to_vec());
    }
    let last = wal.last_seq();
    assert_eq!(found.keys().copied().collect::<Vec<_>>(), (1..=last).collect::<Vec<_>>(), "{what}: seqs not contiguous");
    for (&seq, &(writer, unit, parts)) in acked.lock().iter() {
        for p in 0..parts {
            let got = found.get(&(seq + p)).unwrap_or_else(|| panic!("{what}: acknowledged entry {} lost", seq + p));
            assert!(*got == payload(writer, unit, p), "{what}: entry {} corrupted", seq + p);
        }
    }
    // Whatever survived beyond the acknowledged entries is whole units.
    let mut seq = 1;
    while seq <= last {
        let id = u64::from_le_bytes(found[&seq][..8].try_into().unwrap());
        let (writer, unit) = (id >> 32, (id >> 8) & 0xff_ffff);
        let parts = if unit % 4 == 3 { 3 } else { 1 };
        for p in 0..parts {
            let got = found.get(&(seq + p)).unwrap_or_else(|| panic!("{what}: batch at {seq} is partial"));
            assert!(*got == payload(writer, unit, p), "{what}: entry {} is not part {p} of its batch", seq + p);
        }
        seq += parts;
    }
    assert_eq!(wal.append(b"after recovery").unwrap(), last + 1, "{what}");
}

/// How many ops of `kind` a full run issues (for the loop bound).
fn sync_points(backend: BackendChoice, kind: OpCode) -> u64 {
    let rt = faulty(backend);
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(&rt, dir.path(), config()).unwrap();
    let before = rt.metrics().op_count(kind);
    workload(&wal, &Mutex::new(BTreeMap::new()));
    rt.metrics().op_count(kind) - before
}

fn crash_at_every(kind: OpCode) {
    for backend in BACKENDS {
        // Group commits vary from run to run; go a little past a full run.
        let points = sync_points(backend, kind) + 3;
        for k in 1..=points {
            let rt = faulty(backend);
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(&rt, dir.path(), config()).unwrap();
            let mode = if k % 2 == 0 { CrashMode::DiscardAll } else { CrashMode::TornPrefix { seed: k } };
            rt.fault_injector().unwrap().add_rule(FaultRule { op: Some(kind), nth: k, count: 1, action: FaultAction::PowerLoss(mode) });
            let acked = Mutex::new(BTreeMap::new());
            workload(&wal, &acked);
            drop(wal);
            drop(rt);
            verify(backend, dir.path(), &acked, &format!("{backend:?}, power loss before {kind:?} #{k} ({mode:?})"));
        }
        println!("{backend:?}: power loss before each of {points} {kind:?} points: nothing acknowledged lost");
    }
}

#[test]
fn power_loss_before_every_fdatasync() {
    crash_at_every(OpCode::Fdatasync);
}

#[test]
fn power_loss_before_every_fsync() {
    crash_at_every(OpCode::Fsync);
}
