"""fork(): a child keeps using the runtime and files it inherited (os.fork and
multiprocessing's fork start method), on its own rings and workers, while
the parent's threads keep I/O in flight; the parent is unaffected. Both
backends. Issue 11, bug 1: on io_uring the child's I/O went into the
parent's ring; on the thread pool a child's batch hung forever."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

import rio

pytestmark = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")

ROUNDS = int(os.environ.get("RIO_FORK_ROUNDS", "6"))
DEADLINE = 20.0


def pattern(n: int, seed: int) -> bytes:
    return bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(n))


def file_io_ok(rt: rio.Runtime, path, seed: int) -> bool:
    """Lone and batched I/O on a file of its own, checked."""
    with rt.open(path, "w+") as f:
        data = pattern(50_000, seed)
        if f.write_at(data, 0) != len(data) or f.read_at(len(data), 0) != data:
            return False
        blocks = [pattern(4096, seed + 1 + i) for i in range(6)]
        writes = [rio.WriteOp(f, b, 100_000 + i * 4096) for i, b in enumerate(blocks)]
        if rt.submit_batch(writes + [rio.FdatasyncOp(f)]) != [4096] * 6 + [0]:
            return False
        reads = [rio.ReadOp(f, 4096, 100_000 + i * 4096) for i in range(6)]
        return rt.submit_batch(reads) == blocks


def wait_for(pid: int) -> int:
    """The child's exit status; a child still running at the deadline hung."""
    until = time.monotonic() + DEADLINE
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > until:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -999
        time.sleep(0.005)


def in_child(body) -> int:
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            ok = body()
        finally:
            os._exit(0 if ok else 1)
    return wait_for(pid)


class Busy:
    """Parent threads doing checked batches until stopped."""

    def __init__(self, rt: rio.Runtime, tmp_path, n: int = 3) -> None:
        self.stop = threading.Event()
        self.errors = 0
        self.rounds = 0
        self.threads = [threading.Thread(target=self.run, args=(rt, tmp_path / f"parent-{t}", t)) for t in range(n)]
        for t in self.threads:
            t.start()

    def run(self, rt, path, t) -> None:
        while not self.stop.is_set():
            if not file_io_ok(rt, path, t):
                self.errors += 1
            self.rounds += 1

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        assert self.errors == 0, "the parent's threads saw wrong data"
        assert self.rounds > 0


def test_os_fork_child_uses_the_inherited_runtime(rt: rio.Runtime, tmp_path) -> None:
    busy = Busy(rt, tmp_path)
    try:
        for round in range(ROUNDS):
            assert file_io_ok(rt, tmp_path / "forker", round)
            status = in_child(lambda: file_io_ok(rt, tmp_path / f"child-{round}", 100 + round))
            assert status == 0, f"round {round}: child status {status} (-999: hung)"
            assert file_io_ok(rt, tmp_path / "forker", round + 1000)
    finally:
        busy.finish()
    assert rt.metrics().ops_in_flight == 0


def test_inherited_file_is_usable_in_the_child(rt: rio.Runtime, tmp_path) -> None:
    with rt.open(tmp_path / "shared", "w+") as f:
        # A batch first: the forking thread has a ring of its own.
        data = pattern(8192, 1)
        assert rt.submit_batch([rio.WriteOp(f, data[:4096], 0), rio.WriteOp(f, data[4096:], 4096)]) == [4096, 4096]

        def child() -> bool:
            ops = [rio.ReadOp(f, 4096, 0), rio.ReadOp(f, 4096, 4096)]
            if rt.submit_batch(ops) != [pattern(8192, 1)[:4096], pattern(8192, 1)[4096:]]:
                return False
            return rt.submit_batch([rio.WriteOp(f, b"child", 8192), rio.WriteOp(f, b"again", 8197)]) == [5, 5]

        assert in_child(child) == 0
        assert f.read_at(10, 8192) == b"childagain"
        assert f.read_at(8192, 0) == pattern(8192, 1)


# multiprocessing (fork start method): the workers inherit these globals.
_RT = None
_DIR = None


def _mp_task(i: int) -> bool:
    return file_io_ok(_RT, _DIR / f"mp-{os.getpid()}-{i}", 200 + i)


def _mp_main(i: int) -> None:
    raise SystemExit(0 if _mp_task(i) else 1)


def test_multiprocessing_fork_pool(rt: rio.Runtime, tmp_path) -> None:
    global _RT, _DIR
    _RT, _DIR = rt, tmp_path
    busy = Busy(rt, tmp_path, n=2)
    # The forking thread has a ring of its own.
    assert file_io_ok(rt, tmp_path / "before", 0)
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(3) as pool:
            result = pool.map_async(_mp_task, range(12))
            assert result.get(timeout=DEADLINE * 3) == [True] * 12
        p = ctx.Process(target=_mp_main, args=(99,))
        p.start()
        p.join(DEADLINE)
        if p.is_alive():
            p.kill()
            pytest.fail("a multiprocessing child hung")
        assert p.exitcode == 0
    finally:
        busy.finish()
        _RT = _DIR = None
    assert file_io_ok(rt, tmp_path / "after", 1)
