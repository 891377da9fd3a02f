//! Fuzzing of WAL recovery, readers and inspection on stable Rust (no
//! cargo-fuzz): a deterministic generator, seeded per case, builds log
//! directories and every case is checked against an independent reference
//! reader written from docs/wal-format.md ("Reading a log"), which decides
//! what the log is: its entries, its next sequence number, the torn tail
//! cut off, or the file and offset of the corruption.
//!
//! Two families of inputs, each on both engine backends (alternating):
//!
//! - `arbitrary_segment_bytes`: directories of one or more files named like
//!   segments holding (a) random bytes, (b) a valid segment header then
//!   random bytes, (c) valid headers and records with random lengths, CRCs,
//!   kinds, flags, sequence numbers, seals, zero gaps, garbage, records of
//!   another salt, huge lengths (sometimes over a sparse file, so a length
//!   up to the 64 MiB maximum really fits), truncated ends;
//! - `valid_logs_with_corruptions`: logs written by `rio::Wal` (known
//!   entries, atomic batches, small segments, truncation), then damaged:
//!   bit flips, overwritten bytes, truncation, zeroed ranges, duplicated,
//!   removed or swapped segment files, stale bytes of another log.
//!
//! Each input goes through `inspect` (both recovery modes, read-only: the
//! files must not change) and `Wal::open` (strict, then tolerate-tail on a
//! fresh copy), then readers. Properties:
//!
//! - no panic;
//! - every error is `EBADMSG` (the directory exists and the configuration
//!   is valid, so any other errno would be a mapping bug), and it names the
//!   segment file and the offset the reference reader finds;
//! - open succeeds exactly when the reference reader accepts the log, and
//!   readers then return exactly the reference's entries (contiguous
//!   sequence numbers, whole atomic batches), `last_seq` is the reference's,
//!   a reader started at a random `from_seq` returns the matching suffix;
//! - on written logs, independently of the reference: every entry returned
//!   was appended (same seq, same bytes), seqs are contiguous from the
//!   first, and atomic batches are all-or-nothing;
//! - `inspect` reports the same entries, the same torn tail (offset and
//!   bytes) and the same first corruption (file and offset);
//! - bounded memory: a counting global allocator tracks, per thread, the
//!   largest single allocation and the peak of live bytes during each
//!   library call. A corrupt length never allocates more than the bytes
//!   left in the file (or 64 MiB, `MAX_ENTRY`): the largest allocation stays
//!   within 2 × max(256 KiB read window, largest file) + slack, and always
//!   under 2 × MAX_ENTRY + 1 MiB;
//! - after a successful tolerate-tail open, appends (single and batch) and
//!   a random `truncate_before` work and the log reopens in strict mode
//!   with every entry kept; `*.wal.tmp` files are gone, other files intact.
//!
//! `RIO_FUZZ_CASES` sets the cases per test (default: a short mode of a few
//! seconds); `RIO_FUZZ_CASE=n` replays case n alone (printed on failure);
//! `RIO_FUZZ_DIR` chooses where case directories go (default /dev/shm when
//! it exists: opening a log fsyncs, tmpfs keeps that cheap).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{pattern, runtime, BACKENDS};
use rio::wal::inspect::{self, Event, Options};
use rio::{RecoveryMode, Runtime, Wal, WalConfig};

// ---------------------------------------------------------------------------
// Allocation tracking

/// Counts, per thread, live bytes, their peak and the largest single
/// allocation. Thread-local, so tests running in parallel do not disturb
/// each other; the library allocates its read window on the calling thread.
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + size as i64;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
    let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
}

fn on_free(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - size as i64));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        on_free(layout.size());
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            on_free(layout.size());
            on_alloc(new_size);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MAX_ENTRY: u64 = rio::wal::MAX_ENTRY as u64;
/// The largest first_seq a segment header may say (docs/wal-format.md).
const MAX_SEQ: u64 = (1 << 63) - 1;
/// The library's read window (src/wal/cursor.rs `CHUNK`).
const WINDOW: u64 = 256 << 10;
const SLACK: u64 = 1 << 20;

/// What a stretch of library calls allocated on this thread.
struct AllocWindow {
    base: i64,
}

impl AllocWindow {
    fn start() -> AllocWindow {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        LARGEST.with(|m| m.set(0));
        AllocWindow { base }
    }

    /// Asserts the bounds; `largest_file` is the largest segment file's size.
    fn check(self, largest_file: u64, what: &str) {
        let peak = (PEAK.with(Cell::get) - self.base).max(0) as u64;
        let largest = LARGEST.with(Cell::get) as u64;
        if replay_case().is_some() {
            eprintln!("{what}: largest allocation {largest} bytes, peak {peak} live bytes (largest file {largest_file})");
        }
        // A record is read whole into one window that grows only to fit it,
        // and never beyond the bytes left in the file (Vec growth may double).
        let single = 2 * WINDOW.max(largest_file.min(MAX_ENTRY + 32)) + SLACK;
        assert!(largest <= single, "{what}: one allocation of {largest} bytes (bound {single})");
        assert!(largest <= 2 * MAX_ENTRY + SLACK, "{what}: one allocation of {largest} bytes");
        // Live bytes: the window, plus copies of entries the caller was shown.
        let live = single + 2 * largest_file.min(MAX_ENTRY) + SLACK;
        assert!(peak <= live, "{what}: {peak} live bytes at the peak (bound {live})");
    }
}

// ---------------------------------------------------------------------------
// Deterministic generator

struct Rng(u64);

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------------------
// Inputs

/// A file of a case directory: `data`, then `sparse` zero bytes written as
/// a hole (so a length field up to 64 MiB can really fit in the file).
#[derive(Clone, Debug)]
struct FileSpec {
    name: String,
    data: Vec<u8>,
    sparse: u64,
}

impl FileSpec {
    fn new(name: String, data: Vec<u8>) -> FileSpec {
        FileSpec { name, data, sparse: 0 }
    }
    fn size(&self) -> u64 {
        self.data.len() as u64 + self.sparse
    }
    /// The whole content (the hole as zeros).
    fn content(&self) -> std::borrow::Cow<'_, [u8]> {
        if self.sparse == 0 {
            std::borrow::Cow::Borrowed(&self.data)
        } else {
            let mut all = self.data.clone();
            all.resize(self.size() as usize, 0);
            std::borrow::Cow::Owned(all)
        }
    }
}

fn seg_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

fn reset_dir(dir: &Path) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
}

fn write_files(dir: &Path, files: &[FileSpec]) {
    reset_dir(dir);
    for f in files {
        let path = dir.join(&f.name);
        std::fs::write(&path, &f.data).unwrap();
        if f.sparse > 0 {
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(f.size()).unwrap();
        }
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn header_bytes(first_seq: u64, salt: u64, prealloc: u64) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[0..8].copy_from_slice(b"RIOWALSG");
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    b[12..16].copy_from_slice(&64u32.to_le_bytes());
    b[16..24].copy_from_slice(&first_seq.to_le_bytes());
    b[24..32].copy_from_slice(&salt.to_le_bytes());
    b[32..40].copy_from_slice(&prealloc.to_le_bytes());
    let crc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

fn record_crc(header: &[u8], payload: &[u8], salt: u64) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c(payload), &header[4..32]), &salt.to_le_bytes())
}

/// A record header's fields, as the generator sets them (any values).
#[derive(Clone, Copy)]
struct Rec {
    kind: u8,
    flags: u8,
    len: u32,
    seq: u64,
    durable: u64,
    reserved: [u8; 6],
}

/// The record's bytes: header, `payload`, zero padding to 8 (optionally
/// non-zero padding). `crc_ok`: CRC over `payload` under `salt`, else random.
fn record_bytes(r: Rec, payload: &[u8], salt: u64, crc_ok: bool, rng: &mut Rng) -> Vec<u8> {
    let mut h = vec![0u8; 32];
    h[4..8].copy_from_slice(&r.len.to_le_bytes());
    h[8..16].copy_from_slice(&r.seq.to_le_bytes());
    h[16..24].copy_from_slice(&r.durable.to_le_bytes());
    h[24] = r.kind;
    h[25] = r.flags;
    h[26..32].copy_from_slice(&r.reserved);
    let crc = if crc_ok { record_crc(&h, payload, salt) } else { rng.next() as u32 };
    h[0..4].copy_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(payload);
    let pad = h.len().next_multiple_of(8) - h.len();
    if rng.chance(5) {
        h.extend(rng.bytes(pad));
    } else {
        h.resize(h.len() + pad, 0);
    }
    h
}

/// A first sequence number: usually small, sometimes at the edges.
fn pick_seq(rng: &mut Rng) -> u64 {
    match rng.below(20) {
        0..=7 => 1,
        8..=13 => rng.range(1, 1000),
        14 => match rng.below(3) {
            0 => u64::MAX - rng.below(4),
            _ => MAX_SEQ - 2 + rng.below(4),
        },
        15 => rng.next(),
        16 => 0,
        _ => rng.range(1, 1 << 20),
    }
}

fn payload_len(rng: &mut Rng) -> usize {
    match rng.below(20) {
        0..=11 => rng.below(48) as usize,
        12..=18 => rng.below(400) as usize,
        _ => rng.range(400, 3000) as usize,
    }
}

/// A durable_seq: none known, just below, at or after the entry, random.
fn pick_durable(rng: &mut Rng, seq: u64) -> u64 {
    match rng.below(8) {
        0..=2 => 0,
        3 | 4 => seq.saturating_sub(1 + rng.below(3)),
        5 => seq,
        6 => seq.saturating_add(rng.below(3)),
        _ => rng.next(),
    }
}

/// A segment of valid-looking records with random defects mixed in, at a
/// rate chosen per segment (none, a few, many). Returns its bytes and the
/// sequence number its seal names (or would).
fn structured_segment(rng: &mut Rng, first_seq: u64, salt: u64, other_salt: u64, last: bool, clean: bool) -> (Vec<u8>, u64) {
    let prealloc = 4096 * rng.range(1, 3);
    let mut b = header_bytes(first_seq, salt, prealloc);
    let mut expected = first_seq;
    let defect_rate = if clean { [0, 0, 1][rng.below(3) as usize] } else { [0, 0, 3, 3, 10, 40][rng.below(6) as usize] };
    let records = rng.below(if defect_rate == 0 { 30 } else { 14 });
    let mut sealed = false;
    let valid = |seq, flags, len: usize, durable| Rec { kind: 1, flags, len: len as u32, seq, durable, reserved: [0; 6] };
    for _ in 0..records {
        if !rng.chance(defect_rate) {
            if rng.chance(92) {
                // An entry in sequence; a batch continues 30% of the time.
                let len = payload_len(rng);
                let payload = rng.bytes(len);
                let cont = rng.chance(30);
                let r = valid(expected, u8::from(cont), len, pick_durable(rng, expected));
                b.extend(record_bytes(r, &payload, salt, true, rng));
                expected = expected.wrapping_add(1);
            } else {
                // A seal naming the next entry; usually the segment ends there.
                let r = Rec { kind: 2, flags: 0, len: 0, seq: expected, durable: pick_durable(rng, expected), reserved: [0; 6] };
                b.extend(record_bytes(r, &[], salt, true, rng));
                if rng.chance(80) {
                    sealed = true;
                    break;
                }
            }
            continue;
        }
        match rng.below(8) {
            // An entry out of sequence or failing its CRC.
            0 => {
                let len = payload_len(rng);
                let payload = rng.bytes(len);
                let seq_ok = rng.chance(50);
                let seq = if seq_ok { expected } else { expected.wrapping_add(rng.below(5)).wrapping_sub(2) };
                let r = valid(seq, u8::from(rng.chance(30)), len, pick_durable(rng, seq));
                b.extend(record_bytes(r, &payload, salt, !seq_ok, rng));
            }
            // A seal naming another seq, or inside a batch.
            1 => {
                let seq = rng.next() % expected.wrapping_add(3).max(1);
                let r = Rec { kind: 2, flags: 0, len: 0, seq, durable: pick_durable(rng, expected), reserved: [0; 6] };
                b.extend(record_bytes(r, &[], salt, rng.chance(90), rng));
            }
            // Garbage, sometimes of a length that breaks the alignment.
            2 => {
                let n = rng.range(1, 48) as usize;
                b.extend(rng.bytes(n));
            }
            // Zero bytes, as if nothing was written there.
            3 => {
                let n = 8 * rng.range(1, 8) as usize;
                b.resize(b.len() + n, 0);
            }
            // A header with one field out of range.
            4 | 5 => {
                let len = payload_len(rng);
                let payload = rng.bytes(len);
                let mut r = valid(expected, 0, len, 0);
                match rng.below(6) {
                    0 => r.kind = [0, 3, 255, rng.next() as u8][rng.below(4) as usize],
                    1 => r.flags = rng.range(2, 256) as u8,
                    2 => r.reserved[rng.below(6) as usize] = rng.range(1, 256) as u8,
                    3 => {
                        r.len = [u32::MAX, MAX_ENTRY as u32, MAX_ENTRY as u32 + 1, rng.next() as u32, len as u32 + 8][rng.below(5) as usize]
                    }
                    4 => {
                        r.kind = 2;
                        r.len = rng.range(1, 64) as u32;
                    }
                    _ => {
                        r.kind = 2;
                        r.flags = 1;
                    }
                }
                b.extend(record_bytes(r, &payload, salt, rng.chance(80), rng));
            }
            // A valid record of another segment (another salt): stale bytes.
            _ => {
                let len = payload_len(rng);
                let payload = rng.bytes(len);
                let r = valid(expected, u8::from(rng.chance(20)), len, pick_durable(rng, expected));
                b.extend(record_bytes(r, &payload, other_salt, true, rng));
            }
        }
    }
    // Segments before the last one mostly end with their seal.
    if !last && !sealed && rng.chance(80) {
        let r = Rec { kind: 2, flags: 0, len: 0, seq: expected, durable: pick_durable(rng, expected), reserved: [0; 6] };
        b.extend(record_bytes(r, &[], salt, true, rng));
    }
    // How the file ends: preallocated zeros, right there, garbage, or cut.
    match rng.below(if last { 6 } else { 3 }) {
        0 | 1 => {
            let to = (prealloc as usize).max(b.len());
            b.resize(to, 0);
        }
        2 => {}
        3 => {
            let n = rng.range(1, 64) as usize;
            b.extend(rng.bytes(n));
        }
        _ => {
            let cut = rng.below((b.len() as u64 - 63).min(200)) as usize;
            b.truncate(b.len() - cut);
        }
    }
    (b, expected)
}

/// A segment with a record whose length (up to MAX_ENTRY) really fits in
/// the file: the reader must read that much, but never more.
fn big_segment(rng: &mut Rng, first_seq: u64, salt: u64) -> FileSpec {
    let mut b = header_bytes(first_seq, salt, 4096);
    let len = match rng.below(3) {
        0 => MAX_ENTRY,
        1 => rng.range(1 << 20, MAX_ENTRY),
        _ => MAX_ENTRY + 1 + rng.below(1 << 20),
    };
    let r = Rec { kind: 1, flags: u8::from(rng.chance(30)), len: len as u32, seq: first_seq, durable: 0, reserved: [0; 6] };
    b.extend(record_bytes(r, &[], salt, true, rng));
    b.truncate(64 + 32);
    let sparse = len + rng.below(1 << 16);
    FileSpec { name: seg_name(first_seq), data: b, sparse }
}

/// A directory of files named like segments with arbitrary content.
fn arbitrary_files(rng: &mut Rng, big: bool) -> Vec<FileSpec> {
    let mut files = Vec::new();
    let segments = match rng.below(10) {
        0 => 0,
        1..=4 => 1,
        5..=7 => 2,
        _ => rng.range(3, 6),
    };
    let mut first = pick_seq(rng);
    let other_salt = rng.next() | 1;
    // Mostly clean logs: chained, well-named segments with few defects.
    let clean = rng.chance(25);
    for i in 0..segments {
        let salt = if rng.chance(3) && !clean { 0 } else { rng.next() | 1 };
        let (mut data, next) = match if clean { 19 } else { rng.below(20) } {
            // (a) random bytes, sometimes after the magic.
            0..=2 => {
                let n = rng.below(300) as usize;
                let mut d = if rng.chance(40) { b"RIOWALSG".to_vec() } else { Vec::new() };
                d.extend(rng.bytes(n));
                (d, rng.next())
            }
            // (b) a valid header, then random bytes (or zeros and random bytes).
            3..=6 => {
                let mut d = header_bytes(first, salt, 4096);
                let n = rng.below(400) as usize;
                if rng.chance(30) {
                    d.resize(d.len() + 8 * rng.below(8) as usize, 0);
                }
                d.extend(rng.bytes(n));
                (d, rng.next())
            }
            // (c) valid headers and records with random defects.
            _ => structured_segment(rng, first, salt, other_salt, i + 1 == segments, clean),
        };
        // Sometimes a damaged header field (with or without a fixed CRC).
        if data.len() >= 64 && rng.chance(4) && !clean {
            let at = rng.below(60) as usize;
            data[at] ^= 1 << rng.below(8);
            if rng.chance(50) {
                let crc = crc32c::crc32c(&data[..60]);
                data[60..64].copy_from_slice(&crc.to_le_bytes());
            }
        }
        let name_seq = if rng.chance(90) || clean { first } else { pick_seq(rng) };
        let name = seg_name(name_seq);
        if !files.iter().any(|f: &FileSpec| f.name == name) {
            files.push(FileSpec::new(name, data));
        }
        first = if rng.chance(85) || clean { next } else { pick_seq(rng) };
    }
    if big {
        let seq = if rng.chance(50) { first } else { pick_seq(rng).max(1) };
        let salt = rng.next() | 1;
        let spec = big_segment(rng, seq, salt);
        files.retain(|f| f.name != spec.name);
        files.push(spec);
    }
    // Files that are not segments: left alone (or, .wal.tmp, deleted by open).
    if rng.chance(5) {
        files.push(FileSpec::new(format!("{}.tmp", seg_name(pick_seq(rng))), rng.bytes(100)));
    }
    if rng.chance(5) {
        files.push(FileSpec::new("notes.txt".into(), rng.bytes(50)));
    }
    if rng.chance(3) {
        // Not a sequence number (21 digits, or above u64::MAX): ignored.
        let name = if rng.chance(50) { "000000000000000000001.wal".to_string() } else { "99999999999999999999.wal".to_string() };
        files.push(FileSpec::new(name, header_bytes(1, 1, 4096)));
    }
    files
}

// ---------------------------------------------------------------------------
// Reference reader, from docs/wal-format.md only

fn parse_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The header's (first_seq, salt) if it verifies and matches the name.
fn ref_header(b: &[u8], name_seq: u64) -> Option<(u64, u64)> {
    if b.len() < 64 || &b[0..8] != b"RIOWALSG" || le32(b, 60) != crc32c::crc32c(&b[..60]) {
        return None;
    }
    if le32(b, 8) != 1 || le32(b, 12) != 64 {
        return None;
    }
    let (first, salt) = (le64(b, 16), le64(b, 24));
    // 1 <= first_seq <= 2^63 - 1: sequence numbers never overflow.
    (first != 0 && first <= MAX_SEQ && salt != 0 && first == name_seq).then_some((first, salt))
}

#[derive(Clone, Copy)]
struct RefRecord {
    len: u64,
    seq: u64,
    durable: u64,
    kind: u8,
    cont: bool,
}

/// The valid record at `at` (step 2 of "Reading a log"), if any.
fn ref_record(b: &[u8], at: u64, salt: u64) -> Option<RefRecord> {
    let size = b.len() as u64;
    if at + 32 > size {
        return None;
    }
    let h = &b[at as usize..at as usize + 32];
    if h.iter().all(|&x| x == 0) {
        return None;
    }
    let (len, kind, flags) = (le32(h, 4) as u64, h[24], h[25]);
    let ok = match kind {
        1 => len <= MAX_ENTRY && flags & !1 == 0,
        2 => len == 0 && flags == 0,
        _ => false,
    };
    if !ok || h[26..32].iter().any(|&x| x != 0) || len > size - at - 32 {
        return None;
    }
    let payload = &b[(at + 32) as usize..(at + 32 + len) as usize];
    if le32(h, 0) != record_crc(h, payload, salt) {
        return None;
    }
    Some(RefRecord { len, seq: le64(h, 8), durable: le64(h, 16), kind, cont: flags & 1 != 0 })
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RefEnd {
    /// The log opens; a torn tail (file, cut offset, non-zero bytes cut) may be cut.
    Open { next_seq: u64, torn: Option<(String, u64, u64)> },
    /// EBADMSG naming this file and offset.
    Corrupt { name: String, offset: u64 },
}

#[derive(Clone, Debug)]
struct RefLog {
    /// Entries of complete units up to the end of the log, or up to the
    /// corruption (what `inspect` shows).
    entries: Vec<(u64, Vec<u8>)>,
    end: RefEnd,
}

fn reference(files: &[FileSpec], mode: RecoveryMode) -> RefLog {
    let mut segs: Vec<(u64, &FileSpec)> = files.iter().filter_map(|f| parse_name(&f.name).map(|s| (s, f))).collect();
    segs.sort_by_key(|(s, _)| *s);
    let mut entries = Vec::new();
    let mut expected_first: Option<u64> = None;
    let mut last_seal: Option<(&str, u64)> = None;
    let corrupt = |entries, name: &str, offset| RefLog { entries, end: RefEnd::Corrupt { name: name.to_string(), offset } };
    for (i, (name_seq, f)) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let content = f.content();
        let b: &[u8] = &content;
        let size = b.len() as u64;
        let Some((first, salt)) = ref_header(b, *name_seq) else { return corrupt(entries, &f.name, 0) };
        if expected_first.is_some_and(|want| want != first) {
            return corrupt(entries, &f.name, 0);
        }
        // Records from 64: entries in sequence, delivered per complete unit.
        let mut at = 64u64;
        let mut expected = first;
        let mut committed = (64u64, first);
        let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut sealed = false;
        loop {
            if at >= size {
                break;
            }
            let Some(r) = ref_record(b, at, salt) else { break };
            if r.kind == 1 && r.seq == expected {
                batch.push((r.seq, b[(at + 32) as usize..(at + 32 + r.len) as usize].to_vec()));
                expected += 1;
                at += (32 + r.len).next_multiple_of(8);
                if !r.cont {
                    committed = (at, expected);
                    entries.append(&mut batch);
                }
            } else if r.kind == 2 && r.seq == expected && batch.is_empty() {
                sealed = true;
                break;
            } else {
                break;
            }
        }
        if sealed {
            expected_first = Some(expected);
            last_seal = Some((&f.name, at));
            continue;
        }
        if !last {
            return corrupt(entries, &f.name, at);
        }
        // The newest segment: a clean end, a torn tail, or corruption.
        let (committed_end, next_seq) = committed;
        let nonzero_end = b.iter().rposition(|&x| x != 0).map(|i| i as u64 + 1).filter(|&e| e > committed_end);
        if committed_end == at && nonzero_end.is_none() {
            return RefLog { entries, end: RefEnd::Open { next_seq, torn: None } };
        }
        if mode == RecoveryMode::Strict {
            return corrupt(entries, &f.name, at);
        }
        // A valid record (at any 8-aligned offset from where the log stops)
        // saying an entry being cut was durable: damage, not a torn write.
        let mut probe = at;
        while probe + 32 <= size {
            if ref_record(b, probe, salt).is_some_and(|r| r.durable >= next_seq) {
                return corrupt(entries, &f.name, at);
            }
            probe += 8;
        }
        let end = nonzero_end.unwrap_or(at).max(at);
        let torn = Some((f.name.clone(), committed_end, end - committed_end));
        return RefLog { entries, end: RefEnd::Open { next_seq, torn } };
    }
    // A seal naming a next segment beyond the largest first_seq: recovery
    // refuses to create a segment no reader could open.
    if let (Some(next), Some((name, at))) = (expected_first, last_seal) {
        if next > MAX_SEQ {
            return corrupt(entries, name, at);
        }
    }
    RefLog { entries, end: RefEnd::Open { next_seq: expected_first.unwrap_or(1), torn: None } }
}

// ---------------------------------------------------------------------------
// Checks

fn config(mode: RecoveryMode) -> WalConfig {
    WalConfig { segment_size: 4096, recovery_mode: mode, ..Default::default() }
}

fn mode_name(mode: RecoveryMode) -> &'static str {
    match mode {
        RecoveryMode::Strict => "strict",
        RecoveryMode::TolerateTail => "tolerate-tail",
    }
}

fn largest_file(files: &[FileSpec]) -> u64 {
    files.iter().map(FileSpec::size).max().unwrap_or(0)
}

fn describe_entries(e: &[(u64, Vec<u8>)]) -> String {
    match (e.first(), e.last()) {
        (Some(a), Some(b)) => format!("{} entries, seqs {}..={}", e.len(), a.0, b.0),
        _ => "no entries".into(),
    }
}

/// `inspect` in `mode` reports what the reference reader finds, and changes nothing.
fn check_inspect(rt: &Runtime, dir: &Path, files: &[FileSpec], want: &RefLog, mode: RecoveryMode, rng: &mut Rng) {
    let what = format!("inspect ({})", mode_name(mode));
    // from_seq 0 and 1 both read everything.
    let opts = Options { from_seq: rng.below(2), payloads: true, mode };
    let mut shown = Vec::new();
    let window = AllocWindow::start();
    let report = inspect::scan(rt, dir, &opts, |event| {
        if let Event::Entry(e) = event {
            assert_eq!(e.len as usize, e.payload.len(), "{what}: entry {} length", e.seq);
            shown.push((e.seq, e.payload.to_vec()));
        }
        ControlFlow::Continue(())
    });
    window.check(largest_file(files), &what);
    let report = report.unwrap_or_else(|e| panic!("{what}: failed: {} (errno {})", e.message(), e.errno()));
    assert!(report.complete, "{what}: incomplete");
    assert!(shown == want.entries, "{what}: showed {}, the reference reads {}", describe_entries(&shown), describe_entries(&want.entries));
    assert_eq!(report.entries, want.entries.len() as u64, "{what}: entry count");
    assert_eq!(report.last_seq, want.entries.last().map(|e| e.0), "{what}: last seq");
    match &want.end {
        RefEnd::Corrupt { name, offset } => {
            let first = report.corruption.first().unwrap_or_else(|| panic!("{what}: no corruption reported; the reference finds it in {name} at offset {offset}"));
            assert_eq!((first.path.clone(), first.offset), (dir.join(name), *offset), "{what}: first corruption: {}", first.message);
            assert!(first.message.contains(&format!("{}: offset {offset}", dir.join(name).display())), "{what}: {}", first.message);
        }
        RefEnd::Open { torn, .. } => {
            assert!(report.corruption.is_empty(), "{what}: corruption reported, the reference opens the log: {:?}", report.corruption);
            let got = report.torn_tail.as_ref().map(|t| (t.path.clone(), t.offset, t.bytes));
            let want_torn = torn.as_ref().map(|(n, at, bytes)| (dir.join(n), *at, *bytes));
            assert_eq!(got, want_torn, "{what}: torn tail");
        }
    }
    // Read-only: the files are as written.
    for f in files.iter().filter(|f| f.sparse == 0) {
        let now = std::fs::read(dir.join(&f.name)).unwrap();
        assert!(now == f.data, "{what} changed {}", f.name);
    }
}

/// Every entry from `reader(from)` on.
fn read_all(wal: &Wal, from: u64, what: &str) -> Vec<(u64, Vec<u8>)> {
    let mut reader = wal.reader(from).unwrap_or_else(|e| panic!("{what}: reader({from}): {}", e.message()));
    let mut out = Vec::new();
    loop {
        match reader.next() {
            Ok(Some((seq, data))) => out.push((seq, data.to_vec())),
            Ok(None) => return out,
            Err(e) => panic!("{what}: reader({from}) after {}: {} (errno {})", describe_entries(&out), e.message(), e.errno()),
        }
    }
}

/// Opens the log in `mode`: it must open exactly when the reference says,
/// with the reference's entries, or fail with EBADMSG naming its file and
/// offset. Returns the entries read when it opened.
fn check_open(
    rt: &Runtime,
    dir: &Path,
    files: &[FileSpec],
    want: &RefLog,
    mode: RecoveryMode,
    rng: &mut Rng,
    post_ops: bool,
) -> Option<Vec<(u64, Vec<u8>)>> {
    let what = format!("Wal::open ({})", mode_name(mode));
    let window = AllocWindow::start();
    let opened = Wal::open(rt, dir, config(mode));
    let read = opened.as_ref().ok().map(|wal| read_all(wal, 0, &what));
    window.check(largest_file(files), &what);
    let result = match (opened, &want.end) {
        (Err(e), RefEnd::Corrupt { name, offset }) => {
            assert_eq!(e.errno(), libc::EBADMSG, "{what}: errno {}: {}", e.errno(), e.message());
            let place = format!("{}: offset {offset}:", dir.join(name).display());
            assert!(e.message().contains(&place), "{what}: the error does not name {place:?}: {}", e.message());
            None
        }
        (Err(e), RefEnd::Open { .. }) => {
            panic!("{what} failed (errno {}): {}; the reference reads {}", e.errno(), e.message(), describe_entries(&want.entries))
        }
        (Ok(wal), RefEnd::Corrupt { name, offset }) => {
            let got = read.unwrap();
            panic!(
                "{what} succeeded with {} (last_seq {}); the reference finds corruption in {name} at offset {offset}",
                describe_entries(&got),
                wal.last_seq()
            )
        }
        (Ok(wal), RefEnd::Open { next_seq, torn }) => {
            let got = read.unwrap();
            assert!(got == want.entries, "{what}: read {}, the reference reads {}", describe_entries(&got), describe_entries(&want.entries));
            assert_eq!(wal.last_seq(), next_seq.wrapping_sub(1), "{what}: last_seq");
            let cut = wal.metrics().tail_bytes_cut.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(cut, torn.as_ref().map_or(0, |t| t.2), "{what}: tail bytes cut");
            // A reader from anywhere returns the matching suffix.
            let from = match (got.first(), rng.below(3)) {
                (Some(first), 0) => first.0 + rng.below(got.len() as u64 + 2),
                _ => rng.below(4),
            };
            let suffix = read_all(&wal, from, &what);
            let start = got.iter().position(|e| e.0 >= from).unwrap_or(got.len());
            assert!(suffix == got[start..], "{what}: reader({from}) read {}", describe_entries(&suffix));
            // Appends beyond seq 2^63 - 1 are refused (EOVERFLOW).
            if post_ops && *next_seq < MAX_SEQ - 100 {
                post_open_ops(rt, dir, wal, &got, *next_seq, rng);
            } else {
                wal.close().unwrap();
            }
            Some(got)
        }
    };
    result
}

/// After recovery the log takes appends and truncation, and reopens
/// strictly (no tail, no damage) with every entry it should keep.
fn post_open_ops(rt: &Runtime, dir: &Path, wal: Wal, got: &[(u64, Vec<u8>)], next_seq: u64, rng: &mut Rng) {
    let mut all = got.to_vec();
    let n = payload_len(rng);
    let one = rng.bytes(n);
    assert_eq!(wal.append(&one).unwrap(), next_seq, "append after recovery");
    all.push((next_seq, one));
    let n = payload_len(rng);
    let (a, b) = (rng.bytes(n), rng.bytes(5000));
    assert_eq!(wal.append_batch(&[&a, &b]).unwrap(), next_seq + 1, "append_batch after recovery");
    all.push((next_seq + 1, a));
    all.push((next_seq + 2, b));
    let keep_from = if rng.chance(50) { rng.below(next_seq + 4) } else { 0 };
    wal.truncate_before(keep_from).unwrap_or_else(|e| panic!("truncate_before({keep_from}): {}", e.message()));
    wal.close().unwrap();
    let wal = Wal::open(rt, dir, config(RecoveryMode::Strict))
        .unwrap_or_else(|e| panic!("strict reopen after recovery, appends and truncate_before({keep_from}): {}", e.message()));
    assert_eq!(wal.last_seq(), next_seq + 2, "last_seq after reopen");
    let now = read_all(&wal, 0, "reopen");
    let start = now.first().map_or(all.len(), |f| all.iter().position(|e| e.0 == f.0).unwrap_or(usize::MAX));
    assert!(
        start <= all.len() && now == all[start..],
        "after truncate_before({keep_from}) and reopen: read {}, expected a suffix of {}",
        describe_entries(&now),
        describe_entries(&all)
    );
    let must_keep = all.iter().filter(|e| e.0 >= keep_from).count();
    assert!(now.len() >= must_keep, "truncate_before({keep_from}) removed entries at or above it: {}", describe_entries(&now));
    wal.close().unwrap();
}

/// What open must leave untouched or remove, besides the log.
fn check_other_files(dir: &Path, files: &[FileSpec]) {
    for f in files {
        let path = dir.join(&f.name);
        if f.name.ends_with(".wal.tmp") {
            assert!(!path.exists(), "open left {}", f.name);
        } else if parse_name(&f.name).is_none() {
            assert_eq!(std::fs::read(&path).unwrap(), f.data, "open changed {}", f.name);
        }
    }
}

/// The files of a case and their records as the reference reader sees
/// them (printed when a case is replayed alone).
fn dump_files(files: &[FileSpec]) -> String {
    let mut out = String::new();
    for f in files {
        let b = f.content();
        out += &format!("{} ({} bytes)", f.name, b.len());
        let Some(header) = parse_name(&f.name).and_then(|seq| ref_header(&b, seq)) else {
            out += &format!(": no valid header, starts {:02x?}\n", &b[..b.len().min(16)]);
            continue;
        };
        out += &format!(": first_seq {} salt {:#x}\n", header.0, header.1);
        let mut at = 64u64;
        while at + 32 <= b.len() as u64 {
            match ref_record(&b, at, header.1) {
                Some(r) => {
                    out += &format!("  @{at}: kind {} seq {} len {} durable {} cont {}\n", r.kind, r.seq, r.len, r.durable, r.cont);
                    at += (32 + r.len).next_multiple_of(8);
                }
                None if b[at as usize..].iter().all(|&x| x == 0) => break,
                None => {
                    out += &format!("  @{at}: invalid {:02x?}\n", &b[at as usize..at as usize + 32]);
                    break;
                }
            }
        }
    }
    out
}

/// One input through inspect, strict open, tolerate-tail open; returns the
/// entries the tolerate-tail open read (None: it failed).
fn check_case(rt: &Runtime, dir: &Path, files: &[FileSpec], rng: &mut Rng, stats: &mut Stats) -> Option<Vec<(u64, Vec<u8>)>> {
    let tolerate = reference(files, RecoveryMode::TolerateTail);
    let strict = reference(files, RecoveryMode::Strict);
    if replay_case().is_some() {
        eprintln!("{}reference (tolerate-tail): {:?}, {}", dump_files(files), tolerate.end, describe_entries(&tolerate.entries));
    }
    write_files(dir, files);
    check_inspect(rt, dir, files, &tolerate, RecoveryMode::TolerateTail, rng);
    check_inspect(rt, dir, files, &strict, RecoveryMode::Strict, rng);
    let strict_opened = check_open(rt, dir, files, &strict, RecoveryMode::Strict, rng, false).is_some();
    if strict_opened {
        write_files(dir, files);
    }
    let post_ops = rng.chance(25);
    let got = check_open(rt, dir, files, &tolerate, RecoveryMode::TolerateTail, rng, post_ops);
    check_other_files(dir, files);
    stats.count(&tolerate, strict_opened);
    got
}

#[derive(Default)]
struct Stats {
    opened: u64,
    opened_strict: u64,
    torn: u64,
    corrupt: u64,
    entries: u64,
}

impl Stats {
    fn count(&mut self, r: &RefLog, strict_opened: bool) {
        self.opened_strict += u64::from(strict_opened);
        match &r.end {
            RefEnd::Open { torn, .. } => {
                self.opened += 1;
                self.torn += u64::from(torn.is_some());
                self.entries += r.entries.len() as u64;
            }
            RefEnd::Corrupt { .. } => self.corrupt += 1,
        }
    }
}

// ---------------------------------------------------------------------------
// The driver

fn fuzz_dir() -> tempfile::TempDir {
    let base = std::env::var_os("RIO_FUZZ_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    });
    tempfile::Builder::new().prefix("rio-wal-fuzz").tempdir_in(base).unwrap()
}

fn case_count(default: u64) -> u64 {
    std::env::var("RIO_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `RIO_FUZZ_CASE=n`: run case n only (as printed when it failed).
fn replay_case() -> Option<u64> {
    std::env::var("RIO_FUZZ_CASE").ok().map(|v| v.parse().expect("RIO_FUZZ_CASE is a case number"))
}

/// Runs `case(index, seed, runtimes, stats)` for each case; case i runs on
/// backend i % 2 (`runtimes[i % 2]`). A failing case is named so it can be
/// replayed alone.
fn drive(test: &str, salt: u64, default_cases: u64, mut case: impl FnMut(u64, u64, &[Runtime], &mut Stats)) {
    let runtimes: Vec<Runtime> = BACKENDS.iter().map(|&b| runtime(b)).collect();
    let mut stats = Stats::default();
    let range = match replay_case() {
        Some(i) => i..i + 1,
        None => 0..case_count(default_cases),
    };
    let cases = range.end - range.start;
    let start = Instant::now();
    let mut last_report = Instant::now();
    for i in range {
        let seed = splitmix(salt ^ i);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(i, seed, &runtimes, &mut stats)));
        if let Err(e) = result {
            eprintln!(
                "{test}: case {i} failed on {:?}; replay it alone with RIO_FUZZ_CASE={i} cargo test --release --test wal_fuzz {test}",
                BACKENDS[(i % 2) as usize]
            );
            std::panic::resume_unwind(e);
        }
        if last_report.elapsed().as_secs() >= 60 {
            last_report = Instant::now();
            println!("{test}: {} of {cases} cases, {:.0} cases/s", i + 1, (i + 1) as f64 / start.elapsed().as_secs_f64());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{test}: {cases} cases (alternating {} backends) in {secs:.1} s ({:.0} cases/s): {} open in tolerate-tail mode \
         ({} in strict), {} with a torn tail cut, {} EBADMSG; {} entries read and matched",
        BACKENDS.len(),
        cases as f64 / secs,
        stats.opened,
        stats.opened_strict,
        stats.torn,
        stats.corrupt,
        stats.entries
    );
}

#[test]
fn arbitrary_segment_bytes() {
    let tmp = fuzz_dir();
    let dir = tmp.path().join("log");
    drive("arbitrary_segment_bytes", 0xA5B1_7A27, 3000, |i, seed, rts, stats| {
        let mut rng = Rng::new(seed);
        // Now and then a record whose huge length really fits (sparse file).
        let big = i % 499 == 7;
        let files = arbitrary_files(&mut rng, big);
        check_case(&rts[(i % 2) as usize], &dir, &files, &mut rng, stats);
    });
}

// ---------------------------------------------------------------------------
// Valid logs, then damage

/// A log written by the library, as files, with what was appended.
struct Written {
    files: Vec<FileSpec>,
    /// Every entry ever appended (truncated ones too): seq -> bytes.
    known: BTreeMap<u64, Vec<u8>>,
    /// Atomic units as (first seq, last seq).
    units: Vec<(u64, u64)>,
}

fn read_dir_files(dir: &Path) -> Vec<FileSpec> {
    let mut files: Vec<FileSpec> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            FileSpec::new(e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

fn write_log(rt: &Runtime, dir: &Path, rng: &mut Rng) -> Written {
    reset_dir(dir);
    let cfg = WalConfig {
        segment_size: 4096 * rng.range(1, 3),
        sync_after_batch: rng.chance(70),
        batch_size: rng.range(1, 300) as u32,
        ..Default::default()
    };
    let wal = Wal::open(rt, dir, cfg.clone()).unwrap();
    let mut known = BTreeMap::new();
    let mut units = Vec::new();
    let entry = |rng: &mut Rng| {
        let len = if rng.chance(3) { rng.range(4000, 9000) as usize } else { payload_len(rng) };
        pattern(len, rng.next())
    };
    for _ in 0..rng.range(5, 60) {
        if rng.chance(30) {
            let batch: Vec<Vec<u8>> = (0..rng.range(2, 6)).map(|_| entry(rng)).collect();
            let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let first = wal.append_batch(&slices).unwrap();
            units.push((first, first + batch.len() as u64 - 1));
            for (i, e) in batch.into_iter().enumerate() {
                known.insert(first + i as u64, e);
            }
        } else {
            let e = entry(rng);
            let seq = wal.append(&e).unwrap();
            units.push((seq, seq));
            known.insert(seq, e);
        }
        if !cfg.sync_after_batch && rng.chance(20) {
            wal.sync().unwrap();
        }
        if rng.chance(3) {
            let seq = rng.below(wal.last_seq() + 2);
            wal.truncate_before(seq).unwrap();
        }
    }
    wal.close().unwrap();
    Written { files: read_dir_files(dir), known, units }
}

/// An offset in the part of `f` that holds records (or just past it).
fn used_offset(rng: &mut Rng, f: &FileSpec) -> usize {
    let used = f.data.iter().rposition(|&b| b != 0).map_or(64, |i| i + 1);
    let span = (used + 64).min(f.data.len().max(1));
    if rng.chance(90) {
        rng.below(span as u64) as usize
    } else {
        rng.below(f.data.len().max(1) as u64) as usize
    }
}

/// Damage of one kind at a random place.
fn corrupt(rng: &mut Rng, files: &mut Vec<FileSpec>, other: &[FileSpec]) -> String {
    let segs: Vec<usize> = (0..files.len()).filter(|&i| parse_name(&files[i].name).is_some()).collect();
    if segs.is_empty() {
        return "nothing to damage".into();
    }
    // Half the time the newest segment, where torn tails and damage differ.
    let newest = *segs.iter().max_by_key(|&&k| parse_name(&files[k].name)).unwrap();
    let i = if rng.chance(50) { newest } else { segs[rng.below(segs.len() as u64) as usize] };
    let name = files[i].name.clone();
    let len = files[i].data.len();
    match rng.below(12) {
        11 => {
            // A torn write: everything after some offset reads as zeros.
            let at = used_offset(rng, &files[i]).min(len);
            files[i].data[at..].fill(0);
            return format!("{name}: zero from {at} on");
        }
        0 | 1 => {
            if len == 0 {
                return "empty".into();
            }
            let at = used_offset(rng, &files[i]).min(len - 1);
            let bit = rng.below(8);
            files[i].data[at] ^= 1 << bit;
            format!("{name}: bit {bit} of byte {at} flipped")
        }
        2 => {
            if len == 0 {
                return "empty".into();
            }
            let at = used_offset(rng, &files[i]).min(len - 1);
            let n = (rng.range(1, 17) as usize).min(len - at);
            let bytes = rng.bytes(n);
            files[i].data[at..at + n].copy_from_slice(&bytes);
            format!("{name}: {n} bytes at {at} overwritten")
        }
        3 | 4 => {
            let at = used_offset(rng, &files[i]).min(len);
            files[i].data.truncate(at);
            format!("{name}: truncated to {at} bytes")
        }
        5 => {
            if len == 0 {
                return "empty".into();
            }
            let at = used_offset(rng, &files[i]).min(len - 1);
            let n = (rng.range(1, 65) as usize).min(len - at);
            files[i].data[at..at + n].fill(0);
            format!("{name}: {n} bytes at {at} zeroed")
        }
        6 => {
            // A copy of the segment under another segment's name (or a new one).
            let j = segs[rng.below(segs.len() as u64) as usize];
            let seq = parse_name(&files[j].name).unwrap();
            let to = if rng.chance(50) { seg_name(seq.wrapping_add(rng.below(3))) } else { seg_name(seq.saturating_sub(rng.below(3))) };
            let copy = FileSpec::new(to.clone(), files[i].data.clone());
            files.retain(|f| f.name != to);
            files.push(copy);
            format!("{name} copied to {to}")
        }
        7 => {
            files.remove(i);
            format!("{name} removed")
        }
        8 => {
            // Stale bytes of another log's segment (its records, not its header).
            let Some(src) = other.iter().filter(|f| f.data.len() > 64).nth(rng.below(4) as usize) else { return "no other log".into() };
            let from = rng.range(64, src.data.len() as u64) as usize;
            let n = (rng.range(8, 400) as usize).min(src.data.len() - from);
            let at = if rng.chance(50) { from } else { rng.range(64, len.max(65) as u64) as usize };
            if at + n > files[i].data.len() {
                files[i].data.resize(at + n, 0);
            }
            files[i].data[at..at + n].copy_from_slice(&src.data[from..from + n]);
            format!("{name}: {n} bytes of another log's {} (from {from}) copied at {at}", src.name)
        }
        9 => {
            // Two segments' contents swapped.
            let j = segs[rng.below(segs.len() as u64) as usize];
            let (a, b) = (files[i].data.clone(), files[j].data.clone());
            files[i].data = b;
            files[j].data = a;
            format!("{name} and {} swapped", files[j].name)
        }
        _ => {
            // Records of the same segment replayed at another offset.
            if len <= 96 {
                return "short".into();
            }
            let from = rng.range(64, len as u64 - 32) as usize & !7;
            let n = (rng.range(32, 300) as usize).min(len - from);
            let at = used_offset(rng, &files[i]).max(64) & !7;
            if at + n > files[i].data.len() {
                files[i].data.resize(at + n, 0);
            }
            let chunk = files[i].data[from..from + n].to_vec();
            files[i].data[at..at + n].copy_from_slice(&chunk);
            format!("{name}: {n} bytes at {from} copied to {at}")
        }
    }
}

/// What the library returned against what was appended: same bytes for
/// the same seq, contiguous seqs, whole atomic units.
fn check_against_written(got: &[(u64, Vec<u8>)], log: &Written, damage: &[String]) {
    for (k, (seq, data)) in got.iter().enumerate() {
        let appended = log.known.get(seq);
        assert!(appended == Some(data), "entry {seq} ({} bytes) was never appended (damage: {damage:?})", data.len());
        if k > 0 {
            assert_eq!(*seq, got[k - 1].0 + 1, "seqs not contiguous (damage: {damage:?})");
        }
    }
    if let (Some(first), Some(last)) = (got.first(), got.last()) {
        for &(a, b) in &log.units {
            let inside = (a..=b).filter(|s| (first.0..=last.0).contains(s)).count() as u64;
            assert!(inside == 0 || inside == b - a + 1, "atomic batch {a}..={b} returned in part (damage: {damage:?})");
        }
    }
}

/// Cases share a log per epoch of this many cases.
const EPOCH: u64 = 16;

#[test]
fn valid_logs_with_corruptions() {
    let tmp = fuzz_dir();
    let dir = tmp.path().join("log");
    let build = tmp.path().join("build");
    const SALT: u64 = 0xC0FF_EE00;
    // The logs of the last epochs: epoch -> log.
    let mut logs: BTreeMap<u64, Written> = BTreeMap::new();
    drive("valid_logs_with_corruptions", SALT, 3000, |i, seed, rts, stats| {
        let mut rng = Rng::new(seed);
        // A fresh log per epoch, written on alternating backends; the
        // previous epoch's log provides stale bytes.
        let epoch = i / EPOCH;
        for e in [epoch.saturating_sub(1), epoch] {
            if !logs.contains_key(&e) {
                let log = write_log(&rts[(e % 2) as usize], &build, &mut Rng::new(splitmix(SALT ^ 0x1065 ^ (e << 32))));
                logs.insert(e, log);
            }
        }
        logs.retain(|&e, _| e + 1 >= epoch);
        let (other, log) = (&logs[&epoch.saturating_sub(1)], &logs[&epoch]);
        let mut files = log.files.clone();
        let damage: Vec<String> = (0..rng.range(1, 4)).map(|_| corrupt(&mut rng, &mut files, &other.files)).collect();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Some(got) = check_case(&rts[(i % 2) as usize], &dir, &files, &mut rng, stats) {
                check_against_written(&got, log, &damage);
            }
        }));
        if let Err(e) = result {
            eprintln!("damage: {damage:?}");
            std::panic::resume_unwind(e);
        }
    });
}

// ---------------------------------------------------------------------------
// Regressions: minimal cases of bugs this fuzz found (fixed in c425c54)

/// `Options::from_seq` 0 and 1 read everything (`rio wal verify` uses 1).
/// A segment file named 00000000000000000000.wal (e.g. a copy of segment 1
/// under that name) makes `Wal::open` fail with EBADMSG naming it; inspect
/// with from_seq 1 used to skip it as "holding only entries below 1" and
/// report no corruption. Found by `valid_logs_with_corruptions` case 129.
#[test]
fn regression_inspect_from_seq_1_reads_segment_0() {
    common::each_backend(|rt, dir| {
        let wal = Wal::open(rt, dir, config(RecoveryMode::TolerateTail)).unwrap();
        wal.append(b"one").unwrap();
        wal.close().unwrap();
        let seg1 = std::fs::read(dir.join(seg_name(1))).unwrap();
        std::fs::write(dir.join(seg_name(0)), seg1).unwrap();
        let err = Wal::open(rt, dir, config(RecoveryMode::TolerateTail)).err().expect("open refuses the log");
        assert_eq!(err.errno(), libc::EBADMSG);
        assert!(err.message().contains(&format!("{}: offset 0", dir.join(seg_name(0)).display())), "{}", err.message());
        for from_seq in [0, 1] {
            let opts = Options { from_seq, payloads: false, mode: RecoveryMode::TolerateTail };
            let report = inspect::scan(rt, dir, &opts, |_| ControlFlow::Continue(())).unwrap();
            assert_eq!(
                report.corruption.first().map(|c| (c.path.clone(), c.offset)),
                Some((dir.join(seg_name(0)), 0)),
                "inspect with from_seq {from_seq} does not report what Wal::open refuses"
            );
        }
    });
}

/// One segment with entries `seqs` (1-byte payloads) from `first`.
fn write_segment(dir: &Path, first: u64, seqs: &[u64]) {
    let salt = 7;
    let mut b = header_bytes(first, salt, 4096);
    let mut rng = Rng::new(1);
    for &seq in seqs {
        let r = Rec { kind: 1, flags: 0, len: 1, seq, durable: 0, reserved: [0; 6] };
        b.extend(record_bytes(r, b"x", salt, true, &mut rng));
    }
    b.resize(4096, 0);
    std::fs::write(dir.join(seg_name(first)), &b).unwrap();
}

/// Sequence numbers used to wrap at u64::MAX: with a (CRC-valid) header
/// saying first_seq u64::MAX - 1 and entries u64::MAX - 1 and u64::MAX,
/// debug builds panicked in `Wal::open` ("attempt to add with overflow",
/// src/wal/recovery.rs `scan_with`) and in append; release builds opened
/// it, the reader failed with EBADMSG after entry u64::MAX, and append
/// acknowledged seq 0, lost on reopen; a seal of seq 0 after u64::MAX made
/// recovery create 00000000000000000000.wal, which it then rejected. Found
/// by `arbitrary_segment_bytes` cases 763 and 1912. Now a header beyond
/// 2^63 - 1 is damage (docs/wal-format.md), and at the largest first_seq
/// allowed the log works.
#[test]
fn regression_sequence_numbers_never_wrap() {
    common::each_backend(|rt, dir| {
        for extra_zero_seq in [false, true] {
            reset_dir(dir);
            let first = u64::MAX - 1;
            let mut seqs = vec![first, u64::MAX];
            if extra_zero_seq {
                seqs.push(0);
            }
            write_segment(dir, first, &seqs);
            let err = Wal::open(rt, dir, config(RecoveryMode::Strict)).err().expect("a header beyond 2^63 - 1 is refused");
            assert_eq!(err.errno(), libc::EBADMSG, "{}", err.message());
            assert!(err.message().contains(&format!("{}: offset 0", dir.join(seg_name(first)).display())), "{}", err.message());
        }
        reset_dir(dir);
        write_segment(dir, MAX_SEQ, &[MAX_SEQ, MAX_SEQ + 1]);
        let wal = Wal::open(rt, dir, config(RecoveryMode::Strict)).unwrap();
        assert_eq!(wal.last_seq(), MAX_SEQ + 1);
        assert_eq!(read_all(&wal, 0, "reader"), vec![(MAX_SEQ, b"x".to_vec()), (MAX_SEQ + 1, b"x".to_vec())]);
        // New entries never go beyond the maximum: refused, nothing poisoned.
        assert_eq!(wal.append(b"y").unwrap_err().errno(), libc::EOVERFLOW);
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, config(RecoveryMode::Strict)).unwrap();
        assert_eq!(wal.last_seq(), MAX_SEQ + 1);
    });
}

/// A log whose last segment is sealed with no entry in it (a seal at offset
/// 64 naming the segment's own first_seq: valid per docs/wal-format.md,
/// though librio never seals an empty segment). Recovery creates the next
/// segment, which has the same name, and used to keep the replaced file
/// listed too: `truncate_before(1)` then unlinked the live segment and the
/// acknowledged entries were lost on reopen (last_seq 0). Found by
/// `arbitrary_segment_bytes` case 2104 (post-open appends and truncation).
#[test]
fn regression_empty_sealed_last_segment_then_truncate() {
    common::each_backend(|rt, dir| {
        let salt = 0x5A17;
        let mut rng = Rng::new(1);
        let mut b = header_bytes(1, salt, 4096);
        let seal = Rec { kind: 2, flags: 0, len: 0, seq: 1, durable: 0, reserved: [0; 6] };
        b.extend(record_bytes(seal, &[], salt, true, &mut rng));
        b.resize(4096, 0);
        std::fs::write(dir.join(seg_name(1)), &b).unwrap();
        let wal = Wal::open(rt, dir, config(RecoveryMode::TolerateTail)).unwrap();
        assert_eq!(wal.append(b"acknowledged").unwrap(), 1);
        wal.truncate_before(1).unwrap();
        assert_eq!(wal.append(b"after truncate").unwrap(), 2);
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, config(RecoveryMode::Strict)).unwrap();
        assert_eq!(
            read_all(&wal, 0, "reopen"),
            vec![(1, b"acknowledged".to_vec()), (2, b"after truncate".to_vec())],
            "acknowledged entries lost (last_seq after reopen: {})",
            wal.last_seq()
        );
    });
}

/// After c425c54 made a segment header beyond 2^63 - 1 damage, appends were
/// not stopped there: a log whose segment starts at 2^63 - 1 took appends
/// past it, and rotation created a segment whose header said first_seq 2^63,
/// so the next `Wal::open` failed with EBADMSG and acknowledged entries
/// could not be read. Recovery did the same when the last segment was
/// sealed with seq 2^63 (it created 09223372036854775808.wal, which readers
/// and the next open rejected). Found by `arbitrary_segment_bytes` cases 544
/// and 1012; fixed in 09894f7: such appends fail with EOVERFLOW, such a
/// seal is EBADMSG. Whatever was acknowledged reopens.
#[test]
fn regression_rotation_past_max_seq_keeps_the_log_openable() {
    common::each_backend(|rt, dir| {
        write_segment(dir, MAX_SEQ, &[]);
        let wal = Wal::open(rt, dir, config(RecoveryMode::TolerateTail)).unwrap();
        let entry = vec![7u8; 3000];
        let mut acked = Vec::new();
        for _ in 0..2 {
            match wal.append(&entry) {
                Ok(seq) => acked.push(seq),
                Err(e) => {
                    assert_ne!(e.errno(), libc::EIO, "{}", e.message());
                    break;
                }
            }
        }
        wal.close().unwrap();
        let wal = Wal::open(rt, dir, config(RecoveryMode::Strict))
            .unwrap_or_else(|e| panic!("entries {acked:?} were acknowledged, then reopen: {}", e.message()));
        let got: Vec<u64> = read_all(&wal, 0, "reopen").into_iter().map(|e| e.0).collect();
        assert_eq!(got, acked);
        drop(wal);

        // A sealed last segment naming 2^63 as the next seq.
        reset_dir(dir);
        let salt = 9;
        let mut rng = Rng::new(2);
        let mut b = header_bytes(MAX_SEQ, salt, 4096);
        let entry = Rec { kind: 1, flags: 0, len: 1, seq: MAX_SEQ, durable: 0, reserved: [0; 6] };
        b.extend(record_bytes(entry, b"x", salt, true, &mut rng));
        let seal = Rec { kind: 2, flags: 0, len: 0, seq: MAX_SEQ + 1, durable: MAX_SEQ, reserved: [0; 6] };
        b.extend(record_bytes(seal, &[], salt, true, &mut rng));
        b.resize(4096, 0);
        std::fs::write(dir.join(seg_name(MAX_SEQ)), &b).unwrap();
        if let Ok(wal) = Wal::open(rt, dir, config(RecoveryMode::Strict)) {
            assert_eq!(read_all(&wal, MAX_SEQ + 1, "reader from 2^63"), vec![]);
            wal.close().unwrap();
            let reopened = Wal::open(rt, dir, config(RecoveryMode::Strict));
            assert!(reopened.is_ok(), "a cleanly closed log does not reopen: {}", reopened.err().unwrap().message());
        }
    });
}
