//! The crash tests' entries: who wrote each one is encoded at the start of
//! its payload and the rest of the payload is derived from it, so any entry
//! read back after a crash can be checked whole.

use super::pattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryId {
    pub round: u64,
    pub writer: u64,
    pub index: u64,
    /// Position in its atomic batch and the batch's size (1: a lone entry).
    pub pos: u64,
    pub count: u64,
}

impl EntryId {
    pub fn payload(&self) -> Vec<u8> {
        let words = [self.round, self.writer, self.index, self.pos, self.count];
        let mut p: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let len = ((self.index * 37 + self.writer * 11 + self.pos) % 700) as usize;
        p.extend_from_slice(&pattern(len, self.index << 16 | self.writer << 8 | self.pos));
        p
    }

    /// Decodes a payload and checks that the rest of it is intact.
    pub fn parse(p: &[u8]) -> EntryId {
        assert!(p.len() >= 40, "payload of {} bytes", p.len());
        let word = |i: usize| u64::from_le_bytes(p[i * 8..i * 8 + 8].try_into().unwrap());
        let id = EntryId { round: word(0), writer: word(1), index: word(2), pos: word(3), count: word(4) };
        assert_eq!(p, id.payload(), "entry {id:?} is intact");
        id
    }
}

/// A crash child's report to its parent: one whole line on stdout, flushed
/// at once (the parent reads as the child runs, and SIGKILL may come at
/// any moment). Stdout's own lock keeps lines from different threads apart.
pub fn report_line(line: String) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).unwrap();
    out.flush().unwrap();
}
