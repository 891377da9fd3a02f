//! `WalReader`: replays acknowledged entries in sequence order, while
//! appenders keep appending.
//!
//! A reader sees a consistent prefix: it reads only up to the acknowledged
//! sequence number and, in the segment being appended to, only up to the
//! acknowledged end offset (both taken together under the state lock), so
//! it never reads bytes an appender is still writing. When it has returned
//! everything acknowledged it reports the end; a later call picks up what
//! was acknowledged since. Memory: one window buffer (`cursor::CHUNK`, or
//! the largest record read if larger).

use std::sync::Arc;

use super::cursor::{Next, RecordCursor};
use super::format::{Kind, SEGMENT_HEADER_SIZE};
use super::segment::Segment;
use super::Shared;
use crate::error::{Error, Result};

/// Reads entries from a `Wal`; create with `Wal::reader`. It keeps the log's
/// shared state alive, so it may outlive the `Wal` handle.
pub struct WalReader {
    shared: Arc<Shared>,
    /// The entry the next call returns.
    next_seq: u64,
    /// The acknowledged watermark as last seen.
    acked_seq: u64,
    current: Option<Current>,
}

/// The segment being read.
struct Current {
    segment: Segment,
    cursor: RecordCursor,
    /// The cursor's end is the acknowledged end of the active segment (it
    /// moves); otherwise it is the file's size.
    active: bool,
}

impl WalReader {
    pub(super) fn new(shared: Arc<Shared>, from_seq: u64) -> Result<WalReader> {
        let mut reader = WalReader { shared, next_seq: from_seq.max(1), acked_seq: 0, current: None };
        reader.open_segment()?;
        Ok(reader)
    }

    /// The sequence number the next entry will have (after a truncation
    /// skipped entries, this is where reading resumed).
    pub fn position(&self) -> u64 {
        self.next_seq
    }

    /// The next entry as `(seq, payload)`, or `None` when every entry
    /// acknowledged so far has been returned. The payload is valid until
    /// the next call. `EBADMSG` (naming the file and offset) if a record
    /// does not verify; `EBUSY` in a forked child (the log is the parent's).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u64, &[u8])>> {
        self.shared.check_owner()?;
        loop {
            if self.next_seq > self.acked_seq {
                self.refresh()?;
                if self.next_seq > self.acked_seq {
                    return Ok(None);
                }
            }
            if self.current.is_none() {
                self.open_segment()?;
            }
            let cur = self.current.as_mut().expect("a segment is open");
            let at = cur.cursor.offset;
            match cur.cursor.next(&cur.segment.file)? {
                Next::Record { offset, header, .. } if header.kind == Kind::Entry && header.seq == self.next_seq => {
                    self.next_seq += 1;
                    let cur = self.current.as_ref().expect("a segment is open");
                    return Ok(Some((header.seq, cur.cursor.payload(offset, &header))));
                }
                // Entries before the starting point.
                Next::Record { header, .. } if header.kind == Kind::Entry && header.seq < self.next_seq => {}
                Next::Record { header, .. } if header.kind == Kind::Seal && header.seq == self.next_seq => {
                    self.current = None;
                }
                Next::End if cur.active => {
                    let end = cur.cursor.end;
                    self.refresh()?;
                    if self.current.as_ref().is_some_and(|c| c.cursor.end == end) {
                        return Err(self.corrupt(at, "the acknowledged part of the segment ends early"));
                    }
                }
                Next::End => return Err(self.corrupt(at, "the segment ends without a seal record")),
                Next::Invalid { defect, .. } => return Err(self.corrupt(at, defect.describe())),
                Next::Record { .. } => return Err(self.corrupt(at, "record out of sequence")),
            }
        }
    }

    fn corrupt(&self, at: u64, why: &str) -> Error {
        let path = self.current.as_ref().map(|c| c.segment.path.display().to_string()).unwrap_or_default();
        Error::new(libc::EBADMSG, format!("{path}: offset {at}: {why} (reading entry {})", self.next_seq))
    }

    /// Takes the acknowledged watermark and, for the active segment, its
    /// acknowledged end (a segment sealed meanwhile is read to its end).
    fn refresh(&mut self) -> Result<()> {
        let (acked_seq, active_first, write_offset) = {
            let st = self.shared.state.lock();
            (st.acked_seq, st.active.first_seq, st.write_offset)
        };
        self.acked_seq = acked_seq;
        if let Some(cur) = self.current.as_mut().filter(|c| c.active) {
            if cur.segment.first_seq == active_first {
                cur.cursor.set_end(write_offset);
            } else {
                cur.active = false;
                cur.cursor.set_end(cur.segment.file.size()?);
            }
        }
        Ok(())
    }

    /// Opens the segment holding `next_seq`, or the first one kept when
    /// `next_seq` was truncated away (reading resumes there).
    fn open_segment(&mut self) -> Result<()> {
        // Held while opening, so truncate_before cannot unlink the file
        // between the lookup and the open.
        let _files = self.shared.files.lock();
        let (meta, active, write_offset, acked_seq) = {
            let st = self.shared.state.lock();
            let after = st.segments.partition_point(|m| m.first_seq <= self.next_seq);
            let meta = st.segments[after.saturating_sub(1)].clone();
            let active = meta.first_seq == st.active.first_seq;
            (meta, active, st.write_offset, st.acked_seq)
        };
        self.acked_seq = acked_seq;
        self.next_seq = self.next_seq.max(meta.first_seq);
        let segment = Segment::open(&self.shared.rt, &meta.path, meta.first_seq, false)?;
        let end = if active { write_offset } else { segment.file.size()? };
        let cursor = RecordCursor::new(SEGMENT_HEADER_SIZE, end, segment.salt);
        self.current = Some(Current { segment, cursor, active });
        Ok(())
    }
}
