//! The `rio` binary end to end: every subcommand on real logs written with
//! `rio::Wal`, intact, with a torn tail and corrupted; help, exit codes,
//! JSON output, and that inspection never changes the log.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rio::{Runtime, Wal, WalConfig};
use serde_json::Value;

const SEGMENT_SIZE: u64 = 8192;

fn rio_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rio"));
    c.env_remove("RIO_PROGRESS").env_remove("RUSTFS_ENABLE_IO_URING").env_remove("RIO_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    rio_cmd().args(args).output().expect("run rio")
}

fn run_dir(args: &[&str], dir: &Path) -> Output {
    rio_cmd().args(args).arg(dir).output().expect("run rio")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

fn payload(i: u64) -> Vec<u8> {
    format!("entry {i} {}", "x".repeat((i % 50) as usize)).into_bytes()
}

/// A closed log of `n` entries (payload(i) for seq i) over several small
/// segments.
fn make_log(dir: &Path, n: u64) {
    let rt = Runtime::new(&Default::default()).unwrap();
    let wal = Wal::open(&rt, dir, WalConfig { segment_size: SEGMENT_SIZE, ..Default::default() }).unwrap();
    for i in 1..=n {
        assert_eq!(wal.append(&payload(i)).unwrap(), i);
    }
    wal.close().unwrap();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// Every file's bytes and modification time, to prove nothing changed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap();
            (p.clone(), (std::fs::read(&p).unwrap(), m.modified().unwrap()))
        })
        .collect()
}

/// `rio wal dump --json` parsed: one object per entry.
fn dump_json(dir: &Path, extra: &[&str]) -> (Vec<Value>, Output) {
    let o = rio_cmd().args(["wal", "dump", "--json"]).args(extra).arg(dir).output().unwrap();
    let v = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    (v, o)
}

fn flip_byte(path: &Path, at: u64) {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, at).unwrap();
}

#[test]
fn help_on_every_subcommand() {
    for args in [
        vec!["--help"],
        vec!["probe", "--help"],
        vec!["wal", "--help"],
        vec!["wal", "verify", "--help"],
        vec!["wal", "dump", "--help"],
        vec!["wal", "stats", "--help"],
        vec!["help", "wal", "dump"],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("Usage: rio"), "{args:?}: {out}");
        if args.len() > 1 {
            assert!(out.contains("Exit codes:"), "{args:?}: {out}");
        }
    }
    let v = run(&["--version"]);
    assert_eq!(code(&v), 0);
    assert!(stdout(&v).starts_with("rio "), "{}", stdout(&v));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["bogus"],
        vec!["wal"],
        vec!["wal", "verify"],
        vec!["wal", "dump", "--hex", "--json", "/tmp"],
        vec!["wal", "dump", "--from", "x", "/tmp"],
        vec!["wal", "stats", "--nope", "/tmp"],
        vec!["probe", "a", "b"],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}: no message");
    }
}

#[test]
fn probe_text_and_json() {
    let o = run(&["probe"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    for key in ["backend:", "kernel:", "io_uring:", "RLIMIT_MEMLOCK:", "RLIMIT_NOFILE:"] {
        assert!(out.contains(key), "{key} missing: {out}");
    }

    let tmp = tempfile::tempdir().unwrap();
    let o = rio_cmd().args(["probe", "--json"]).arg(tmp.path()).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let backend = v["backend"].as_str().unwrap();
    assert!(["io_uring", "thread_pool"].contains(&backend), "{v}");
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(v["kernel_release"].as_str().unwrap(), uname.trim());
    if backend == "io_uring" {
        assert!(v["io_uring_unavailable_reason"].is_null(), "{v}");
        let ops: Vec<&str> = v["io_uring"]["opcodes"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
        for op in ["IORING_OP_READV", "IORING_OP_WRITEV", "IORING_OP_FSYNC", "IORING_OP_READ", "IORING_OP_WRITE"] {
            assert!(ops.contains(&op), "{op} missing: {ops:?}");
        }
        assert!(v["io_uring"]["sq_entries"].as_u64().unwrap() > 0);
        assert!(v["io_uring"]["setup_flags_name"].is_string());
    } else {
        assert!(v["io_uring_unavailable_reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    }
    assert!(v["rlimit_memlock"].get("soft").is_some(), "{v}");
    assert!(v["rlimit_nofile"]["soft"].as_u64().unwrap() > 0, "{v}");
    let p = &v["path"];
    assert_eq!(p["path"].as_str().unwrap(), tmp.path().to_str().unwrap());
    assert_eq!(p["kind"], "directory");
    assert!(p["filesystem_magic"].as_str().unwrap().starts_with("0x"));
    let align = p["dio_alignment"]["offset"].as_u64().unwrap();
    assert!(align.is_power_of_two() && align >= 1, "{p}");
    assert!(p["dio_alignment"]["memory"].as_u64().unwrap() >= 1, "{p}");
    assert!(p["direct_io"].is_boolean() || p["direct_io"].is_null(), "{p}");
    // Nothing was left in the directory by the O_DIRECT check.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    // A regular file works too.
    let file = tmp.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let o = rio_cmd().args(["probe", "--json"]).arg(&file).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["path"]["kind"], "file");
}

#[test]
fn probe_says_why_io_uring_is_not_used() {
    let o = rio_cmd().args(["probe", "--json"]).env("RUSTFS_ENABLE_IO_URING", "false").output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["backend"], "thread_pool");
    assert!(v["io_uring_unavailable_reason"].as_str().is_some_and(|r| r.contains("RUSTFS_ENABLE_IO_URING")), "{v}");
    let text = rio_cmd().args(["probe"]).env("RUSTFS_ENABLE_IO_URING", "false").output().unwrap();
    assert!(stdout(&text).contains("not in use: "), "{}", stdout(&text));
}

#[test]
fn probe_errors_exit_3() {
    let o = run(&["probe", "/nonexistent/rio-probe"]);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("/nonexistent/rio-probe"), "{}", stderr(&o));
    let o = rio_cmd().args(["probe"]).env("RUSTFS_ENABLE_IO_URING", "maybe").output().unwrap();
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("RUSTFS_ENABLE_IO_URING"), "{}", stderr(&o));
}

#[test]
fn verify_an_intact_log() {
    let tmp = tempfile::tempdir().unwrap();
    make_log(tmp.path(), 300);
    let segs = segments(tmp.path());
    assert!(segs.len() > 2, "want several segments, got {}", segs.len());
    let before = snapshot(tmp.path());

    let o = run_dir(&["wal", "verify"], tmp.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("entries:      300 (seq 1..=300)"), "{out}");
    assert!(out.contains("torn tail:    none"), "{out}");
    assert!(out.contains("corruption:   none"), "{out}");
    assert!(out.contains("result:       OK\n"), "{out}");

    let o = run_dir(&["wal", "verify", "--json"], tmp.path());
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert_eq!(v["ok"], true);
    assert_eq!(v["entries"], 300);
    assert_eq!(v["first_seq"], 1);
    assert_eq!(v["last_seq"], 300);
    assert_eq!(v["segment_count"].as_u64().unwrap(), segs.len() as u64);
    assert!(v["torn_tail"].is_null());
    assert_eq!(v["corruption"].as_array().unwrap().len(), 0);
    let payload_bytes: u64 = (1..=300).map(|i| payload(i).len() as u64).sum();
    assert_eq!(v["payload_bytes"], payload_bytes);
    let seg_list = v["segments"].as_array().unwrap();
    assert!(seg_list[..seg_list.len() - 1].iter().all(|s| s["end"] == "sealed"), "{v}");
    assert_eq!(seg_list.last().unwrap()["end"], "open");
    let per_segment: u64 = seg_list.iter().map(|s| s["entries"].as_u64().unwrap()).sum();
    assert_eq!(per_segment, 300);

    // The thread-pool backend reads the same.
    let o = rio_cmd().env("RUSTFS_ENABLE_IO_URING", "false").args(["wal", "verify", "--json"]).arg(tmp.path()).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o), v);

    let o = rio_cmd().args(["wal", "verify", "-v"]).arg(tmp.path()).output().unwrap();
    assert!(stdout(&o).contains("00000000000000000001.wal  first seq 1,"), "{}", stdout(&o));

    assert_eq!(snapshot(tmp.path()), before, "verify changed the log");
}

#[test]
fn verify_errors_and_empty_logs() {
    let o = run(&["wal", "verify", "/nonexistent/rio-wal"]);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("/nonexistent/rio-wal"), "{}", stderr(&o));

    let tmp = tempfile::tempdir().unwrap();
    let o = run_dir(&["wal", "verify", "--json"], tmp.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["entries"], 0);
    assert!(v["first_seq"].is_null());

    // A new log: one segment, no entries.
    let rt = Runtime::new(&Default::default()).unwrap();
    Wal::open(&rt, tmp.path(), WalConfig::default()).unwrap().close().unwrap();
    std::fs::write(tmp.path().join("00000000000000000009.wal.tmp"), b"partial").unwrap();
    let o = run_dir(&["wal", "verify", "--json"], tmp.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["segment_count"], 1);
    assert_eq!(v["entries"], 0);
    assert_eq!(v["temp_files"].as_array().unwrap().len(), 1);
    let o = run_dir(&["wal", "dump"], tmp.path());
    assert_eq!((code(&o), stdout(&o)), (0, String::new()));
}

#[test]
fn dump_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = Runtime::new(&Default::default()).unwrap();
    let wal = Wal::open(&rt, tmp.path(), WalConfig { segment_size: SEGMENT_SIZE, ..Default::default() }).unwrap();
    wal.append(b"hello").unwrap();
    wal.append(b"tab\there\nnl \\ \x00\xff").unwrap();
    wal.append(b"").unwrap();
    wal.append_batch(&[b"b1", b"b2", "caf\u{e9}".as_bytes()]).unwrap();
    wal.close().unwrap();

    let o = run_dir(&["wal", "dump"], tmp.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "1\t5\thello\n2\t16\ttab\\there\\nnl \\\\ \\x00\\xff\n3\t0\t\n4\t2\tb1\n5\t2\tb2\n6\t5\tcaf\\xc3\\xa9\n"
    );

    let o = run_dir(&["wal", "dump", "--hex", "--from", "4", "--limit", "2"], tmp.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "4\t2\t6231\n5\t2\t6232\n");

    let o = run_dir(&["wal", "dump", "--max-bytes", "3", "--limit", "1"], tmp.path());
    assert_eq!(stdout(&o), "1\t5\thel...\n");

    let (lines, o) = dump_json(tmp.path(), &[]);
    assert_eq!(code(&o), 0);
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["len"], 5);
    assert_eq!(lines[0]["text"], "hello");
    assert_eq!(lines[0]["hex"], "68656c6c6f");
    assert_eq!(lines[0]["segment"], "00000000000000000001.wal");
    assert_eq!(lines[0]["offset"], 64);
    assert!(lines[1]["text"].is_null(), "not UTF-8: {}", lines[1]);
    assert_eq!(lines[1]["hex"], hex(b"tab\there\nnl \\ \x00\xff"));
    assert_eq!(lines[5]["text"], "caf\u{e9}");
    assert!(lines.windows(2).all(|w| w[0]["offset"].as_u64() < w[1]["offset"].as_u64()));

    let (lines, _) = dump_json(tmp.path(), &["--from", "6"]);
    assert_eq!(lines.len(), 1);
    let (lines, _) = dump_json(tmp.path(), &["--from", "7"]);
    assert!(lines.is_empty());
    let o = run_dir(&["wal", "dump", "--limit", "0"], tmp.path());
    assert_eq!((code(&o), stdout(&o)), (0, String::new()));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn dump_from_skips_to_the_right_segment_and_stops_at_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    make_log(tmp.path(), 500);
    let (all, o) = dump_json(tmp.path(), &[]);
    assert_eq!(code(&o), 0);
    assert_eq!(all.len(), 500);
    for (i, e) in all.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(e["seq"], seq);
        assert_eq!(e["hex"], hex(&payload(seq)));
    }
    for from in [1, 2, 99, 250, 499, 500] {
        let (part, _) = dump_json(tmp.path(), &["--from", &from.to_string(), "--limit", "3"]);
        let seqs: Vec<u64> = part.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let want: Vec<u64> = (from..=500).take(3).collect();
        assert_eq!(seqs, want, "from {from}");
    }
}

#[test]
fn dump_into_a_closed_pipe_exits_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    make_log(tmp.path(), 2000);
    let mut child = rio_cmd().args(["wal", "dump"]).arg(tmp.path()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("1\t"), "{first}");
    // The reader is gone now.
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

#[test]
fn stats_of_a_log() {
    let tmp = tempfile::tempdir().unwrap();
    make_log(tmp.path(), 300);
    let o = run_dir(&["wal", "stats", "--json"], tmp.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = json(&o);
    let lens: Vec<u64> = (1..=300).map(|i| payload(i).len() as u64).collect();
    assert_eq!(v["entries"], 300);
    assert_eq!(v["segments"]["count"].as_u64().unwrap(), segments(tmp.path()).len() as u64);
    assert_eq!(v["entry_size"]["min"], *lens.iter().min().unwrap());
    assert_eq!(v["entry_size"]["max"], *lens.iter().max().unwrap());
    let mut sorted = lens.clone();
    sorted.sort();
    assert_eq!(v["entry_size"]["p50"], sorted[149]);
    assert_eq!(v["entry_size"]["p99"], sorted[296]);
    let hist = v["histogram"].as_array().unwrap();
    assert_eq!(hist.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 300);
    for b in hist {
        let (lo, hi) = (b["min"].as_u64().unwrap(), b["max"].as_u64().unwrap());
        let n = lens.iter().filter(|&&l| l >= lo && l <= hi).count() as u64;
        assert_eq!(b["count"], n, "bucket {b}");
    }
    let file_bytes: u64 = segments(tmp.path()).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(v["segments"]["file_bytes"], file_bytes);
    assert_eq!(v["corrupt"], false);

    let o = run_dir(&["wal", "stats"], tmp.path());
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    assert!(out.contains("entries:      300"), "{out}");
    assert!(out.contains(&format!("entry size:   min {} ", lens.iter().min().unwrap())), "{out}");
    assert!(out.contains("histogram"), "{out}");
}

/// Offsets of each entry's record, from `rio wal dump --json`.
fn entry_offsets(dir: &Path) -> Vec<(u64, String, u64)> {
    let (lines, o) = dump_json(dir, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    lines
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e["segment"].as_str().unwrap().to_string(), e["offset"].as_u64().unwrap()))
        .collect()
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_corruption_with_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    make_log(tmp.path(), 300);
    let offsets = entry_offsets(tmp.path());
    let first = &segments(tmp.path())[0];
    let first_name = first.file_name().unwrap().to_str().unwrap().to_string();
    let in_first: Vec<_> = offsets.iter().filter(|(_, seg, _)| *seg == first_name).collect();
    let (victim_seq, _, victim_off) = *in_first[in_first.len() / 2];
    // A byte in the middle of that entry's payload.
    flip_byte(first, victim_off + 32 + 3);
    let before = snapshot(tmp.path());

    let o = run_dir(&["wal", "verify"], tmp.path());
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("corruption:   {} at offset {victim_off}:", first.display())), "{out}");
    assert!(out.contains("checksum mismatch"), "{out}");
    assert!(out.contains("result:       CORRUPT"), "{out}");

    let o = run_dir(&["wal", "verify", "--json"], tmp.path());
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["ok"], false);
    let c = &v["corruption"][0];
    assert_eq!(c["file"], first_name.as_str());
    assert_eq!(c["offset"], victim_off);
    assert!(c["message"].as_str().unwrap().contains(&format!("offset {victim_off}")), "{c}");
    assert_eq!(v["entries"], victim_seq - 1, "the log ends before the damaged entry");
    assert_eq!(v["last_seq"], victim_seq - 1);
    // Later segments are still checked, but are not part of the log.
    let segs = v["segments"].as_array().unwrap();
    assert_eq!(segs.len(), segments(tmp.path()).len());
    assert!(segs[1..].iter().all(|s| s["in_log"] == false && s["entries"].as_u64().unwrap() > 0), "{v}");

    // dump prints the valid prefix, then fails.
    let (lines, o) = dump_json(tmp.path(), &[]);
    assert_eq!(code(&o), 1);
    assert_eq!(lines.len() as u64, victim_seq - 1);
    assert!(stderr(&o).contains(&format!("{}: offset {victim_off}", first.display())), "{}", stderr(&o));
    let o = run_dir(&["wal", "dump", "--limit", "1"], tmp.path());
    assert_eq!(code(&o), 0, "stopped before reaching the damage");

    let o = run_dir(&["wal", "stats", "--json"], tmp.path());
    assert_eq!(code(&o), 1);
    assert_eq!(json(&o)["corrupt"], true);

    assert_eq!(snapshot(tmp.path()), before, "inspection changed the log");
    // What Wal::open says agrees.
    let rt = Runtime::new(&Default::default()).unwrap();
    let err = Wal::open(&rt, tmp.path(), WalConfig { segment_size: SEGMENT_SIZE, ..Default::default() }).err().unwrap();
    assert_eq!(err.errno(), libc_ebadmsg());
    assert!(err.message().contains(&format!("offset {victim_off}")), "{err}");
}

fn libc_ebadmsg() -> i32 {
    74
}

#[test]
fn a_flipped_byte_in_the_middle_of_the_last_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    make_log(tmp.path(), 20);
    assert_eq!(segments(tmp.path()).len(), 1);
    let offsets = entry_offsets(tmp.path());
    let (_, _, off) = offsets[9];
    let seg = &segments(tmp.path())[0];
    flip_byte(seg, off + 32);
    let o = run_dir(&["wal", "verify", "--json"], tmp.path());
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["corruption"][0]["offset"], off);
    assert!(v["corruption"][0]["message"].as_str().unwrap().contains("were durable"), "{v}");
    assert!(v["torn_tail"].is_null());
    assert_eq!(v["entries"], 9);
}

#[test]
fn a_truncated_last_record_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    make_log(tmp.path(), 300);
    let offsets = entry_offsets(tmp.path());
    let (last_seq, last_seg, last_off) = offsets.last().unwrap().clone();
    assert_eq!(last_seq, 300);
    let path = tmp.path().join(&last_seg);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(last_off + 20).unwrap();
    let before = snapshot(tmp.path());

    let o = run_dir(&["wal", "verify"], tmp.path());
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("torn tail:    {} at offset {last_off}: ", path.display())), "{out}");
    assert!(out.contains("result:       OK (with a torn tail)"), "{out}");

    let o = run_dir(&["wal", "verify", "--json"], tmp.path());
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert_eq!(v["ok"], true);
    assert_eq!(v["entries"], 299);
    let t = &v["torn_tail"];
    assert_eq!(t["file"], last_seg.as_str());
    assert_eq!(t["offset"], last_off);
    let bytes = t["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes <= 20, "{t}");
    assert!(t["reason"].as_str().unwrap().contains("ends inside a record"), "{t}");

    // Strict mode calls it corruption.
    let o = run_dir(&["wal", "verify", "--strict"], tmp.path());
    assert_eq!(code(&o), 1, "{}", stdout(&o));

    // dump prints the valid prefix and notes the tail.
    let (lines, o) = dump_json(tmp.path(), &[]);
    assert_eq!(code(&o), 0);
    assert_eq!(lines.len(), 299);
    assert_eq!(lines.last().unwrap()["seq"], 299);
    assert!(stderr(&o).contains("torn tail"), "{}", stderr(&o));

    let o = run_dir(&["wal", "stats", "--json"], tmp.path());
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["entries"], 299);
    assert_eq!(json(&o)["torn_tail"], true);

    assert_eq!(snapshot(tmp.path()), before, "inspection cut the tail");
    // Recovery agrees: it keeps 299 entries.
    let rt = Runtime::new(&Default::default()).unwrap();
    let wal = Wal::open(&rt, tmp.path(), WalConfig { segment_size: SEGMENT_SIZE, ..Default::default() }).unwrap();
    assert_eq!(wal.last_seq(), 299);
    wal.close().unwrap();
    let o = run_dir(&["wal", "verify", "--json"], tmp.path());
    assert_eq!(code(&o), 0);
    assert!(json(&o)["torn_tail"].is_null());
}

#[test]
fn a_torn_atomic_batch_is_dropped_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = Runtime::new(&Default::default()).unwrap();
    let wal = Wal::open(&rt, tmp.path(), WalConfig { segment_size: SEGMENT_SIZE, ..Default::default() }).unwrap();
    wal.append(b"alone").unwrap();
    wal.append_batch(&[b"one", b"two", b"three"]).unwrap();
    wal.close().unwrap();
    let offsets = entry_offsets(tmp.path());
    assert_eq!(offsets.len(), 4);
    let (_, seg, third_off) = offsets[3].clone();
    // Cut inside the batch's last record: its first two are valid but incomplete.
    std::fs::OpenOptions::new().write(true).open(tmp.path().join(&seg)).unwrap().set_len(third_off + 8).unwrap();
    let o = run_dir(&["wal", "verify", "--json"], tmp.path());
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["entries"], 1);
    assert_eq!(v["torn_tail"]["offset"], offsets[1].2);
    assert_eq!(v["torn_tail"]["entries"], 2);
    let (lines, _) = dump_json(tmp.path(), &[]);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["text"], "alone");
}

#[test]
fn a_missing_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    make_log(tmp.path(), 300);
    let segs = segments(tmp.path());
    std::fs::remove_file(&segs[1]).unwrap();
    let o = run_dir(&["wal", "verify", "--json"], tmp.path());
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["corruption"][0]["file"], segs[2].file_name().unwrap().to_str().unwrap());
    assert!(v["corruption"][0]["message"].as_str().unwrap().contains("a segment is missing"), "{v}");
}

#[test]
fn progress_only_when_asked_or_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    make_log(tmp.path(), 300);
    // Not a terminal: no progress line.
    let o = run_dir(&["wal", "verify"], tmp.path());
    assert_eq!(stderr(&o), "");
    // Forced: drawn on stderr and erased, stdout untouched.
    let o = rio_cmd().env("RIO_PROGRESS", "always").args(["wal", "stats"]).arg(tmp.path()).output().unwrap();
    assert_eq!(code(&o), 0);
    let err = stderr(&o);
    assert!(err.contains("stats: ") && err.contains("entries") && err.ends_with("\r\x1b[2K"), "{err:?}");
    assert!(!stdout(&o).contains('\r'));
}

/// Manual: `cargo test --release -p rio-cli -- --ignored --nocapture large_log`
/// times verify, stats and dump on a log of RIO_CLI_BIG_ENTRIES entries
/// (default 1M of 100 bytes, 64 MiB segments).
#[test]
#[ignore]
fn large_log_timing() {
    let n: u64 = std::env::var("RIO_CLI_BIG_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let rt = Runtime::new(&Default::default()).unwrap();
    let wal = Wal::open(&rt, tmp.path(), WalConfig { sync_after_batch: false, ..Default::default() }).unwrap();
    let data = [7u8; 100];
    let batch: Vec<&[u8]> = vec![&data[..]; 256];
    let mut written = 0;
    while written < n {
        let k = (n - written).min(256) as usize;
        wal.append_batch(&batch[..k]).unwrap();
        written += k as u64;
    }
    wal.close().unwrap();
    for args in [vec!["wal", "verify"], vec!["wal", "stats"], vec!["wal", "dump", "--hex"]] {
        let t = std::time::Instant::now();
        let o = rio_cmd().args(&args).arg(tmp.path()).stdout(Stdio::null()).output().unwrap();
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        println!("{args:?}: {n} entries in {:?}", t.elapsed());
    }
}
