//! Batches: many operations, on any files, submitted together (one
//! `io_uring_enter` for the whole batch on io_uring).

use std::marker::PhantomData;

use crate::engine::{Op, OpKind};
use crate::error::{Error, Result};
use crate::file::DiskFile;
use crate::runtime::Runtime;

/// A batch under construction. Borrows its files and buffers until
/// submitted, so the kernel can never outlive them.
#[derive(Default)]
pub struct Batch<'a> {
    ops: Vec<Op>,
    _borrows: PhantomData<&'a mut [u8]>,
}

impl<'a> Batch<'a> {
    pub fn new() -> Batch<'a> {
        Batch { ops: Vec::new(), _borrows: PhantomData }
    }

    fn push(&mut self, file: &'a DiskFile, kind: OpKind, offset: u64) -> Result<usize> {
        self.ops.push(file.prepare(kind, offset)?);
        Ok(self.ops.len() - 1)
    }

    /// Adds a read; returns its index in the results.
    pub fn read(&mut self, file: &'a DiskFile, buf: &'a mut [u8], offset: u64) -> Result<usize> {
        self.push(file, OpKind::Read { buf: buf.as_mut_ptr(), len: buf.len() }, offset)
    }

    pub fn write(&mut self, file: &'a DiskFile, buf: &'a [u8], offset: u64) -> Result<usize> {
        self.push(file, OpKind::Write { buf: buf.as_ptr(), len: buf.len() }, offset)
    }

    pub fn fsync(&mut self, file: &'a DiskFile) -> Result<usize> {
        self.push(file, OpKind::Fsync, 0)
    }

    pub fn fdatasync(&mut self, file: &'a DiskFile) -> Result<usize> {
        self.push(file, OpKind::Fdatasync, 0)
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Runs every op; returns each one's bytes (or 0) or its error.
    pub fn submit(mut self, rt: &Runtime) -> Vec<Result<u64>> {
        // SAFETY: the batch borrows every buffer for 'a, which outlives this call.
        unsafe { rt.submit_ops(&mut self.ops) };
        self.ops
            .iter()
            .map(|op| if op.result < 0 { Err(Error::os((-op.result) as i32, "batch op")) } else { Ok(op.result as u64) })
            .collect()
    }
}

impl Runtime {
    /// Runs prepared ops (see `DiskFile::prepare`) to completion.
    ///
    /// # Safety
    /// Every pointer in `ops` must be valid for its length until this returns.
    pub(crate) unsafe fn submit_ops(&self, ops: &mut [Op]) {
        unsafe { self.engine().execute(ops) }
    }
}
