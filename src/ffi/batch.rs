//! `rio_submit_batch`: many operations, on any files, submitted together.

use std::ffi::c_void;

use super::file::rio_file_t;
use super::runtime::rio_runtime_t;
use super::{check_null, fail, ffi_boundary, RIO_BATCH_MAX};
use crate::engine::{Op, OpKind};
use crate::Error;

/// Read `len` bytes at `offset` into `buf`.
pub const RIO_OP_READ: u32 = 0;
/// Write `len` bytes of `buf` at `offset`.
pub const RIO_OP_WRITE: u32 = 1;
/// fsync the file (`buf`, `len`, `offset` ignored).
pub const RIO_OP_FSYNC: u32 = 2;
/// fdatasync the file (`buf`, `len`, `offset` ignored).
pub const RIO_OP_FDATASYNC: u32 = 3;

/// One operation of a batch (`struct rio_op`, also named `rio_op_t`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rio_op {
    /// RIO_OP_READ, RIO_OP_WRITE, RIO_OP_FSYNC or RIO_OP_FDATASYNC.
    pub opcode: u32,
    /// Must be 0.
    pub flags: u32,
    /// The file; it may belong to any runtime.
    pub file: *mut rio_file_t,
    /// Data to write or room to read into; must stay valid until the call returns.
    pub buf: *mut c_void,
    pub len: u64,
    pub offset: u64,
    /// Out: bytes transferred (reads: fewer only at end of file), 0, or -errno.
    pub result: i64,
    /// Untouched by the library.
    pub user_data: u64,
}

/// One operation of a batch, as DESIGN.md names it.
pub type rio_op_t = rio_op;

/// Checks one C op (the checks of every entry point taking `rio_op_t`s:
/// batches and queues) and builds the engine op; errors name `ops[i]`.
pub(crate) fn to_op(i: usize, op: &rio_op_t) -> crate::Result<Op> {
    let bad = |what: &str| Error::invalid(format!("ops[{i}].{what}"));
    if op.file.is_null() {
        return Err(bad("file is NULL"));
    }
    if op.flags != 0 {
        return Err(bad(&format!("flags: unknown bits {:#x}", op.flags)));
    }
    // Syncs ignore buf, len and offset (as documented): they hand on offset
    // 0, so neither the offset-range nor the O_DIRECT alignment check sees
    // whatever the caller left in those fields.
    let (kind, offset) = match op.opcode {
        RIO_OP_READ | RIO_OP_WRITE => {
            if op.buf.is_null() && op.len != 0 {
                return Err(bad("buf is NULL with a non-zero length"));
            }
            if op.len > isize::MAX as u64 {
                return Err(bad("len is larger than the address space"));
            }
            super::check_offset(op.offset).map_err(|e| e.context(format_args!("ops[{i}]")))?;
            let len = op.len as usize;
            let kind = if op.opcode == RIO_OP_READ {
                OpKind::Read { buf: op.buf as *mut u8, len }
            } else {
                OpKind::Write { buf: op.buf as *const u8, len }
            };
            (kind, op.offset)
        }
        RIO_OP_FSYNC => (OpKind::Fsync, 0),
        RIO_OP_FDATASYNC => (OpKind::Fdatasync, 0),
        other => return Err(bad(&format!("opcode: unknown value {other}"))),
    };
    let file = &unsafe { &*op.file }.0;
    file.prepare(kind, offset).map_err(|e| e.context(format_args!("ops[{i}]")))
}

/// Submits `n` operations together (one io_uring submission) and waits for
/// all of them. Returns `n` with every `ops[i].result` set, or, when an op
/// is malformed (NULL file, unknown opcode, non-zero flags, NULL buffer,
/// O_DIRECT misalignment of a read or write), `-EINVAL` naming `ops[i]`, and
/// nothing ran. `n` is at most `RIO_BATCH_MAX` (larger: `-EINVAL`, nothing
/// ran; split the work into several calls). `n` 0 returns 0 (`ops` may then
/// be NULL). Fsync and fdatasync ops ignore `buf`, `len` and `offset`.
/// Operations of one batch may run in any order relative to each other;
/// put an fsync in a later batch to order it after writes.
#[no_mangle]
pub unsafe extern "C" fn rio_submit_batch(rt: *mut rio_runtime_t, ops: *mut rio_op_t, n: usize) -> i64 {
    ffi_boundary!("rio_submit_batch", {
        check_null!("rio_submit_batch", rt);
        if n == 0 {
            return 0;
        }
        check_null!("rio_submit_batch", ops);
        if n > RIO_BATCH_MAX {
            let why = format!("n: {n} operations is more than RIO_BATCH_MAX ({RIO_BATCH_MAX}); split the batch");
            return fail("rio_submit_batch", Error::invalid(why));
        }
        let c_ops = unsafe { std::slice::from_raw_parts_mut(ops, n) };
        let prepared: crate::Result<Vec<Op>> = c_ops.iter().enumerate().map(|(i, op)| to_op(i, op)).collect();
        let mut engine_ops = match prepared {
            Ok(v) => v,
            Err(e) => return fail("rio_submit_batch", e),
        };
        // SAFETY: the caller keeps every buffer valid until we return.
        unsafe { (*rt).0.submit_ops(&mut engine_ops) };
        for (c, op) in c_ops.iter_mut().zip(&engine_ops) {
            c.result = op.result;
        }
        n as i64
    })
}
