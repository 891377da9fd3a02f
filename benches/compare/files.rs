//! File workloads: the seed's buffered write+fsync, O_DIRECT sequential and
//! random I/O at several depths, and page-cache reads; each run by rio
//! (io_uring and thread pool), std, tokio::fs and fio.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rio::{open_flags, AlignedBuf, Batch, BackendChoice, DiskFile, Runtime, RuntimeConfig};

use crate::opts::Opts;
use crate::sys::Machine;
use crate::{run_interleaved, Metric, Results, Sample, Unit, Workload, FIO, RIO_POOL, RIO_URING, STD, TOKIO};

const MIB: usize = 1 << 20;
/// Ops between clock reads in QD1 loops (a clock read is ~2% of a cached read).
const CHECK_EVERY: u64 = 16;

/// Shared state of a run: runtimes, the tokio runtime, the scratch files.
pub struct Env {
    pub dir: PathBuf,
    pub uring: Result<Runtime, String>,
    pub pool: Runtime,
    pub tokio: tokio::runtime::Runtime,
    pub fio: Option<PathBuf>,
    pub fio_absent: Option<String>,
    pub(crate) direct_path: PathBuf,
    cache_path: PathBuf,
    seed_path: PathBuf,
}

impl Env {
    pub fn new(opts: &Opts, machine: &Machine) -> Result<Env, String> {
        let uring = Runtime::new(&RuntimeConfig { backend: BackendChoice::IoUring, ..Default::default() })
            .map_err(|e| format!("io_uring backend unavailable: {e}"));
        let pool = Runtime::new(&RuntimeConfig { backend: BackendChoice::ThreadPool, ..Default::default() })
            .map_err(|e| format!("thread-pool runtime: {e}"))?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        Ok(Env {
            dir: opts.dir.clone(),
            uring,
            pool,
            tokio,
            fio: machine.fio.path.clone(),
            fio_absent: machine.fio.absent.clone(),
            direct_path: opts.dir.join("direct.dat"),
            cache_path: opts.dir.join("cached.dat"),
            seed_path: opts.dir.join("seed.dat"),
        })
    }

    pub fn cleanup(&self, opts: &Opts) {
        if !opts.keep_files {
            for p in [&self.direct_path, &self.cache_path, &self.seed_path] {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// How a file workload moves data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IoSpec {
    pub write: bool,
    pub rand: bool,
    pub bs: usize,
    pub qd: usize,
    pub direct: bool,
    pub file_size: u64,
    /// rio's buffers registered with the ring (rio_buf_alloc memory);
    /// fio gets --fixedbufs.
    pub registered: bool,
}

impl IoSpec {
    fn fio_rw(&self) -> &'static str {
        match (self.rand, self.write) {
            (false, false) => "read",
            (false, true) => "write",
            (true, false) => "randread",
            (true, true) => "randwrite",
        }
    }
}

enum Kind {
    Seed { mib: u64 },
    /// `count` 1 MiB objects into a fresh file, each durable when its call
    /// returns: rio through `write_durable` or through its buffered path.
    Objects { count: u64, path: ObjectPath },
    Io(IoSpec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectPath {
    WriteDurable,
    Buffered,
}

fn objects(path: ObjectPath, opts: &Opts) -> FileWorkload {
    let count = opts.seed_mib;
    let (id, how) = match path {
        ObjectPath::WriteDurable => ("objects-write-durable", "rio: write_durable"),
        ObjectPath::Buffered => ("objects-write-datasync", "rio: write_at + datasync"),
    };
    FileWorkload {
        w: Workload {
            id: id.into(),
            group: "objects",
            title: format!("{count} × 1 MiB durable objects ({how})"),
            metric: Metric::Mbps,
            about: format!(
                "{count} 1 MiB objects written one after another at increasing offsets of a fresh (truncated, untimed) file, each durable before the next starts. {how}; std: write_all_at + sync_data per object; tokio: tokio::fs write_all + sync_all per object; fio: O_DIRECT 1 MiB writes at depth 1 with fdatasync after each (--fdatasync=1, no preallocation) over the same {count} MiB, the device's figure for this pattern."
            ),
        },
        kind: Kind::Objects { count, path },
    }
}

struct FileWorkload {
    w: Workload,
    kind: Kind,
}

fn direct(id: &str, title: &str, write: bool, rand: bool, bs: usize, qd: usize, opts: &Opts) -> FileWorkload {
    let about = format!(
        "{} {} {} KiB {} with O_DIRECT at queue depth {qd} from one thread, on a {} MiB file: device and submission cost, no page cache.",
        if rand { "random" } else { "sequential" },
        if write { "overwrites of" } else { "reads of" },
        bs / 1024,
        if rand { "blocks" } else { "blocks, wrapping at the end" },
        opts.file_size >> 20
    );
    FileWorkload {
        w: Workload {
            id: id.into(),
            group: "direct",
            title: title.into(),
            metric: if bs >= MIB { Metric::Mbps } else { Metric::Iops },
            about,
        },
        kind: Kind::Io(IoSpec { write, rand, bs, qd, direct: true, file_size: opts.file_size, registered: false }),
    }
}

/// The same workload with rio's buffers registered (READ_FIXED /
/// WRITE_FIXED) and fio's too (--fixedbufs); std and tokio have no such
/// thing and are not run.
fn registered(mut fw: FileWorkload) -> FileWorkload {
    if let Kind::Io(spec) = &mut fw.kind {
        spec.registered = true;
    }
    fw.w.about.push_str(" Buffers registered with the ring: rio_buf_alloc memory (READ_FIXED/WRITE_FIXED), fio --fixedbufs=1.");
    fw
}

fn all(opts: &Opts) -> Vec<FileWorkload> {
    vec![
        FileWorkload {
            w: Workload {
                id: "seed-write-fsync".into(),
                group: "seed",
                title: format!("seed: {} × 1 MiB write + fsync (buffered)", opts.seed_mib),
                metric: Metric::Mbps,
                about: format!(
                    "The seed's workload: a fresh (truncated) file gets {} sequential 1 MiB buffered writes, then one fsync; the time covers the writes and the fsync (rounds repeat for the run's duration; truncation is not timed).",
                    opts.seed_mib
                ),
            },
            kind: Kind::Seed { mib: opts.seed_mib },
        },
        objects(ObjectPath::WriteDurable, opts),
        objects(ObjectPath::Buffered, opts),
        direct("direct-seq-write-1m-qd8", "O_DIRECT seq write 1 MiB QD8", true, false, MIB, 8, opts),
        direct("direct-seq-read-1m-qd8", "O_DIRECT seq read 1 MiB QD8", false, false, MIB, 8, opts),
        direct("direct-rand-read-4k-qd1", "O_DIRECT rand read 4 KiB QD1", false, true, 4096, 1, opts),
        direct("direct-rand-read-4k-qd32", "O_DIRECT rand read 4 KiB QD32", false, true, 4096, 32, opts),
        direct("direct-rand-write-4k-qd1", "O_DIRECT rand write 4 KiB QD1", true, true, 4096, 1, opts),
        direct("direct-rand-write-4k-qd32", "O_DIRECT rand write 4 KiB QD32", true, true, 4096, 32, opts),
        registered(direct("direct-rand-read-4k-qd32-registered", "O_DIRECT rand read 4 KiB QD32, registered buffers", false, true, 4096, 32, opts)),
        registered(direct("direct-rand-write-4k-qd32-registered", "O_DIRECT rand write 4 KiB QD32, registered buffers", true, true, 4096, 32, opts)),
        FileWorkload {
            w: Workload {
                id: "cached-rand-read-4k-qd1".into(),
                group: "cached",
                title: "page-cache rand read 4 KiB QD1".into(),
                metric: Metric::Iops,
                about: format!(
                    "Random 4 KiB buffered reads of a {} MiB file already in the page cache, one at a time: the per-operation overhead of the library over a plain pread.",
                    opts.cache_size >> 20
                ),
            },
            kind: Kind::Io(IoSpec {
                write: false,
                rand: true,
                bs: 4096,
                qd: 1,
                direct: false,
                file_size: opts.cache_size,
                registered: false,
            }),
        },
    ]
}

pub fn workloads(opts: &Opts) -> Vec<Workload> {
    all(opts).into_iter().map(|f| f.w).collect()
}

/// Offsets: sequential (wrapping) or uniformly random block-aligned.
pub(crate) struct Offsets {
    rand: bool,
    bs: u64,
    blocks: u64,
    next: u64,
    x: u64,
}

impl Offsets {
    pub fn new(spec: &IoSpec, seed: u64) -> Offsets {
        let blocks = (spec.file_size / spec.bs as u64).max(1);
        Offsets { rand: spec.rand, bs: spec.bs as u64, blocks, next: 0, x: seed | 1 }
    }
    pub fn next(&mut self) -> u64 {
        if self.rand {
            // xorshift64*
            self.x ^= self.x >> 12;
            self.x ^= self.x << 25;
            self.x ^= self.x >> 27;
            let r = self.x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            (r % self.blocks) * self.bs
        } else {
            let o = self.next * self.bs;
            self.next = (self.next + 1) % self.blocks;
            o
        }
    }
}

pub(crate) fn seed_of_clock() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(42)
}

pub(crate) fn filled(len: usize, seed: u64) -> AlignedBuf {
    filled_buf(len, seed, false)
}

fn filled_buf(len: usize, seed: u64, registered: bool) -> AlignedBuf {
    let mut b = if registered { AlignedBuf::new_registered(len) } else { AlignedBuf::new(len) };
    let mut x = seed | 1;
    for chunk in b.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    b
}

/// Writes `path` full of data (no holes, no unwritten extents: reads must
/// reach the device) unless it already has exactly `size` bytes.
pub(crate) fn prepare_file(path: &Path, size: u64) -> Result<(), String> {
    if std::fs::metadata(path).map(|m| m.len() == size).unwrap_or(false) {
        return Ok(());
    }
    let t = Instant::now();
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let buf = filled(MIB, 7);
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(MIB as u64) as usize;
        f.write_all_at(&buf[..n], off).map_err(|e| format!("{}: write: {e}", path.display()))?;
        off += n as u64;
    }
    f.sync_all().map_err(|e| format!("{}: fsync: {e}", path.display()))?;
    eprintln!("bench: wrote {} ({} MiB) in {:.1}s", path.display(), size >> 20, t.elapsed().as_secs_f64());
    Ok(())
}

/// Whether the filesystem under `dir` accepts O_DIRECT opens.
pub(crate) fn direct_supported(dir: &Path) -> Result<(), String> {
    let probe = dir.join(".odirect-probe");
    let r = OpenOptions::new().write(true).create(true).truncate(true).custom_flags(libc::O_DIRECT).open(&probe);
    let _ = std::fs::remove_file(&probe);
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            Err(format!("the filesystem under {} does not support O_DIRECT", dir.display()))
        }
        Err(e) => Err(format!("{}: {e}", probe.display())),
    }
}

/// Reads the whole file so it sits in the page cache.
fn warm_cache(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::copy(&mut f, &mut std::io::sink()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

fn std_open(path: &Path, spec: &IoSpec) -> Result<std::fs::File, String> {
    let mut o = OpenOptions::new();
    o.read(true).write(spec.write);
    if spec.direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn check_len(n: usize, want: usize, what: &str) -> Result<(), String> {
    if n != want {
        return Err(format!("{what}: transferred {n} bytes, expected {want}"));
    }
    Ok(())
}

// ---------------------------------------------------------------- rio

pub(crate) fn rio_io(rt: &Runtime, path: &Path, spec: &IoSpec, dur: Duration) -> Result<Sample, String> {
    let mut flags = open_flags::READ | open_flags::WRITE;
    if spec.direct {
        flags |= open_flags::DIRECT;
    }
    let f = DiskFile::open(rt, path, flags, 0o644).map_err(|e| e.to_string())?;
    let mut bufs: Vec<AlignedBuf> = (0..spec.qd).map(|i| filled_buf(spec.bs, i as u64 + 1, spec.registered)).collect();
    let mut offs = Offsets::new(spec, seed_of_clock());
    let mut ops = 0u64;
    let start = Instant::now();
    let deadline = start + dur;
    if spec.qd == 1 {
        // What a caller writes for one op at a time: the plain call, no batch.
        let buf = &mut bufs[0][..];
        loop {
            for _ in 0..CHECK_EVERY {
                let off = offs.next();
                let n = if spec.write { f.write_at(buf, off) } else { f.read_at(buf, off) }.map_err(|e| e.to_string())?;
                check_len(n, spec.bs, "rio")?;
            }
            ops += CHECK_EVERY;
            if Instant::now() >= deadline {
                break;
            }
        }
    } else {
        // The synchronous API's way to depth: a batch of qd ops per round.
        loop {
            let mut b = Batch::new();
            for buf in bufs.iter_mut() {
                let off = offs.next();
                if spec.write {
                    b.write(&f, &buf[..], off)
                } else {
                    b.read(&f, &mut buf[..], off)
                }
                .map_err(|e| e.to_string())?;
            }
            for r in b.submit(rt) {
                check_len(r.map_err(|e| e.to_string())? as usize, spec.bs, "rio batch")?;
            }
            ops += spec.qd as u64;
            if Instant::now() >= deadline {
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Sample { ops, bytes: ops * spec.bs as u64, secs, peak_rss_kib: None, group_commits: None, cpu_secs: None })
}

/// The seed (and object) workloads repeated until `dur` has passed (at
/// least once): each round truncates the file (untimed), then times `mib`
/// 1 MiB writes and their syncs. The sample is the sum of the timed parts.
fn repeat_seed(dur: Duration, mib: u64, mut round: impl FnMut() -> Result<f64, String>) -> Result<Sample, String> {
    let wall = Instant::now();
    let (mut secs, mut rounds) = (0.0, 0u64);
    loop {
        secs += round()?;
        rounds += 1;
        if wall.elapsed() >= dur {
            break;
        }
    }
    Ok(Sample { ops: rounds * mib, bytes: rounds * mib * MIB as u64, secs, peak_rss_kib: None, group_commits: None, cpu_secs: None })
}

fn rio_seed(rt: &Runtime, path: &Path, mib: u64, buf: &[u8], dur: Duration) -> Result<Sample, String> {
    repeat_seed(dur, mib, || {
        let flags = open_flags::WRITE | open_flags::CREATE | open_flags::TRUNCATE;
        let f = DiskFile::open(rt, path, flags, 0o644).map_err(|e| e.to_string())?;
        let start = Instant::now();
        for i in 0..mib {
            let n = f.write_at(buf, i * MIB as u64).map_err(|e| e.to_string())?;
            check_len(n, MIB, "rio write")?;
        }
        f.sync().map_err(|e| e.to_string())?;
        Ok(start.elapsed().as_secs_f64())
    })
}

fn rio_objects(rt: &Runtime, path: &Path, count: u64, how: ObjectPath, buf: &[u8], dur: Duration) -> Result<Sample, String> {
    repeat_seed(dur, count, || {
        let flags = open_flags::READ | open_flags::WRITE | open_flags::CREATE | open_flags::TRUNCATE;
        let f = DiskFile::open(rt, path, flags, 0o644).map_err(|e| e.to_string())?;
        let start = Instant::now();
        for i in 0..count {
            let off = i * MIB as u64;
            let n = match how {
                ObjectPath::WriteDurable => f.write_durable(buf, off),
                ObjectPath::Buffered => f.write_at(buf, off).and_then(|n| f.datasync().map(|_| n)),
            }
            .map_err(|e| e.to_string())?;
            check_len(n, MIB, "rio object")?;
        }
        Ok(start.elapsed().as_secs_f64())
    })
}

// ---------------------------------------------------------------- std

fn std_io(path: &Path, spec: &IoSpec, dur: Duration) -> Result<Sample, String> {
    let f = std_open(path, spec)?;
    let mut buf = filled(spec.bs, 3);
    let mut offs = Offsets::new(spec, seed_of_clock());
    let mut ops = 0u64;
    let start = Instant::now();
    let deadline = start + dur;
    // std has one blocking call at a time: from one thread, depth is 1.
    loop {
        for _ in 0..CHECK_EVERY {
            let off = offs.next();
            let n = if spec.write { f.write_at(&buf, off) } else { f.read_at(&mut buf, off) }
                .map_err(|e| format!("std: {e}"))?;
            check_len(n, spec.bs, "std")?;
        }
        ops += CHECK_EVERY;
        if Instant::now() >= deadline {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Sample { ops, bytes: ops * spec.bs as u64, secs, peak_rss_kib: None, group_commits: None, cpu_secs: None })
}

fn std_seed(path: &Path, mib: u64, buf: &[u8], dur: Duration) -> Result<Sample, String> {
    repeat_seed(dur, mib, || {
        let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let start = Instant::now();
        for i in 0..mib {
            f.write_all_at(buf, i * MIB as u64).map_err(|e| format!("std write: {e}"))?;
        }
        f.sync_all().map_err(|e| format!("std fsync: {e}"))?;
        Ok(start.elapsed().as_secs_f64())
    })
}

fn std_objects(path: &Path, count: u64, buf: &[u8], dur: Duration) -> Result<Sample, String> {
    repeat_seed(dur, count, || {
        let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let start = Instant::now();
        for i in 0..count {
            f.write_all_at(buf, i * MIB as u64).map_err(|e| format!("std write: {e}"))?;
            f.sync_data().map_err(|e| format!("std fdatasync: {e}"))?;
        }
        Ok(start.elapsed().as_secs_f64())
    })
}

// ---------------------------------------------------------------- tokio

/// What a tokio user writes for positioned I/O (tokio::fs has none):
/// `spawn_blocking` + `FileExt`, keeping `qd` of them in flight.
fn tokio_io(trt: &tokio::runtime::Runtime, path: &Path, spec: &IoSpec, dur: Duration) -> Result<Sample, String> {
    let file = Arc::new(std_open(path, spec)?);
    let spec = *spec;
    trt.block_on(async move {
        let mut free: Vec<AlignedBuf> = (0..spec.qd).map(|i| filled(spec.bs, i as u64 + 11)).collect();
        let mut offs = Offsets::new(&spec, seed_of_clock());
        let mut set = tokio::task::JoinSet::new();
        let mut ops = 0u64;
        let start = Instant::now();
        let deadline = start + dur;
        loop {
            while set.len() < spec.qd && Instant::now() < deadline {
                let mut buf = free.pop().expect("a free buffer per slot");
                let f = file.clone();
                let off = offs.next();
                set.spawn_blocking(move || {
                    let r = if spec.write { f.write_at(&buf, off) } else { f.read_at(&mut buf, off) };
                    (buf, r)
                });
            }
            let Some(joined) = set.join_next().await else { break };
            let (buf, r) = joined.map_err(|e| format!("tokio task: {e}"))?;
            check_len(r.map_err(|e| format!("tokio: {e}"))?, spec.bs, "tokio")?;
            free.push(buf);
            ops += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(Sample { ops, bytes: ops * spec.bs as u64, secs, peak_rss_kib: None, group_commits: None, cpu_secs: None })
    })
}

/// The seed as a tokio user writes it: tokio::fs::File, write_all, sync_all.
fn tokio_seed(trt: &tokio::runtime::Runtime, path: &Path, mib: u64, buf: &[u8], dur: Duration) -> Result<Sample, String> {
    use tokio::io::AsyncWriteExt;
    repeat_seed(dur, mib, || {
        trt.block_on(async {
            let mut f = tokio::fs::File::create(path).await.map_err(|e| format!("{}: {e}", path.display()))?;
            let start = Instant::now();
            for _ in 0..mib {
                f.write_all(buf).await.map_err(|e| format!("tokio write: {e}"))?;
            }
            f.sync_all().await.map_err(|e| format!("tokio fsync: {e}"))?;
            Ok(start.elapsed().as_secs_f64())
        })
    })
}

/// Objects as a tokio user writes them: write_all + sync_all per object.
fn tokio_objects(trt: &tokio::runtime::Runtime, path: &Path, count: u64, buf: &[u8], dur: Duration) -> Result<Sample, String> {
    use tokio::io::AsyncWriteExt;
    repeat_seed(dur, count, || {
        trt.block_on(async {
            let mut f = tokio::fs::File::create(path).await.map_err(|e| format!("{}: {e}", path.display()))?;
            let start = Instant::now();
            for _ in 0..count {
                f.write_all(buf).await.map_err(|e| format!("tokio write: {e}"))?;
                f.sync_all().await.map_err(|e| format!("tokio fsync: {e}"))?;
            }
            Ok(start.elapsed().as_secs_f64())
        })
    })
}

// ---------------------------------------------------------------- fio

/// fio's figure for the object pattern: a fresh file, `count` O_DIRECT
/// 1 MiB sequential writes at depth 1, fdatasync after each, no
/// preallocation; whole passes until `dur` has passed.
fn fio_objects(fio: &Path, path: &Path, count: u64, dur: Duration) -> Result<Sample, String> {
    let spec =
        IoSpec { write: true, rand: false, bs: MIB, qd: 1, direct: true, file_size: count * MIB as u64, registered: false };
    let extra = ["--fdatasync=1", "--fallocate=none", "--create_on_open=1"];
    let wall = Instant::now();
    let mut total = Sample { ops: 0, bytes: 0, secs: 0.0, peak_rss_kib: None, group_commits: None, cpu_secs: None };
    loop {
        let _ = std::fs::remove_file(path);
        let s = fio_run(fio, path, &spec, None, &extra)?;
        total.ops += s.ops;
        total.bytes += s.bytes;
        total.secs += s.secs;
        if wall.elapsed() >= dur {
            return Ok(total);
        }
    }
}

pub(crate) fn fio_io(fio: &Path, path: &Path, spec: &IoSpec, dur: Duration) -> Result<Sample, String> {
    let fixed = if spec.registered { "--fixedbufs=1" } else { "--fixedbufs=0" };
    fio_run(fio, path, spec, Some(dur), &["--norandommap=1", "--randrepeat=0", "--invalidate=0", fixed])
}

/// One fio job: time-based for `dur`, else one pass over the file.
fn fio_run(fio: &Path, path: &Path, spec: &IoSpec, dur: Option<Duration>, extra: &[&str]) -> Result<Sample, String> {
    let mut args = vec![
        "--name=rio-bench".to_string(),
        format!("--filename={}", path.display()),
        "--ioengine=io_uring".into(),
        format!("--rw={}", spec.fio_rw()),
        format!("--bs={}", spec.bs),
        format!("--iodepth={}", spec.qd),
        format!("--direct={}", u8::from(spec.direct)),
        format!("--size={}", spec.file_size),
        "--output-format=json".into(),
    ];
    if let Some(dur) = dur {
        args.push("--time_based=1".into());
        args.push(format!("--runtime={}ms", dur.as_millis().max(1)));
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let out = Command::new(fio).args(&args).output().map_err(|e| format!("cannot run fio: {e}"))?;
    if !out.status.success() {
        return Err(format!("fio {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    // fio may print notes before the JSON document.
    let text = String::from_utf8_lossy(&out.stdout);
    let json_start = text.find('{').ok_or("fio printed no JSON")?;
    let v: serde_json::Value =
        serde_json::from_str(&text[json_start..]).map_err(|e| format!("fio JSON: {e}"))?;
    let job = &v["jobs"][0];
    if job["error"].as_i64().unwrap_or(0) != 0 {
        return Err(format!("fio job error {}", job["error"]));
    }
    let side = &job[if spec.write { "write" } else { "read" }];
    let ops = side["total_ios"].as_u64().ok_or("fio JSON lacks total_ios")?;
    let bytes = side["io_bytes"].as_u64().ok_or("fio JSON lacks io_bytes")?;
    let runtime_ms = side["runtime"].as_f64().ok_or("fio JSON lacks runtime")?;
    if ops == 0 || runtime_ms <= 0.0 {
        return Err("fio did no I/O".into());
    }
    // usr_cpu/sys_cpu: percent of one CPU over the job's run time.
    let cpu_pct = job["usr_cpu"].as_f64().unwrap_or(0.0) + job["sys_cpu"].as_f64().unwrap_or(0.0);
    let cpu_secs = (cpu_pct > 0.0).then(|| cpu_pct / 100.0 * job["job_runtime"].as_f64().unwrap_or(runtime_ms) / 1000.0);
    Ok(Sample { ops, bytes, secs: runtime_ms / 1000.0, peak_rss_kib: None, group_commits: None, cpu_secs })
}

// ---------------------------------------------------------------- driver

/// The rows where CPU per op is the question: 4 KiB O_DIRECT at QD32,
/// registered or not.
fn measure_cpu(spec: &IoSpec) -> bool {
    spec.direct && spec.bs == 4096 && spec.qd == 32
}

type RunFn<'a> = Box<dyn FnMut(Duration) -> Result<Sample, String> + 'a>;

/// CPU time (user + system) of every thread of this process, in ns: the
/// caller and, on io_uring, its io-wq workers.
fn process_cpu_ns() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(ru.ru_utime) + ns(ru.ru_stime)
}

/// Wraps a run so that each sample's CPU time per op (ns) lands in `log`.
fn with_cpu<'a>(log: &'a std::cell::RefCell<Vec<f64>>, mut run: RunFn<'a>) -> RunFn<'a> {
    Box::new(move |d| {
        let before = process_cpu_ns();
        let s = run(d)?;
        log.borrow_mut().push((process_cpu_ns() - before) as f64 / s.ops.max(1) as f64);
        Ok(s)
    })
}

/// Records the median CPU per op of the timed samples (the first one,
/// the warm-up pass, is left out) as a note and in results.json.
fn record_cpu(res: &mut Results, workload: &str, peer: &str, log: &std::cell::RefCell<Vec<f64>>) {
    let samples: Vec<f64> = log.borrow().iter().skip(1).copied().collect();
    let Some(ns) = crate::median(samples) else { return };
    res.note(workload, peer, format!("CPU per op {:.2} µs (all threads of the process, median)", ns / 1000.0));
    let cpu = res.extra.entry("cpu_per_op_ns").or_insert_with(|| serde_json::json!({}));
    cpu[workload] = serde_json::json!({ peer: ns });
}

fn unit<'a>(id: &str, peer: &str, run: RunFn<'a>) -> Unit<'a> {
    Unit { workload: id.to_string(), peer: peer.to_string(), run }
}

pub fn run_all(opts: &Opts, env: &Env, res: &mut Results) {
    let chosen: Vec<FileWorkload> = all(opts).into_iter().filter(|f| opts.selected(&f.w.id, f.w.group)).collect();
    if chosen.is_empty() {
        return;
    }
    let mut chosen = chosen;
    let need_direct = chosen.iter().any(|f| matches!(f.kind, Kind::Io(s) if s.direct));
    if need_direct {
        if let Err(why) = direct_supported(&env.dir) {
            // Not the library's fault (tmpfs before 6.6, some FUSE/9p): say so, go on.
            let msg = format!("O_DIRECT workloads skipped: {why}");
            eprintln!("bench: WARNING {msg}");
            res.warnings.push(msg);
            chosen.retain(|f| !matches!(f.kind, Kind::Io(s) if s.direct));
        } else if let Err(e) = prepare_file(&env.direct_path, opts.file_size) {
            res.errors.push(format!("preparing the O_DIRECT file: {e}"));
            return;
        }
    }
    let seed_buf = filled(MIB, 5);
    for fw in chosen {
        let w = fw.w.clone();
        eprintln!("bench: {} ...", w.title);
        res.workloads.push(w.clone());
        let uring_cpu = std::cell::RefCell::new(Vec::new());
        let mut units: Vec<Unit<'_>> = Vec::new();
        let id = w.id.clone();
        match fw.kind {
            Kind::Seed { mib } => {
                let path = env.seed_path.clone();
                let (p1, p2, p3, p4) = (path.clone(), path.clone(), path.clone(), path.clone());
                let buf: &[u8] = &seed_buf;
                if let Ok(rt) = &env.uring {
                    units.push(unit(&id, RIO_URING, Box::new(move |d| rio_seed(rt, &p1, mib, buf, d))));
                }
                units.push(unit(&id, RIO_POOL, Box::new(move |d| rio_seed(&env.pool, &p2, mib, buf, d))));
                units.push(unit(&id, STD, Box::new(move |d| std_seed(&p3, mib, buf, d))));
                units.push(unit(&id, TOKIO, Box::new(move |d| tokio_seed(&env.tokio, &p4, mib, buf, d))));
                res.note(&w.id, FIO, "not run: fio's buffered write + end_fsync timing is not comparable");
            }
            Kind::Objects { count, path: how } => {
                let path = env.seed_path.clone();
                let (p1, p2, p3, p4, p5) = (path.clone(), path.clone(), path.clone(), path.clone(), path.clone());
                let buf: &[u8] = &seed_buf;
                if let Ok(rt) = &env.uring {
                    units.push(unit(&id, RIO_URING, Box::new(move |d| rio_objects(rt, &p1, count, how, buf, d))));
                }
                units.push(unit(&id, RIO_POOL, Box::new(move |d| rio_objects(&env.pool, &p2, count, how, buf, d))));
                units.push(unit(&id, STD, Box::new(move |d| std_objects(&p3, count, buf, d))));
                units.push(unit(&id, TOKIO, Box::new(move |d| tokio_objects(&env.tokio, &p4, count, buf, d))));
                if let Some(fio) = &env.fio {
                    units.push(unit(&id, FIO, Box::new(move |d| fio_objects(fio, &p5, count, d))));
                }
            }
            Kind::Io(spec) => {
                let path = if spec.direct { env.direct_path.clone() } else { env.cache_path.clone() };
                if !spec.direct {
                    if let Err(e) = prepare_file(&path, spec.file_size).and_then(|_| warm_cache(&path)) {
                        res.errors.push(format!("preparing the page-cache file: {e}"));
                        continue;
                    }
                }
                let (p1, p2, p3, p4, p5) = (path.clone(), path.clone(), path.clone(), path.clone(), path.clone());
                if let Ok(rt) = &env.uring {
                    let run: RunFn<'_> = Box::new(move |d| rio_io(rt, &p1, &spec, d));
                    units.push(unit(&id, RIO_URING, if measure_cpu(&spec) { with_cpu(&uring_cpu, run) } else { run }));
                }
                units.push(unit(&id, RIO_POOL, Box::new(move |d| rio_io(&env.pool, &p2, &spec, d))));
                if !spec.registered {
                    units.push(unit(&id, STD, Box::new(move |d| std_io(&p3, &spec, d))));
                    units.push(unit(&id, TOKIO, Box::new(move |d| tokio_io(&env.tokio, &p4, &spec, d))));
                } else {
                    res.note(&w.id, STD, "not run: no registered buffers");
                    res.note(&w.id, TOKIO, "not run: no registered buffers");
                }
                if let Some(fio) = &env.fio {
                    units.push(unit(&id, FIO, Box::new(move |d| fio_io(fio, &p5, &spec, d))));
                }
                if spec.qd > 1 {
                    res.note(&w.id, STD, "one thread of blocking calls: effective depth 1");
                }
            }
        }
        if let Err(why) = &env.uring {
            res.note(&w.id, RIO_URING, why.clone());
        }
        if let Some(why) = &env.fio_absent {
            res.notes.entry((w.id.clone(), FIO.to_string())).or_insert_with(|| format!("absent: {why}"));
        }
        units.retain(|u| opts.peer_on(&u.peer));
        // A short unrecorded pass first (rings, thread pools, page faults).
        let warm = Some((opts.duration / 5).max(Duration::from_millis(20)));
        run_interleaved(&mut units, opts, warm, res);
        drop(units);
        record_cpu(res, &w.id, RIO_URING, &uring_cpu);
        if matches!(fw.kind, Kind::Seed { .. } | Kind::Objects { .. }) {
            let _ = std::fs::remove_file(&env.seed_path);
        }
        let _ = std::io::stderr().flush();
    }
}
