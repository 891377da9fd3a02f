//! RIO_LOG: stderr logging with an env-filter, and an invalid filter is an
//! error naming the variable. Each case runs in a child process, since the
//! subscriber is process-wide.

use std::process::Command;

#[test]
#[ignore = "runs only as the child of the tests below"]
fn child_opens_a_runtime() {
    let rt = rio::Runtime::new(&rio::RuntimeConfig { backend: rio::BackendChoice::ThreadPool, ..Default::default() });
    match rt {
        Ok(_) => println!("CHILD-OPENED"),
        Err(e) => println!("CHILD-ERROR errno={} {}", e.errno(), e.message()),
    }
}

fn run_child(rio_log: &str) -> (String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_opens_a_runtime", "--nocapture"])
        .env("RIO_LOG", rio_log)
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn rio_log_sends_events_to_stderr() {
    let (stdout, stderr) = run_child("rio=info");
    assert!(stdout.contains("CHILD-OPENED"), "{stdout}");
    assert!(stderr.contains("runtime opened") && stderr.contains("thread_pool"), "{stderr}");
    let (_, quiet) = run_child("rio=error");
    assert!(!quiet.contains("runtime opened"), "{quiet}");
}

#[test]
fn invalid_rio_log_is_an_error_naming_it() {
    let (stdout, _) = run_child("rio=loudest");
    assert!(stdout.contains(&format!("CHILD-ERROR errno={}", libc::EINVAL)), "{stdout}");
    assert!(stdout.contains("RIO_LOG"), "{stdout}");
}
