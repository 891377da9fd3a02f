//! Recovery on open: verify every segment, find where the log really ends,
//! decide whether what follows is a torn tail or corruption, and cut a torn
//! tail physically before anything is appended again.
//!
//! The rules (docs/wal-design.md explains why):
//! - every segment but the last must end with a seal naming the next
//!   segment's first sequence number; anything invalid in it is corruption;
//! - in the last segment, the log ends after the last complete atomic unit
//!   (a lone entry, or a batch whose last record has no continuation flag);
//! - the bytes after that end are a clean end if all zero, else a tail. In
//!   strict mode any tail is an error. Otherwise a tail is torn unless a
//!   valid record in it says (in its `durable_seq`) that an entry being cut
//!   had already been made durable: then acknowledged data is damaged and
//!   the log refuses to open rather than silently drop it.

use std::ops::ControlFlow;
use std::path::PathBuf;

use super::cursor::{Next, RecordCursor, CHUNK};
use super::format::{Defect, Kind, RecordHeader, MAX_SEQ, RECORD_ALIGN, RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE};
use super::segment::{Directory, Segment};
use super::{RecoveryMode, WalConfig};
use crate::error::{Error, Result};
use crate::runtime::Runtime;

/// A segment of the log, as readers and truncation need it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub first_seq: u64,
    pub path: PathBuf,
}

/// The log as recovery left it: ready to append at `write_offset` of
/// `active` with `next_seq`.
pub(crate) struct Recovered {
    /// Every segment, oldest first; the last one is `active`.
    pub segments: Vec<SegmentMeta>,
    pub active: Segment,
    pub write_offset: u64,
    pub next_seq: u64,
    /// Bytes of torn tail cut off.
    pub tail_bytes_cut: u64,
    /// A segment file was created (a new log, or after a sealed last segment).
    pub created_segment: bool,
}

/// Where a segment scan stopped.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stop {
    /// A seal record at this offset.
    Sealed { at: u64 },
    /// The end of the file, exactly at a record boundary.
    EndOfFile { at: u64 },
    /// Something that is not the next valid record.
    Defect { at: u64, defect: Defect },
    /// The visitor asked to stop before the record at this offset (never
    /// during recovery; `inspect` uses it to stop early).
    Interrupted { at: u64 },
}

impl Stop {
    /// The offset the scan stopped at.
    pub(super) fn at(&self) -> u64 {
        match *self {
            Stop::Sealed { at } | Stop::EndOfFile { at } | Stop::Defect { at, .. } | Stop::Interrupted { at } => at,
        }
    }
}

/// The result of scanning one segment's records.
pub(super) struct Scan {
    /// End of the last complete atomic unit, and the sequence number after it.
    pub committed_end: u64,
    pub next_seq: u64,
    /// The entry expected where the scan stopped (> next_seq inside a batch).
    pub expected: u64,
    pub stop: Stop,
}

fn corrupt(seg: &Segment, at: u64, why: impl std::fmt::Display) -> Error {
    Error::new(libc::EBADMSG, format!("{}: offset {at}: {why}", seg.path.display()))
}

/// Reads records from the start of `seg` while they verify and continue
/// the sequence.
fn scan(seg: &Segment, size: u64) -> Result<(Scan, RecordCursor)> {
    scan_with(seg, size, &mut |_, _, _| ControlFlow::Continue(()))
}

/// What `scan_with` shows each entry it accepts: its offset, header and payload.
pub(super) type Visit<'a> = dyn FnMut(u64, &RecordHeader, &[u8]) -> ControlFlow<()> + 'a;

/// `scan`, showing `visit` each entry it accepts (its offset, header and
/// payload) before moving past it; entries of a batch that never completes
/// are shown too (they lie beyond `committed_end`). `Break` stops the scan
/// with `Stop::Interrupted` at that entry.
pub(super) fn scan_with(
    seg: &Segment,
    size: u64,
    visit: &mut Visit<'_>,
) -> Result<(Scan, RecordCursor)> {
    let mut cursor = RecordCursor::new(SEGMENT_HEADER_SIZE, size, seg.salt);
    let mut expected = seg.first_seq;
    let mut committed = (SEGMENT_HEADER_SIZE, seg.first_seq);
    let mut in_batch = false;
    let stop = loop {
        let at = cursor.offset;
        match cursor.next(&seg.file)? {
            Next::End => break Stop::EndOfFile { at },
            Next::Invalid { offset, defect } => break Stop::Defect { at: offset, defect },
            Next::Record { offset, header, end } => match header.kind {
                Kind::Entry if header.seq == expected => {
                    if visit(offset, &header, cursor.payload(offset, &header)).is_break() {
                        cursor.offset = offset;
                        break Stop::Interrupted { at: offset };
                    }
                    expected += 1;
                    in_batch = header.batch_cont();
                    if !in_batch {
                        committed = (end, expected);
                    }
                }
                Kind::Seal if header.seq == expected && !in_batch => break Stop::Sealed { at },
                _ => break Stop::Defect { at, defect: Defect::OutOfOrder },
            },
        }
    };
    Ok((Scan { committed_end: committed.0, next_seq: committed.1, expected, stop }, cursor))
}

/// A valid record after the cut that proves an entry being cut was durable.
struct Evidence {
    offset: u64,
    seq: u64,
    durable_seq: u64,
}

/// The offset just past the last non-zero byte from `from` to the cursor's
/// end; `None` if all of it is zero.
fn nonzero_end(seg: &Segment, cursor: &mut RecordCursor, from: u64) -> Result<Option<u64>> {
    let mut at = from;
    let mut last = None;
    while at < cursor.end {
        let n = cursor.fill(&seg.file, at, CHUNK)?;
        if n == 0 {
            break;
        }
        if let Some(i) = cursor.bytes(at, n).iter().rposition(|&b| b != 0) {
            last = Some(at + i as u64 + 1);
        }
        at += n as u64;
    }
    Ok(last)
}

/// Looks at every aligned offset from `from` on for a record that verifies
/// under this segment's salt and whose `durable_seq` reaches `cut_seq`.
fn durable_evidence(seg: &Segment, cursor: &mut RecordCursor, from: u64, cut_seq: u64) -> Result<Option<Evidence>> {
    let mut at = from.next_multiple_of(RECORD_ALIGN);
    while at + RECORD_HEADER_SIZE as u64 <= cursor.end {
        if let Next::Record { header, .. } = cursor.record_at(&seg.file, at)? {
            if header.durable_seq >= cut_seq {
                return Ok(Some(Evidence { offset: at, seq: header.seq, durable_seq: header.durable_seq }));
            }
        }
        at += RECORD_ALIGN;
    }
    Ok(None)
}

/// What is wrong at the place a scan stopped, in words.
fn describe(scan: &Scan) -> String {
    let batch = || format!("inside the atomic batch starting at entry {}", scan.next_seq);
    match scan.stop {
        Stop::Defect { defect, .. } if scan.expected > scan.next_seq => {
            format!("{} where entry {} was expected, {}", defect.describe(), scan.expected, batch())
        }
        Stop::Defect { defect, .. } => format!("{} where entry {} was expected", defect.describe(), scan.expected),
        Stop::EndOfFile { .. } if scan.expected > scan.next_seq => format!("the file ends {}", batch()),
        Stop::EndOfFile { .. } => "the segment ends without a seal record".into(),
        Stop::Sealed { .. } => "sealed".into(),
        Stop::Interrupted { .. } => "not scanned to the end".into(),
    }
}

/// What follows the last complete unit of the last segment.
pub(super) enum Tail {
    /// Nothing but zero bytes: the log ends at `at`.
    Clean { at: u64 },
    /// A torn tail: recovery cuts the segment at `at`; the bytes up to `end`
    /// (past the last non-zero one) go. `why` says what was found at the cut.
    Torn { at: u64, end: u64, why: String },
    /// Invalid bytes recovery refuses to cut (`EBADMSG` naming the file and
    /// offset).
    Corrupt(Error),
}

/// Decides what the bytes after the last complete unit of the last segment
/// are, without changing anything.
pub(super) fn judge_tail(seg: &Segment, scan: &Scan, cursor: &mut RecordCursor, mode: RecoveryMode) -> Result<Tail> {
    let stop_at = match scan.stop {
        Stop::EndOfFile { at } | Stop::Defect { at, .. } => at,
        Stop::Sealed { .. } | Stop::Interrupted { .. } => unreachable!("sealed or unfinished segments have no tail"),
    };
    let nonzero_end = nonzero_end(seg, cursor, scan.committed_end)?;
    if scan.committed_end == stop_at && nonzero_end.is_none() {
        return Ok(Tail::Clean { at: stop_at });
    }
    let what = describe(scan);
    if mode == RecoveryMode::Strict {
        return Ok(Tail::Corrupt(corrupt(
            seg,
            stop_at,
            format_args!("{what} (recovery mode is strict: a torn tail is an error too)"),
        )));
    }
    if let Some(e) = durable_evidence(seg, cursor, stop_at, scan.next_seq)? {
        return Ok(Tail::Corrupt(corrupt(
            seg,
            stop_at,
            format_args!(
                "{what}, but the valid record of seq {} at offset {} says entries up to {} were durable: \
                 corruption before the tail, not a torn write",
                e.seq, e.offset, e.durable_seq
            ),
        )));
    }
    let end = nonzero_end.unwrap_or(stop_at).max(stop_at);
    Ok(Tail::Torn { at: scan.committed_end, end, why: what })
}

/// Why a segment that is not the last one does not end with a seal.
pub(super) fn unsealed(seg: &Segment, scan: &Scan) -> Error {
    let why = format!("{}; only the last segment may have a tail, the others end with a seal", describe(scan));
    corrupt(seg, scan.stop.at(), why)
}

/// A segment that does not start where the previous one ended.
pub(super) fn missing_segment(seg: &Segment, want: u64) -> Error {
    corrupt(
        seg,
        0,
        format_args!("segment starts at seq {} but the previous one ends before seq {want}: a segment is missing", seg.first_seq),
    )
}

/// Decides what follows the last complete unit of the last segment, and
/// cuts a torn tail. Returns the offset appends continue at and the bytes cut.
fn settle_tail(seg: &Segment, scan: &Scan, mut cursor: RecordCursor, cfg: &WalConfig) -> Result<(u64, u64)> {
    match judge_tail(seg, scan, &mut cursor, cfg.recovery_mode)? {
        Tail::Clean { at } => Ok((at, 0)),
        Tail::Corrupt(e) => Err(e),
        Tail::Torn { at, end, why } => {
            tracing::warn!(
                path = %seg.path.display(),
                offset = at,
                reason = %why,
                "cutting the torn tail of the log"
            );
            seg.cut(at, cfg.segment_size)?;
            Ok((at, end.saturating_sub(at)))
        }
    }
}

/// A last segment sealed with a next sequence number no segment header may
/// carry: recovery would have to create a segment no reader could open.
pub(super) fn seal_beyond_max(path: &std::path::Path, at: u64, next_seq: u64) -> Option<Error> {
    (next_seq > MAX_SEQ).then(|| {
        Error::new(
            libc::EBADMSG,
            format!("{}: offset {at}: the seal names next sequence number {next_seq}, beyond the maximum {MAX_SEQ}", path.display()),
        )
    })
}

/// Opens the log in `dir`: creates the first segment of a new log, or
/// verifies the existing segments and settles the tail of the last one.
pub(crate) fn recover(rt: &Runtime, dir: &Directory, cfg: &WalConfig) -> Result<Recovered> {
    dir.remove_temp_files()?;
    let listed = dir.list_segments()?;
    let mut segments = Vec::with_capacity(listed.len() + 1);
    let mut expected_first: Option<u64> = None;
    let mut last_seal = None;
    for (i, (name_seq, path)) in listed.iter().enumerate() {
        let last = i + 1 == listed.len();
        let seg = Segment::open(rt, path, *name_seq, last)?;
        if let Some(want) = expected_first.filter(|&want| want != seg.first_seq) {
            return Err(missing_segment(&seg, want));
        }
        segments.push(SegmentMeta { first_seq: seg.first_seq, path: seg.path.clone() });
        let size = seg.file.size()?;
        let (scan, cursor) = scan(&seg, size)?;
        match (scan.stop, last) {
            (Stop::Sealed { at }, _) => {
                expected_first = Some(scan.next_seq);
                last_seal = Some((seg.path.clone(), at));
            }
            (_, false) => return Err(unsealed(&seg, &scan)),
            (_, true) => {
                let (write_offset, tail_bytes_cut) = settle_tail(&seg, &scan, cursor, cfg)?;
                let next_seq = scan.next_seq;
                return Ok(Recovered { segments, active: seg, write_offset, next_seq, tail_bytes_cut, created_segment: false });
            }
        }
    }
    // A new log, or the last segment was sealed and a crash came before the
    // next one was created: start the next segment now.
    let next_seq = expected_first.unwrap_or(1);
    if let Some(e) = last_seal.and_then(|(path, at)| seal_beyond_max(&path, at, next_seq)) {
        return Err(e);
    }
    // A sealed segment without entries has the name the new one takes: the
    // new file replaces it, and it must not stay listed (truncate_before
    // would unlink the new segment through it).
    if segments.last().is_some_and(|s| s.first_seq == next_seq) {
        segments.pop();
    }
    let active = Segment::create(rt, dir, next_seq, cfg.segment_size)?;
    segments.push(SegmentMeta { first_seq: next_seq, path: active.path.clone() });
    Ok(Recovered { segments, active, write_offset: SEGMENT_HEADER_SIZE, next_seq, tail_bytes_cut: 0, created_segment: true })
}
