#!/usr/bin/env python3
"""Per-call cost of the Python binding, next to the os module doing the same.

4 KiB positioned reads and writes on a file in the page cache (no device
time: what is left is the call path), nanoseconds per call. Each row is the
median of ``--reps`` repetitions of ``--calls`` calls; the peers of a
repetition run interleaved, their order rotating every repetition, so drift
of the machine hits them alike. Rows:

- ``os.preadv`` / ``os.pwrite``: the interpreter's own syscall wrappers, the
  floor a Python binding is measured against (the goal: rio's
  ``readinto_at`` within 1.3x of ``os.preadv``).
- ``rio readinto_at`` / ``rio write_at`` on both backends: the public API.
- ``ctypes rio_file_read_at``: the declared ctypes function called with a
  precomputed address, no binding code: the library plus ctypes' own call.

Benchmarks are not tests: nothing here asserts a time; the tool fails only
when a call returns wrong data. Writes ``<out>/python.json`` and
``<out>/python.md``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import rio
from rio import _lib

PAGE = 4096
FILE_PAGES = 256  # 1 MiB: stays in the page cache


def timed(call: Callable[[int], object], offsets: List[int]) -> Tuple[float, float]:
    """(wall, CPU) ns per call of ``call(offset)`` over ``offsets``. CPU is
    the process's (every thread, so the thread pool's workers count too); on
    a shared machine it is the steadier figure, since time spent descheduled
    is not in it."""
    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
    for off in offsets:
        call(off)
    wall, cpu = time.perf_counter_ns() - t0, time.process_time_ns() - c0
    return wall / len(offsets), cpu / len(offsets)


def peers(path: Path, rts: Dict[str, "rio.Runtime"]) -> Tuple[Dict[str, Callable[[int], object]], List[object]]:
    """Name -> one 4 KiB call at an offset, and what must outlive the run."""
    fd = os.open(path, os.O_RDWR)
    rbuf = bytearray(PAGE)
    wdata = bytes(range(256)) * (PAGE // 256)
    calls: Dict[str, Callable[[int], object]] = {
        "os.preadv": lambda off: os.preadv(fd, [rbuf], off),
        "os.pwrite": lambda off: os.pwrite(fd, wdata, off),
        "os.pread": lambda off: len(os.pread(fd, PAGE, off)),
    }
    keep: List[object] = [fd]
    for name, rt in rts.items():
        f = rt.open(path, "r+")
        keep.append(f)
        calls[f"rio readinto_at ({name})"] = (lambda f: lambda off: f.readinto_at(rbuf, off))(f)
        calls[f"rio write_at ({name})"] = (lambda f: lambda off: f.write_at(wdata, off))(f)
        calls[f"rio read_at ({name})"] = (lambda f: lambda off: len(f.read_at(PAGE, off)))(f)
    # The library and ctypes alone: the address precomputed, no binding code.
    f = keep[1]
    assert isinstance(f, rio.File)
    raw_fn = _lib.lib.rio_file_read_at
    raw_handle = f._handle.ptr  # type: ignore[union-attr]
    addr = ctypes.addressof(ctypes.c_char.from_buffer(rbuf))
    calls[f"ctypes rio_file_read_at ({next(iter(rts))})"] = lambda off: raw_fn(raw_handle, addr, PAGE, off)
    return calls, keep


def verify(calls: Dict[str, Callable[[int], object]], path: Path) -> None:
    """Each call moves exactly one page; reads see the written bytes."""
    expected = bytes(range(256)) * (PAGE // 256)
    for name, call in calls.items():
        got = call(PAGE)
        if got != PAGE:
            raise SystemExit(f"python bench: {name} returned {got!r}, expected {PAGE}")
    with open(path, "rb") as fh:
        fh.seek(PAGE)
        if fh.read(PAGE) != expected:
            raise SystemExit("python bench: the written page reads back wrong")


def run(args: argparse.Namespace) -> Dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="rio-python-bench-", dir=args.dir))
    path = work / "data.bin"
    path.write_bytes(os.urandom(PAGE * FILE_PAGES))
    offsets = [(i * 7 % FILE_PAGES) * PAGE for i in range(args.calls)]
    rts = {b: rio.Runtime(b) for b in args.backends}
    try:
        calls, keep = peers(path, rts)
        verify(calls, path)
        names = list(calls)
        samples: Dict[str, List[float]] = {n: [] for n in names}
        cpu_samples: Dict[str, List[float]] = {n: [] for n in names}
        for n in names:
            timed(calls[n], offsets[: max(1, args.calls // 10)])  # warm-up
        for rep in range(args.reps):
            k = rep % len(names)
            for n in names[k:] + names[:k]:
                wall, cpu = timed(calls[n], offsets)
                samples[n].append(wall)
                cpu_samples[n].append(cpu)
        for obj in keep[1:]:
            obj.close()  # type: ignore[attr-defined]
        os.close(keep[0])  # type: ignore[arg-type]
    finally:
        for rt in rts.values():
            rt.close()
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    medians = {n: statistics.median(s) for n, s in samples.items()}
    cpu_medians = {n: statistics.median(s) for n, s in cpu_samples.items()}
    return {
        "what": "ns per 4 KiB call on a page-cached file (median of reps; wall clock and process CPU time)",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "kernel": platform.release(),
        "library": rio.library_path,
        "calls_per_rep": args.calls,
        "reps": args.reps,
        "median_ns": medians,
        "cpu_median_ns": cpu_medians,
        "samples_ns": samples,
        "cpu_samples_ns": cpu_samples,
        "ratios": ratios(medians),
        "cpu_ratios": ratios(cpu_medians),
    }


def _peer_of(name: str) -> str:
    """The os call a row is compared with."""
    if "write" in name:
        return "os.pwrite"
    return "os.pread" if name.startswith("rio read_at") else "os.preadv"


def ratios(m: Dict[str, float]) -> Dict[str, float]:
    return {f"{n} / {_peer_of(n)}": v / m[_peer_of(n)] for n, v in m.items() if not n.startswith("os.")}


def markdown(r: Dict[str, object]) -> str:
    med: Dict[str, float] = r["median_ns"]  # type: ignore[assignment]
    cpu: Dict[str, float] = r["cpu_median_ns"]  # type: ignore[assignment]
    samples: Dict[str, List[float]] = r["samples_ns"]  # type: ignore[assignment]
    lines = [
        f"Python per-call cost: {r['what']}; {r['reps']} reps x {r['calls_per_rep']} calls, "
        f"Python {r['python']}, {r['machine']}, kernel {r['kernel']}",
        "",
        "| call | wall ns/call | min..max of reps | vs os peer | CPU ns/call | CPU vs os peer |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v in med.items():
        peer = _peer_of(name)
        own = name.startswith("os.")
        rel = "" if own else f"{v / med[peer]:.2f}x {peer}"
        cpu_rel = "" if own else f"{cpu[name] / cpu[peer]:.2f}x"
        lo, hi = min(samples[name]), max(samples[name])
        lines.append(f"| {name} | {v:.0f} | {lo:.0f}..{hi:.0f} | {rel} | {cpu[name]:.0f} | {cpu_rel} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20000, help="calls per repetition")
    ap.add_argument("--reps", type=int, default=15, help="repetitions (the median is reported)")
    ap.add_argument("--backends", default="io_uring,thread_pool")
    ap.add_argument("--dir", default=None, help="scratch directory (a disk file system, not tmpfs)")
    ap.add_argument("--out", default="bench-results", help="writes python.json and python.md here")
    args = ap.parse_args()
    args.backends = [b for b in args.backends.split(",") if b]
    r = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "python.json").write_text(json.dumps(r, indent=2) + "\n")
    md = markdown(r)
    (out / "python.md").write_text(md)
    print(md, end="")


if __name__ == "__main__":
    main()
