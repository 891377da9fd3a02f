//! `rio_queue_t`: an asynchronous queue (a boxed `RawQueue` keeping each
//! pushed `rio_op_t` to hand back when it is reaped).

use std::ffi::c_int;
use std::time::Duration;

use super::batch::{rio_op_t, to_op};
use super::runtime::rio_runtime_t;
use super::{check_null, fail, ffi_boundary, finish};
use crate::queue::RawQueue;
use crate::Error;

/// The largest `depth` of `rio_queue_open`.
pub const RIO_QUEUE_MAX_DEPTH: u32 = 4096;
const _: () = assert!(RIO_QUEUE_MAX_DEPTH == crate::engine::queue::MAX_QUEUE_DEPTH);

/// An asynchronous queue of operations. Create with `rio_queue_open`, free
/// with `rio_queue_close`. Used by one thread at a time (calls on one queue
/// must not overlap), from any thread over its life. In a child process
/// created by fork(), every call on an inherited queue returns `-EBUSY`
/// except `rio_queue_close`.
pub struct rio_queue_t(RawQueue<rio_op_t>);

fn queue<'a>(q: *mut rio_queue_t) -> &'a mut RawQueue<rio_op_t> {
    // SAFETY: callers check NULL first; the handle is live and not used
    // concurrently per the API contract.
    &mut unsafe { &mut *q }.0
}

/// Reads a count result into the C `int` convention.
fn count(func: &str, r: crate::Result<usize>) -> c_int {
    finish(func, r.map(|n| n as c_int))
}

/// Opens a queue on `rt` holding at most `depth` operations pushed and not
/// yet reaped: 1..4096, or 0 for the runtime's queue_depth (capped at 4096).
/// Stores the handle in `*out` (NULL on failure). The queue keeps the
/// runtime alive. On a runtime opened with fault injection, queue ops go
/// through the fault rules and run as they start (a testing tool). Errors:
/// `-EINVAL` (NULL argument, depth above 4096), `-ENOMEM`/`-EMFILE` when the
/// queue's ring or eventfd cannot be created.
#[no_mangle]
pub unsafe extern "C" fn rio_queue_open(rt: *mut rio_runtime_t, depth: u32, out: *mut *mut rio_queue_t) -> c_int {
    ffi_boundary!("rio_queue_open", {
        check_null!("rio_queue_open", out);
        unsafe { *out = std::ptr::null_mut() };
        check_null!("rio_queue_open", rt);
        match RawQueue::open(&unsafe { &*rt }.0, depth) {
            Ok(q) => {
                unsafe { *out = Box::into_raw(Box::new(rio_queue_t(q))) };
                0
            }
            Err(e) => fail("rio_queue_open", e),
        }
    })
}

/// Copies `n` operations into the queue and returns `n`. Every op is checked
/// first, as `rio_submit_batch` checks them (opcode, flags, NULL file, NULL
/// buffer with a length, O_DIRECT alignment): a bad one fails with
/// `-EINVAL` naming `ops[i]` and the field, and nothing is queued. When
/// fewer than `n` slots are free: `-EAGAIN`, nothing queued. Nothing starts
/// before `rio_queue_submit`. Buffers and files must stay valid until the op
/// is reaped (or the queue closed). `ops` may be NULL when `n` is 0.
#[no_mangle]
pub unsafe extern "C" fn rio_queue_push(q: *mut rio_queue_t, ops: *const rio_op_t, n: usize) -> c_int {
    ffi_boundary!("rio_queue_push", {
        check_null!("rio_queue_push", q);
        if n == 0 {
            return count("rio_queue_push", queue(q).check_usable().map(|_| 0));
        }
        check_null!("rio_queue_push", ops);
        if n > c_int::MAX as usize {
            return fail("rio_queue_push", Error::invalid(format!("n {n} is larger than INT_MAX")));
        }
        let c_ops = unsafe { std::slice::from_raw_parts(ops, n) };
        // SAFETY: the caller keeps buffers and files valid until reaped.
        let pushed = unsafe { queue(q).push(n, |i| to_op(i, &c_ops[i]), |i| c_ops[i]) };
        count("rio_queue_push", pushed.map(|_| n))
    })
}

/// Starts the pushed operations and returns how many started (including
/// earlier ones that were waiting). Never blocks on the device. Ops beyond
/// the runtime's max_concurrent_ops stay queued and start in a later submit
/// or reap.
#[no_mangle]
pub unsafe extern "C" fn rio_queue_submit(q: *mut rio_queue_t) -> c_int {
    ffi_boundary!("rio_queue_submit", {
        check_null!("rio_queue_submit", q);
        count("rio_queue_submit", queue(q).submit())
    })
}

/// Waits until at least `min` operations are complete (`timeout_us`: -1 no
/// limit, 0 poll, else microseconds), then copies up to `max` complete ops
/// into `out` (each as pushed, `result` set: bytes, 0 or -errno; reads are
/// short only at end of file) and returns the count. Completion order is
/// unspecified. `-ETIMEDOUT` (nothing copied) when fewer than `min`
/// completed in time; `-EINVAL` when `min` exceeds `rio_queue_pending`, when
/// `out` is NULL with `max` > 0, when `timeout_us` < -1, or when `timeout_us`
/// is -1 and `min` ops can never complete because some were never submitted.
#[no_mangle]
pub unsafe extern "C" fn rio_queue_reap(q: *mut rio_queue_t, out: *mut rio_op_t, max: usize, min: usize, timeout_us: i64) -> c_int {
    ffi_boundary!("rio_queue_reap", {
        check_null!("rio_queue_reap", q);
        if out.is_null() && max != 0 {
            return fail("rio_queue_reap", Error::invalid("out is NULL with a non-zero max"));
        }
        if timeout_us < -1 {
            return fail("rio_queue_reap", Error::invalid(format!("timeout_us {timeout_us}: must be -1, 0 or positive")));
        }
        let timeout = (timeout_us >= 0).then(|| Duration::from_micros(timeout_us as u64));
        let mut copied = 0;
        let reaped = queue(q).reap(max.min(c_int::MAX as usize), min, timeout, |mut op, result| {
            op.result = result;
            // SAFETY: the caller gave room for `max` ops; at most `max` come.
            unsafe { out.add(copied).write(op) };
            copied += 1;
        });
        count("rio_queue_reap", reaped)
    })
}

/// Operations pushed and not yet reaped (queued, in flight or complete).
#[no_mangle]
pub unsafe extern "C" fn rio_queue_pending(q: *const rio_queue_t) -> c_int {
    ffi_boundary!("rio_queue_pending", {
        check_null!("rio_queue_pending", q);
        let q = &unsafe { &*q }.0;
        count("rio_queue_pending", q.check_usable().map(|_| q.pending()))
    })
}

/// An eventfd that polls readable when a reap may find complete
/// operations (for epoll, asyncio, Go netpoll). Owned by the queue: do not
/// close it or read it; it stays valid until `rio_queue_close`.
#[no_mangle]
pub unsafe extern "C" fn rio_queue_fd(q: *mut rio_queue_t) -> c_int {
    ffi_boundary!("rio_queue_fd", {
        check_null!("rio_queue_fd", q);
        finish("rio_queue_fd", queue(q).fd())
    })
}

/// Waits for every started operation, discards unreaped results and frees
/// the queue. Returns 0. NULL is a no-op. In a forked child it frees the
/// handle without waiting on or touching the parent's ring or workers.
#[no_mangle]
pub unsafe extern "C" fn rio_queue_close(q: *mut rio_queue_t) -> c_int {
    ffi_boundary!("rio_queue_close", {
        if !q.is_null() {
            drop(unsafe { Box::from_raw(q) });
        }
        0
    })
}
