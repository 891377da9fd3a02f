//! Queue workloads (docs/queues.md): one thread keeps a rio queue N deep,
//! refilling it as completions arrive, next to fio's io_uring engine at the
//! same iodepth and to the synchronous API's batch-then-drain; CPU per op
//! (getrusage user+sys) against fio's own usr+sys; queue depth scaling; and
//! Python asyncio (`rio.AsyncFile`, 32 tasks) against what aiofiles does per
//! call (`loop.run_in_executor(None, os.preadv, ...)`) and against aiofiles
//! itself (a file per task: `await f.seek(off)`, `await f.readinto(buf)`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rio::{open_flags, AlignedBuf, DiskFile, Queue, Runtime};

use crate::files::{
    check_len, direct_supported, fio_io, filled, prepare_file, rio_io, seed_of_clock, Env, IoSpec, Offsets,
};
use crate::opts::Opts;
use crate::{
    run_interleaved, Metric, Results, Sample, Unit, Workload, FIO, GO_GOROUTINES, PY_AIOFILES, PY_ASYNCIO, PY_EXECUTOR, RIO_BATCH,
    RIO_QUEUE, RIO_QUEUE_POOL,
};

/// Depths of the scaling rows.
pub const DEPTHS: [usize; 5] = [1, 4, 16, 64, 256];
/// Tasks of the Python row.
const PY_TASKS: usize = 32;

struct QueueWorkload {
    w: Workload,
    kind: Kind,
}

enum Kind {
    Io(IoSpec),
    Python,
}

fn spec(write: bool, qd: usize, opts: &Opts) -> IoSpec {
    IoSpec { write, rand: true, bs: 4096, qd, direct: true, file_size: opts.file_size, registered: false }
}

fn all(opts: &Opts) -> Vec<QueueWorkload> {
    let io = |id: String, title: String, about: String, spec: IoSpec| QueueWorkload {
        w: Workload { id, group: "queue", title, metric: Metric::Iops, about },
        kind: Kind::Io(spec),
    };
    let mut v = Vec::new();
    for write in [false, true] {
        let what = if write { "writes" } else { "reads" };
        v.push(io(
            format!("queue-rand{}-4k-qd32", if write { "write" } else { "read" }),
            format!("queue: O_DIRECT 4 KiB random {what}, kept 32 deep"),
            format!(
                "One thread keeps a rio queue 32 deep with random 4 KiB O_DIRECT {what}, pushing a new op for every one reaped; fio io_uring at iodepth 32 and rio's batch-then-drain (32-op batches) in the same run. CPU per op is getrusage user+sys (fio: its usr+sys)."
            ),
            spec(write, 32, opts),
        ));
    }
    for qd in DEPTHS {
        v.push(io(
            format!("queue-depth-{qd}"),
            format!("queue depth {qd}: O_DIRECT 4 KiB random reads"),
            format!("Queue depth scaling: one thread keeps {qd} random 4 KiB O_DIRECT reads in flight through a rio queue, next to fio io_uring at iodepth {qd}."),
            spec(false, qd, opts),
        ));
    }
    v.push(QueueWorkload {
        w: Workload {
            id: "queue-python-asyncio-32".into(),
            group: "queue",
            title: format!("Python asyncio: {PY_TASKS} tasks, O_DIRECT 4 KiB random reads"),
            metric: Metric::Iops,
            about: format!("{PY_TASKS} asyncio tasks each awaiting random 4 KiB O_DIRECT reads on one file: rio.AsyncFile (one queue, fd watched by the loop) against loop.run_in_executor(None, os.preadv, ...) on the default executor (what aiofiles does per call) and against aiofiles itself (an O_DIRECT file per task, unbuffered: await seek, await readinto, two executor hops per read)."),
        },
        kind: Kind::Python,
    });
    v
}

pub fn workloads(opts: &Opts) -> Vec<Workload> {
    all(opts).into_iter().map(|q| q.w).collect()
}

/// CPU time (user + system) so far of this process (`RUSAGE_SELF`) or of
/// its waited-for children (`RUSAGE_CHILDREN`), in seconds.
fn cpu_secs(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `f` and records the CPU time (of `who`, see `cpu_secs`) it used.
fn with_cpu(who: libc::c_int, f: impl FnOnce() -> Result<Sample, String>) -> Result<Sample, String> {
    let before = cpu_secs(who);
    let mut s = f()?;
    s.cpu_secs = Some(cpu_secs(who) - before);
    Ok(s)
}

/// One thread keeps `spec.qd` ops in flight: every reaped op is replaced by
/// a new one until the deadline, then the queue drains.
fn rio_queue_io(rt: &Runtime, path: &Path, spec: &IoSpec, dur: Duration) -> Result<Sample, String> {
    let f = Arc::new(
        DiskFile::open(rt, path, open_flags::READ | open_flags::WRITE | open_flags::DIRECT, 0).map_err(|e| e.to_string())?,
    );
    let mut q: Queue<AlignedBuf> = Queue::new(rt, spec.qd as u32).map_err(|e| e.to_string())?;
    let mut offs = Offsets::new(spec, seed_of_clock());
    let push = |q: &mut Queue<AlignedBuf>, buf: AlignedBuf, off: u64| {
        if spec.write { q.write(&f, buf, off, 0) } else { q.read(&f, buf, off, 0) }.map_err(|e| e.error.to_string())
    };
    for i in 0..spec.qd {
        push(&mut q, filled(spec.bs, i as u64 + 1), offs.next())?;
    }
    let start = Instant::now();
    let deadline = start + dur;
    q.submit().map_err(|e| e.to_string())?;
    let (mut ops, mut done) = (0u64, Vec::with_capacity(spec.qd));
    while q.pending() > 0 {
        done.clear();
        q.reap_into(&mut done, 1, spec.qd, None).map_err(|e| e.to_string())?;
        let refill = Instant::now() < deadline;
        for c in done.drain(..) {
            check_len(c.result.map_err(|e| e.to_string())?, spec.bs, "rio queue")?;
            ops += 1;
            if refill {
                push(&mut q, c.buf.expect("reads and writes hand their buffer back"), offs.next())?;
            }
        }
        if refill {
            q.submit().map_err(|e| e.to_string())?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Sample { ops, bytes: ops * spec.bs as u64, secs, ..Default::default() })
}

/// The Python row's program: argv = path, mode (asyncio|executor|aiofiles), tasks, seconds, file size.
const PY_BENCH: &str = r#"
import asyncio, json, mmap, os, random, sys, time
import rio
path, mode, tasks, secs, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
blocks = size // 4096
async def main():
    loop = asyncio.get_running_loop()
    count = [0]
    deadline = time.perf_counter() + secs
    if mode == "asyncio":
        rt = rio.Runtime("auto")
        f = rt.open_async(path, "r", direct=True)
        async def task(seed):
            rnd, buf = random.Random(seed), rio.alloc_buffer(4096)
            while time.perf_counter() < deadline:
                n = await f.readinto_at(buf, rnd.randrange(blocks) * 4096)
                assert n == 4096
                count[0] += 1
    elif mode == "aiofiles":
        import aiofiles
        direct = lambda p, flags: os.open(p, flags | os.O_DIRECT)
        async def task(seed):
            rnd, buf = random.Random(seed), mmap.mmap(-1, 4096)
            async with aiofiles.open(path, "rb", buffering=0, opener=direct) as af:
                while time.perf_counter() < deadline:
                    await af.seek(rnd.randrange(blocks) * 4096)
                    n = await af.readinto(buf)
                    assert n == 4096
                    count[0] += 1
    else:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        async def task(seed):
            rnd, buf = random.Random(seed), mmap.mmap(-1, 4096)
            while time.perf_counter() < deadline:
                n = await loop.run_in_executor(None, os.preadv, fd, [buf], rnd.randrange(blocks) * 4096)
                assert n == 4096
                count[0] += 1
    t = time.perf_counter()
    await asyncio.gather(*(task(i) for i in range(tasks)))
    elapsed = time.perf_counter() - t
    if mode == "asyncio":
        await f.close()
    print(json.dumps({"ops": count[0], "secs": elapsed}))
asyncio.run(main())
"#;

fn python_io(mode: &str, path: &Path, file_size: u64, dur: Duration) -> Result<Sample, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = root.join("target/release/librio.so");
    let out = Command::new(python())
        .arg("-c")
        .arg(PY_BENCH)
        .arg(path)
        .arg(mode)
        .arg(PY_TASKS.to_string())
        .arg(format!("{}", dur.as_secs_f64()))
        .arg(file_size.to_string())
        .env("PYTHONPATH", root.join("bindings/python"))
        .env("RIO_LIBRARY", &lib)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        return Err(format!("python {mode} run failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    json_sample(&String::from_utf8_lossy(&out.stdout), 4096)
}

/// The Go answer (docs/queues.md): goroutines calling the blocking API, one
/// op each; argv = path, write (0|1), goroutines, seconds, file size.
const GO_BENCH: &str = r#"package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	rio "librio/bindings/go"
)

func main() {
	path, write := os.Args[1], os.Args[2] == "1"
	n, _ := strconv.Atoi(os.Args[3])
	secs, _ := strconv.ParseFloat(os.Args[4], 64)
	size, _ := strconv.ParseInt(os.Args[5], 10, 64)
	rt, err := rio.Open(&rio.Options{Backend: rio.BackendIOUring})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f, err := rt.OpenFile(path, os.O_RDWR|rio.O_DIRECT, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var ops atomic.Int64
	var wg sync.WaitGroup
	blocks := size / 4096
	start := time.Now()
	deadline := start.Add(time.Duration(secs * float64(time.Second)))
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rnd, buf := rand.New(rand.NewSource(seed)), rio.AlignedBuffer(4096)
			for time.Now().Before(deadline) {
				off := rnd.Int63n(blocks) * 4096
				var got int
				var err error
				if write {
					got, err = f.WriteAt(buf, off)
				} else {
					got, err = f.ReadAt(buf, off)
				}
				if err != nil || got != 4096 {
					fmt.Fprintln(os.Stderr, "I/O failed:", got, err)
					os.Exit(1)
				}
				ops.Add(1)
			}
		}(int64(g + 1))
	}
	wg.Wait()
	out, _ := json.Marshal(map[string]any{"ops": ops.Load(), "secs": time.Since(start).Seconds()})
	fmt.Println(string(out))
}
"#;

/// Builds the Go program once (offline, like `make test-go`); its path.
fn build_go() -> Result<std::path::PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/go/queue-bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let module = format!(
        "module queuebench\n\ngo 1.19\n\nrequire librio/bindings/go v0.0.0\n\nreplace librio/bindings/go => {}\n",
        root.join("bindings/go").display()
    );
    std::fs::write(dir.join("go.mod"), module).and_then(|_| std::fs::write(dir.join("main.go"), GO_BENCH)).map_err(|e| e.to_string())?;
    let bin = dir.join("queue-bench");
    let out = Command::new("go")
        .current_dir(&dir)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .env("GOCACHE", root.join("target/go/cache"))
        .env("GOPATH", root.join("target/go/path"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-buildvcs=false")
        .env("GO111MODULE", "on")
        .env("CGO_ENABLED", "1")
        .output()
        .map_err(|e| format!("no go toolchain: {e}"))?;
    if !out.status.success() {
        return Err(format!("go build failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(bin)
}

fn go_io(bin: &Path, path: &Path, spec: &IoSpec, dur: Duration) -> Result<Sample, String> {
    let out = Command::new(bin)
        .arg(path)
        .arg(if spec.write { "1" } else { "0" })
        .arg(spec.qd.to_string())
        .arg(format!("{}", dur.as_secs_f64()))
        .arg(spec.file_size.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!("go run failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    json_sample(&String::from_utf8_lossy(&out.stdout), spec.bs as u64)
}

/// `{"ops": N, "secs": S}` printed by a helper program.
fn json_sample(text: &str, bs: u64) -> Result<Sample, String> {
    let v: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| format!("helper JSON: {e}: {text}"))?;
    let ops = v["ops"].as_u64().ok_or("helper JSON lacks ops")?;
    Ok(Sample { ops, bytes: ops * bs, secs: v["secs"].as_f64().ok_or("helper JSON lacks secs")?, ..Default::default() })
}

/// The interpreter of the Python row: `RIO_BENCH_PYTHON` (`make bench`
/// sets the project's .venv, where it installs aiofiles), else python3.
fn python() -> String {
    std::env::var("RIO_BENCH_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into())
}

/// Whether `python()` can import `modules`.
fn python_imports(modules: &str) -> Result<(), String> {
    let py = python();
    match Command::new(&py).arg("-c").arg(format!("import {modules}")).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("{py} cannot import {modules}: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("no {py}: {e}")),
    }
}

fn python_available() -> Result<(), String> {
    python_imports("asyncio, mmap")
}

type RunFn<'a> = Box<dyn FnMut(Duration) -> Result<Sample, String> + 'a>;

fn unit<'a>(id: &str, peer: &str, run: RunFn<'a>) -> Unit<'a> {
    Unit { workload: id.to_string(), peer: peer.to_string(), run }
}

pub fn run_all(opts: &Opts, env: &Env, res: &mut Results) {
    let chosen: Vec<QueueWorkload> = all(opts).into_iter().filter(|q| opts.selected(&q.w.id, q.w.group)).collect();
    if chosen.is_empty() {
        return;
    }
    if let Err(why) = direct_supported(&env.dir) {
        let msg = format!("queue workloads skipped (all are O_DIRECT): {why}");
        eprintln!("bench: WARNING {msg}");
        res.warnings.push(msg);
        return;
    }
    if let Err(e) = prepare_file(&env.direct_path, opts.file_size) {
        res.errors.push(format!("preparing the O_DIRECT file: {e}"));
        return;
    }
    let python = python_available();
    let go = if opts.peer_on(GO_GOROUTINES) { build_go() } else { Err("not selected".into()) };
    for qw in chosen {
        let w = qw.w.clone();
        eprintln!("bench: {} ...", w.title);
        res.workloads.push(w.clone());
        let id = w.id.clone();
        let path = env.direct_path.clone();
        let mut units: Vec<Unit<'_>> = Vec::new();
        match qw.kind {
            Kind::Io(spec) => {
                let (p1, p2, p3, p4) = (path.clone(), path.clone(), path.clone(), path.clone());
                match &env.uring {
                    Ok(rt) => {
                        units.push(unit(&id, RIO_QUEUE, Box::new(move |d| with_cpu(libc::RUSAGE_SELF, || rio_queue_io(rt, &p1, &spec, d)))));
                        if spec.qd == 32 {
                            units.push(unit(&id, RIO_BATCH, Box::new(move |d| with_cpu(libc::RUSAGE_SELF, || rio_io(rt, &p2, &spec, d)))));
                        }
                    }
                    Err(why) => res.note(&w.id, RIO_QUEUE, why.clone()),
                }
                if spec.qd == 32 {
                    units.push(unit(&id, RIO_QUEUE_POOL, Box::new(move |d| with_cpu(libc::RUSAGE_SELF, || rio_queue_io(&env.pool, &p3, &spec, d)))));
                }
                if spec.qd == 32 {
                    match &go {
                        Ok(bin) => {
                            let p5 = path.clone();
                            units.push(unit(&id, GO_GOROUTINES, Box::new(move |d| with_cpu(libc::RUSAGE_CHILDREN, || go_io(bin, &p5, &spec, d)))));
                        }
                        Err(why) => res.note(&w.id, GO_GOROUTINES, why.clone()),
                    }
                }
                match &env.fio {
                    Some(fio) => units.push(unit(&id, FIO, Box::new(move |d| fio_io(fio, &p4, &spec, d)))),
                    None => res.note(&w.id, FIO, format!("absent: {}", env.fio_absent.clone().unwrap_or_default())),
                }
            }
            Kind::Python => match &python {
                Ok(()) => {
                    let (p1, p2) = (path.clone(), path.clone());
                    let size = opts.file_size;
                    units.push(unit(&id, PY_ASYNCIO, Box::new(move |d| with_cpu(libc::RUSAGE_CHILDREN, || python_io("asyncio", &p1, size, d)))));
                    units.push(unit(&id, PY_EXECUTOR, Box::new(move |d| with_cpu(libc::RUSAGE_CHILDREN, || python_io("executor", &p2, size, d)))));
                    match python_imports("aiofiles") {
                        Ok(()) => {
                            let p3 = path.clone();
                            units.push(unit(&id, PY_AIOFILES, Box::new(move |d| with_cpu(libc::RUSAGE_CHILDREN, || python_io("aiofiles", &p3, size, d)))));
                        }
                        Err(why) => res.note(&w.id, PY_AIOFILES, format!("absent: {why} (make bench installs it into .venv)")),
                    }
                }
                Err(why) => {
                    res.note(&w.id, PY_ASYNCIO, why.clone());
                    continue;
                }
            },
        }
        units.retain(|u| opts.peer_on(&u.peer));
        let warm = Some((opts.duration / 5).max(Duration::from_millis(20)));
        run_interleaved(&mut units, opts, warm, res);
    }
}
