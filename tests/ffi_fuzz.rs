//! Random sequences of C API calls with random, often invalid, arguments
//! (NULL handles and buffers, unknown flags and enums, absurd sizes and
//! offsets, bad struct sizes): every call must return a valid result or a
//! clear -errno with a message naming the function; nothing may crash.
//! Pointers are never dangling: that is the one misuse C cannot be saved
//! from. `RIO_FUZZ_CALLS` sets the number of calls (long mode).

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::{null, null_mut};

use rio::ffi::batch::*;
use rio::ffi::file::*;
use rio::ffi::runtime::*;
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
];

fn last_message() -> String {
    unsafe { CStr::from_ptr(rio_last_error_message()) }.to_string_lossy().into_owned()
}

fn check(func: &str, res: i64) {
    if res < 0 {
        let errno = (-res) as i32;
        assert!(ERRNOS.contains(&errno), "{func} returned unexpected -{errno}: {}", last_message());
        let msg = last_message();
        assert!(msg.starts_with(func), "{func} failed without naming itself: {msg:?}");
    }
}

struct World {
    dir: tempfile::TempDir,
    runtimes: Vec<*mut rio_runtime_t>,
    files: Vec<*mut rio_file_t>,
    buf: Vec<u8>,
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

fn step(w: &mut World, rng: &mut Rng) {
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
            let mut rt = null_mut();
            let res = rio_runtime_open(if rng.chance(10) { null() } else { &cfg }, &mut rt);
            check("rio_runtime_open", res as i64);
            if res == 0 {
                if w.runtimes.len() >= 3 {
                    rio_runtime_close(w.runtimes.remove(0));
                }
                w.runtimes.push(rt);
            }
        }
        1 => {
            let rt = w.runtime(rng);
            let name = CString::new(format!("{}/f{}", w.dir.path().display(), rng.below(4))).unwrap();
            let path = if rng.chance(10) { null() } else { name.as_ptr() };
            let flags = if rng.chance(70) { rng.below(256) as u32 } else { rng.next() as u32 };
            let mode = if rng.chance(90) { 0o644 } else { rng.next() as u32 };
            let mut f = null_mut();
            let res = rio_file_open(rt, path, flags, mode, &mut f);
            check("rio_file_open", res as i64);
            if res == 0 {
                if w.files.len() >= 6 {
                    check("rio_file_close", rio_file_close(w.files.remove(0)) as i64);
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
        8 => check("rio_file_truncate", rio_file_truncate(w.file(rng), rng.size() % (1 << 24)) as i64),
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
            let mut caps: rio_capabilities_t = unsafe { std::mem::zeroed() };
            check("rio_runtime_capabilities", rio_runtime_capabilities(rt, if rng.chance(10) { null_mut() } else { &mut caps }) as i64);
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
    let calls: u64 = std::env::var("RIO_FUZZ_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let mut w = World { dir: tempfile::tempdir().unwrap(), runtimes: Vec::new(), files: Vec::new(), buf: vec![0u8; 16384] };
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for _ in 0..calls {
        step(&mut w, &mut rng);
    }
    for f in w.files.drain(..) {
        check("rio_file_close", rio_file_close(f) as i64);
    }
    for rt in w.runtimes.drain(..) {
        rio_runtime_close(rt);
    }
    println!("{calls} random C API calls: no crash, every failure a known -errno naming its function");
}
