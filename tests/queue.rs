//! Asynchronous queues through the safe Rust API, on both backends.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_every_case_listed, cases_with_completion_faults, each_backend, pattern, Case, BACKENDS};
use rio::{open_flags as of, AlignedBuf, DiskFile, FaultAction, FaultRule, OpCode, Queue, Runtime, RuntimeConfig};

fn rw_file(rt: &Runtime, dir: &std::path::Path, name: &str) -> Arc<DiskFile> {
    Arc::new(DiskFile::open(rt, dir.join(name), of::READ | of::WRITE | of::CREATE | of::TRUNCATE, 0o644).unwrap())
}

fn errno(e: &rio::Error) -> i32 {
    e.errno()
}

fn writes_then_reads_round_trip_with_buffers_handed_back(rt: &Runtime, dir: &Path) {
    let f = rw_file(rt, dir, "rt.dat");
    let mut q: Queue<Vec<u8>> = Queue::new(rt, 64).unwrap();
    for i in 0..16u64 {
        q.write(&f, pattern(4096, i), i * 4096, i).unwrap();
    }
    assert_eq!(q.pending(), 16);
    assert_eq!(q.submit().unwrap(), 16);
    let mut seen = vec![false; 16];
    let mut left = 16;
    while left > 0 {
        for c in q.reap(1, 16, None).unwrap() {
            assert_eq!(c.result.unwrap(), 4096);
            assert_eq!(c.buf.unwrap(), pattern(4096, c.user_data));
            seen[c.user_data as usize] = true;
            left -= 1;
        }
    }
    assert!(seen.iter().all(|s| *s));
    assert_eq!(q.pending(), 0);
    for i in 0..16u64 {
        q.read(&f, vec![0; 4096], i * 4096, 100 + i).unwrap();
    }
    q.submit().unwrap();
    let done = q.reap(16, 16, None).unwrap();
    assert_eq!(done.len(), 16);
    for c in done {
        assert_eq!(c.result.unwrap(), 4096);
        assert_eq!(c.buf.unwrap(), pattern(4096, c.user_data - 100));
    }
    assert!(rt.metrics().op_count(OpCode::Write) >= 16);
    assert!(rt.metrics().op_count(OpCode::Read) >= 16);
    assert!(rt.metrics().queue_depth_samples() >= 2);
}

fn nothing_starts_before_submit(rt: &Runtime, dir: &Path) {
    let f = rw_file(rt, dir, "late.dat");
    let mut q: Queue<Vec<u8>> = Queue::new(rt, 4).unwrap();
    q.write(&f, vec![7; 512], 0, 1).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(f.size().unwrap(), 0, "a pushed write ran before submit");
    let e = q.reap(1, 1, Some(Duration::from_millis(10))).map(|_| ()).unwrap_err();
    assert_eq!(errno(&e), libc::ETIMEDOUT);
    // With no time limit, waiting for an op that was never submitted is refused, not a hang.
    let e = q.reap(1, 1, None).map(|_| ()).unwrap_err();
    assert_eq!(errno(&e), libc::EINVAL);
    assert_eq!(q.submit().unwrap(), 1);
    let c = q.reap(1, 1, None).unwrap();
    assert_eq!(c[0].result.as_ref().unwrap(), &512);
    assert_eq!(f.size().unwrap(), 512);
}

fn a_full_queue_refuses_and_returns_the_buffer(rt: &Runtime, dir: &Path) {
    let f = rw_file(rt, dir, "full.dat");
    let mut q: Queue<Vec<u8>> = Queue::new(rt, 2).unwrap();
    q.write(&f, vec![1; 10], 0, 0).unwrap();
    q.write(&f, vec![2; 10], 10, 1).unwrap();
    let refused = q.write(&f, vec![3; 10], 20, 2).unwrap_err();
    assert_eq!(errno(&refused.error), libc::EAGAIN);
    assert_eq!(refused.buf.unwrap(), vec![3; 10]);
    assert_eq!(q.pending(), 2);
    q.submit().unwrap();
    assert_eq!(q.reap(2, 2, None).unwrap().len(), 2);
    // Room again.
    q.write(&f, vec![3; 10], 20, 2).unwrap();
    q.submit().unwrap();
    assert_eq!(q.reap(1, 1, None).unwrap()[0].result.as_ref().unwrap(), &10);
    assert_eq!(f.size().unwrap(), 30);
}

fn reads_are_short_only_at_end_of_file_and_min_above_pending_is_invalid(rt: &Runtime, dir: &Path) {
    let f = rw_file(rt, dir, "eof.dat");
    f.write_at(&pattern(1000, 5), 0).unwrap();
    let mut q: Queue<Vec<u8>> = Queue::new(rt, 8).unwrap();
    q.read(&f, vec![0; 4096], 0, 0).unwrap();
    q.read(&f, vec![0; 100], 5000, 1).unwrap();
    let e = q.reap(3, 3, Some(Duration::ZERO)).map(|_| ()).unwrap_err();
    assert_eq!(errno(&e), libc::EINVAL);
    q.submit().unwrap();
    let mut got = q.reap(2, 2, None).unwrap();
    got.sort_by_key(|c| c.user_data);
    assert_eq!(*got[0].result.as_ref().unwrap(), 1000);
    assert_eq!(&got[0].buf.as_ref().unwrap()[..1000], &pattern(1000, 5)[..]);
    assert_eq!(*got[1].result.as_ref().unwrap(), 0);
}

fn an_error_in_one_op_does_not_disturb_the_others(rt: &Runtime, dir: &Path) {
    let good = rw_file(rt, dir, "good.dat");
    good.write_at(&pattern(8192, 9), 0).unwrap();
    drop(DiskFile::open(rt, dir.join("wo.dat"), of::WRITE | of::CREATE, 0o644).unwrap());
    let write_only = Arc::new(DiskFile::open(rt, dir.join("wo.dat"), of::WRITE, 0).unwrap());
    let mut q: Queue<Vec<u8>> = Queue::new(rt, 8).unwrap();
    q.read(&good, vec![0; 4096], 0, 0).unwrap();
    q.read(&write_only, vec![0; 4096], 0, 1).unwrap();
    q.read(&good, vec![0; 4096], 4096, 2).unwrap();
    q.fdatasync(&good, 3).unwrap();
    q.submit().unwrap();
    let mut got = q.reap(4, 4, None).unwrap();
    got.sort_by_key(|c| c.user_data);
    assert_eq!(errno(got[1].result.as_ref().unwrap_err()), libc::EBADF);
    assert_eq!(got[0].buf.as_ref().unwrap(), &pattern(8192, 9)[..4096]);
    assert_eq!(got[2].buf.as_ref().unwrap(), &pattern(8192, 9)[4096..]);
    assert_eq!(*got[3].result.as_ref().unwrap(), 0);
    assert!(got[3].buf.is_none());
}

fn misaligned_direct_io_is_refused_at_push(rt: &Runtime, dir: &Path) {
    let path = dir.join("direct.dat");
    let f = match DiskFile::open(rt, &path, of::READ | of::WRITE | of::CREATE | of::DIRECT, 0o644) {
        Ok(f) => Arc::new(f),
        Err(e) if e.errno() == libc::EINVAL => return, // tmpfs: no O_DIRECT here
        Err(e) => panic!("{e}"),
    };
    let mut q: Queue<AlignedBuf> = Queue::new(rt, 8).unwrap();
    let refused = q.write(&f, AlignedBuf::new(100), 0, 0).unwrap_err();
    assert_eq!(errno(&refused.error), libc::EINVAL);
    assert!(refused.error.message().contains("O_DIRECT"), "{}", refused.error.message());
    assert_eq!(q.pending(), 0);
    let mut data = AlignedBuf::new(4096);
    data.copy_from_slice(&pattern(4096, 3));
    q.write(&f, data, 0, 0).unwrap();
    q.submit().unwrap();
    assert_eq!(*q.reap(1, 1, None).unwrap()[0].result.as_ref().unwrap(), 4096);
    q.read(&f, AlignedBuf::new(4096), 0, 1).unwrap();
    q.submit().unwrap();
    let c = q.reap(1, 1, None).unwrap().pop().unwrap();
    assert_eq!(&c.buf.unwrap()[..], &pattern(4096, 3)[..]);
}

fn poll_readable(fd: i32, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    unsafe { libc::poll(&mut p, 1, timeout_ms) == 1 && p.revents & libc::POLLIN != 0 }
}

fn the_fd_polls_readable_when_completions_wait(rt: &Runtime, dir: &Path) {
    let f = rw_file(rt, dir, "fd.dat");
    f.write_at(&pattern(4096, 1), 0).unwrap();
    let mut q: Queue<Vec<u8>> = Queue::new(rt, 8).unwrap();
    let fd = q.fd().unwrap();
    // The first look may be spuriously readable; after a poll-reap, not.
    assert_eq!(q.reap(0, 8, Some(Duration::ZERO)).unwrap().len(), 0);
    assert!(!poll_readable(fd, 0), "readable with nothing in flight");
    for i in 0..3 {
        q.read(&f, vec![0; 4096], 0, i).unwrap();
    }
    q.submit().unwrap();
    let mut got = 0;
    while got < 3 {
        assert!(poll_readable(fd, 5000), "never became readable");
        // Take one at a time: the fd must stay readable while more wait.
        got += q.reap(0, 1, Some(Duration::ZERO)).unwrap().len();
    }
    assert!(!poll_readable(fd, 0), "readable after everything was reaped");
}

#[test]
fn ops_beyond_max_concurrent_ops_wait_and_all_complete() {
    ops_beyond_max_concurrent_ops_wait(None);
}

/// The permit case needs its own runtime, so it runs under completion
/// faults here rather than through CASES.
#[test]
fn ops_beyond_max_concurrent_ops_wait_under_completion_faults() {
    let seed = common::fault_seed();
    let injected = ops_beyond_max_concurrent_ops_wait(Some(common::transient_faults(seed, 3)));
    eprintln!("RIO_FAULT_SEED={seed}: completion faults injected: io_uring {}, thread_pool {}", injected[0], injected[1]);
    assert!(injected.iter().all(|&n| n > 0), "faults were injected on both backends: {injected:?}");
}

/// Returns the completion faults injected on each backend.
fn ops_beyond_max_concurrent_ops_wait(completion_faults: Option<rio::CompletionFaults>) -> [u64; 2] {
    let mut injected = [0; 2];
    for (b, backend) in BACKENDS.into_iter().enumerate() {
        let config = RuntimeConfig { backend, max_concurrent_ops: Some(3), completion_faults, ..Default::default() };
        let rt = Runtime::new(&config).unwrap();
        let backend = format!("{backend:?} with {completion_faults:?}");
        let dir = tempfile::tempdir().unwrap();
        let f = rw_file(&rt, dir.path(), "limit.dat");
        let mut q: Queue<Vec<u8>> = Queue::new(&rt, 32).unwrap();
        for i in 0..20u64 {
            q.write(&f, pattern(1000, i), i * 1000, i).unwrap();
        }
        let started = q.submit().unwrap();
        assert!(started <= 3, "{backend}: {started} started with 3 permits");
        assert!(rt.ops_in_flight() <= 3);
        let mut done = 0;
        while done < 20 {
            for c in q.reap(1, 20, None).unwrap() {
                assert_eq!(*c.result.as_ref().unwrap(), 1000, "{backend}");
                done += 1;
            }
            assert!(rt.ops_in_flight() <= 3);
        }
        assert_eq!(rt.ops_in_flight(), 0, "{backend}: permits leaked");
        let mut back = vec![0; 20_000];
        f.read_at(&mut back, 0).unwrap();
        for i in 0..20u64 {
            assert_eq!(&back[i as usize * 1000..][..1000], &pattern(1000, i)[..], "{backend}");
        }
        injected[b] = rt.completion_faults_injected();
    }
    injected
}

fn dropping_a_queue_with_ops_in_flight_waits_for_them(rt: &Runtime, dir: &Path) {
    let f = rw_file(rt, dir, "drop.dat");
    f.write_at(&pattern(1 << 20, 2), 0).unwrap();
    for round in 0..20 {
        let mut q: Queue<Vec<u8>> = Queue::new(rt, 64).unwrap();
        for i in 0..64u64 {
            q.read(&f, vec![0; 16384], (i * 16384) % (1 << 20), i).unwrap();
        }
        q.submit().unwrap();
        if round % 2 == 0 {
            let _ = q.reap(0, 5, Some(Duration::ZERO)).unwrap();
        }
        drop(q);
        assert_eq!(rt.ops_in_flight(), 0);
    }
}

fn queues_move_between_threads_and_run_on_many_threads(rt: &Runtime, dir: &Path) {
    let f = rw_file(rt, dir, "threads.dat");
    let mut q: Queue<Vec<u8>> = Queue::new(rt, 16).unwrap();
    for i in 0..8u64 {
        q.write(&f, pattern(512, i), i * 512, i).unwrap();
    }
    // Pushed here, submitted on one thread, reaped on another.
    let q = std::thread::spawn(move || {
        q.submit().unwrap();
        q
    })
    .join()
    .unwrap();
    let mut q = std::thread::spawn(move || {
        let mut q = q;
        let mut n = 0;
        while n < 8 {
            n += q.reap(1, 8, None).unwrap().len();
        }
        q
    })
    .join()
    .unwrap();
    assert_eq!(q.pending(), 0);
    q.read(&f, vec![0; 512], 512 * 3, 0).unwrap();
    q.submit().unwrap();
    assert_eq!(q.reap(1, 1, None).unwrap()[0].buf.as_ref().unwrap(), &pattern(512, 3));

    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let (rt, f) = (rt.clone(), f.clone());
            std::thread::spawn(move || {
                let mut q: Queue<Vec<u8>> = Queue::new(&rt, 8).unwrap();
                let base = (1u64 << 20) + t * 65536;
                for round in 0..20u64 {
                    for i in 0..8u64 {
                        q.write(&f, pattern(1024, t * 1000 + round * 8 + i), base + i * 1024, i).unwrap();
                    }
                    q.submit().unwrap();
                    let mut n = 0;
                    while n < 8 {
                        for c in q.reap(1, 8, None).unwrap() {
                            assert_eq!(*c.result.as_ref().unwrap(), 1024);
                            n += 1;
                        }
                    }
                }
                base
            })
        })
        .collect();
    for w in workers {
        let base = w.join().unwrap();
        let mut back = vec![0; 1024];
        f.read_at(&mut back, base).unwrap();
        assert_eq!(back.len(), 1024);
    }
}

fn depth_is_checked_and_zero_takes_the_runtime_queue_depth(rt: &Runtime, _dir: &Path) {
    assert_eq!(errno(&Queue::<Vec<u8>>::new(rt, 4097).map(|_| ()).unwrap_err()), libc::EINVAL);
    assert_eq!(Queue::<Vec<u8>>::new(rt, 4096).unwrap().depth(), 4096);
    assert_eq!(Queue::<Vec<u8>>::new(rt, 0).unwrap().depth(), rt.capabilities().settings.queue_depth as usize);
}

fn a_queue_inherited_through_fork_refuses_work_and_closes_without_waiting(rt: &Runtime, dir: &Path) {
    let f = rw_file(rt, dir, "fork.dat");
    f.write_at(&pattern(4096, 4), 0).unwrap();
    let mut q: Queue<Vec<u8>> = Queue::new(rt, 4).unwrap();
    q.read(&f, vec![0; 4096], 0, 0).unwrap();
    q.submit().unwrap();
    // SAFETY: the child only uses the queue and leaves with _exit.
    match unsafe { libc::fork() } {
        0 => {
            let busy = |r: rio::Result<()>| r.is_err_and(|e| e.errno() == libc::EBUSY);
            let ok = busy(q.submit().map(drop))
                && busy(q.reap(0, 1, Some(Duration::ZERO)).map(drop))
                && busy(q.fd().map(drop))
                && q.read(&f, vec![0; 10], 0, 1).is_err_and(|e| e.error.errno() == libc::EBUSY);
            drop(q);
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        pid => {
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
        }
    }
    // The parent's queue is untouched.
    let c = q.reap(1, 1, None).unwrap().pop().unwrap();
    assert_eq!(c.buf.unwrap(), pattern(4096, 4));
}

#[test]
fn fault_rules_apply_to_queue_ops() {
    for backend in BACKENDS {
        let rt = Runtime::new(&RuntimeConfig { backend, fault_injection: true, ..Default::default() }).unwrap();
        let faults = rt.fault_injector().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = rw_file(&rt, dir.path(), "faults.dat");
        let mut q: Queue<Vec<u8>> = Queue::new(&rt, 8).unwrap();
        // The 2nd write fails with EIO; every transfer comes back short.
        faults.add_rule(FaultRule { op: Some(OpCode::Write), nth: 2, count: 1, action: FaultAction::Error(libc::EIO) });
        faults.add_rule(FaultRule { op: None, nth: 1, count: 0, action: FaultAction::Short });
        for i in 0..4u64 {
            q.write(&f, pattern(3000, i), i * 3000, i).unwrap();
        }
        q.submit().unwrap();
        let mut got = q.reap(4, 4, None).unwrap();
        got.sort_by_key(|c| c.user_data);
        let failed: Vec<u64> = got.iter().filter(|c| c.result.is_err()).map(|c| c.user_data).collect();
        assert_eq!(failed.len(), 1, "{backend:?}: one write fails");
        assert_eq!(errno(got[failed[0] as usize].result.as_ref().unwrap_err()), libc::EIO);
        for c in got.iter().filter(|c| c.result.is_ok()) {
            // Short transfers were continued to the end.
            assert_eq!(*c.result.as_ref().unwrap(), 3000);
            let mut back = vec![0; 3000];
            f.read_at(&mut back, c.user_data * 3000).unwrap();
            assert_eq!(back, pattern(3000, c.user_data), "{backend:?}");
        }
        faults.clear_rules();
        assert_eq!(rt.ops_in_flight(), 0);
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { each_backend(super::$name); } )*
    };
}

mod both {
    use super::*;
    on_both_backends!(
        writes_then_reads_round_trip_with_buffers_handed_back,
        nothing_starts_before_submit,
        a_full_queue_refuses_and_returns_the_buffer,
        reads_are_short_only_at_end_of_file_and_min_above_pending_is_invalid,
        an_error_in_one_op_does_not_disturb_the_others,
        misaligned_direct_io_is_refused_at_push,
        the_fd_polls_readable_when_completions_wait,
        dropping_a_queue_with_ops_in_flight_waits_for_them,
        queues_move_between_threads_and_run_on_many_threads,
        depth_is_checked_and_zero_takes_the_runtime_queue_depth,
        a_queue_inherited_through_fork_refuses_work_and_closes_without_waiting,
    );
}


/// The cases above that take any runtime, for the run under completion faults.
const CASES: &[(&str, Case)] = &[
    ("writes_then_reads_round_trip_with_buffers_handed_back", writes_then_reads_round_trip_with_buffers_handed_back),
    ("nothing_starts_before_submit", nothing_starts_before_submit),
    ("a_full_queue_refuses_and_returns_the_buffer", a_full_queue_refuses_and_returns_the_buffer),
    ("reads_are_short_only_at_end_of_file_and_min_above_pending_is_invalid", reads_are_short_only_at_end_of_file_and_min_above_pending_is_invalid),
    ("an_error_in_one_op_does_not_disturb_the_others", an_error_in_one_op_does_not_disturb_the_others),
    ("misaligned_direct_io_is_refused_at_push", misaligned_direct_io_is_refused_at_push),
    ("the_fd_polls_readable_when_completions_wait", the_fd_polls_readable_when_completions_wait),
    ("dropping_a_queue_with_ops_in_flight_waits_for_them", dropping_a_queue_with_ops_in_flight_waits_for_them),
    ("queues_move_between_threads_and_run_on_many_threads", queues_move_between_threads_and_run_on_many_threads),
    ("depth_is_checked_and_zero_takes_the_runtime_queue_depth", depth_is_checked_and_zero_takes_the_runtime_queue_depth),
    ("a_queue_inherited_through_fork_refuses_work_and_closes_without_waiting", a_queue_inherited_through_fork_refuses_work_and_closes_without_waiting),
];

#[test]
fn every_case_runs_on_both_backends() {
    assert_every_case_listed(include_str!("queue.rs"), CASES);
}

/// Every queue case again, with randomized transient completion faults in
/// the queue's machinery (io_uring: shortened SQEs, NOPs completing with
/// EAGAIN/EINTR/ECANCELED, io_uring_enter failing with EBUSY/EINTR; thread
/// pool: the same faults in its workers' syscalls) on about one kernel call
/// in 3: callers must see exactly the fault-free results. `RIO_FAULT_SEED`
/// replays a failure; `RIO_FAULT_RUNS` repeats with fresh seeds.
#[test]
fn every_case_with_completion_faults() {
    cases_with_completion_faults("queue", CASES);
}

/// With `hard_errors`, injected `-EIO` completions (and, on io_uring, a
/// fatal `EEXIST` from io_uring_enter, which fails the SQEs the kernel
/// never took) reach the ops that got them and no other: every other write
/// lands whole and every other read returns exactly what was written.
#[test]
fn hard_completion_faults_reach_only_the_ops_that_got_them() {
    const N: u64 = 64;
    const LEN: usize = 3000;
    let seed = common::fault_seed();
    for backend in BACKENDS {
        let faults = rio::CompletionFaults { seed, one_in: 4, hard_errors: true };
        let rt = Runtime::new(&RuntimeConfig { backend, completion_faults: Some(faults), ..Default::default() }).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hard.dat");
        let f = rw_file(&rt, dir.path(), "hard.dat");
        let hard = |e: &rio::Error| e.errno() == libc::EIO || (backend == rio::BackendChoice::IoUring && e.errno() == libc::EEXIST);
        let context = format!("{backend:?}, RIO_FAULT_SEED={seed}");
        let (mut failed, mut written) = (0u64, Vec::new());
        let mut q: Queue<Vec<u8>> = Queue::new(&rt, N as u32).unwrap();
        for round in 0..4u64 {
            for i in 0..N {
                let k = round * N + i;
                q.write(&f, pattern(LEN, k), k * LEN as u64, k).unwrap();
            }
            q.submit().unwrap();
            for c in q.reap(N as usize, N as usize, None).unwrap() {
                match c.result {
                    Ok(n) => {
                        assert_eq!(n, LEN, "{context}: a write completed short");
                        written.push(c.user_data);
                    }
                    Err(e) => {
                        assert!(hard(&e), "{context}: write {} failed with {e}", c.user_data);
                        failed += 1;
                    }
                }
            }
        }
        // Checked without the runtime: what the successful writes stored.
        let disk = std::fs::read(&path).unwrap();
        for &k in &written {
            assert_eq!(&disk[k as usize * LEN..][..LEN], &pattern(LEN, k)[..], "{context}: write {k}");
        }
        for chunk in written.chunks(N as usize) {
            for &k in chunk {
                q.read(&f, vec![0; LEN], k * LEN as u64, k).unwrap();
            }
            q.submit().unwrap();
            for c in q.reap(chunk.len(), chunk.len(), None).unwrap() {
                match c.result {
                    Ok(n) => {
                        assert_eq!(n, LEN, "{context}: a read inside the file came back short");
                        assert_eq!(c.buf.unwrap(), pattern(LEN, c.user_data), "{context}: read {}", c.user_data);
                    }
                    Err(e) => {
                        assert!(hard(&e), "{context}: read {} failed with {e}", c.user_data);
                        failed += 1;
                    }
                }
            }
        }
        let injected = rt.completion_faults_injected();
        eprintln!("{context}: {} writes ok, {failed} ops failed, {injected} faults injected", written.len());
        assert!(failed > 0 && !written.is_empty(), "{context}: hard faults reached some ops and not others");
        assert!(failed <= injected, "{context}: {failed} failures from {injected} faults");
        assert_eq!(rt.ops_in_flight(), 0, "{context}");
    }
}
