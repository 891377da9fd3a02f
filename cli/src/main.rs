//! `rio`: the librio command-line tool. `rio probe` says what the I/O layer
//! would do on this machine and why; `rio wal verify|dump|stats` inspect a
//! write-ahead log without changing it. docs/cli.md is the manual.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod probe;
mod progress;
mod wal;

/// Exit codes scripts can rely on (docs/cli.md).
pub mod exit {
    /// Success; for the wal commands: no corruption (a torn tail is not
    /// corruption: recovery cuts it).
    pub const OK: u8 = 0;
    /// The log is corrupt: recovery would refuse to open it (EBADMSG).
    pub const CORRUPT: u8 = 1;
    /// Bad command line (unknown option, missing argument, bad value).
    pub const USAGE: u8 = 2;
    /// An I/O or system error: a path that cannot be read, the runtime
    /// cannot start.
    pub const IO: u8 = 3;
}

const AFTER_HELP: &str = "\
Exit codes:
  0  success (for wal commands: no corruption; a torn tail is reported but is not an error)
  1  corruption found: the log would not open (EBADMSG)
  2  usage error
  3  I/O or system error (unreadable path, runtime failure)";

#[derive(Parser, Debug)]
#[command(name = "rio", version, about = "Inspect the librio I/O layer and its write-ahead logs", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the backend librio would use here and why, io_uring support,
    /// resource limits and, for PATH, its filesystem and direct-I/O alignment.
    #[command(after_help = AFTER_HELP)]
    Probe(ProbeArgs),
    /// Inspect a write-ahead log directory (read-only: nothing is changed).
    #[command(subcommand, after_help = AFTER_HELP)]
    Wal(WalCommand),
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// A file or directory to examine (filesystem type, direct-I/O support and alignment).
    pub path: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
enum WalCommand {
    /// Check every segment and record; exit 1 if the log is corrupt.
    ///
    /// Applies the rules `Wal::open` applies, without repairing anything: a
    /// torn tail (an interrupted write at the end) is reported with its
    /// segment, offset and size, and exits 0; corruption (invalid data that
    /// acknowledged entries depend on) is reported with its file and offset
    /// and exits 1.
    #[command(after_help = AFTER_HELP)]
    Verify(VerifyArgs),
    /// Print entries: seq, length and payload.
    ///
    /// Text output is one line per entry: `SEQ<TAB>LEN<TAB>PAYLOAD`, the
    /// payload with non-printable bytes escaped (\n, \t, \\, \xNN). Only the
    /// valid log is printed: entries up to a corruption or torn tail.
    #[command(after_help = AFTER_HELP)]
    Dump(DumpArgs),
    /// Segment sizes, entry count and entry size distribution.
    #[command(after_help = AFTER_HELP)]
    Stats(StatsArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Judge as recovery in strict mode would: a torn tail is corruption too.
    #[arg(long)]
    pub strict: bool,
    /// List every segment, not only the summary.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// First sequence number to print.
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    pub from: u64,
    /// Print at most N entries.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Payloads in hexadecimal.
    #[arg(long, conflicts_with = "json")]
    pub hex: bool,
    /// One JSON object per line: {"seq", "len", "segment", "offset", "hex", "text"}
    /// ("text" is null when the payload is not UTF-8).
    #[arg(long)]
    pub json: bool,
    /// Print at most this many bytes of each payload (the length is still the full one).
    #[arg(long, value_name = "BYTES")]
    pub max_bytes: Option<usize>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How a command failed: the exit code and, for errors, what to print.
pub enum Failure {
    /// Corruption was found (already reported on the way).
    Corrupt,
    /// An error to print on stderr, exit 3.
    Io(String),
    /// stdout was closed by its reader (`rio wal dump | head`): stop quietly.
    BrokenPipe,
}

impl From<rio::Error> for Failure {
    fn from(e: rio::Error) -> Failure {
        Failure::Io(e.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Io(format!("writing the output: {e}"))
        }
    }
}

pub type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Probe(args) => probe::run(&args),
        Command::Wal(WalCommand::Verify(args)) => wal::verify(&args),
        Command::Wal(WalCommand::Dump(args)) => wal::dump(&args),
        Command::Wal(WalCommand::Stats(args)) => wal::stats(&args),
    };
    let outcome = outcome.and_then(|()| io::stdout().flush().map_err(Failure::from));
    match outcome {
        Ok(()) => ExitCode::from(exit::OK),
        Err(Failure::Corrupt) => ExitCode::from(exit::CORRUPT),
        // The reader went away; what it read was correct.
        Err(Failure::BrokenPipe) => ExitCode::from(exit::OK),
        Err(Failure::Io(msg)) => {
            eprintln!("rio: error: {msg}");
            ExitCode::from(exit::IO)
        }
    }
}
