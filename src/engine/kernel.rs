//! The op-to-kernel table: for every op kind, its metrics code, its
//! io_uring opcode, how its SQE is built and which blocking syscall does the
//! same thing. Everything that turns an op into a kernel call (both
//! backends, the fault backends, queues) goes through [`Call`], so a new op
//! kind is one `decode` arm and one `Row`.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{OpCode, OpKind};

/// How a row reads a call's `addr` and `len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `addr` is a buffer of `len` bytes.
    Buffer,
    /// `addr` is an array of `len` iovecs.
    Vector,
    /// No caller memory: `len` and `mode` are plain arguments.
    Control,
}

/// One op kind, in kernel terms.
pub(crate) struct Row {
    pub code: OpCode,
    /// The io_uring opcode that runs it (probed at setup).
    pub uring: u8,
    pub shape: Shape,
    /// Data flows from the file into caller memory.
    pub reads: bool,
    /// For a vectored row, the plain row over one buffer: a fault that
    /// shortens a vectored transfer moves part of its first iovec with it.
    pub buffer_twin: Option<&'static Row>,
    sqe: fn(&Call) -> squeue::Entry,
    /// The SQE over a registered buffer (`slot` of the ring's table), for
    /// rows that have one (READ_FIXED, WRITE_FIXED).
    sqe_fixed: Option<fn(&Call, u16) -> squeue::Entry>,
    /// # Safety: the call's memory is valid for its length.
    syscall: unsafe fn(&Call) -> isize,
}

impl Row {
    /// Whether the row can run over a registered buffer.
    #[inline]
    pub fn has_fixed_form(&self) -> bool {
        self.sqe_fixed.is_some()
    }
}

/// One kernel call: a row and its arguments, `offset` already advanced
/// past what earlier pieces of the op transferred.
#[derive(Clone, Copy)]
pub(crate) struct Call {
    pub row: &'static Row,
    pub fd: RawFd,
    pub addr: *mut u8,
    pub len: u64,
    pub offset: u64,
    pub mode: i32,
}

/// The arguments an op kind carries, in the row's terms.
#[derive(Clone, Copy)]
pub(crate) struct Args {
    pub addr: *mut u8,
    pub len: u64,
    pub mode: i32,
}

fn fd(c: &Call) -> types::Fd {
    types::Fd(c.fd)
}

static READ: Row = Row {
    code: OpCode::Read,
    uring: opcode::Read::CODE,
    shape: Shape::Buffer,
    reads: true,
    buffer_twin: None,
    sqe: |c| opcode::Read::new(fd(c), c.addr, c.len as u32).offset(c.offset).build(),
    sqe_fixed: Some(|c, slot| opcode::ReadFixed::new(fd(c), c.addr, c.len as u32, slot).offset(c.offset).build()),
    syscall: |c| unsafe { libc::pread(c.fd, c.addr.cast(), c.len as usize, c.offset as i64) },
};

static WRITE: Row = Row {
    code: OpCode::Write,
    uring: opcode::Write::CODE,
    shape: Shape::Buffer,
    reads: false,
    buffer_twin: None,
    sqe: |c| opcode::Write::new(fd(c), c.addr, c.len as u32).offset(c.offset).build(),
    sqe_fixed: Some(|c, slot| opcode::WriteFixed::new(fd(c), c.addr, c.len as u32, slot).offset(c.offset).build()),
    syscall: |c| unsafe { libc::pwrite(c.fd, c.addr.cast(), c.len as usize, c.offset as i64) },
};

static READV: Row = Row {
    code: OpCode::Readv,
    uring: opcode::Readv::CODE,
    shape: Shape::Vector,
    reads: true,
    buffer_twin: Some(&READ),
    sqe: |c| opcode::Readv::new(fd(c), c.addr.cast(), c.len as u32).offset(c.offset).build(),
    sqe_fixed: None,
    syscall: |c| unsafe { libc::preadv(c.fd, c.addr.cast(), c.len as i32, c.offset as i64) },
};

static WRITEV: Row = Row {
    code: OpCode::Writev,
    uring: opcode::Writev::CODE,
    shape: Shape::Vector,
    reads: false,
    buffer_twin: Some(&WRITE),
    sqe: |c| opcode::Writev::new(fd(c), c.addr.cast(), c.len as u32).offset(c.offset).build(),
    sqe_fixed: None,
    syscall: |c| unsafe { libc::pwritev(c.fd, c.addr.cast(), c.len as i32, c.offset as i64) },
};

static FSYNC: Row = Row {
    code: OpCode::Fsync,
    uring: opcode::Fsync::CODE,
    shape: Shape::Control,
    reads: false,
    buffer_twin: None,
    sqe: |c| opcode::Fsync::new(fd(c)).build(),
    sqe_fixed: None,
    syscall: |c| unsafe { libc::fsync(c.fd) as isize },
};

static FDATASYNC: Row = Row {
    code: OpCode::Fdatasync,
    uring: opcode::Fsync::CODE,
    shape: Shape::Control,
    reads: false,
    buffer_twin: None,
    sqe: |c| opcode::Fsync::new(fd(c)).flags(types::FsyncFlags::DATASYNC).build(),
    sqe_fixed: None,
    syscall: |c| unsafe { libc::fdatasync(c.fd) as isize },
};

static FALLOCATE: Row = Row {
    code: OpCode::Fallocate,
    uring: opcode::Fallocate::CODE,
    shape: Shape::Control,
    reads: false,
    buffer_twin: None,
    sqe: |c| opcode::Fallocate::new(fd(c), c.len).offset(c.offset).mode(c.mode).build(),
    sqe_fixed: None,
    syscall: |c| unsafe { libc::fallocate(c.fd, c.mode, c.offset as i64, c.len as i64) as isize },
};

static FTRUNCATE: Row = Row {
    code: OpCode::Ftruncate,
    uring: opcode::Ftruncate::CODE,
    shape: Shape::Control,
    reads: false,
    buffer_twin: None,
    sqe: |c| opcode::Ftruncate::new(fd(c), c.len).build(),
    sqe_fixed: None,
    syscall: |c| unsafe { libc::ftruncate(c.fd, c.len as i64) as isize },
};

/// Half of a transfer length, in whole blocks when it is made of them.
fn half(len: u64) -> u64 {
    const BLOCK: u64 = 4096;
    match len % BLOCK {
        0 if len >= BLOCK => (len / BLOCK).div_ceil(2) * BLOCK,
        _ => len.div_ceil(2),
    }
}

/// The table's index: an op kind's row and arguments.
#[inline]
pub(crate) fn decode(kind: &OpKind) -> (&'static Row, Args) {
    let none = std::ptr::null_mut();
    match *kind {
        OpKind::Read { buf, len } => (&READ, Args { addr: buf, len: len as u64, mode: 0 }),
        OpKind::Write { buf, len } => (&WRITE, Args { addr: buf as *mut u8, len: len as u64, mode: 0 }),
        OpKind::Readv { iov, iovcnt } => (&READV, Args { addr: iov as *mut u8, len: iovcnt as u64, mode: 0 }),
        OpKind::Writev { iov, iovcnt } => (&WRITEV, Args { addr: iov as *mut u8, len: iovcnt as u64, mode: 0 }),
        OpKind::Fsync => (&FSYNC, Args { addr: none, len: 0, mode: 0 }),
        OpKind::Fdatasync => (&FDATASYNC, Args { addr: none, len: 0, mode: 0 }),
        OpKind::Fallocate { mode, len } => (&FALLOCATE, Args { addr: none, len, mode }),
        OpKind::Ftruncate { len } => (&FTRUNCATE, Args { addr: none, len, mode: 0 }),
    }
}

impl Call {
    /// The SQE for this call; `user_data` identifies it in its CQE.
    #[inline]
    pub fn sqe(&self, user_data: u64) -> squeue::Entry {
        (self.row.sqe)(self).user_data(user_data)
    }

    /// The SQE over registered buffer `slot`; only for rows with a fixed form.
    #[inline]
    pub fn sqe_fixed(&self, slot: u16, user_data: u64) -> squeue::Entry {
        let build = self.row.sqe_fixed.expect("the row has a fixed-buffer form");
        build(self, slot).user_data(user_data)
    }

    /// Runs the call as a blocking syscall: bytes transferred, 0, or `-errno`.
    ///
    /// # Safety
    /// The call's memory (from a live op) must be valid for its length.
    pub unsafe fn run(&self) -> i64 {
        let res = unsafe { (self.row.syscall)(self) };
        if res < 0 {
            -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as i64)
        } else {
            res as i64
        }
    }

    /// The same call moving at most half of what it would: what a short
    /// transfer from the kernel looks like. Lengths in whole 4 KiB blocks
    /// are halved in whole blocks and a single block is left whole, so the
    /// pieces of an O_DIRECT transfer stay aligned (as the kernel's own
    /// short transfers are); other lengths move at least one byte. Calls
    /// that move nothing are returned unchanged.
    ///
    /// # Safety
    /// A vectored call's iovec array must be valid.
    pub unsafe fn halved(&self) -> Call {
        match self.row.shape {
            Shape::Buffer => Call { len: half(self.len), ..*self },
            Shape::Vector => {
                let iov = super::iov_slice(self.addr as *const libc::iovec, self.len as usize);
                match (iov.iter().find(|v| v.iov_len > 0), self.row.buffer_twin) {
                    (Some(first), Some(twin)) => {
                        Call { row: twin, addr: first.iov_base.cast(), len: half(first.iov_len as u64), ..*self }
                    }
                    _ => *self,
                }
            }
            Shape::Control => *self,
        }
    }

    /// Whether the call transfers data (a fault may shorten it).
    pub fn moves_data(&self) -> bool {
        self.row.shape != Shape::Control && self.len > 0
    }
}
