//! The on-disk format, byte by byte (docs/wal-format.md is the prose
//! version): segment file names, the 64-byte segment header and the 32-byte
//! record header. Everything here is pure: no I/O.
//!
//! Every record's CRC32C covers its payload, its header fields and the
//! segment's random salt, so bytes that were written under another salt
//! (a previous segment, stale blocks of a reused file) never verify.

/// File name suffix of a segment; the stem is its first sequence number.
pub(crate) const SEGMENT_SUFFIX: &str = ".wal";
/// Suffix of a segment being created; such files are not part of the log.
pub(crate) const TEMP_SUFFIX: &str = ".wal.tmp";
/// Digits of the zero-padded first sequence number in a segment's name.
const NAME_DIGITS: usize = 20;

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RIOWALSG";
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const SEGMENT_HEADER_SIZE: u64 = 64;
pub(crate) const RECORD_HEADER_SIZE: usize = 32;
/// Records start at multiples of this offset (padding is zero bytes).
pub(crate) const RECORD_ALIGN: u64 = 8;
/// Bytes a seal record takes; every segment keeps room for one.
pub(crate) const SEAL_SIZE: u64 = RECORD_HEADER_SIZE as u64;

/// Largest entry payload, in bytes (64 MiB).
pub const MAX_ENTRY: usize = 64 << 20;

/// The largest sequence number a segment may start at. A log would need
/// 2^63 appends to get there, so a header beyond it is damage, and
/// sequence arithmetic can never overflow a u64.
pub(crate) const MAX_SEQ: u64 = i64::MAX as u64;

/// Record kinds (header byte 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One entry of the log.
    Entry = 1,
    /// The last record of a full segment; its `seq` is the next segment's first.
    Seal = 2,
}

/// Header byte 25, bit 0: the next record belongs to the same atomic batch.
pub(crate) const FLAG_BATCH_CONT: u8 = 1;

/// `00000000000000000042.wal`: the name of the segment starting at `first_seq`.
pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:0NAME_DIGITS$}{SEGMENT_SUFFIX}")
}

/// The first sequence number encoded in a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Bytes a record with a `len`-byte payload occupies, padding included.
pub(crate) fn record_size(len: usize) -> u64 {
    (RECORD_HEADER_SIZE as u64 + len as u64).next_multiple_of(RECORD_ALIGN)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The segment header: bytes 0..64 of every segment file.
///
/// ```text
///  0  8  magic "RIOWALSG"
///  8  4  format version (1)
/// 12  4  header size (64)
/// 16  8  first sequence number
/// 24  8  salt (random, non-zero)
/// 32  8  size the segment was preallocated to (informational)
/// 40 20  zero
/// 60  4  CRC32C of bytes 0..60
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub first_seq: u64,
    pub salt: u64,
    pub prealloc_size: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_SIZE as usize] {
        let mut b = [0u8; SEGMENT_HEADER_SIZE as usize];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_SIZE as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.salt.to_le_bytes());
        b[32..40].copy_from_slice(&self.prealloc_size.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and verifies a header; the error says which check failed.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, String> {
        if b.len() < SEGMENT_HEADER_SIZE as usize {
            return Err(format!("segment header is truncated ({} of {SEGMENT_HEADER_SIZE} bytes)", b.len()));
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err("segment header has a bad magic number".into());
        }
        if le_u32(b, 60) != crc32c::crc32c(&b[..60]) {
            return Err("segment header checksum mismatch".into());
        }
        let version = le_u32(b, 8);
        if version != FORMAT_VERSION {
            return Err(format!("unsupported segment format version {version} (this library reads {FORMAT_VERSION})"));
        }
        let header_size = le_u32(b, 12);
        if header_size as u64 != SEGMENT_HEADER_SIZE {
            return Err(format!("unsupported segment header size {header_size}"));
        }
        let header = SegmentHeader { first_seq: le_u64(b, 16), salt: le_u64(b, 24), prealloc_size: le_u64(b, 32) };
        if header.first_seq == 0 || header.salt == 0 {
            return Err("segment header has a zero first sequence number or salt".into());
        }
        if header.first_seq > MAX_SEQ {
            return Err(format!("segment header first sequence number {} is beyond the maximum {MAX_SEQ}", header.first_seq));
        }
        Ok(header)
    }
}

/// A record header: the 32 bytes before each payload.
///
/// ```text
///  0  4  CRC32C of: payload, then header bytes 4..32, then the salt (8 bytes LE)
///  4  4  payload length (0 for a seal)
///  8  8  seq: the entry's sequence number; for a seal, the next segment's first
/// 16  8  durable_seq: entries up to this seq were durable when this was written
/// 24  1  kind: 1 entry, 2 seal
/// 25  1  flags: bit 0 = the next record belongs to the same atomic batch
/// 26  6  zero
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub len: u32,
    pub seq: u64,
    pub durable_seq: u64,
    pub kind: Kind,
    pub flags: u8,
}

/// Why bytes at a record position are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Defect {
    /// The header is all zero bytes: nothing was ever written here.
    Zeroed,
    /// The file ends inside the header or the payload.
    Truncated,
    /// A header field is out of range (kind, flags, reserved bytes, length).
    Malformed,
    /// The CRC does not match (torn write, bit flip, or another salt).
    Checksum,
    /// A valid record with an unexpected sequence number or kind.
    OutOfOrder,
}

impl Defect {
    pub fn describe(self) -> &'static str {
        match self {
            Defect::Zeroed => "zero bytes where a record header was expected",
            Defect::Truncated => "the file ends inside a record",
            Defect::Malformed => "malformed record header",
            Defect::Checksum => "record checksum mismatch",
            Defect::OutOfOrder => "record out of sequence",
        }
    }
}

impl RecordHeader {
    pub fn entry(len: usize, seq: u64, durable_seq: u64, batch_cont: bool) -> RecordHeader {
        let flags = if batch_cont { FLAG_BATCH_CONT } else { 0 };
        RecordHeader { len: len as u32, seq, durable_seq, kind: Kind::Entry, flags }
    }

    pub fn seal(next_seq: u64, durable_seq: u64) -> RecordHeader {
        RecordHeader { len: 0, seq: next_seq, durable_seq, kind: Kind::Seal, flags: 0 }
    }

    pub fn batch_cont(&self) -> bool {
        self.flags & FLAG_BATCH_CONT != 0
    }

    /// Encodes the header; `payload_crc` is `crc32c(payload)`.
    pub fn encode(&self, payload_crc: u32, salt: u64) -> [u8; RECORD_HEADER_SIZE] {
        let mut b = [0u8; RECORD_HEADER_SIZE];
        b[4..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.durable_seq.to_le_bytes());
        b[24] = self.kind as u8;
        b[25] = self.flags;
        let crc = record_crc(payload_crc, &b, salt);
        b[0..4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Structural checks only (no CRC): what a scanner can decide before
    /// reading the payload. `room` is the number of bytes after the header
    /// that the payload may use; a length beyond it, or beyond `MAX_ENTRY`,
    /// is rejected, so a corrupt length never causes a large read.
    pub fn decode(b: &[u8; RECORD_HEADER_SIZE], room: u64) -> Result<RecordHeader, Defect> {
        if b.iter().all(|&x| x == 0) {
            return Err(Defect::Zeroed);
        }
        let kind = match b[24] {
            1 => Kind::Entry,
            2 => Kind::Seal,
            _ => return Err(Defect::Malformed),
        };
        let len = le_u32(b, 4);
        let flags = b[25];
        let reserved_clear = b[26..32].iter().all(|&x| x == 0);
        let len_ok = match kind {
            Kind::Entry => len as usize <= MAX_ENTRY,
            Kind::Seal => len == 0 && flags == 0,
        };
        if !reserved_clear || flags & !FLAG_BATCH_CONT != 0 || !len_ok {
            return Err(Defect::Malformed);
        }
        if len as u64 > room {
            return Err(Defect::Truncated);
        }
        Ok(RecordHeader { len, seq: le_u64(b, 8), durable_seq: le_u64(b, 16), kind, flags })
    }

    /// Whether the stored CRC matches `payload` under `salt`.
    pub fn verify(b: &[u8; RECORD_HEADER_SIZE], payload: &[u8], salt: u64) -> bool {
        le_u32(b, 0) == record_crc(crc32c::crc32c(payload), b, salt)
    }
}

/// CRC32C of payload ‖ header[4..32] ‖ salt, continuing from the payload's
/// CRC so appenders can checksum their payloads before taking any lock.
fn record_crc(payload_crc: u32, header: &[u8; RECORD_HEADER_SIZE], salt: u64) -> u32 {
    let crc = crc32c::crc32c_append(payload_crc, &header[4..]);
    crc32c::crc32c_append(crc, &salt.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_sequence() {
        assert_eq!(segment_name(42), "00000000000000000042.wal");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
        assert_eq!(parse_segment_name(&format!("{}.tmp", segment_name(1))), None);
    }

    #[test]
    fn record_sizes_are_aligned() {
        assert_eq!(record_size(0), 32);
        assert_eq!(record_size(1), 40);
        assert_eq!(record_size(8), 40);
        assert_eq!(record_size(9), 48);
    }

    #[test]
    fn segment_header_round_trips_and_rejects_any_flip() {
        let h = SegmentHeader { first_seq: 7, salt: 0xdead_beef, prealloc_size: 1 << 20 };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        for bit in 0..b.len() * 8 {
            let mut bad = b;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn record_crc_covers_payload_header_and_salt() {
        let payload = b"hello";
        let h = RecordHeader::entry(payload.len(), 3, 2, true);
        let b = h.encode(crc32c::crc32c(payload), 99);
        assert_eq!(RecordHeader::decode(&b, 5), Ok(h));
        assert!(RecordHeader::verify(&b, payload, 99));
        assert!(!RecordHeader::verify(&b, payload, 98), "another salt");
        assert!(!RecordHeader::verify(&b, b"hellp", 99), "payload flip");
        for bit in 0..RECORD_HEADER_SIZE * 8 {
            let mut bad = b;
            bad[bit / 8] ^= 1 << (bit % 8);
            let structurally = RecordHeader::decode(&bad, 5);
            assert!(structurally.is_err() || !RecordHeader::verify(&bad, payload, 99), "bit {bit}");
        }
    }

    #[test]
    fn lengths_beyond_the_room_or_the_maximum_are_rejected() {
        let b = RecordHeader::entry(100, 1, 0, false).encode(0, 1);
        assert_eq!(RecordHeader::decode(&b, 99), Err(Defect::Truncated));
        let mut huge = b;
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(RecordHeader::decode(&huge, u64::MAX), Err(Defect::Malformed));
        assert_eq!(RecordHeader::decode(&[0; RECORD_HEADER_SIZE], 100), Err(Defect::Zeroed));
    }
}
