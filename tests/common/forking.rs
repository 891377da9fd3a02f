//! Running code in a forked child of a multi-threaded test process.

use std::time::{Duration, Instant};

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildEnd {
    /// Exit status (0: the child's checks passed).
    Exited(i32),
    Signaled(i32),
    /// Still running after the deadline: killed (a hang, e.g. on a lock a
    /// parent thread held, or on workers the child does not have).
    Hung,
}

/// Forks; the child runs `body` and leaves with `_exit(0)` when it returns
/// true, `_exit(1)` when it returns false or panics (the child never
/// unwinds into the test harness or prints through its captured output).
/// Waits up to `deadline` for it.
pub fn in_child(deadline: Duration, body: impl FnOnce() -> bool) -> ChildEnd {
    // SAFETY: the child runs only `body`, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // A child left behind by a killed parent (a hang) dies with it.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(false);
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    wait_child(pid, deadline)
}

fn wait_child(pid: libc::pid_t, deadline: Duration) -> ChildEnd {
    let until = Instant::now() + deadline;
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if r == pid {
            return if libc::WIFEXITED(status) {
                ChildEnd::Exited(libc::WEXITSTATUS(status))
            } else {
                ChildEnd::Signaled(libc::WTERMSIG(status))
            };
        }
        if Instant::now() >= until {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return ChildEnd::Hung;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
