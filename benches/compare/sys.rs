//! Machine facts: CPU, kernel, memory, the filesystem under the scratch
//! directory, rio's capabilities, fio.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::opts::Opts;

pub struct Fio {
    pub path: Option<PathBuf>,
    pub version: Option<String>,
    /// Why fio is not used, when it is not.
    pub absent: Option<String>,
}

pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total_kib: u64,
    pub fs_type: String,
    pub fs_device: String,
    pub fs_mount: String,
    pub fs_options: String,
    pub date_utc: String,
    pub git_commit: String,
    pub loadavg_start: String,
    pub rio_uring: Value,
    pub rio_pool: Value,
    pub fio: Fio,
    pub warnings: Vec<String>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn cpu_model() -> String {
    read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total_kib() -> u64 {
    read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// statfs magic → name, for the filesystems one meets.
fn fs_magic_name(magic: i64) -> &'static str {
    match magic {
        0xEF53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x0102_1997 => "9p",
        0x858458f6 => "ramfs",
        _ => "unknown",
    }
}

/// (fs type, device, mount point, options) of the mount holding `dir`,
/// from /proc/self/mountinfo (longest matching mount point).
fn mount_of(dir: &Path) -> Option<(String, String, String, String)> {
    let canon = std::fs::canonicalize(dir).ok()?;
    let mut best: Option<(usize, (String, String, String, String))> = None;
    for line in read("/proc/self/mountinfo").lines() {
        let (left, right) = line.split_once(" - ")?;
        let l: Vec<&str> = left.split_whitespace().collect();
        let r: Vec<&str> = right.split_whitespace().collect();
        if l.len() < 6 || r.len() < 2 {
            continue;
        }
        let mp = l[4].replace("\\040", " ");
        if canon.starts_with(&mp) {
            let len = mp.len();
            if best.as_ref().map_or(true, |(b, _)| len >= *b) {
                best = Some((len, (r[0].to_string(), r[1].to_string(), mp, l[5].to_string())));
            }
        }
    }
    best.map(|(_, v)| v)
}

fn statfs_name(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return "unknown".into() };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "unknown".into();
    }
    fs_magic_name(st.f_type as i64).to_string()
}

/// UTC date and time, formatted without a date crate.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub fn rio_caps(rt: &rio::Runtime) -> Value {
    let c = rt.capabilities();
    json!({
        "backend": c.backend.name(),
        "kernel_release": c.kernel_release,
        "ring_setup_flags": c.ring.as_ref().map(|r| r.setup_flags_name),
        "sq_entries": c.ring.as_ref().map(|r| r.sq_entries),
        "cq_entries": c.ring.as_ref().map(|r| r.cq_entries),
        "io_uring_unavailable_reason": c.io_uring_unavailable_reason,
        "queue_depth": c.settings.queue_depth,
        "max_concurrent_ops": c.settings.max_concurrent_ops,
        "worker_threads": c.settings.worker_threads,
    })
}

fn probe_runtime(backend: rio::BackendChoice) -> Value {
    match rio::Runtime::new(&rio::RuntimeConfig { backend, ..Default::default() }) {
        Ok(rt) => rio_caps(&rt),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn find_fio(opts: &Opts) -> Fio {
    if opts.no_fio {
        return Fio { path: None, version: None, absent: Some("disabled with --no-fio".into()) };
    }
    if !opts.peer_on(crate::FIO) {
        return Fio { path: None, version: None, absent: Some("not selected (--peers)".into()) };
    }
    match Command::new("fio").arg("--version").output() {
        Ok(out) if out.status.success() => Fio {
            path: Some(PathBuf::from("fio")),
            version: Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            absent: None,
        },
        Ok(out) => Fio {
            path: None,
            version: None,
            absent: Some(format!("fio --version failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        },
        Err(e) => Fio {
            path: None,
            version: None,
            absent: Some(format!("fio is not installed ({e}); `make bench` installs it with apt-get where it can")),
        },
    }
}

impl Machine {
    pub fn probe(opts: &Opts) -> Machine {
        let mut warnings = Vec::new();
        let (fs_type, fs_device, fs_mount, fs_options) = mount_of(&opts.dir)
            .unwrap_or_else(|| (statfs_name(&opts.dir), "unknown".into(), "unknown".into(), String::new()));
        let magic = statfs_name(&opts.dir);
        if magic == "tmpfs" || magic == "ramfs" || fs_type == "tmpfs" {
            warnings.push(format!(
                "the scratch directory {} is on {fs_type}: nothing reaches a disk, O_DIRECT and fsync mean little; use --dir on a real filesystem",
                opts.dir.display()
            ));
        }
        if fs_type == "overlay" {
            warnings.push(format!("the scratch directory {} is on overlayfs; numbers include its overhead", opts.dir.display()));
        }
        let fio = find_fio(opts);
        if let Some(why) = &fio.absent {
            warnings.push(format!("fio peer absent: {why}"));
        }
        let git_commit = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let dirty = Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .ok()
            .is_some_and(|o| !o.stdout.is_empty());
        Machine {
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model: cpu_model(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            mem_total_kib: mem_total_kib(),
            fs_type: if fs_type.is_empty() { magic } else { fs_type },
            fs_device,
            fs_mount,
            fs_options,
            date_utc: utc_now(),
            git_commit: if dirty { format!("{git_commit}+dirty") } else { git_commit },
            loadavg_start: read("/proc/loadavg").trim().to_string(),
            rio_uring: probe_runtime(rio::BackendChoice::IoUring),
            rio_pool: probe_runtime(rio::BackendChoice::ThreadPool),
            fio,
            warnings,
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "bench: {} CPUs ({}), {:.1} GiB RAM, kernel {}, scratch on {} ({} at {}), rio io_uring: {}, fio: {}, commit {}, {}",
            self.cpus,
            self.cpu_model,
            self.mem_total_kib as f64 / (1 << 20) as f64,
            self.kernel,
            self.fs_type,
            self.fs_device,
            self.fs_mount,
            self.uring_summary(),
            self.fio.version.as_deref().unwrap_or("absent"),
            self.git_commit,
            self.date_utc
        )
    }

    pub fn uring_summary(&self) -> String {
        match self.rio_uring.get("error") {
            Some(e) => format!("unavailable ({})", e.as_str().unwrap_or("?")),
            None => format!(
                "{} (sq {}, cq {})",
                self.rio_uring["ring_setup_flags"].as_str().unwrap_or("?"),
                self.rio_uring["sq_entries"],
                self.rio_uring["cq_entries"]
            ),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "cpus": self.cpus,
            "cpu_model": self.cpu_model,
            "kernel": self.kernel,
            "mem_total_kib": self.mem_total_kib,
            "filesystem": { "type": self.fs_type, "device": self.fs_device, "mount": self.fs_mount, "options": self.fs_options },
            "date_utc": self.date_utc,
            "git_commit": self.git_commit,
            "loadavg_start": self.loadavg_start,
            "loadavg_end": read("/proc/loadavg").trim(),
            "rio_io_uring": self.rio_uring,
            "rio_thread_pool": self.rio_pool,
            "fio": { "version": self.fio.version, "absent_reason": self.fio.absent },
        })
    }
}

/// VmHWM (peak resident set, KiB) of this process.
pub fn peak_rss_kib() -> Option<u64> {
    read("/proc/self/status")
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
