//! Command-line options (hand-parsed: the library gains no dependency and
//! the bench needs only a few flags).

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: cargo bench --bench compare -- [options]      (or: make bench BENCH_ARGS='...')

  --quick               smaller files, shorter runs, 2 repetitions (~30 s)
  --workloads LIST      comma-separated workload ids or prefixes, or groups:
                        seed, objects, direct, cached, files, wal, queue, all (default all); see --list
  --peers LIST          rio-uring,rio-pool,std,tokio,fio, and for the queue rows
                        rio-queue,rio-queue-pool,rio-batch,go-goroutines,py-asyncio,py-executor,py-aiofiles (default: all)
  --duration D          length of each timed run: 500ms, 1s, 2.5s (default 500ms)
  --reps N              repetitions per peer and workload; medians are reported (default 5)
  --file-size SIZE      O_DIRECT data file (default 1G; K/M/G suffixes)
  --cache-size SIZE     page-cache file for the cached-read workload (default 256M)
  --seed-mib N          the seed workload writes N x 1 MiB then fsyncs (default 100)
  --wal-threads LIST    WAL appender thread counts (default 1,4,32)
  --wal-sizes LIST      WAL entry sizes (default 128,4K)
  --dir PATH            scratch directory for the files (default bench-results/scratch)
  --out PATH            where results.json, table.md and chart.svg go (default bench-results)
  --no-fio              do not run fio even when installed
  --keep-files          keep the scratch files (the data file is reused when its size matches)
  -v, --verbose         print every sample as it is taken
  --list                list the workloads and exit
  -h, --help            this text
";

#[derive(Debug, Clone)]
pub struct Opts {
    pub quick: bool,
    pub workloads: Vec<String>,
    pub peers: Vec<String>,
    pub duration: Duration,
    pub reps: usize,
    pub file_size: u64,
    pub cache_size: u64,
    pub seed_mib: u64,
    pub wal_threads: Vec<usize>,
    pub wal_sizes: Vec<usize>,
    pub dir: PathBuf,
    pub out: PathBuf,
    pub no_fio: bool,
    pub keep_files: bool,
    pub verbose: bool,
    pub list: bool,
    pub help: bool,
    /// The command line, for results.json.
    pub argv: Vec<String>,
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit() && *c != '.') {
        None => (s, 1u64),
        Some((i, _)) => {
            let m = match s[i..].to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(format!("bad size {s:?} (use e.g. 4096, 4K, 256M, 1G)")),
            };
            (&s[..i], m)
        }
    };
    let v: f64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    if v <= 0.0 {
        return Err(format!("size {s:?} must be positive"));
    }
    Ok((v * mult as f64) as u64)
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?} (use e.g. 500ms, 1s)"))?;
    if v.is_nan() || v <= 0.0 {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts, String> {
        let mut o = Opts {
            quick: false,
            workloads: vec!["all".into()],
            peers: super::ALL_PEERS.iter().chain(&super::QUEUE_PEERS).map(|p| p.to_string()).collect(),
            duration: Duration::from_millis(500),
            reps: 5,
            file_size: 1 << 30,
            cache_size: 256 << 20,
            seed_mib: 100,
            wal_threads: vec![1, 4, 32],
            wal_sizes: vec![128, 4096],
            dir: PathBuf::from("bench-results/scratch"),
            out: PathBuf::from("bench-results"),
            no_fio: false,
            keep_files: false,
            verbose: false,
            list: false,
            help: false,
            argv: args.to_vec(),
        };
        // --quick first, so explicit options given with it still win.
        if args.iter().any(|a| a == "--quick") {
            o.quick = true;
            o.duration = Duration::from_millis(250);
            o.reps = 2;
            o.file_size = 128 << 20;
            o.cache_size = 32 << 20;
            o.seed_mib = 32;
        }
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            let mut value = || -> Result<String, String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it.next().cloned().ok_or_else(|| format!("{flag} needs a value")),
                }
            };
            match flag {
                // `cargo bench` passes --bench to harness=false targets.
                "--bench" | "--quick" => {}
                "--workloads" | "-w" => o.workloads = list(&value()?),
                "--peers" | "-p" => {
                    let v = list(&value()?);
                    for p in &v {
                        if !super::ALL_PEERS.contains(&p.as_str()) && !super::QUEUE_PEERS.contains(&p.as_str()) {
                            let known: Vec<&str> = super::ALL_PEERS.iter().chain(&super::QUEUE_PEERS).copied().collect();
                            return Err(format!("unknown peer {p:?} (peers: {})", known.join(",")));
                        }
                    }
                    o.peers = v;
                }
                "--duration" | "-d" => o.duration = parse_duration(&value()?)?,
                "--reps" | "-r" => {
                    o.reps = value()?.parse().map_err(|_| "--reps needs a positive integer".to_string())?;
                    if o.reps == 0 {
                        return Err("--reps must be at least 1".into());
                    }
                }
                "--file-size" => o.file_size = parse_size(&value()?)?,
                "--cache-size" => o.cache_size = parse_size(&value()?)?,
                "--seed-mib" => {
                    o.seed_mib = value()?.parse().map_err(|_| "--seed-mib needs a positive integer".to_string())?;
                    if o.seed_mib == 0 {
                        return Err("--seed-mib must be at least 1".into());
                    }
                }
                "--wal-threads" => {
                    o.wal_threads = list(&value()?)
                        .iter()
                        .map(|t| t.parse::<usize>().ok().filter(|&n| (1..=1024).contains(&n)))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("--wal-threads needs thread counts between 1 and 1024")?;
                }
                "--wal-sizes" => {
                    o.wal_sizes = list(&value()?)
                        .iter()
                        .map(|s| parse_size(s).map(|v| v as usize))
                        .collect::<Result<Vec<_>, _>>()?;
                }
                "--dir" => o.dir = PathBuf::from(value()?),
                "--out" => o.out = PathBuf::from(value()?),
                "--no-fio" => o.no_fio = true,
                "--keep-files" => o.keep_files = true,
                "-v" | "--verbose" => o.verbose = true,
                "--list" => o.list = true,
                "-h" | "--help" => o.help = true,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        // Whole 1 MiB blocks, so sequential O_DIRECT runs wrap cleanly.
        o.file_size = (o.file_size / (1 << 20)).max(1) * (1 << 20);
        o.cache_size = (o.cache_size / 4096).max(1) * 4096;
        Ok(o)
    }

    pub fn peer_on(&self, peer: &str) -> bool {
        self.peers.iter().any(|p| p == peer)
    }

    /// Whether workload `id` of `group` is selected.
    pub fn selected(&self, id: &str, group: &str) -> bool {
        self.workloads.iter().any(|w| {
            w == "all"
                || w == id
                || w == group
                || (w == "files" && group != "wal")
                || (id.starts_with(w.as_str()) && !w.is_empty())
        })
    }
}
