//! Random sequences of C API calls with random, often invalid, arguments
//! (NULL handles and buffers, unknown flags and enums, absurd sizes and
//! offsets, bad struct sizes): every call must return a valid result or a
//! clear -errno with a message naming the function; nothing may crash.
//! Pointers are never dangling: that is the one misuse C cannot be saved
//! from. `RIO_FUZZ_CALLS` sets the number of calls (long mode).
//!
//! The WAL functions (`rio_wal_*`, readers included) and the fault
//! injection functions (`rio_fault_*`, `rio_runtime_add_fault`,
//! `rio_runtime_clear_faults`, `rio_runtime_simulate_power_loss`) are in
//! the mix: configs with random fields, struct sizes, recovery modes and
//! non-bool bytes; appends with NULL data and huge lengths; random
//! `truncate_before` seqs; faults (EIO, ENOSPC, EINTR, EAGAIN, short
//! transfers, small delays, power loss) on runtimes opened with
//! `fault_injection`. Beyond "no crash, known -errno": every entry a
//! reader returns is one the harness appended (payloads carry their own
//! checksum), readers return increasing seqs, a handle's appends return
//! increasing seqs and `rio_wal_last_seq` never falls behind them.

use std::ffi::{c_char, c_void, CStr, CString};
use std::mem::{offset_of, size_of, MaybeUninit};
use std::ptr::{addr_of_mut, null, null_mut};

use rio::ffi::batch::*;
use rio::ffi::fault::*;
use rio::ffi::file::*;
use rio::ffi::runtime::*;
use rio::ffi::wal::*;
use rio::ffi::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// Mostly small values, sometimes huge or boundary ones.
    fn size(&mut self) -> u64 {
        match self.below(10) {
            0 => 0,
            1 => u64::MAX - self.below(3),
            2 => i64::MAX as u64 + self.below(3),
            3 => 1 << (32 + self.below(20)),
            _ => self.below(16384),
        }
    }
}

/// Plausible errno results: anything else means a mapping bug.
const ERRNOS: &[i32] = &[
    libc::EINVAL, libc::EBADF, libc::ENOENT, libc::EEXIST, libc::EFBIG, libc::ENOSPC, libc::EISDIR,
    libc::ENOTDIR, libc::EOPNOTSUPP, libc::ENOMEM, libc::EFAULT, libc::EOVERFLOW, libc::ENAMETOOLONG,
    libc::EACCES, libc::EPERM, libc::ESPIPE,
    // WAL: corruption (damaged by the file calls or by power loss), a log
    // already open, a poisoned log or a dead (power-lost) runtime, injected faults.
    libc::EBADMSG, libc::EBUSY, libc::EIO,
];

fn last_message() -> String {
    unsafe { CStr::from_ptr(rio_last_error_message()) }.to_string_lossy().into_owned()
}

thread_local! {
    /// Per function: calls that succeeded, calls that failed with each errno.
    static TALLY: std::cell::RefCell<std::collections::BTreeMap<String, (u64, std::collections::BTreeMap<i32, u64>)>> =
        Default::default();
}

fn check(func: &str, res: i64) {
    TALLY.with(|t| {
        let mut t = t.borrow_mut();
        let e = t.entry(func.to_string()).or_default();
        if res < 0 {
            *e.1.entry((-res) as i32).or_default() += 1;
        } else {
            e.0 += 1;
        }
    });
    if res < 0 {
        let errno = (-res) as i32;
        assert!(ERRNOS.contains(&errno), "{func} returned unexpected -{errno}: {}", last_message());
        let msg = last_message();
        assert!(msg.starts_with(func), "{func} failed without naming itself: {msg:?}");
    }
}

/// An open log and the highest seq its appends returned.
struct WalHandle {
    w: *mut rio_wal_t,
    max_seq: u64,
}

/// An open reader, where it started and the last seq it returned.
struct ReaderHandle {
    r: *mut rio_wal_reader_t,
    from: u64,
    last: u64,
}

struct World {
    dir: tempfile::TempDir,
    runtimes: Vec<*mut rio_runtime_t>,
    files: Vec<*mut rio_file_t>,
    buf: Vec<u8>,
    wals: Vec<WalHandle>,
    readers: Vec<ReaderHandle>,
    /// Runtimes opened with fault_injection, and files opened on them.
    faulty: std::collections::HashSet<usize>,
    /// Entries appended / returned by readers (checked), for the summary.
    appended: u64,
    read: u64,
}

impl World {
    fn runtime(&mut self, rng: &mut Rng) -> *mut rio_runtime_t {
        if self.runtimes.is_empty() || rng.chance(10) { null_mut() } else { self.runtimes[rng.below(self.runtimes.len() as u64) as usize] }
    }
    fn file(&mut self, rng: &mut Rng) -> *mut rio_file_t {
        if self.files.is_empty() || rng.chance(10) { null_mut() } else { self.files[rng.below(self.files.len() as u64) as usize] }
    }
    /// A buffer pointer valid for `len` bytes, or NULL.
    fn buffer(&mut self, rng: &mut Rng, len: u64) -> *mut u8 {
        if rng.chance(15) || len > self.buf.len() as u64 {
            if rng.chance(50) { null_mut() } else { self.buf.as_mut_ptr() }
        } else {
            self.buf.as_mut_ptr()
        }
    }
}

/// A payload that carries its own check: empty; 1..7 bytes all equal to
/// the length; or a 64-bit hash of the rest, then the rest.
fn payload(rng: &mut Rng, len: usize) -> Vec<u8> {
    if len < 8 {
        return vec![len as u8; len];
    }
    let mut p = vec![0u8; 8];
    p.extend((0..len - 8).map(|_| rng.next() as u8));
    let h = hash(&p[8..]);
    p[..8].copy_from_slice(&h.to_le_bytes());
    p
}

fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3))
}

fn payload_ok(p: &[u8]) -> bool {
    match p.len() {
        0 => true,
        n @ 1..=7 => p.iter().all(|&x| x as usize == n),
        _ => p[..8] == hash(&p[8..]).to_le_bytes(),
    }
}

/// An entry length: mostly small, sometimes larger than a small segment.
fn entry_len(rng: &mut Rng) -> usize {
    match rng.below(20) {
        0 => 0,
        1..=15 => rng.below(300) as usize,
        _ => rng.below(20000) as usize,
    }
}

/// A length above RIO_WAL_MAX_ENTRY (rejected before the pointer is used).
fn huge_len(rng: &mut Rng) -> usize {
    [RIO_WAL_MAX_ENTRY as usize + 1, usize::MAX, 1 << 40, u32::MAX as usize + 1][rng.below(4) as usize]
}

impl World {
    fn wal(&mut self, rng: &mut Rng) -> Option<usize> {
        if self.wals.is_empty() || rng.chance(10) { None } else { Some(rng.below(self.wals.len() as u64) as usize) }
    }
    fn wal_ptr(&self, i: Option<usize>) -> *mut rio_wal_t {
        i.map_or(null_mut(), |i| self.wals[i].w)
    }
    fn wal_dir(&self, rng: &mut Rng) -> CString {
        let d = self.dir.path();
        let path = match rng.below(20) {
            0 => d.join("f0"),
            1 => d.join(format!("n{}/wal", rng.below(3))),
            _ => d.join(format!("wal{}", rng.below(3))),
        };
        CString::new(path.to_str().unwrap()).unwrap()
    }
}

/// A WAL config as raw bytes: rio_wal_config_default, then random fields,
/// sometimes out of range, a random struct_size, a non-bool byte in
/// sync_after_batch (never read as a Rust bool here).
unsafe fn wal_config(rng: &mut Rng) -> MaybeUninit<rio_wal_config_t> {
    let mut cfg = MaybeUninit::<rio_wal_config_t>::zeroed();
    let p = cfg.as_mut_ptr();
    rio_wal_config_default(p);
    unsafe {
        if rng.chance(30) {
            let v = if rng.chance(80) { 1 + rng.below(300) as u32 } else { [0, 65536, 65537, u32::MAX][rng.below(4) as usize] };
            addr_of_mut!((*p).batch_size).write(v);
        }
        if rng.chance(30) {
            let v = if rng.chance(80) { rng.below(200) as u32 } else { [1_000_000, 1_000_001, u32::MAX][rng.below(3) as usize] };
            addr_of_mut!((*p).flush_timeout_us).write(v);
        }
        if rng.chance(30) {
            let byte = if rng.chance(85) { rng.below(2) as u8 } else { rng.next() as u8 };
            (p as *mut u8).add(offset_of!(rio_wal_config_t, sync_after_batch)).write(byte);
        }
        if rng.chance(30) {
            let v = if rng.chance(85) { 1 + rng.below(1 << 20) } else { [0, u64::MAX][rng.below(2) as usize] };
            addr_of_mut!((*p).buffer_size).write(v);
        }
        // Small segments (valid ones up to 1 MiB: no huge preallocation).
        let v = match rng.below(10) {
            0 => [0, 4095, (1 << 40) + 1, u64::MAX][rng.below(4) as usize],
            1..=7 => 4096 * (1 + rng.below(4)),
            _ => 4096 + rng.below(1 << 20),
        };
        addr_of_mut!((*p).segment_size).write(v);
        if rng.chance(25) {
            let v = if rng.chance(80) { rng.below(2) as u32 } else { rng.next() as u32 };
            addr_of_mut!((*p).recovery_mode).write(v);
        }
        if rng.chance(10) {
            addr_of_mut!((*p).struct_size).write(rng.below(size_of::<rio_wal_config_t>() as u64 + 16) as u32);
        }
    }
    cfg
}

/// A fault rule with random, sometimes invalid fields. Injected errors are
/// EIO, ENOSPC (both in ERRNOS) or EINTR, EAGAIN (retried, never seen).
unsafe fn fault_rule(rng: &mut Rng) -> rio_fault_t {
    let mut f = MaybeUninit::<rio_fault_t>::zeroed();
    rio_fault_default(f.as_mut_ptr());
    let mut f = unsafe { f.assume_init() };
    f.target = if rng.chance(90) { rng.below(7) as u32 } else { rng.next() as u32 };
    f.nth = match rng.below(10) {
        0 => 0,
        1 => u64::MAX - rng.below(2),
        _ => 1 + rng.below(20),
    };
    f.count = match rng.below(10) {
        0 | 1 => 0,
        2 => u64::MAX - rng.below(2),
        _ => 1 + rng.below(3),
    };
    f.action = if rng.chance(90) { rng.below(4) as u32 } else { rng.next() as u32 };
    f.error = if rng.chance(85) {
        [libc::EIO, libc::ENOSPC, libc::EINTR, libc::EAGAIN][rng.below(4) as usize]
    } else {
        [0, -1, -libc::EIO, 4096, i32::MAX, i32::MIN][rng.below(6) as usize]
    };
    f.delay_us = rng.below(2000);
    f.crash_mode = if rng.chance(90) { rng.below(2) as u32 } else { rng.next() as u32 };
    f.seed = rng.next();
    // Power loss is drastic (the runtime is dead afterwards): keep it rare.
    if f.action == RIO_FAULT_POWER_LOSS && rng.chance(70) {
        f.action = RIO_FAULT_ERROR;
    }
    if rng.chance(10) {
        f.struct_size = rng.below(size_of::<rio_fault_t>() as u64 + 16) as u32;
    }
    f
}

/// The WAL and fault calls.
unsafe fn wal_step(w: &mut World, rng: &mut Rng) {
    match rng.below(17) {
        0 => {
            let mut cfg = MaybeUninit::<rio_wal_config_t>::zeroed();
            rio_wal_config_default(if rng.chance(10) { null_mut() } else { cfg.as_mut_ptr() });
            let size = unsafe { addr_of_mut!((*cfg.as_mut_ptr()).struct_size).read() };
            assert!(size == 0 || size as usize == size_of::<rio_wal_config_t>(), "struct_size {size}");
        }
        1 | 2 => {
            let rt = w.runtime(rng);
            let dir = w.wal_dir(rng);
            let cfg = wal_config(rng);
            let cfg_ptr = if rng.chance(10) { null() } else { cfg.as_ptr() };
            let mut out: *mut rio_wal_t = 0x1 as *mut rio_wal_t;
            let out_ptr = if rng.chance(5) { null_mut() } else { &mut out as *mut _ };
            let res = rio_wal_open(rt, if rng.chance(10) { null() } else { dir.as_ptr() }, cfg_ptr, out_ptr);
            check("rio_wal_open", res as i64);
            if res == -libc::EBADMSG && rng.chance(50) {
                // A log the file calls or a power loss damaged: start afresh.
                std::fs::remove_dir_all(dir.to_str().unwrap()).unwrap();
            }
            if out_ptr.is_null() {
                return;
            }
            assert_eq!(res == 0, !out.is_null(), "rio_wal_open: result {res} with handle {out:?}");
            if res == 0 {
                if w.wals.len() >= 4 {
                    let old = w.wals.remove(0);
                    check("rio_wal_close", rio_wal_close(old.w) as i64);
                }
                let last = rio_wal_last_seq(out);
                w.wals.push(WalHandle { w: out, max_seq: last });
            }
        }
        3..=5 => {
            let i = w.wal(rng);
            let p: Vec<u8>;
            // Pointers are valid for the length, or NULL, or the length is
            // above the maximum (rejected before the pointer is used).
            let (data, len): (*const u8, usize) = match rng.below(20) {
                0 => (if rng.chance(50) { null() } else { w.buf.as_ptr() }, huge_len(rng)),
                1 => (null(), 1 + rng.below(100) as usize),
                _ => {
                    let len = entry_len(rng);
                    p = payload(rng, len);
                    (if len == 0 && rng.chance(50) { null() } else { p.as_ptr() }, len)
                }
            };
            let mut seq = 0u64;
            let seq_ptr = if rng.chance(10) { null_mut() } else { &mut seq as *mut u64 };
            let res = rio_wal_append(w.wal_ptr(i), data.cast(), len, seq_ptr);
            check("rio_wal_append", res as i64);
            if res == 0 {
                let h = &mut w.wals[i.expect("appended to NULL")];
                if !seq_ptr.is_null() {
                    assert!(seq > h.max_seq, "rio_wal_append: seq {seq} after {}", h.max_seq);
                    h.max_seq = seq;
                }
                w.appended += 1;
            }
        }
        6 => {
            let i = w.wal(rng);
            let n = rng.below(6) as usize;
            let payloads: Vec<Vec<u8>> = (0..n).map(|_| { let len = entry_len(rng); payload(rng, len) }).collect();
            let mut slices: Vec<rio_slice_t> = payloads.iter().map(|p| rio_slice_t { data: p.as_ptr().cast(), len: p.len() }).collect();
            if !slices.is_empty() && rng.chance(15) {
                let k = rng.below(slices.len() as u64) as usize;
                slices[k] = if rng.chance(50) {
                    rio_slice_t { data: null(), len: 1 + rng.below(50) as usize }
                } else {
                    rio_slice_t { data: w.buf.as_ptr().cast(), len: huge_len(rng) }
                };
            }
            let (ptr, count) = match rng.below(10) {
                0 => (null(), if rng.chance(50) { huge_len(rng) } else { n }),
                1 => (slices.as_ptr(), 0),
                2 if n > 0 => (slices.as_ptr(), rng.below(n as u64) as usize),
                _ => (slices.as_ptr(), n),
            };
            let mut first = 0u64;
            let first_ptr = if rng.chance(10) { null_mut() } else { &mut first as *mut u64 };
            let res = rio_wal_append_batch(w.wal_ptr(i), ptr, count, first_ptr);
            check("rio_wal_append_batch", res as i64);
            if res == 0 {
                let h = &mut w.wals[i.expect("appended to NULL")];
                if !first_ptr.is_null() {
                    assert!(first > h.max_seq, "rio_wal_append_batch: first seq {first} after {}", h.max_seq);
                    h.max_seq = first + count as u64 - 1;
                }
                w.appended += count as u64;
            }
        }
        7 => {
            let i = w.wal(rng);
            check("rio_wal_sync", rio_wal_sync(w.wal_ptr(i)) as i64);
        }
        8 => {
            let i = w.wal(rng);
            let last = rio_wal_last_seq(w.wal_ptr(i));
            match i {
                Some(i) => assert!(last >= w.wals[i].max_seq, "rio_wal_last_seq {last} below an appended seq {}", w.wals[i].max_seq),
                None => {
                    assert_eq!(last, 0);
                    assert!(last_message().starts_with("rio_wal_last_seq"), "{}", last_message());
                }
            }
        }
        9 => {
            let i = w.wal(rng);
            let seq = match (i, rng.below(4)) {
                (Some(i), 0 | 1) => rng.below(rio_wal_last_seq(w.wals[i].w) + 3),
                (_, 2) => u64::MAX - rng.below(2),
                _ => rng.below(100),
            };
            check("rio_wal_truncate_before", rio_wal_truncate_before(w.wal_ptr(i), seq) as i64);
        }
        10 => {
            let i = w.wal(rng);
            let from = if rng.chance(80) { rng.below(50) } else { rng.next() };
            let mut out: *mut rio_wal_reader_t = 0x1 as *mut rio_wal_reader_t;
            let out_ptr = if rng.chance(5) { null_mut() } else { &mut out as *mut _ };
            let res = rio_wal_reader_open(w.wal_ptr(i), from, out_ptr);
            check("rio_wal_reader_open", res as i64);
            if !out_ptr.is_null() {
                assert_eq!(res == 0, !out.is_null(), "rio_wal_reader_open: result {res} with handle {out:?}");
                if res == 0 {
                    if w.readers.len() >= 6 {
                        rio_wal_reader_close(w.readers.remove(0).r);
                    }
                    w.readers.push(ReaderHandle { r: out, from, last: 0 });
                }
            }
        }
        11 | 12 => {
            let k = if w.readers.is_empty() || rng.chance(10) { None } else { Some(rng.below(w.readers.len() as u64) as usize) };
            let r = k.map_or(null_mut(), |k| w.readers[k].r);
            for _ in 0..1 + rng.below(8) {
                let (mut seq, mut data, mut len) = (0u64, null::<u8>(), 0usize);
                let res = rio_wal_reader_next(
                    r,
                    if rng.chance(3) { null_mut() } else { &mut seq },
                    if rng.chance(3) { null_mut() } else { &mut data },
                    if rng.chance(3) { null_mut() } else { &mut len },
                );
                check("rio_wal_reader_next", res as i64);
                if res != 1 {
                    break;
                }
                let h = &mut w.readers[k.expect("read from NULL")];
                assert!(len as u64 <= RIO_WAL_MAX_ENTRY && (len == 0 || !data.is_null()), "rio_wal_reader_next: {len} bytes at {data:?}");
                let bytes = if len == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(data, len) } };
                assert!(payload_ok(bytes), "rio_wal_reader_next: entry {seq} ({len} bytes) was never appended");
                assert!(seq >= h.from.max(1) && seq > h.last, "rio_wal_reader_next: seq {seq} after {} (from {})", h.last, h.from);
                h.last = seq;
                w.read += 1;
            }
        }
        13 => {
            if rng.chance(50) {
                let k = if w.readers.is_empty() || rng.chance(20) { None } else { Some(rng.below(w.readers.len() as u64) as usize) };
                rio_wal_reader_close(k.map_or(null_mut(), |k| w.readers.remove(k).r));
            } else {
                let i = if w.wals.is_empty() || rng.chance(20) { None } else { Some(rng.below(w.wals.len() as u64) as usize) };
                let res = rio_wal_close(i.map_or(null_mut(), |i| w.wals.remove(i).w));
                check("rio_wal_close", res as i64);
            }
        }
        14 | 15 => {
            let rt = w.runtime(rng);
            let mut f = fault_rule(rng);
            if rng.chance(15) {
                rio_fault_default(null_mut());
            }
            let res = rio_runtime_add_fault(rt, if rng.chance(10) { null() } else { &mut f });
            check("rio_runtime_add_fault", res as i64);
        }
        _ => {
            let rt = w.runtime(rng);
            if rng.chance(85) {
                check("rio_runtime_clear_faults", rio_runtime_clear_faults(rt) as i64);
            } else {
                let mode = if rng.chance(90) { rng.below(2) as u32 } else { rng.next() as u32 };
                check("rio_runtime_simulate_power_loss", rio_runtime_simulate_power_loss(rt, mode, rng.next()) as i64);
            }
        }
    }
}

unsafe fn step(w: &mut World, rng: &mut Rng) {
    if rng.chance(45) {
        return wal_step(w, rng);
    }
    match rng.below(14) {
        0 => {
            let mut cfg: rio_runtime_config_t = unsafe { std::mem::zeroed() };
            rio_runtime_config_default(&mut cfg);
            cfg.backend = if rng.chance(80) { rng.below(3) as u32 } else { rng.next() as u32 };
            if rng.chance(20) {
                cfg.struct_size = rng.below(200) as u32;
            }
            cfg.queue_depth = if rng.chance(70) { rng.below(64) as u32 } else { rng.next() as u32 };
            cfg.max_concurrent_ops = rng.below(64) as u32;
            cfg.worker_threads = rng.below(8) as u32;
            cfg.fault_injection = rng.chance(50);
            let mut rt = null_mut();
            let res = rio_runtime_open(if rng.chance(10) { null() } else { &cfg }, &mut rt);
            check("rio_runtime_open", res as i64);
            if res == 0 {
                if w.runtimes.len() >= 3 {
                    let old = w.runtimes.remove(0);
                    w.faulty.remove(&(old as usize));
                    rio_runtime_close(old);
                }
                if cfg.fault_injection {
                    w.faulty.insert(rt as usize);
                }
                w.runtimes.push(rt);
            }
        }
        1 => {
            let rt = w.runtime(rng);
            // Now and then the first segment of a log: file calls damage it.
            let name = if rng.chance(4) {
                CString::new(format!("{}/wal{}/00000000000000000001.wal", w.dir.path().display(), rng.below(3))).unwrap()
            } else {
                CString::new(format!("{}/f{}", w.dir.path().display(), rng.below(4))).unwrap()
            };
            let path = if rng.chance(10) { null() } else { name.as_ptr() };
            let flags = if rng.chance(70) { rng.below(256) as u32 } else { rng.next() as u32 };
            let mode = if rng.chance(90) { 0o644 } else { rng.next() as u32 };
            let mut f = null_mut();
            let res = rio_file_open(rt, path, flags, mode, &mut f);
            check("rio_file_open", res as i64);
            if res == 0 {
                if w.files.len() >= 6 {
                    let old = w.files.remove(0);
                    w.faulty.remove(&(old as usize));
                    check("rio_file_close", rio_file_close(old) as i64);
                }
                if w.faulty.contains(&(rt as usize)) {
                    w.faulty.insert(f as usize);
                }
                w.files.push(f);
            }
        }
        2 | 3 => {
            let (f, len, off) = (w.file(rng), rng.size(), rng.size());
            let buf = w.buffer(rng, len);
            let len = if buf.is_null() || len <= w.buf.len() as u64 { len } else { w.buf.len() as u64 };
            if rng.chance(50) {
                check("rio_file_read_at", rio_file_read_at(f, buf.cast(), len as usize, off));
            } else {
                check("rio_file_write_at", rio_file_write_at(f, buf.cast(), len as usize, off));
            }
        }
        4 => {
            let f = w.file(rng);
            let base = w.buf.as_mut_ptr();
            let iov: Vec<libc::iovec> = (0..4)
                .map(|i| libc::iovec {
                    iov_base: if rng.chance(10) { null_mut() } else { unsafe { base.add(i * 1024) }.cast() },
                    iov_len: rng.below(1024) as usize,
                })
                .collect();
            let cnt = match rng.below(5) { 0 => -1, 1 => 2000, 2 => 0, _ => 4 };
            let ptr = if rng.chance(10) { null() } else { iov.as_ptr() };
            if rng.chance(50) {
                check("rio_file_readv_at", rio_file_readv_at(f, ptr, cnt, rng.size()));
            } else {
                check("rio_file_writev_at", rio_file_writev_at(f, ptr, cnt, rng.size()));
            }
        }
        5 => check("rio_file_sync", rio_file_sync(w.file(rng)) as i64),
        6 => check("rio_file_datasync", rio_file_datasync(w.file(rng)) as i64),
        7 => check("rio_file_allocate", rio_file_allocate(w.file(rng), rng.size(), rng.size() % (1 << 24)) as i64),
        8 => {
            let f = w.file(rng);
            let mut len = rng.size() % (1 << 24);
            if w.faulty.contains(&(f as usize)) {
                // Files reach terabytes here: keep what the fault journal
                // must save for a truncate moderate (at most 64 MiB).
                let size = rio_file_size(f);
                check("rio_file_size", size);
                if size < 0 {
                    return;
                }
                len = len.max((size as u64).saturating_sub(64 << 20));
            }
            check("rio_file_truncate", rio_file_truncate(f, len) as i64)
        }
        9 => check("rio_file_size", rio_file_size(w.file(rng))),
        10 => {
            let rt = w.runtime(rng);
            let mut ops: Vec<rio_op_t> = (0..rng.below(6))
                .map(|_| {
                    let len = rng.below(4096);
                    rio_op_t {
                        opcode: if rng.chance(85) { rng.below(4) as u32 } else { rng.next() as u32 },
                        flags: if rng.chance(90) { 0 } else { rng.next() as u32 },
                        file: w.file(rng),
                        buf: w.buffer(rng, len).cast::<c_void>(),
                        len,
                        offset: rng.size() % (1 << 30),
                        result: 0,
                        user_data: 7,
                    }
                })
                .collect();
            let ptr = if rng.chance(10) { null_mut() } else { ops.as_mut_ptr() };
            let res = rio_submit_batch(rt, ptr, ops.len());
            check("rio_submit_batch", res);
            if res > 0 {
                assert!(ops.iter().all(|o| o.user_data == 7));
                for o in &ops {
                    assert!(o.result >= 0 || ERRNOS.contains(&((-o.result) as i32)), "batch op result {}", o.result);
                }
            }
        }
        11 => {
            let rt = w.runtime(rng);
            // Output structs are filled up to struct_size, which may be
            // anything (0 and tiny sizes are -EINVAL); never past it.
            let mut caps = [0xA5u8; size_of::<rio_capabilities_t>() + 64];
            let size = rng.below(caps.len() as u64 + 1) as u32;
            caps[..4].copy_from_slice(&size.to_ne_bytes());
            let out = if rng.chance(10) { null_mut() } else { caps.as_mut_ptr().cast::<rio_capabilities_t>() };
            check("rio_runtime_capabilities", rio_runtime_capabilities(rt, out) as i64);
            let filled = (size as usize).min(size_of::<rio_capabilities_t>()).max(4);
            assert!(caps[filled..].iter().all(|&b| b == 0xA5), "capabilities written past struct_size {size}");
            check("rio_runtime_backend", rio_runtime_backend(rt) as i64);
        }
        12 => {
            let rt = w.runtime(rng);
            let cap = rng.below(3) * 2000;
            let mut text = vec![0 as c_char; cap as usize];
            let ptr = if cap == 0 || rng.chance(10) { null_mut() } else { text.as_mut_ptr() };
            let n = rio_runtime_metrics_prometheus(rt, ptr, cap as usize);
            check("rio_runtime_metrics_prometheus", n);
            if n >= 0 && (n as u64) < cap && !ptr.is_null() {
                assert_eq!(text[n as usize], 0, "text not NUL-terminated");
            }
        }
        _ => {
            let p = rio::ffi::buf::rio_buf_alloc(rng.size() as usize % (1 << 20));
            assert!(p.is_null() || p as usize % 4096 == 0);
            rio::ffi::buf::rio_buf_free(p);
            let s = rio_strerror(rng.next() as i32);
            assert!(!s.is_null());
        }
    }
}

#[test]
fn random_c_api_calls_never_crash() {
    // SAFETY: the C API is called as a C program would: every pointer is valid (see the module doc).
    unsafe {
        let calls: u64 = std::env::var("RIO_FUZZ_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
        let mut w = World {
            dir: tempfile::tempdir().unwrap(),
            runtimes: Vec::new(),
            files: Vec::new(),
            buf: vec![0u8; 16384],
            wals: Vec::new(),
            readers: Vec::new(),
            faulty: Default::default(),
            appended: 0,
            read: 0,
        };
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        for _ in 0..calls {
            step(&mut w, &mut rng);
        }
        for r in w.readers.drain(..) {
            rio_wal_reader_close(r.r);
        }
        for h in w.wals.drain(..) {
            check("rio_wal_close", rio_wal_close(h.w) as i64);
        }
        for f in w.files.drain(..) {
            check("rio_file_close", rio_file_close(f) as i64);
        }
        w.faulty.clear();
        for rt in w.runtimes.drain(..) {
            rio_runtime_close(rt);
        }
        TALLY.with(|t| {
            for (func, (ok, errs)) in t.borrow().iter().filter(|(f, _)| f.starts_with("rio_wal") || f.contains("fault")) {
                let errs: Vec<String> = errs.iter().map(|(e, n)| format!("{n} {}", rio::error::strerror(*e))).collect();
                println!("  {func}: {ok} ok; {}", errs.join(", "));
            }
        });
        println!(
            "{calls} random C API calls: no crash, every failure a known -errno naming its function; \
             {} WAL entries appended, {} read back and verified",
            w.appended, w.read
        );
    }
}

/// The fault-injecting backend used to save, before each ftruncate, every
/// byte the truncate discards (`old_size - len` bytes in one Vec, holes
/// included). On a runtime opened with `fault_injection`, truncating a
/// large sparse file (1 TiB here: one byte written at offset 2^40)
/// allocated 1 TiB and the process aborted ("memory allocation of
/// 1099511627776 bytes failed"); the fuzz hit it with a 2 TiB file (a
/// write or fallocate at a huge offset, then rio_file_truncate). Fixed in
/// 09894f7 (only data extents are saved). Runs in a child process, since
/// the failure was an abort.
/// A runtime opened with fault_injection and a file created at `path` on it.
unsafe fn faulty_file(path: &std::path::Path) -> (*mut rio_runtime_t, *mut rio_file_t) {
    let mut cfg: rio_runtime_config_t = std::mem::zeroed();
    rio_runtime_config_default(&mut cfg);
    cfg.fault_injection = true;
    let mut rt = null_mut();
    assert_eq!(rio_runtime_open(&cfg, &mut rt), 0, "{}", last_message());
    let path = CString::new(path.to_str().unwrap()).unwrap();
    let mut f = null_mut();
    let flags = RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE;
    assert_eq!(rio_file_open(rt, path.as_ptr(), flags, 0o644, &mut f), 0, "{}", last_message());
    (rt, f)
}

#[test]
fn regression_fault_journal_truncate_of_a_sparse_file() {
    // SAFETY: the C API is called as a C program would: every pointer is valid (see the module doc).
    unsafe {
        const CHILD: &str = "RIO_FFI_FUZZ_CHILD";
        if std::env::var_os(CHILD).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "regression_fault_journal_truncate_of_a_sparse_file", "--nocapture"])
                .env(CHILD, "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "the child process died ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()).take(3).collect::<Vec<_>>().join(" | ")
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (rt, f) = faulty_file(&dir.path().join("sparse"));
        assert_eq!(rio_file_write_at(f, b"x".as_ptr().cast(), 1, 1 << 40), 1, "{}", last_message());
        assert_eq!(rio_file_truncate(f, 0), 0, "{}", last_message());
        assert_eq!(rio_file_close(f), 0);
        rio_runtime_close(rt);
    }
}

/// `rio_runtime_config_t.fault_injection` is a C bool that used to be read
/// as a Rust bool without a check, unlike `rio_wal_config_t.sync_after_batch`
/// (-EINVAL unless 0 or 1): a byte of 2 (memset, a binding writing an int)
/// was undefined behaviour inside `rio_runtime_open`. Found reading the
/// code while adding the fault functions to the fuzz; fixed in 09894f7.
#[test]
fn regression_runtime_config_bool_byte_checked() {
    // SAFETY: the C API is called as a C program would: every pointer is valid (see the module doc).
    unsafe {
        let mut cfg = MaybeUninit::<rio_runtime_config_t>::zeroed();
        rio_runtime_config_default(cfg.as_mut_ptr());
        (cfg.as_mut_ptr() as *mut u8).add(offset_of!(rio_runtime_config_t, fault_injection)).write(2);
        let mut rt = null_mut();
        let res = rio_runtime_open(cfg.as_ptr(), &mut rt);
        if res == 0 {
            rio_runtime_close(rt);
        }
        assert_eq!(res, -libc::EINVAL, "fault_injection byte 2 accepted");
        assert!(last_message().contains("fault_injection"), "{}", last_message());
    }
}

/// A fault rule hits matching operations `nth..nth+count`, which used to
/// be computed as `seen < nth + count` and overflowed for a large `count`
/// or `nth`: in release builds nth 2 with count u64::MAX wrapped to 1 and
/// the rule never fired; in debug builds the engine panicked and the write
/// returned -ENOTRECOVERABLE. Found by the fuzz's random
/// `rio_fault_t.count`/`nth` values; fixed in 09894f7.
#[test]
fn regression_fault_rule_nth_plus_count_no_overflow() {
    // SAFETY: the C API is called as a C program would: every pointer is valid (see the module doc).
    unsafe {
        let dir = tempfile::tempdir().unwrap();
        let (rt, f) = faulty_file(&dir.path().join("f"));
        let mut results = Vec::new();
        for count in [1000, u64::MAX] {
            let mut fault = MaybeUninit::<rio_fault_t>::zeroed();
            rio_fault_default(fault.as_mut_ptr());
            let mut fault = fault.assume_init();
            (fault.target, fault.nth, fault.count) = (RIO_FAULT_ON_WRITE, 2, count);
            assert_eq!(rio_runtime_clear_faults(rt), 0);
            assert_eq!(rio_runtime_add_fault(rt, &fault), 0, "{}", last_message());
            let writes: Vec<i64> = (0..4).map(|_| rio_file_write_at(f, b"x".as_ptr().cast(), 1, 0)).collect();
            results.push((count, writes));
        }
        assert_eq!(rio_file_close(f), 0);
        rio_runtime_close(rt);
        let eio = -(libc::EIO as i64);
        for (count, writes) in results {
            assert_eq!(writes, vec![1, eio, eio, eio], "nth 2, count {count}: the 1st write succeeds, the others fail");
        }
    }
}
