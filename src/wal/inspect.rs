//! Read-only inspection of a log directory, for tools (`rio wal verify`,
//! `dump`, `stats`): every segment and record is checked with the same code
//! and the same rules as recovery (`recovery::scan_with`, `judge_tail`), but
//! nothing is changed: no torn tail is cut, no temporary file removed, no
//! lock taken, files are opened read-only.
//!
//! ```no_run
//! # fn main() -> rio::Result<()> {
//! use std::ops::ControlFlow;
//! use rio::wal::inspect::{Event, Inspector, Options};
//! let rt = rio::Runtime::new(&Default::default())?;
//! let inspector = Inspector::open(&rt, "/var/lib/db/wal")?;
//! let report = inspector.run(&Options::default(), |event| {
//!     if let Event::Entry(e) = event {
//!         println!("{} {} bytes", e.seq, e.len);
//!     }
//!     ControlFlow::Continue(())
//! })?;
//! if let Some(c) = report.corruption.first() {
//!     eprintln!("corrupt: {}", c.message);
//! }
//! # Ok(()) }
//! ```
//!
//! The log is what recovery would make of it: the entries of complete
//! atomic units, in sequence order, up to the first corruption or torn
//! tail. Segments after a corruption are still checked (their defects are
//! reported too) but their entries are not part of the log and are not
//! shown. Inspecting a log that a process is appending to sees a snapshot
//! that may end in what looks like a torn tail (a write in progress).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::format::{self, RecordHeader};
use super::recovery::{self, Stop, Tail};
use super::segment::Segment;
use super::RecoveryMode;
use crate::error::{Error, Result};
use crate::runtime::Runtime;

/// A segment file found in the directory (by its name), before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub path: PathBuf,
    /// The first sequence number its name says it holds.
    pub first_seq: u64,
    /// Its size in bytes (segments are preallocated: this is not how much
    /// of it holds records).
    pub size: u64,
}

/// An entry of the log, as `Inspector::run` shows it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub seq: u64,
    /// The payload length in bytes.
    pub len: u32,
    /// The payload (empty unless `Options::payloads`).
    pub payload: &'a [u8],
    /// The segment file holding it, and the offset of its record header.
    pub segment: &'a Path,
    pub offset: u64,
    /// Entries up to this one were durable when this record was written.
    pub durable_seq: u64,
    /// The next entry belongs to the same atomic batch.
    pub batch_cont: bool,
}

impl Entry<'_> {
    /// Bytes its record takes in the segment (header and padding included).
    pub fn record_size(&self) -> u64 {
        format::record_size(self.len as usize)
    }
}

/// What `Inspector::run` shows its visitor, in file order.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Reading of `segments()[index]` begins.
    SegmentStart { index: usize, file: &'a SegmentFile },
    /// An entry of the log (only those at or after `Options::from_seq`).
    Entry(Entry<'a>),
    /// A segment has been checked.
    SegmentEnd { index: usize, report: &'a SegmentReport },
}

/// How one segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentEnd {
    /// With a seal record naming the next segment's first sequence number.
    Sealed { next_seq: u64 },
    /// Records, then zero bytes (or the end of the file): the active segment.
    Open,
    /// A torn tail follows the last complete record (see `Report::torn_tail`).
    TornTail,
    /// Corruption (see `Report::corruption`); also a bad segment header.
    Corrupt,
    /// Not read to its end (the visitor stopped the run).
    Unfinished,
}

/// The result of checking one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    pub path: PathBuf,
    pub first_seq: u64,
    pub file_size: u64,
    /// Entries of complete atomic units in it (in the valid part).
    pub entries: u64,
    /// Sum of their payload lengths.
    pub payload_bytes: u64,
    /// Offset just past the last complete unit (or its seal): how much of
    /// the file holds the log.
    pub used_bytes: u64,
    pub end: SegmentEnd,
    /// Whether it is part of the log recovery would keep (false after a
    /// corruption in an earlier segment).
    pub in_log: bool,
}

/// Bytes after the last complete unit that recovery would cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// Where recovery cuts: the end of the last complete unit.
    pub offset: u64,
    /// Non-zero bytes from `offset` on (what the cut discards).
    pub bytes: u64,
    /// Valid entries in it that belong to an atomic batch that never completed.
    pub entries: u64,
    /// What was found where the log ends.
    pub reason: String,
}

/// Invalid data that recovery would refuse (`EBADMSG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub path: PathBuf,
    pub offset: u64,
    /// The full message, naming the file, the offset and the defect: the
    /// one `Wal::open` would fail with.
    pub message: String,
}

/// The summary of a run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Every segment read, oldest first (segments skipped for
    /// `Options::from_seq` are not listed).
    pub segments: Vec<SegmentReport>,
    /// Segments not read because they hold only entries below `from_seq`.
    pub skipped_segments: usize,
    /// Entries of the log in the segments read, and their payload bytes.
    pub entries: u64,
    pub payload_bytes: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Sum of the sizes of the segment files read.
    pub file_bytes: u64,
    pub torn_tail: Option<TornTail>,
    /// Every corruption found; the first one ends the log.
    pub corruption: Vec<Corruption>,
    /// `*.wal.tmp` files: segments whose creation a crash interrupted
    /// (recovery deletes them; they are not part of the log).
    pub temp_files: Vec<PathBuf>,
    /// False when the visitor stopped the run early.
    pub complete: bool,
}

impl Report {
    pub fn is_corrupt(&self) -> bool {
        !self.corruption.is_empty()
    }
}

/// What a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Show entries from this sequence number on; segments holding only
    /// earlier entries are not read (nor checked). 0 and 1 read everything.
    pub from_seq: u64,
    /// Show payloads in `Event::Entry` (costs a copy of each batch entry
    /// until its batch is known to be complete).
    pub payloads: bool,
    /// The rules for the tail: `Strict` reports a torn tail as corruption,
    /// as `Wal::open` in strict mode would.
    pub mode: RecoveryMode,
}

impl Default for Options {
    fn default() -> Self {
        Options { from_seq: 1, payloads: true, mode: RecoveryMode::TolerateTail }
    }
}

/// A log directory opened for inspection (its listing taken at `open`).
pub struct Inspector {
    rt: Runtime,
    dir: PathBuf,
    segments: Vec<SegmentFile>,
    temp_files: Vec<PathBuf>,
}

fn io_error(e: std::io::Error, what: impl std::fmt::Display) -> Error {
    Error::from_io(e, what)
}

/// A valid entry whose atomic unit is not known to be complete yet.
struct Pending {
    seq: u64,
    len: u32,
    offset: u64,
    durable_seq: u64,
    batch_cont: bool,
    payload: Vec<u8>,
}

impl Pending {
    fn new(offset: u64, header: &RecordHeader, payload: &[u8], keep: bool) -> Pending {
        Pending {
            seq: header.seq,
            len: header.len,
            offset,
            durable_seq: header.durable_seq,
            batch_cont: header.batch_cont(),
            payload: if keep { payload.to_vec() } else { Vec::new() },
        }
    }

    fn entry<'a>(&'a self, segment: &'a Path) -> Entry<'a> {
        Entry {
            seq: self.seq,
            len: self.len,
            payload: &self.payload,
            segment,
            offset: self.offset,
            durable_seq: self.durable_seq,
            batch_cont: self.batch_cont,
        }
    }
}

impl Inspector {
    /// Lists the segments of the log in `dir` (which must exist). Nothing
    /// is read or changed yet.
    pub fn open(rt: &Runtime, dir: impl AsRef<Path>) -> Result<Inspector> {
        let dir = dir.as_ref();
        let listing = std::fs::read_dir(dir).map_err(|e| io_error(e, format_args!("{}: readdir", dir.display())))?;
        let mut segments = Vec::new();
        let mut temp_files = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| io_error(e, format_args!("{}: readdir", dir.display())))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            let path = dir.join(&name);
            if name.ends_with(format::TEMP_SUFFIX) {
                temp_files.push(path);
            } else if let Some(first_seq) = format::parse_segment_name(&name) {
                let meta = std::fs::metadata(&path).map_err(|e| io_error(e, path.display()))?;
                segments.push(SegmentFile { path, first_seq, size: meta.len() });
            }
        }
        segments.sort_by_key(|s| s.first_seq);
        temp_files.sort();
        Ok(Inspector { rt: rt.clone(), dir: dir.to_path_buf(), segments, temp_files })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment files, in sequence order.
    pub fn segments(&self) -> &[SegmentFile] {
        &self.segments
    }

    /// Reads and checks the segments (from the one holding `from_seq` on),
    /// showing `visit` each segment and each entry of the log in order.
    /// Corruption and torn tails are reported in the `Report`, not as
    /// errors; `Err` is an I/O error (a file that cannot be read).
    pub fn run(&self, opts: &Options, mut visit: impl FnMut(Event<'_>) -> ControlFlow<()>) -> Result<Report> {
        let mut report = Report { temp_files: self.temp_files.clone(), complete: true, ..Report::default() };
        // Whole segments below `from_seq`: the next one starts at or before it.
        // A segment named 0 is damage (no header can say so): never skipped.
        let skip = self.segments.windows(2).take_while(|w| w[0].first_seq > 0 && w[1].first_seq <= opts.from_seq).count();
        report.skipped_segments = skip;
        // The first sequence number the next segment must start with.
        let mut expected_first: Option<u64> = None;
        for (index, file) in self.segments.iter().enumerate().skip(skip) {
            let last = index + 1 == self.segments.len();
            let in_log = report.corruption.is_empty();
            report.file_bytes += file.size;
            if visit(Event::SegmentStart { index, file }).is_break() {
                report.complete = false;
                break;
            }
            let (seg_report, stopped) = self.check_segment(file, last, in_log, &mut expected_first, opts, &mut report, &mut visit)?;
            let stop = visit(Event::SegmentEnd { index, report: &seg_report }).is_break() || stopped;
            report.segments.push(seg_report);
            if stop {
                report.complete = false;
                break;
            }
        }
        Ok(report)
    }

    /// Checks one segment; returns its report and whether the visitor
    /// stopped the run.
    #[allow(clippy::too_many_arguments)]
    fn check_segment(
        &self,
        file: &SegmentFile,
        last: bool,
        in_log: bool,
        expected_first: &mut Option<u64>,
        opts: &Options,
        report: &mut Report,
        visit: &mut impl FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<(SegmentReport, bool)> {
        let mut seg_report = SegmentReport {
            path: file.path.clone(),
            first_seq: file.first_seq,
            file_size: file.size,
            entries: 0,
            payload_bytes: 0,
            used_bytes: 0,
            end: SegmentEnd::Corrupt,
            in_log,
        };
        let corrupt = |report: &mut Report, offset: u64, e: Error| {
            report.corruption.push(Corruption { path: file.path.clone(), offset, message: e.to_string() })
        };
        let seg = match Segment::open(&self.rt, &file.path, file.first_seq, false) {
            Ok(seg) => seg,
            Err(e) if e.errno() == libc::EBADMSG => {
                corrupt(report, 0, e);
                *expected_first = None;
                return Ok((seg_report, false));
            }
            Err(e) => return Err(e),
        };
        if let Some(want) = expected_first.filter(|&want| want != seg.first_seq) {
            corrupt(report, 0, recovery::missing_segment(&seg, want));
        }
        let in_log = in_log && report.corruption.is_empty();
        seg_report.in_log = in_log;

        // Entries are shown once their atomic unit is complete.
        let mut pending: Vec<Pending> = Vec::new();
        let mut stopped = false;
        let from_seq = opts.from_seq;
        let mut shown = |report: &mut Report, seg_report: &mut SegmentReport, p: &Pending| -> ControlFlow<()> {
            seg_report.entries += 1;
            seg_report.payload_bytes += p.len as u64;
            if !in_log {
                return ControlFlow::Continue(());
            }
            report.entries += 1;
            report.payload_bytes += p.len as u64;
            report.first_seq.get_or_insert(p.seq);
            report.last_seq = Some(p.seq);
            if p.seq < from_seq {
                return ControlFlow::Continue(());
            }
            visit(Event::Entry(p.entry(&file.path)))
        };
        let (scan, mut cursor) = recovery::scan_with(&seg, file.size, &mut |offset, header, payload| {
            pending.push(Pending::new(offset, header, payload, opts.payloads && in_log && header.seq >= from_seq));
            if header.batch_cont() {
                return ControlFlow::Continue(());
            }
            for p in pending.drain(..) {
                // Nothing more is shown once the visitor said stop.
                if !stopped && shown(report, &mut seg_report, &p).is_break() {
                    stopped = true;
                }
            }
            if stopped {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        seg_report.used_bytes = scan.committed_end;
        *expected_first = None;
        seg_report.end = match scan.stop {
            Stop::Interrupted { .. } => SegmentEnd::Unfinished,
            // The visitor stopped at the last entry before the seal or end.
            _ if stopped => SegmentEnd::Unfinished,
            Stop::Sealed { at } => {
                seg_report.used_bytes = at + format::SEAL_SIZE;
                *expected_first = Some(scan.next_seq);
                if let Some(e) = recovery::seal_beyond_max(&file.path, at, scan.next_seq).filter(|_| last) {
                    corrupt(report, at, e);
                }
                SegmentEnd::Sealed { next_seq: scan.next_seq }
            }
            _ if !last => {
                corrupt(report, scan.stop.at(), recovery::unsealed(&seg, &scan));
                SegmentEnd::Corrupt
            }
            _ => match recovery::judge_tail(&seg, &scan, &mut cursor, opts.mode)? {
                Tail::Clean { .. } => SegmentEnd::Open,
                Tail::Corrupt(e) => {
                    corrupt(report, scan.stop.at(), e);
                    SegmentEnd::Corrupt
                }
                Tail::Torn { at, end, why } => {
                    report.torn_tail = Some(TornTail {
                        path: file.path.clone(),
                        offset: at,
                        bytes: end - at,
                        entries: pending.len() as u64,
                        reason: why,
                    });
                    SegmentEnd::TornTail
                }
            },
        };
        Ok((seg_report, stopped))
    }
}

/// `Inspector::open` then `run` with `opts`.
pub fn scan(rt: &Runtime, dir: impl AsRef<Path>, opts: &Options, visit: impl FnMut(Event<'_>) -> ControlFlow<()>) -> Result<Report> {
    Inspector::open(rt, dir)?.run(opts, visit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{Wal, WalConfig};

    fn log(dir: &Path, n: u64) -> Runtime {
        let rt = Runtime::new(&Default::default()).unwrap();
        let wal = Wal::open(&rt, dir, WalConfig { segment_size: 4096, ..Default::default() }).unwrap();
        for i in 1..=n {
            wal.append(format!("entry {i}").as_bytes()).unwrap();
        }
        wal.close().unwrap();
        rt
    }

    #[test]
    fn shows_every_entry_in_order_and_sums_up() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = log(tmp.path(), 200);
        let inspector = Inspector::open(&rt, tmp.path()).unwrap();
        assert!(inspector.segments().len() > 2);
        let mut seen = Vec::new();
        let mut starts = 0;
        let report = inspector
            .run(&Options::default(), |e| {
                match e {
                    Event::SegmentStart { .. } => starts += 1,
                    Event::Entry(e) => {
                        assert_eq!(e.payload, format!("entry {}", e.seq).as_bytes());
                        assert_eq!(e.len as usize, e.payload.len());
                        seen.push(e.seq);
                    }
                    Event::SegmentEnd { .. } => {}
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(seen, (1..=200).collect::<Vec<_>>());
        assert_eq!(starts, inspector.segments().len());
        assert_eq!((report.entries, report.first_seq, report.last_seq), (200, Some(1), Some(200)));
        assert!(report.complete && !report.is_corrupt() && report.torn_tail.is_none());
        let ends: Vec<SegmentEnd> = report.segments.iter().map(|s| s.end).collect();
        assert!(matches!(ends.last(), Some(SegmentEnd::Open)));
        assert!(ends[..ends.len() - 1].iter().all(|e| matches!(e, SegmentEnd::Sealed { .. })));
    }

    #[test]
    fn from_seq_skips_segments_and_break_stops() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = log(tmp.path(), 200);
        let opts = Options { from_seq: 150, payloads: false, ..Options::default() };
        let mut seen = Vec::new();
        let report = scan(&rt, tmp.path(), &opts, |e| {
            if let Event::Entry(e) = e {
                assert!(e.payload.is_empty());
                seen.push(e.seq);
                if seen.len() == 10 {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, (150..160).collect::<Vec<_>>());
        assert!(report.skipped_segments > 0);
        assert!(!report.complete);
    }

    #[test]
    fn reports_a_torn_tail_without_cutting_it() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = log(tmp.path(), 3);
        let seg = tmp.path().join(format::segment_name(1));
        // Records of "entry N" (7 bytes) take 40 bytes: the third starts at 64 + 80.
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(64 + 80 + 10).unwrap();
        let before = std::fs::read(&seg).unwrap();
        let report = scan(&rt, tmp.path(), &Options::default(), |_| ControlFlow::Continue(())).unwrap();
        let tail = report.torn_tail.clone().expect("a torn tail");
        assert_eq!((tail.path, tail.offset), (seg.clone(), 144));
        assert!(tail.bytes > 0 && tail.bytes <= 10);
        assert_eq!(report.last_seq, Some(2));
        assert!(!report.is_corrupt());
        assert_eq!(std::fs::read(&seg).unwrap(), before, "inspection changed the file");
        let strict = Options { mode: RecoveryMode::Strict, ..Options::default() };
        let report = scan(&rt, tmp.path(), &strict, |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(report.corruption.len(), 1);
        assert_eq!(report.corruption[0].offset, 144);
    }
}
