//! `rio probe`: what the I/O layer would do on this machine, and why.

use std::ffi::CString;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_json::{json, Value};

use crate::{Failure, Outcome, ProbeArgs};

/// io_uring opcode numbers → IORING_OP_* names (include/uapi/linux/io_uring.h).
const OPCODES: [&str; 63] = [
    "NOP",
    "READV",
    "WRITEV",
    "FSYNC",
    "READ_FIXED",
    "WRITE_FIXED",
    "POLL_ADD",
    "POLL_REMOVE",
    "SYNC_FILE_RANGE",
    "SENDMSG",
    "RECVMSG",
    "TIMEOUT",
    "TIMEOUT_REMOVE",
    "ACCEPT",
    "ASYNC_CANCEL",
    "LINK_TIMEOUT",
    "CONNECT",
    "FALLOCATE",
    "OPENAT",
    "CLOSE",
    "FILES_UPDATE",
    "STATX",
    "READ",
    "WRITE",
    "FADVISE",
    "MADVISE",
    "SEND",
    "RECV",
    "OPENAT2",
    "EPOLL_CTL",
    "SPLICE",
    "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS",
    "TEE",
    "SHUTDOWN",
    "RENAMEAT",
    "UNLINKAT",
    "MKDIRAT",
    "SYMLINKAT",
    "LINKAT",
    "MSG_RING",
    "FSETXATTR",
    "SETXATTR",
    "FGETXATTR",
    "GETXATTR",
    "SOCKET",
    "URING_CMD",
    "SEND_ZC",
    "SENDMSG_ZC",
    "READ_MULTISHOT",
    "WAITID",
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_WAITV",
    "FIXED_FD_INSTALL",
    "FTRUNCATE",
    "BIND",
    "LISTEN",
    "RECV_ZC",
    "EPOLL_WAIT",
    "READV_FIXED",
    "WRITEV_FIXED",
    "PIPE",
];

/// The IORING_OP_* name of an opcode number.
pub fn opcode_name(code: u8) -> String {
    match OPCODES.get(code as usize) {
        Some(name) => format!("IORING_OP_{name}"),
        None => format!("IORING_OP_{code}"),
    }
}

/// IORING_SETUP_* flag bits → names.
const SETUP_FLAGS: [(u32, &str); 18] = [
    (1 << 0, "IOPOLL"),
    (1 << 1, "SQPOLL"),
    (1 << 2, "SQ_AFF"),
    (1 << 3, "CQSIZE"),
    (1 << 4, "CLAMP"),
    (1 << 5, "ATTACH_WQ"),
    (1 << 6, "R_DISABLED"),
    (1 << 7, "SUBMIT_ALL"),
    (1 << 8, "COOP_TASKRUN"),
    (1 << 9, "TASKRUN_FLAG"),
    (1 << 10, "SQE128"),
    (1 << 11, "CQE32"),
    (1 << 12, "SINGLE_ISSUER"),
    (1 << 13, "DEFER_TASKRUN"),
    (1 << 14, "NO_MMAP"),
    (1 << 15, "REGISTERED_FD_ONLY"),
    (1 << 16, "NO_SQARRAY"),
    (1 << 17, "HYBRID_IOPOLL"),
];

pub fn setup_flag_names(flags: u32) -> Vec<String> {
    let mut names: Vec<String> =
        SETUP_FLAGS.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| format!("IORING_SETUP_{n}")).collect();
    let known: u32 = SETUP_FLAGS.iter().map(|(bit, _)| bit).sum();
    if flags & !known != 0 {
        names.push(format!("{:#x}", flags & !known));
    }
    names
}

/// statfs f_type → filesystem name (include/uapi/linux/magic.h); ext2,
/// ext3 and ext4 share one magic number.
pub fn fs_name(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0xEF53 => "ext2/ext3/ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0x794c_7630 => "overlayfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x2fc1_2fc1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0xca45_1a4e => "bcachefs",
        0xE0F5_E1E2 => "erofs",
        0x7371_7368 => "squashfs",
        0x2011_BAB0 => "exfat",
        0x4d44 => "vfat/msdos",
        0x5346_544e => "ntfs",
        0xFE53_4D42 => "smb2",
        0xFF53_4D42 => "cifs",
        0x00c3_6400 => "ceph",
        0x0116_1970 => "gfs2",
        0x7461_636f => "ocfs2",
        0x0102_1997 => "9p",
        0x9584_58f6 => "hugetlbfs",
        0x9660 => "iso9660",
        0x3153_464a => "jfs",
        0x5265_4973 => "reiserfs",
        0x3434 => "nilfs2",
        0xf15f => "ecryptfs",
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x6367_7270 => "cgroup2",
        0x0027_e0eb => "cgroup",
        0x1cd1 => "devpts",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0xcafe_4a11 => "bpf",
        0x6165_676c => "pstore",
        0xde5e_81e4 => "efivarfs",
        0x0187 => "autofs",
        _ => return None,
    })
}

fn rlimit(resource: libc::__rlimit_resource_t) -> (Option<u64>, Option<u64>) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into r.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
        return (None, None);
    }
    let v = |x: libc::rlim_t| (x != libc::RLIM_INFINITY).then_some(x);
    (v(r.rlim_cur), v(r.rlim_max))
}

fn limit_json((soft, hard): (Option<u64>, Option<u64>)) -> Value {
    json!({ "soft": soft, "hard": hard })
}

fn limit_text((soft, hard): (Option<u64>, Option<u64>), bytes: bool) -> String {
    let one = |v: Option<u64>| match v {
        None => "unlimited".to_string(),
        Some(v) if bytes => crate::progress::human_bytes(v),
        Some(v) => v.to_string(),
    };
    format!("{} (hard {})", one(soft), one(hard))
}

fn cpath(path: &Path) -> Result<CString, Failure> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Failure::Io(format!("{}: path contains a NUL byte", path.display())))
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn os_error(what: impl std::fmt::Display, errno: i32) -> Failure {
    Failure::Io(format!("{what}: {}", rio::error::strerror(errno)))
}

/// Whether O_DIRECT works there: opening the file (or, for a directory, an
/// unnamed O_TMPFILE in it, which leaves nothing behind) with O_DIRECT.
/// Returns the verdict and, when it works, the direct-I/O alignment of
/// such a file.
fn direct_io(path: &Path, is_dir: bool) -> Result<(Value, String, Option<rio::DioAlign>), Failure> {
    let c = cpath(path)?;
    let flags = if is_dir { libc::O_TMPFILE | libc::O_RDWR } else { libc::O_RDONLY };
    // SAFETY: a valid C string; the fd is closed below.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_DIRECT | libc::O_CLOEXEC, 0o600) };
    if fd >= 0 {
        let align = rio::file::dio_alignment(fd);
        // SAFETY: an fd we own.
        unsafe { libc::close(fd) };
        return Ok((Value::Bool(true), "supported".into(), Some(align)));
    }
    let errno = last_errno();
    let how = if is_dir { "O_TMPFILE|O_DIRECT" } else { "O_DIRECT" };
    match errno {
        libc::EINVAL if !is_dir => Ok((Value::Bool(false), "not supported (open with O_DIRECT: EINVAL)".into(), None)),
        // O_TMPFILE itself may be what is missing, or the directory read-only.
        _ => Ok((Value::Null, format!("unknown (open {how}: {})", rio::error::strerror(errno)), None)),
    }
}

fn probe_path(path: &Path) -> Result<(Value, String), Failure> {
    let c = cpath(path)?;
    // SAFETY: statfs writes into the zeroed struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(os_error(format_args!("{}: statfs", path.display()), last_errno()));
    }
    let meta = std::fs::metadata(path).map_err(|e| Failure::Io(format!("{}: {e}", path.display())))?;
    let magic = st.f_type as u64;
    let fs = fs_name(magic);
    // The alignment of the path itself (for a directory: its device's
    // logical block size), then of a file created there.
    let c_fd = {
        // SAFETY: a valid C string.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(os_error(format_args!("{}: open", path.display()), last_errno()));
        }
        fd
    };
    let path_align = rio::file::dio_alignment(c_fd);
    // SAFETY: an fd we own.
    unsafe { libc::close(c_fd) };
    let (dio_ok, dio_text, file_align) = direct_io(path, meta.is_dir())?;
    let align = file_align.unwrap_or(path_align);
    let block = st.f_bsize as u64;
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let total = st.f_blocks as u64 * st.f_frsize as u64;
    let v = json!({
        "path": path.display().to_string(),
        "kind": if meta.is_dir() { "directory" } else if meta.is_file() { "file" } else { "other" },
        "filesystem": fs,
        "filesystem_magic": format!("{magic:#x}"),
        "block_size": block,
        "total_bytes": total,
        "free_bytes": free,
        "direct_io": dio_ok,
        "direct_io_detail": dio_text,
        "dio_alignment": { "memory": align.memory, "offset": align.offset },
    });
    let mut t = String::new();
    let _ = writeln!(t, "path:              {}", path.display());
    let _ = writeln!(t, "  filesystem:      {} (magic {magic:#x})", fs.unwrap_or("unknown"));
    let _ = writeln!(t, "  block size:      {block}");
    let _ = writeln!(
        t,
        "  space:           {} free of {}",
        crate::progress::human_bytes(free),
        crate::progress::human_bytes(total)
    );
    let _ = writeln!(t, "  O_DIRECT:        {dio_text}");
    let _ = writeln!(t, "  dio alignment:   memory {} bytes, offset/length {} bytes", align.memory, align.offset);
    Ok((v, t))
}

pub fn run(args: &ProbeArgs) -> Outcome {
    // The path first: a typo should not cost a runtime start.
    let path = args.path.as_deref().map(probe_path).transpose()?;
    let rt = rio::Runtime::new(&Default::default()).map_err(|e| Failure::Io(format!("cannot start the I/O runtime: {e}")))?;
    let caps = rt.capabilities();
    let opcodes: Vec<String> = match &caps.ring {
        Some(ring) => (0..=255u8).filter(|&c| ring.supports(c)).map(opcode_name).collect(),
        None => Vec::new(),
    };
    let memlock = rlimit(libc::RLIMIT_MEMLOCK);
    let nofile = rlimit(libc::RLIMIT_NOFILE);
    let s = &caps.settings;
    let mut out = String::new();
    if args.json {
        let v = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "backend": caps.backend.name(),
            "kernel_release": caps.kernel_release,
            "io_uring": caps.ring.as_ref().map(|r| json!({
                "setup_flags": r.setup_flags,
                "setup_flags_name": r.setup_flags_name,
                "setup_flag_names": setup_flag_names(r.setup_flags),
                "sq_entries": r.sq_entries,
                "cq_entries": r.cq_entries,
                "opcodes": opcodes,
            })),
            "io_uring_unavailable_reason": caps.io_uring_unavailable_reason,
            "settings": {
                "queue_depth": s.queue_depth,
                "max_concurrent_ops": s.max_concurrent_ops,
                "worker_threads": s.worker_threads,
            },
            "rlimit_memlock": limit_json(memlock),
            "rlimit_nofile": limit_json(nofile),
            "path": path.as_ref().map(|p| p.0.clone()),
        });
        out = v.to_string();
        out.push('\n');
    } else {
        let _ = writeln!(out, "backend:           {}", caps.backend.name());
        let _ = writeln!(out, "kernel:            {}", caps.kernel_release);
        match &caps.io_uring_unavailable_reason {
            Some(why) => {
                let _ = writeln!(out, "io_uring:          not in use: {why}");
            }
            None => {
                let _ = writeln!(out, "io_uring:          in use");
            }
        }
        if let Some(r) = &caps.ring {
            let flags = setup_flag_names(r.setup_flags);
            let names = if flags.is_empty() { "no flags".to_string() } else { flags.join("|") };
            let _ = writeln!(out, "  ring setup:      {} ({names} = {:#x})", r.setup_flags_name, r.setup_flags);
            let _ = writeln!(out, "  ring size:       {} SQ / {} CQ entries", r.sq_entries, r.cq_entries);
            let _ = writeln!(out, "  opcodes:         {} supported", opcodes.len());
            for chunk in opcodes.chunks(4) {
                let _ = writeln!(out, "    {}", chunk.join(" "));
            }
        }
        let _ = writeln!(
            out,
            "settings:          queue depth {}, max concurrent ops {}, worker threads {}",
            s.queue_depth, s.max_concurrent_ops, s.worker_threads
        );
        let _ = writeln!(out, "RLIMIT_MEMLOCK:    {}", limit_text(memlock, true));
        let _ = writeln!(out, "RLIMIT_NOFILE:     {}", limit_text(nofile, false));
        if let Some((_, text)) = &path {
            out.push_str(text);
        }
    }
    io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(opcode_name(0), "IORING_OP_NOP");
        assert_eq!(opcode_name(22), "IORING_OP_READ");
        assert_eq!(opcode_name(23), "IORING_OP_WRITE");
        assert_eq!(opcode_name(57), "IORING_OP_LISTEN");
        assert_eq!(opcode_name(200), "IORING_OP_200");
        assert_eq!(setup_flag_names(0x3000), ["IORING_SETUP_SINGLE_ISSUER", "IORING_SETUP_DEFER_TASKRUN"]);
        assert_eq!(setup_flag_names(1 << 30), ["0x40000000"]);
        assert_eq!(fs_name(0xEF53), Some("ext2/ext3/ext4"));
        assert_eq!(fs_name(0x0102_1994), Some("tmpfs"));
        assert_eq!(fs_name(1), None);
    }
}
