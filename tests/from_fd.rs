//! DiskFile::from_fd / from_borrowed_fd: handles over a caller's
//! descriptor, on both backends. The borrowed form leaves the fd open on
//! close, so the process's POSIX record locks survive (checked from a
//! child process, the only place a lock of ours is visible); the owned
//! form closes it. Modes, O_DIRECT and O_APPEND come from F_GETFL.

mod common;

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use common::*;
use rio::{AlignedBuf, DiskFile, Runtime};

/// Takes a POSIX write lock on the whole file through `fd`.
fn lock(fd: RawFd) {
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as i16;
    fl.l_whence = libc::SEEK_SET as i16;
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETLK, &fl) }, 0, "F_SETLK");
}

/// Whether another process sees our lock on `path` (F_GETLK in a child).
fn locked_by_us(path: &Path) -> bool {
    // The probe opens in the child: a close in this process would itself
    // drop our locks on the file.
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child only makes async-signal-safe calls, then _exits.
    match unsafe { libc::fork() } {
        0 => unsafe {
            let probe = libc::open(cpath.as_ptr(), libc::O_RDONLY);
            let mut fl: libc::flock = std::mem::zeroed();
            fl.l_type = libc::F_WRLCK as i16;
            fl.l_whence = libc::SEEK_SET as i16;
            let held = libc::fcntl(probe, libc::F_GETLK, &mut fl) == 0
                && fl.l_type != libc::F_UNLCK as i16
                && fl.l_pid == parent;
            libc::_exit(if held { 0 } else { 1 })
        },
        pid => {
            assert!(pid > 0, "fork");
            let mut status = 0;
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
        }
    }
}

fn is_open(fd: RawFd) -> bool {
    unsafe { libc::fcntl(fd, libc::F_GETFL) >= 0 }
}

fn borrowed_close_keeps_fd_and_locks(rt: &Runtime, dir: &Path) {
    let path = dir.join("locked");
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    lock(file.as_raw_fd());
    assert!(locked_by_us(&path), "the probe sees a lock");
    let f = unsafe { DiskFile::from_borrowed_fd(rt, file.as_raw_fd()) }.unwrap();
    assert_eq!(f.raw_fd(), file.as_raw_fd());
    let data = pattern(10_000, 1);
    assert_eq!(f.write_at(&data, 100).unwrap(), data.len());
    assert_eq!(f.write_durable(&data, 20_000).unwrap(), data.len());
    assert!(f.durable_fallback_reason().unwrap().contains("borrowed"));
    let mut back = vec![0u8; data.len()];
    assert_eq!(f.read_at(&mut back, 20_000).unwrap(), data.len());
    assert_eq!(back, data);
    f.close().unwrap();
    assert!(is_open(file.as_raw_fd()), "a borrowed fd stays open");
    assert!(locked_by_us(&path), "the caller's POSIX lock survives rio's close");
    // Dropping (not closing) a borrowed handle also leaves the fd alone.
    drop(unsafe { DiskFile::from_borrowed_fd(rt, file.as_raw_fd()) }.unwrap());
    assert!(is_open(file.as_raw_fd()));
    assert!(locked_by_us(&path));
    let mut head = vec![0u8; 100];
    assert_eq!(std::os::unix::fs::FileExt::read_at(&file, &mut head, 100).unwrap(), 100);
    assert_eq!(head, data[..100]);
}

fn owned_close_closes_the_fd(rt: &Runtime, dir: &Path) {
    let path = dir.join("owned");
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    lock(file.as_raw_fd());
    let fd: OwnedFd = file.into();
    let f = DiskFile::from_fd(rt, fd).unwrap();
    f.write_at(b"owned", 0).unwrap();
    assert_eq!(f.write_durable(b"durable", 5).unwrap(), 7);
    assert!(f.durable_fallback_reason().is_none(), "an owned fd on ext4 gets the O_DIRECT path");
    f.close().unwrap();
    // Closing the owned descriptor released the process's lock with it.
    assert!(!locked_by_us(&path));
    assert_eq!(std::fs::read(&path).unwrap(), b"owneddurable");
}

fn modes_come_from_the_descriptor(rt: &Runtime, dir: &Path) {
    let path = dir.join("modes");
    std::fs::write(&path, pattern(8192, 2)).unwrap();
    let ro = File::open(&path).unwrap();
    let f = unsafe { DiskFile::from_borrowed_fd(rt, ro.as_raw_fd()) }.unwrap();
    assert!(!f.is_writable());
    let mut buf = [0u8; 16];
    assert_eq!(f.read_at(&mut buf, 0).unwrap(), 16);
    assert_eq!(buf[..], pattern(8192, 2)[..16]);
    let e = f.write_at(b"no", 0).unwrap_err();
    assert_eq!(e.errno(), libc::EBADF, "{e}");
    let e = f.write_durable(b"no", 0).unwrap_err();
    assert_eq!(e.errno(), libc::EBADF, "{e}");
    assert!(e.message().contains("not open for writing"), "{e}");

    let wo = OpenOptions::new().write(true).open(&path).unwrap();
    let f = unsafe { DiskFile::from_borrowed_fd(rt, wo.as_raw_fd()) }.unwrap();
    assert!(f.is_writable());
    assert_eq!(f.read_at(&mut buf, 0).unwrap_err().errno(), libc::EBADF);

    let ap = OpenOptions::new().append(true).open(&path).unwrap();
    let f = unsafe { DiskFile::from_borrowed_fd(rt, ap.as_raw_fd()) }.unwrap();
    assert!(f.is_append());
    f.write_at(b"tail", 0).unwrap();
    assert_eq!(f.size().unwrap(), 8196);
    let e = f.write_durable(b"x", 0).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(e.message().contains("O_APPEND"), "{e}");

    let direct = OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(&path).unwrap();
    let f = unsafe { DiskFile::from_borrowed_fd(rt, direct.as_raw_fd()) }.unwrap();
    let align = f.dio_align().expect("O_DIRECT read from F_GETFL");
    assert!(align.offset >= 1);
    let e = f.write_at(&[1u8; 3], 1).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(e.message().contains("O_DIRECT"), "{e}");
    let mut a = AlignedBuf::new(4096);
    a.copy_from_slice(&pattern(4096, 3));
    assert_eq!(f.write_at(&a, 4096).unwrap(), 4096);
    assert_eq!(f.write_durable(&a, 0).unwrap(), 4096);
    let mut back = AlignedBuf::new(8192);
    assert_eq!(f.read_at(&mut back, 0).unwrap(), 8192);
    assert_eq!(back[..4096], a[..]);
    assert_eq!(back[4096..], a[..]);
}

fn bad_descriptors_are_ebadf_naming_the_fd(rt: &Runtime, dir: &Path) {
    let e = unsafe { DiskFile::from_borrowed_fd(rt, -1) }.err().unwrap();
    assert_eq!(e.errno(), libc::EBADF);
    assert!(e.message().contains("fd -1"), "{e}");
    let closed = File::create(dir.join("closed")).unwrap().as_raw_fd();
    // The File is dropped: `closed` is no longer open (nothing else here opens fds).
    let e = unsafe { DiskFile::from_borrowed_fd(rt, closed) }.err().unwrap();
    assert_eq!(e.errno(), libc::EBADF);
    assert!(e.message().contains(&format!("fd {closed}")), "{e}");
}

#[test]
fn from_fd_on_both_backends() {
    // One test function: the fd checks rely on no other thread opening
    // descriptors between a close and the check.
    each_backend(|rt, dir| {
        borrowed_close_keeps_fd_and_locks(rt, dir);
        owned_close_closes_the_fd(rt, dir);
        modes_come_from_the_descriptor(rt, dir);
        bad_descriptors_are_ebadf_naming_the_fd(rt, dir);
    });
}
