//! Stress: 64 threads doing mixed reads, writes, fsyncs and batches on
//! shared files, and 48 WAL appenders with 16 tailing readers, for a
//! bounded time, on both backends; every byte checked.
//! `RIO_STRESS_SECS` sets the time per backend (`make stress` runs long).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use rio::{open_flags::*, Batch, DiskFile, Runtime};

const THREADS: usize = 64;
const FILES: usize = 4;
const BLOCK: usize = 4096;
const BLOCKS_PER_THREAD: usize = 16;

fn stress_secs() -> f64 {
    std::env::var("RIO_STRESS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(2.0)
}

/// Block contents are a function of (thread, block, version), so any
/// misplaced, stale or torn block is detected.
fn content(thread: usize, block: usize, version: u64) -> Vec<u8> {
    pattern(BLOCK, ((thread * 1000 + block) as u64) << 20 | version)
}

fn location(thread: usize, block: usize) -> (usize, u64) {
    let file = (thread + block) % FILES;
    let slot = thread * BLOCKS_PER_THREAD + block;
    (file, (slot * BLOCK) as u64)
}

fn worker(rt: &Runtime, files: &[DiskFile], thread: usize, until: Instant) -> (u64, HashMap<usize, u64>) {
    let mut versions: HashMap<usize, u64> = HashMap::new();
    let mut ops = 0u64;
    let mut step = thread as u64 * 7919;
    while Instant::now() < until {
        step += 1;
        let block = (step % BLOCKS_PER_THREAD as u64) as usize;
        let (file, offset) = location(thread, block);
        match step % 8 {
            0..=2 => {
                let v = versions.get(&block).copied().unwrap_or(0) + 1;
                files[file].write_at(&content(thread, block, v), offset).unwrap();
                versions.insert(block, v);
            }
            3 | 4 => {
                if let Some(&v) = versions.get(&block) {
                    let mut buf = vec![0u8; BLOCK];
                    assert_eq!(files[file].read_at(&mut buf, offset).unwrap(), BLOCK);
                    assert!(buf == content(thread, block, v), "thread {thread} block {block} v{v} read back wrong");
                }
            }
            5 => files[file].datasync().unwrap(),
            _ => {
                // A batch: rewrite two blocks and read a third, plus an fsync.
                let (b1, b2) = (block, (block + 1) % BLOCKS_PER_THREAD);
                let v1 = versions.get(&b1).copied().unwrap_or(0) + 1;
                let v2 = versions.get(&b2).copied().unwrap_or(0) + 1;
                let (d1, d2) = (content(thread, b1, v1), content(thread, b2, v2));
                let (f1, o1) = location(thread, b1);
                let (f2, o2) = location(thread, b2);
                let mut batch = Batch::new();
                batch.write(&files[f1], &d1, o1).unwrap();
                batch.write(&files[f2], &d2, o2).unwrap();
                batch.fsync(&files[(thread + 3) % FILES]).unwrap();
                assert!(batch.submit(rt).iter().all(|r| r.is_ok()));
                versions.insert(b1, v1);
                versions.insert(b2, v2);
            }
        }
        ops += 1;
    }
    (ops, versions)
}

#[test]
fn sixty_four_threads_mixed_io_all_data_verified() {
    each_backend(|rt, dir| {
        let files: Vec<DiskFile> =
            (0..FILES).map(|i| DiskFile::open(rt, dir.join(format!("s{i}")), READ | WRITE | CREATE, 0o644).unwrap()).collect();
        let until = Instant::now() + Duration::from_secs_f64(stress_secs());
        let results: Vec<(u64, HashMap<usize, u64>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS).map(|t| {
                let files = &files;
                s.spawn(move || worker(rt, files, t, until))
            }).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut checked = 0;
        for (thread, (_, versions)) in results.iter().enumerate() {
            for (&block, &v) in versions {
                let (file, offset) = location(thread, block);
                let mut buf = vec![0u8; BLOCK];
                assert_eq!(files[file].read_at(&mut buf, offset).unwrap(), BLOCK);
                assert!(buf == content(thread, block, v), "final check: thread {thread} block {block}");
                checked += 1;
            }
        }
        let ops: u64 = results.iter().map(|r| r.0).sum();
        println!("{:?}: {THREADS} threads, {ops} operations, {checked} blocks verified", rt.backend());
        assert!(ops > THREADS as u64);
    });
}

/// A WAL entry that names its writer and index and carries derived bytes.
fn wal_entry(writer: usize, index: u64) -> Vec<u8> {
    let id = (writer as u64) << 40 | index;
    let mut e = id.to_le_bytes().to_vec();
    e.extend(pattern(16 + (id % 200) as usize, id));
    e
}

fn check_wal_entry(seq: u64, data: &[u8]) -> (usize, u64) {
    assert!(data.len() >= 8, "entry {seq} too short");
    let id = u64::from_le_bytes(data[..8].try_into().unwrap());
    let (writer, index) = ((id >> 40) as usize, id & ((1 << 40) - 1));
    assert!(data == wal_entry(writer, index), "entry {seq} corrupted");
    (writer, index)
}

#[test]
fn wal_with_appenders_and_tailing_readers_all_entries_verified() {
    const APPENDERS: usize = 48;
    const READERS: usize = 16;
    each_backend(|rt, dir| {
        let wal = rio::Wal::open(rt, dir.join("wal"), rio::WalConfig { segment_size: 1 << 20, ..Default::default() }).unwrap();
        let until = Instant::now() + Duration::from_secs_f64(stress_secs());
        let acked: Vec<Vec<u64>> = std::thread::scope(|s| {
            for _ in 0..READERS {
                let wal = &wal;
                s.spawn(move || {
                    // Tails the log: a consistent, growing prefix, in order.
                    let mut reader = wal.reader(1).unwrap();
                    let mut expect = 1;
                    let mut last_index = vec![None::<u64>; APPENDERS];
                    while Instant::now() < until {
                        match reader.next().unwrap() {
                            Some((seq, data)) => {
                                assert_eq!(seq, expect, "reader skipped or repeated");
                                let (w, i) = check_wal_entry(seq, data);
                                assert!(last_index[w].is_none_or(|l| l < i), "writer {w} out of order");
                                last_index[w] = Some(i);
                                expect += 1;
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                });
            }
            let handles: Vec<_> = (0..APPENDERS)
                .map(|w| {
                    let wal = &wal;
                    s.spawn(move || {
                        let mut seqs = Vec::new();
                        let mut i = 0;
                        while Instant::now() < until {
                            if i % 7 == 6 {
                                let batch = [wal_entry(w, i), wal_entry(w, i + 1)];
                                let first = wal.append_batch(&[&batch[0], &batch[1]]).unwrap();
                                seqs.extend([first, first + 1]);
                                i += 2;
                            } else {
                                seqs.push(wal.append(&wal_entry(w, i)).unwrap());
                                i += 1;
                            }
                        }
                        seqs
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total: usize = acked.iter().map(Vec::len).sum();
        assert_eq!(wal.last_seq(), total as u64, "every seq belongs to one acknowledged entry");
        let mut reader = wal.reader(1).unwrap();
        let mut n = 0;
        while let Some((seq, data)) = reader.next().unwrap() {
            check_wal_entry(seq, data);
            n += 1;
        }
        assert_eq!(n, total);
        println!("{:?}: {APPENDERS} appenders + {READERS} readers, {total} entries verified", rt.backend());
    });
}
