//! `rio_submit_batch` regressions, through the C ABI from Rust, on both
//! backends: fsync/fdatasync ops ignore buf/len/offset (an unaligned offset
//! on an O_DIRECT file, or offset ~0, used to fail the whole batch with
//! -EINVAL), and `n` is bounded by `RIO_BATCH_MAX`.

use std::ffi::{c_void, CStr, CString};
use std::ptr::null_mut;

use rio::ffi::batch::*;
use rio::ffi::buf::*;
use rio::ffi::file::*;
use rio::ffi::runtime::*;
use rio::ffi::*;

unsafe fn open_runtime(backend: u32) -> *mut rio_runtime_t {
    let mut cfg = unsafe { std::mem::zeroed() };
    rio_runtime_config_default(&mut cfg);
    cfg.backend = backend;
    let mut rt = null_mut();
    assert_eq!(rio_runtime_open(&cfg, &mut rt), 0, "{}", last_error());
    rt
}

unsafe fn open_file(rt: *mut rio_runtime_t, path: &std::path::Path, extra: u32) -> *mut rio_file_t {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let flags = RIO_OPEN_READ | RIO_OPEN_WRITE | RIO_OPEN_CREATE | RIO_OPEN_TRUNCATE | extra;
    let mut f = null_mut();
    assert_eq!(rio_file_open(rt, c.as_ptr(), flags, 0o644, &mut f), 0, "{}", last_error());
    f
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(rio_last_error_message()) }.to_string_lossy().into_owned()
}

fn op(opcode: u32, file: *mut rio_file_t, buf: *mut c_void, len: u64, offset: u64) -> rio_op_t {
    rio_op_t { opcode, flags: 0, file, buf, len, offset, result: -12345, user_data: 0 }
}

unsafe fn each_backend(test: impl Fn(*mut rio_runtime_t, &std::path::Path)) {
    for backend in [RIO_BACKEND_IO_URING, RIO_BACKEND_THREAD_POOL] {
        let rt = open_runtime(backend);
        let dir = tempfile::tempdir().unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(rt, dir.path())));
        rio_runtime_close(rt);
        if let Err(e) = r {
            eprintln!("failed on backend {backend}");
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn sync_ops_ignore_buf_len_and_offset() {
    // SAFETY: the C API is called as a C program would, with valid pointers.
    unsafe {
        each_backend(|rt, dir| {
            let direct = open_file(rt, &dir.join("direct"), RIO_OPEN_DIRECT);
            let plain = open_file(rt, &dir.join("plain"), 0);
            let buf = rio_buf_alloc(4096);
            let mut junk = [0u8; 3];
            let junk = junk.as_mut_ptr().cast::<c_void>();
            let mut ops = [
                op(RIO_OP_WRITE, direct, buf, 4096, 0),
                op(RIO_OP_FSYNC, direct, junk, 3, 7),
                op(RIO_OP_FDATASYNC, direct, null_mut(), 1, u64::MAX),
                op(RIO_OP_FSYNC, plain, null_mut(), u64::MAX, u64::MAX),
                op(RIO_OP_FDATASYNC, plain, junk, 5, 1 << 63),
            ];
            assert_eq!(rio_submit_batch(rt, ops.as_mut_ptr(), ops.len()), ops.len() as i64, "{}", last_error());
            assert_eq!(ops[0].result, 4096);
            assert!(ops[1..].iter().all(|o| o.result == 0), "{:?}", ops.map(|o| o.result));
            // Alone: the single-op path.
            for (file, offset) in [(direct, 511), (plain, u64::MAX)] {
                let mut one = op(RIO_OP_FDATASYNC, file, null_mut(), 9, offset);
                assert_eq!(rio_submit_batch(rt, &mut one, 1), 1, "{}", last_error());
                assert_eq!(one.result, 0);
            }
            // Transfers are still checked.
            let mut bad = [op(RIO_OP_FSYNC, direct, null_mut(), 0, 0), op(RIO_OP_WRITE, direct, buf, 4096, 7)];
            assert_eq!(rio_submit_batch(rt, bad.as_mut_ptr(), 2), -(libc::EINVAL as i64));
            assert!(last_error().contains("ops[1]"), "{}", last_error());
            rio_buf_free(buf);
            assert_eq!(rio_file_close(direct), 0);
            assert_eq!(rio_file_close(plain), 0);
        });
    }
}

#[test]
fn batch_size_is_bounded() {
    // SAFETY: the C API is called as a C program would, with valid pointers.
    unsafe {
        each_backend(|rt, dir| {
            let f = open_file(rt, &dir.join("f"), 0);
            let mut ops = vec![op(RIO_OP_READ, f, null_mut(), 0, 0); RIO_BATCH_MAX + 1];
            assert_eq!(rio_submit_batch(rt, ops.as_mut_ptr(), RIO_BATCH_MAX), RIO_BATCH_MAX as i64);
            assert!(ops[..RIO_BATCH_MAX].iter().all(|o| o.result == 0));
            let mut x = *b"x";
            ops[0] = op(RIO_OP_WRITE, f, x.as_mut_ptr().cast(), 1, 0);
            assert_eq!(rio_submit_batch(rt, ops.as_mut_ptr(), RIO_BATCH_MAX + 1), -(libc::EINVAL as i64));
            let msg = last_error();
            assert!(msg.contains("rio_submit_batch") && msg.contains("RIO_BATCH_MAX"), "{msg}");
            assert_eq!(ops[0].result, -12345, "nothing ran");
            assert_eq!(rio_file_size(f), 0);
            assert_eq!(rio_file_close(f), 0);
        });
    }
}
