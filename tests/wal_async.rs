//! Acknowledgement decoupled from the append (`append_async`, `wait`,
//! `durable_seq`) on both backends: ordering, bad input, timeouts,
//! backpressure, page-cache mode, poisoning through fault injection, the
//! flusher writing entries nobody waits for, fork, and the regressions of
//! issue 11 bugs 7 (overlapping syncs) and 9 (the batch bound).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{each_backend, pattern};
use rio::{FaultAction, FaultRule, OpCode, Runtime, RuntimeConfig, Wal, WalConfig};

fn faulty_runtime(rt: &Runtime) -> Runtime {
    let backend = match rt.backend() {
        rio::BackendKind::IoUring => rio::BackendChoice::IoUring,
        rio::BackendKind::ThreadPool => rio::BackendChoice::ThreadPool,
    };
    Runtime::new(&RuntimeConfig { backend, fault_injection: true, ..Default::default() }).unwrap()
}

fn replay(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    let mut reader = wal.reader(1).unwrap();
    std::iter::from_fn(|| reader.next().unwrap().map(|(s, d)| (s, d.to_vec()))).collect()
}

#[test]
fn async_appends_get_consecutive_seqs_and_become_durable_in_order() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let seqs: Vec<u64> = (0..500).map(|i| wal.append_async(&pattern(i % 300, i as u64)).unwrap()).collect();
        assert_eq!(seqs, (1..=500).collect::<Vec<_>>());
        wal.wait(250, None).unwrap();
        assert!(wal.durable_seq() >= 250);
        wal.wait(500, Some(Duration::from_secs(30))).unwrap();
        assert_eq!(wal.durable_seq(), 500);
        assert_eq!(wal.last_seq(), 500);
        // A blocking append after async ones is acknowledged after them.
        assert_eq!(wal.append(b"blocking").unwrap(), 501);
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let entries = replay(&wal);
        assert_eq!(entries.len(), 501);
        for (i, (seq, data)) in entries.iter().take(500).enumerate() {
            assert_eq!((*seq, data.as_slice()), (i as u64 + 1, pattern(i % 300, i as u64).as_slice()));
        }
    });
}

#[test]
fn bad_seqs_and_oversized_entries_are_einval() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        for seq in [0, 1, 7] {
            let e = wal.wait(seq, None).unwrap_err();
            assert_eq!(e.errno(), libc::EINVAL, "{seq}: {e}");
            assert!(e.message().contains("never assigned"), "{e}");
        }
        let seq = wal.append_async(b"x").unwrap();
        assert_eq!(wal.wait(seq + 1, Some(Duration::ZERO)).unwrap_err().errno(), libc::EINVAL);
        wal.wait(seq, None).unwrap();
        let big = vec![0u8; rio::wal::MAX_ENTRY + 1];
        assert_eq!(wal.append_async(&big).unwrap_err().errno(), libc::EINVAL);
        assert_eq!(wal.last_seq(), 1, "a rejected entry takes no seq");
        assert_eq!(wal.append_async(b"y").unwrap(), 2);
        wal.close().unwrap();
    });
}

#[test]
fn a_wait_times_out_while_the_sync_is_slow_and_succeeds_later() {
    each_backend(|rt, dir| {
        let faulty = faulty_runtime(rt);
        let wal = Wal::open(&faulty, dir, WalConfig::default()).unwrap();
        wal.append(b"first").unwrap();
        faulty.fault_injector().unwrap().add_rule(FaultRule {
            op: Some(OpCode::Fdatasync),
            nth: 1,
            count: 1,
            action: FaultAction::Delay(Duration::from_millis(400)),
        });
        let seq = wal.append_async(b"slow").unwrap();
        let start = Instant::now();
        let e = wal.wait(seq, Some(Duration::from_millis(20))).unwrap_err();
        assert_eq!(e.errno(), libc::ETIMEDOUT, "{e}");
        assert!(start.elapsed() < Duration::from_millis(400), "the timeout was not honoured");
        assert_eq!(wal.wait(seq, Some(Duration::ZERO)).unwrap_err().errno(), libc::ETIMEDOUT, "a poll");
        assert!(wal.durable_seq() < seq);
        wal.wait(seq, None).unwrap();
        assert_eq!(wal.durable_seq(), seq);
        wal.close().unwrap();
    });
}

#[test]
fn queued_memory_stays_within_the_buffer_size() {
    each_backend(|rt, dir| {
        let cfg = WalConfig { buffer_size: 8192, ..Default::default() };
        let wal = Wal::open(rt, dir, cfg).unwrap();
        let mut last = 0;
        for i in 0..3000u64 {
            last = wal.append_async(&pattern(100, i)).unwrap();
        }
        wal.wait(last, None).unwrap();
        let stats = wal.stats();
        assert!(stats.peak_pending_bytes <= 8192, "{stats:?}");
        assert!(stats.group_commits < 3000, "async entries share syncs: {stats:?}");
        assert_eq!(stats.entries, 3000);
        wal.close().unwrap();
    });
}

#[test]
fn page_cache_mode_waits_for_the_write_and_sync_makes_it_durable() {
    each_backend(|rt, dir| {
        let cfg = WalConfig { sync_after_batch: false, ..Default::default() };
        let wal = Wal::open(rt, dir, cfg.clone()).unwrap();
        let seq = (0..20).map(|i| wal.append_async(&pattern(50, i)).unwrap()).last().unwrap();
        wal.wait(seq, None).unwrap();
        assert_eq!(wal.last_seq(), seq, "written");
        assert_eq!(wal.durable_seq(), 0, "not synced yet");
        wal.sync().unwrap();
        assert_eq!(wal.durable_seq(), seq);
        // sync also writes what is still queued.
        let more = wal.append_async(b"queued").unwrap();
        wal.sync().unwrap();
        assert_eq!(wal.durable_seq(), more);
        wal.close().unwrap();
    });
}

#[test]
fn entries_nobody_waits_for_are_written_by_the_flusher() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let last = (0..100).map(|i| wal.append_async(&pattern(10, i)).unwrap()).last().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while wal.durable_seq() < last && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(wal.durable_seq(), last, "durable without anyone waiting");
        // Dropping the handle (no close) still writes what was queued.
        let queued = (0..50).map(|i| wal.append_async(&pattern(10, 100 + i)).unwrap()).last().unwrap();
        drop(wal);
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        assert_eq!(wal.last_seq(), queued);
    });
}

#[test]
fn a_failed_sync_fails_every_waiter_of_its_batch_and_acknowledges_nothing_after() {
    for op in [OpCode::Fdatasync, OpCode::Write] {
        each_backend(|rt, dir| {
            let faulty = faulty_runtime(rt);
            let wal = Wal::open(&faulty, dir, WalConfig::default()).unwrap();
            let good = wal.append_async(b"good").unwrap();
            wal.wait(good, None).unwrap();
            faulty.fault_injector().unwrap().add_rule(FaultRule { op: Some(op), nth: 1, count: 1, action: FaultAction::Error(libc::EIO) });
            let seqs: Vec<u64> = (0..200).map(|i| wal.append_async(&pattern(64, i)).unwrap_or(0)).collect();
            let last = *seqs.iter().max().unwrap();
            assert!(last > good);
            for seq in good + 1..=last {
                let e = wal.wait(seq, None).unwrap_err();
                assert_eq!(e.errno(), libc::EIO, "{op:?} seq {seq}: {e}");
            }
            assert_eq!(wal.wait(good, None), Ok(()), "acknowledged before the failure");
            assert_eq!(wal.durable_seq(), good, "{op:?}: nothing after the failure is acknowledged");
            assert_eq!(wal.last_seq(), good);
            assert_eq!(wal.append_async(b"more").unwrap_err().errno(), libc::EIO);
            assert_eq!(wal.close().unwrap_err().errno(), libc::EIO);
        });
    }
}

#[test]
fn many_threads_append_async_and_wait() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let acked = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (wal, acked) = (&wal, &acked);
                s.spawn(move || {
                    let mut outstanding = Vec::new();
                    for i in 0..300u64 {
                        outstanding.push(wal.append_async(&pattern(32, t << 32 | i)).unwrap());
                        if outstanding.len() == 64 || i == 299 {
                            let top = *outstanding.last().unwrap();
                            wal.wait(top, None).unwrap();
                            assert!(wal.durable_seq() >= top);
                            acked.fetch_add(outstanding.len() as u64, Ordering::Relaxed);
                            outstanding.clear();
                        }
                    }
                });
            }
        });
        assert_eq!(acked.load(Ordering::Relaxed), 1200);
        assert_eq!(replay(&wal).len(), 1200);
        wal.close().unwrap();
    });
}

/// Issue 11 bug 9: `append_batch` has a documented bound. On old main a
/// batch of `MAX_BATCH_ENTRIES + 1` entries was accepted.
#[test]
fn a_batch_beyond_the_bound_is_einval_and_appends_nothing() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let entries: Vec<&[u8]> = vec![b"e"; rio::wal::MAX_BATCH_ENTRIES + 1];
        let e = wal.append_batch(&entries).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "{e}");
        assert!(e.message().contains("maximum batch"), "{e}");
        assert_eq!(wal.last_seq(), 0);
        assert_eq!(wal.append_batch(&entries[..rio::wal::MAX_BATCH_ENTRIES]).unwrap(), 1);
        assert_eq!(wal.last_seq(), rio::wal::MAX_BATCH_ENTRIES as u64);
        wal.close().unwrap();
    });
}

/// Issue 11 bug 7: Linux reports a writeback error to one fdatasync of a
/// file only, so a sync overlapping a failed one could report success. The
/// first sync is delayed, the second (overlapping it on old main) fails.
/// A sync may succeed only if its success was published (durable_seq)
/// before the failure was reported: syncs of a segment never overlap. On
/// old main the delayed sync returned Ok after the other had already
/// poisoned the log, while durable_seq still lagged.
#[test]
fn overlapping_syncs_never_report_success_after_a_failed_one() {
    each_backend(|rt, dir| {
        let faulty = faulty_runtime(rt);
        let cfg = WalConfig { sync_after_batch: false, ..Default::default() };
        let wal = Wal::open(&faulty, dir, cfg).unwrap();
        for i in 0..10 {
            wal.append(&pattern(100, i)).unwrap();
        }
        let faults = faulty.fault_injector().unwrap();
        let delay = FaultAction::Delay(Duration::from_millis(300));
        faults.add_rule(FaultRule { op: Some(OpCode::Fdatasync), nth: 1, count: 1, action: delay });
        faults.add_rule(FaultRule { op: Some(OpCode::Fdatasync), nth: 2, count: 1, action: FaultAction::Error(libc::EIO) });
        // Each sync's result, and durable_seq as seen right after it returned.
        let (slow, fast) = std::thread::scope(|s| {
            let slow = s.spawn(|| {
                let r = wal.sync();
                (r, wal.durable_seq())
            });
            std::thread::sleep(Duration::from_millis(50));
            wal.append(b"more").unwrap();
            let r = wal.sync();
            (slow.join().unwrap(), (r, wal.durable_seq()))
        });
        let results = [&slow, &fast];
        let durable_at_failure = results.iter().filter(|(r, _)| r.is_err()).map(|(_, d)| *d).min();
        assert!(durable_at_failure.is_some(), "the failing sync ran: {slow:?} {fast:?}");
        // Whichever sync succeeded covered at least the first 10 entries and
        // must have published that before the other one could fail.
        for (r, _) in results {
            assert!(
                r.is_err() || durable_at_failure.unwrap() >= 10,
                "a sync succeeded after a failed one: {slow:?} {fast:?}"
            );
        }
        assert_eq!(wal.sync().unwrap_err().errno(), libc::EIO);
    });
}

/// Issue 11 bug 1 (the WAL's part): a handle inherited through fork fails
/// with EBUSY in the child, close frees it without touching the log, and
/// the parent keeps appending (its flusher and lock untouched).
#[test]
fn a_forked_child_gets_ebusy_and_the_parent_keeps_the_log() {
    each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, WalConfig::default()).unwrap();
        let mut reader = wal.reader(1).unwrap();
        let seq = wal.append_async(b"before fork").unwrap();
        wal.wait(seq, None).unwrap();
        for round in 0..5u64 {
            std::thread::scope(|s| {
                let busy = s.spawn(|| {
                    for i in 0..200 {
                        let seq = wal.append_async(&pattern(20, i)).unwrap();
                        if i % 50 == 0 {
                            wal.wait(seq, None).unwrap();
                        }
                    }
                });
                // SAFETY: the child only calls into the WAL (whose calls
                // return EBUSY before touching any lock) and leaves with _exit.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    let ebusy = |e: rio::Error| e.errno() == libc::EBUSY;
                    let ok = wal.append(b"child").is_err_and(ebusy)
                        && wal.append_async(b"child").is_err_and(ebusy)
                        && wal.append_batch(&[b"c"]).is_err_and(ebusy)
                        && wal.wait(1, None).is_err_and(ebusy)
                        && wal.sync().is_err_and(ebusy)
                        && wal.truncate_before(1).is_err_and(ebusy)
                        && wal.reader(1).is_err_and(ebusy)
                        && reader.next().is_err_and(ebusy)
                        && wal.last_seq() == 0
                        && wal.durable_seq() == 0;
                    // The child's copy of the handle: close must not sync or unlock.
                    let copy = unsafe { std::ptr::read(&wal) };
                    let closed = copy.close().is_ok();
                    unsafe { libc::_exit(if ok && closed { 0 } else { 1 }) };
                }
                let mut status = 0;
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "round {round}: child status {status}");
                busy.join().unwrap();
            });
        }
        // The parent's directory lock survived the children's close.
        assert_eq!(Wal::open(rt, dir, WalConfig::default()).err().map(|e| e.errno()), Some(libc::EBUSY));
        let last = wal.append(b"after").unwrap();
        assert_eq!(last, 1 + 5 * 200 + 1);
        drop(reader);
        wal.close().unwrap();
    });
}
