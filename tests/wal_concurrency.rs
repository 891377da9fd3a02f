//! Many appenders at once, on both backends: group commit, the lone
//! appender's latency, the buffer bound, readers while appending, atomic
//! batches as readers see them, and errors of a shared write or sync
//! reaching every waiter (fault injection) and poisoning the log.

mod common;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{each_backend, pattern};
use rio::{FaultAction, FaultRule, OpCode, Runtime, RuntimeConfig, Wal, WalConfig};

/// A payload that carries its own identity: (writer, index) then a pattern.
fn payload(writer: u64, index: u64, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + len);
    p.extend_from_slice(&writer.to_le_bytes());
    p.extend_from_slice(&index.to_le_bytes());
    p.extend_from_slice(&pattern(len, writer << 32 | index));
    p
}

fn identity(p: &[u8]) -> (u64, u64) {
    assert!(p.len() >= 16, "payload of {} bytes", p.len());
    let (writer, index) = (u64::from_le_bytes(p[..8].try_into().unwrap()), u64::from_le_bytes(p[8..16].try_into().unwrap()));
    assert_eq!(p, payload(writer, index, p.len() - 16), "payload of writer {writer} index {index} is intact");
    (writer, index)
}

#[test]
fn concurrent_appenders_get_contiguous_sequence_numbers_and_share_syncs() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig { segment_size: 64 << 10, ..Default::default() }).unwrap();
        let (threads, per_thread) = (8u64, 150u64);
        let syncs_before = rt.metrics().op_count(OpCode::Fdatasync);
        let acked: Vec<Vec<(u64, u64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let wal = &wal;
                    s.spawn(move || (0..per_thread).map(|i| (wal.append(&payload(t, i, 100)).unwrap(), i)).collect())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total = threads * per_thread;
        assert_eq!(wal.last_seq(), total);
        // Each writer's sequence numbers rise in its own order.
        let mut owner = vec![None; total as usize + 1];
        for (t, seqs) in acked.iter().enumerate() {
            assert!(seqs.windows(2).all(|w| w[0].0 < w[1].0));
            for &(seq, i) in seqs {
                assert!(owner[seq as usize].replace((t as u64, i)).is_none(), "seq {seq} given twice");
            }
        }
        let mut reader = wal.reader(1).unwrap();
        for seq in 1..=total {
            let (got, data) = reader.next().unwrap().expect("every entry");
            assert_eq!(got, seq);
            assert_eq!(Some(identity(data)), owner[seq as usize]);
        }
        assert!(reader.next().unwrap().is_none());
        let stats = wal.stats();
        let syncs = rt.metrics().op_count(OpCode::Fdatasync) - syncs_before;
        eprintln!("{:?}: {total} appends, {syncs} fdatasyncs, {stats:?}", rt.backend());
        assert_eq!(stats.entries, total);
        assert!(stats.group_commits < total, "no group commit happened: {stats:?}");
        assert!(syncs < total, "{syncs} fdatasyncs for {total} appends");
    });
}

#[test]
fn a_lone_appender_never_waits_for_the_flush_timeout() {
    each_backend(|rt, dir| {
        let cfg = WalConfig { flush_timeout_us: 1_000_000, ..Default::default() };
        let wal = Wal::open(rt, dir, cfg).unwrap();
        let start = Instant::now();
        for i in 0..20 {
            wal.append(&pattern(64, i)).unwrap();
        }
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_millis(900), "20 lone appends took {elapsed:?}");
        // The same after a burst of concurrent appenders has ended: the
        // leader waits at most once for appenders that are gone.
        std::thread::scope(|s| {
            for t in 0..4 {
                let wal = &wal;
                s.spawn(move || (0..10).for_each(|i| { wal.append(&payload(t, i, 10)).unwrap(); }));
            }
        });
        let start = Instant::now();
        for i in 0..20 {
            wal.append(&pattern(64, i)).unwrap();
        }
        assert!(start.elapsed() < Duration::from_millis(1900), "took {:?}", start.elapsed());
    });
}

#[test]
fn queued_bytes_stay_within_the_buffer_size() {
    each_backend(|rt, dir| {
        let cfg = WalConfig { buffer_size: 8192, segment_size: 1 << 20, ..Default::default() };
        let wal = Wal::open(rt, dir, cfg).unwrap();
        std::thread::scope(|s| {
            for t in 0..16 {
                let wal = &wal;
                s.spawn(move || (0..40).for_each(|i| { wal.append(&payload(t, i, 1000)).unwrap(); }));
            }
        });
        let stats = wal.stats();
        assert_eq!(stats.entries, 16 * 40);
        assert!(stats.peak_pending_bytes <= 8192, "{stats:?}");
        // A unit larger than the whole buffer is admitted alone.
        wal.append(&payload(99, 0, 20_000)).unwrap();
        assert!(wal.stats().peak_pending_bytes >= 20_000);
        let mut reader = wal.reader(1).unwrap();
        let count = std::iter::from_fn(|| reader.next().unwrap().map(|(_, d)| identity(d))).count();
        assert_eq!(count, 16 * 40 + 1);
    });
}

#[test]
fn readers_see_a_growing_consistent_prefix_while_appenders_run() {
    each_backend(|rt, dir| {
        // Small segments: rotations happen under the reader's feet.
        let wal = Wal::open(rt, dir, WalConfig { segment_size: 8192, ..Default::default() }).unwrap();
        let (writers, per_writer) = (4u64, 150u64);
        std::thread::scope(|s| {
            for t in 0..writers {
                let wal = &wal;
                s.spawn(move || (0..per_writer).for_each(|i| { wal.append(&payload(t, i, (i as usize * 37) % 700)).unwrap(); }));
            }
            let wal = &wal;
            s.spawn(move || {
                let mut reader = wal.reader(1).unwrap();
                let mut next = 1;
                let deadline = Instant::now() + Duration::from_secs(60);
                while next <= writers * per_writer {
                    match reader.next().unwrap() {
                        Some((seq, data)) => {
                            assert_eq!(seq, next, "contiguous");
                            assert!(seq <= wal.last_seq(), "only acknowledged entries");
                            identity(data);
                            next += 1;
                        }
                        None => std::thread::yield_now(),
                    }
                    assert!(Instant::now() < deadline, "reader stalled at {next}");
                }
                assert!(reader.next().unwrap().is_none());
            });
        });
    });
}

#[test]
fn readers_never_see_part_of_an_atomic_batch() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig { segment_size: 16384, ..Default::default() }).unwrap();
        const BATCH: u64 = 5;
        std::thread::scope(|s| {
            for t in 0..3 {
                let wal = &wal;
                s.spawn(move || {
                    for b in 0..60 {
                        let entries: Vec<Vec<u8>> = (0..BATCH).map(|i| payload(t, b * BATCH + i, 40)).collect();
                        let refs: Vec<&[u8]> = entries.iter().map(|e| e.as_slice()).collect();
                        wal.append_batch(&refs).unwrap();
                    }
                });
            }
            let wal = &wal;
            s.spawn(move || {
                let mut reader = wal.reader(1).unwrap();
                let mut seen = 0;
                while seen < 3 * 60 * BATCH {
                    match reader.next().unwrap() {
                        Some((_, data)) => {
                            seen += 1;
                            // Positions 1..BATCH-1 of a batch follow without a pause.
                            let (_, index) = identity(data);
                            if index % BATCH != BATCH - 1 {
                                let (_, next) = reader.next().unwrap().map(|(_, d)| identity(d)).expect("rest of the batch is there");
                                assert_eq!(next, index + 1);
                                seen += 1;
                            }
                        }
                        None => std::thread::yield_now(),
                    }
                }
            });
        });
    });
}

fn faulty_runtime(rt: &Runtime) -> Runtime {
    Runtime::new(&RuntimeConfig { backend: backend_choice(rt), fault_injection: true, ..Default::default() }).unwrap()
}

fn backend_choice(rt: &Runtime) -> rio::BackendChoice {
    match rt.backend() {
        rio::BackendKind::IoUring => rio::BackendChoice::IoUring,
        rio::BackendKind::ThreadPool => rio::BackendChoice::ThreadPool,
    }
}

/// Appends from `threads` threads at once (released together); returns
/// each append's result.
fn append_together(wal: &Wal, threads: u64) -> Vec<rio::Result<u64>> {
    let barrier = Barrier::new(threads as usize);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (wal, barrier) = (wal, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    wal.append(&payload(t, 0, 64))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn a_failed_write_fails_its_batch_and_poisons_the_log() {
    for (op, errno) in [(OpCode::Write, libc::ENOSPC), (OpCode::Fdatasync, libc::EIO)] {
        each_backend(|rt, dir| {
            let faulty = faulty_runtime(rt);
            let wal = Wal::open(&faulty, dir, WalConfig::default()).unwrap();
            for i in 0..3 {
                wal.append(&pattern(10, i)).unwrap();
            }
            faulty.fault_injector().unwrap().add_rule(FaultRule { op: Some(op), nth: 1, count: 1, action: FaultAction::Error(errno) });
            let results = append_together(&wal, 8);
            assert!(results.iter().all(|r| r.is_err()), "{op:?}: nothing succeeds after the failure: {results:?}");
            // The batch that failed reports the cause; everyone later gets EIO.
            let causes = results.iter().filter(|r| r.as_ref().unwrap_err().errno() == errno).count();
            assert!(causes >= 1, "{op:?}: {results:?}");
            for r in &results {
                let e = r.as_ref().unwrap_err();
                assert!(e.errno() == errno || e.message().contains("poisoned"), "{op:?}: {e}");
            }
            // Retrying does not pretend: the log stays poisoned.
            for err in [wal.append(b"again").unwrap_err(), wal.sync().unwrap_err(), wal.truncate_before(1).unwrap_err()] {
                assert_eq!(err.errno(), libc::EIO, "{err}");
                assert!(err.message().contains("poisoned"), "{err}");
            }
            assert_eq!(wal.last_seq(), 3);
            assert_eq!(wal.close().unwrap_err().errno(), libc::EIO);
            // Reopening recovers from disk and appends again.
            let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
            assert!(wal.last_seq() >= 3);
            let seq = wal.append(b"after").unwrap();
            assert_eq!(seq, wal.last_seq());
            let mut reader = wal.reader(1).unwrap();
            for i in 0..3 {
                assert_eq!(reader.next().unwrap().unwrap().1, pattern(10, i));
            }
        });
    }
}

#[test]
fn eintr_and_eagain_underneath_never_surface() {
    each_backend(|rt, dir| {
        let faulty = faulty_runtime(rt);
        let wal = Wal::open(&faulty, dir, WalConfig { segment_size: 16384, ..Default::default() }).unwrap();
        let faults = faulty.fault_injector().unwrap();
        faults.add_rule(FaultRule { op: Some(OpCode::Write), nth: 1, count: 0, action: FaultAction::Error(libc::EINTR) });
        faults.add_rule(FaultRule { op: Some(OpCode::Fdatasync), nth: 1, count: 0, action: FaultAction::Error(libc::EAGAIN) });
        faults.add_rule(FaultRule { op: Some(OpCode::Fallocate), nth: 1, count: 0, action: FaultAction::Error(libc::EINTR) });
        for i in 0..40u64 {
            assert_eq!(wal.append(&payload(2, i, 500)).unwrap(), i + 1, "a retried error surfaced");
        }
        assert!(append_together(&wal, 6).iter().all(|r| r.is_ok()));
        drop(wal);
        let plain = Wal::open(rt, dir, WalConfig { segment_size: 16384, ..Default::default() }).unwrap();
        assert_eq!(plain.last_seq(), 46);
        let mut reader = plain.reader(1).unwrap();
        for i in 0..40u64 {
            assert_eq!(identity(reader.next().unwrap().unwrap().1), (2, i));
        }
    });
}

#[test]
fn short_writes_underneath_are_continued() {
    each_backend(|rt, dir| {
        let faulty = faulty_runtime(rt);
        let wal = Wal::open(&faulty, dir, WalConfig { segment_size: 16384, ..Default::default() }).unwrap();
        faulty.fault_injector().unwrap().add_rule(FaultRule { op: Some(OpCode::Write), nth: 1, count: 0, action: FaultAction::Short });
        let entries: Vec<Vec<u8>> = (0..7).map(|i| payload(1, i, i as usize * 300)).collect();
        let refs: Vec<&[u8]> = entries.iter().map(|e| e.as_slice()).collect();
        assert_eq!(wal.append_batch(&refs).unwrap(), 1);
        let results = append_together(&wal, 6);
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        let mut reader = wal.reader(1).unwrap();
        let count = std::iter::from_fn(|| reader.next().unwrap().map(|(_, d)| identity(d))).count();
        assert_eq!(count, 13);
    });
}

#[test]
fn a_failed_sync_in_page_cache_mode_poisons_the_log() {
    each_backend(|rt, dir| {
        let faulty = faulty_runtime(rt);
        let wal = Wal::open(&faulty, dir, WalConfig { sync_after_batch: false, ..Default::default() }).unwrap();
        wal.append(b"one").unwrap();
        faulty.fault_injector().unwrap().add_rule(FaultRule {
            op: Some(OpCode::Fdatasync),
            nth: 1,
            count: 1,
            action: FaultAction::Error(libc::EIO),
        });
        assert_eq!(wal.sync().unwrap_err().errno(), libc::EIO);
        let err = wal.append(b"two").unwrap_err();
        assert!(err.errno() == libc::EIO && err.message().contains("poisoned"), "{err}");
        assert_eq!(wal.sync().unwrap_err().errno(), libc::EIO, "a failed sync is never retried into success");
    });
}

#[test]
fn stats_count_group_commits() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let wal = &wal;
                s.spawn(move || (0..25).for_each(|i| { wal.append(&payload(t, i, 8)).unwrap(); }));
            }
        });
        let stats = wal.stats();
        assert_eq!(stats.entries, 100);
        assert!((1..=4).contains(&stats.largest_group), "{stats:?}");
        assert!(stats.group_commits >= 25 && stats.group_commits <= 100, "{stats:?}");
    });
}
