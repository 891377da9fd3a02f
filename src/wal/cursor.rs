//! Reading records from a segment file through a bounded window, for
//! recovery and for readers alike.
//!
//! The window is one buffer that holds a chunk of the file; it grows only
//! to fit the largest record read, so memory is bounded by the largest
//! entry, never by the log. Nothing at or beyond `end` is ever read: a
//! reader sets `end` to the acknowledged end of the active segment, so it
//! never sees (or caches) bytes an appender is still writing.

use super::format::{record_size, Defect, RecordHeader, RECORD_HEADER_SIZE};
use crate::error::Result;
use crate::file::DiskFile;

/// Bytes read at once when the window moves.
pub(crate) const CHUNK: usize = 256 << 10;

/// What is at a record position.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Next {
    /// A record whose CRC verifies; `end` is where the next one starts. Its
    /// payload stays in the window until the next call (`RecordCursor::payload`).
    Record { offset: u64, end: u64, header: RecordHeader },
    /// Bytes that are not a valid record under this segment's salt.
    Invalid { offset: u64, defect: Defect },
    /// `end` reached exactly at a record boundary.
    End,
}

pub(crate) struct RecordCursor {
    buf: Vec<u8>,
    win_start: u64,
    win_len: usize,
    /// Where `next` looks for a record.
    pub offset: u64,
    /// Exclusive bound of what may be read.
    pub end: u64,
    salt: u64,
}

impl RecordCursor {
    pub fn new(offset: u64, end: u64, salt: u64) -> RecordCursor {
        RecordCursor { buf: Vec::new(), win_start: 0, win_len: 0, offset, end, salt }
    }

    /// Moves the bound (e.g. when more of the active segment is acknowledged).
    /// Window bytes beyond the old bound were never read, so nothing cached
    /// goes stale.
    pub fn set_end(&mut self, end: u64) {
        self.end = end;
    }

    /// Makes the window hold the `need` bytes at `at` if they exist before
    /// `end` and end of file; returns how many it holds (fewer only there).
    pub fn fill(&mut self, file: &DiskFile, at: u64, need: usize) -> Result<usize> {
        let need = need.min(self.end.saturating_sub(at) as usize);
        let cached = at >= self.win_start && at + need as u64 <= self.win_start + self.win_len as u64;
        if !cached {
            let want = need.max(CHUNK).min(self.end.saturating_sub(at) as usize);
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            self.win_len = file.read_at(&mut self.buf[..want], at)?;
            self.win_start = at;
        }
        Ok(need.min((self.win_start + self.win_len as u64).saturating_sub(at) as usize))
    }

    /// `len` bytes at `at` from the window; `fill` must have covered them.
    pub fn bytes(&self, at: u64, len: usize) -> &[u8] {
        let from = (at - self.win_start) as usize;
        &self.buf[from..from + len]
    }

    /// The record at `at`, verified against the salt. With `advance`, a
    /// valid record moves `offset` past it.
    fn record_at_inner(&mut self, file: &DiskFile, at: u64, advance: bool) -> Result<Next> {
        if at >= self.end {
            return Ok(Next::End);
        }
        if self.fill(file, at, RECORD_HEADER_SIZE)? < RECORD_HEADER_SIZE {
            return Ok(Next::Invalid { offset: at, defect: Defect::Truncated });
        }
        let header_bytes: [u8; RECORD_HEADER_SIZE] = self.bytes(at, RECORD_HEADER_SIZE).try_into().expect("header size");
        let room = self.end.saturating_sub(at + RECORD_HEADER_SIZE as u64);
        let header = match RecordHeader::decode(&header_bytes, room) {
            Ok(h) => h,
            Err(defect) => return Ok(Next::Invalid { offset: at, defect }),
        };
        let total = RECORD_HEADER_SIZE + header.len as usize;
        if self.fill(file, at, total)? < total {
            return Ok(Next::Invalid { offset: at, defect: Defect::Truncated });
        }
        let payload_at = at + RECORD_HEADER_SIZE as u64;
        if !RecordHeader::verify(&header_bytes, self.bytes(payload_at, header.len as usize), self.salt) {
            return Ok(Next::Invalid { offset: at, defect: Defect::Checksum });
        }
        let end = at + record_size(header.len as usize);
        if advance {
            self.offset = end;
        }
        Ok(Next::Record { offset: at, end, header })
    }

    /// The payload of the record `record_at`/`next` just returned.
    pub fn payload(&self, offset: u64, header: &RecordHeader) -> &[u8] {
        self.bytes(offset + RECORD_HEADER_SIZE as u64, header.len as usize)
    }

    /// The record at `at`, without moving `offset`.
    pub fn record_at(&mut self, file: &DiskFile, at: u64) -> Result<Next> {
        self.record_at_inner(file, at, false)
    }

    /// The record at `offset`; on a valid record, `offset` moves past it.
    pub fn next(&mut self, file: &DiskFile) -> Result<Next> {
        self.record_at_inner(file, self.offset, true)
    }
}
