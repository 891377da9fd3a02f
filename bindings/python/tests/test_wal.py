"""rio.Wal on both backends: append/replay, batches, truncation, reopen,
recovery modes, threads, lifecycle.

These tests need the rio_wal_* functions: against a library without them
they FAIL (OSError ENOSYS naming the missing function); they are never skipped.
"""

from __future__ import annotations

import array
import errno
import os
import select
import signal
import threading
from pathlib import Path
from typing import List

import pytest

import rio


def entry(i: int, size: int = 64) -> bytes:
    head = b"ENTRY-%06d|" % i
    return (head * (size // len(head) + 1))[:size]


def all_entries(w: rio.Wal, from_seq: int = 1) -> list:
    return list(w.replay(from_seq))


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "wal"


def test_wal_functions_exported() -> None:
    from rio import _lib as L
    missing = [n for n in L.MISSING if n.startswith("rio_wal_")]
    assert not missing, f"{L.LIBRARY_PATH} lacks {missing}"


def test_empty_log(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(dir=wal_dir) as w:
        assert wal_dir.is_dir()  # created
        assert w.last_seq == 0
        assert all_entries(w) == []


def test_append_and_replay(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(str(wal_dir)) as w:
        seqs = [w.append(entry(i)) for i in range(1, 21)]
        assert seqs == list(range(1, 21))
        assert w.last_seq == 20
        got = all_entries(w)
        assert got == [(i, entry(i)) for i in range(1, 21)]
        assert all(type(d) is bytes and type(s) is int for s, d in got)
        assert all_entries(w, 15) == [(i, entry(i)) for i in range(15, 21)]
        assert list(w.replay(from_seq=19)) == [(19, entry(19)), (20, entry(20))]
        assert all_entries(w, 21) == []
        assert list(w) == got


def test_append_bytes_likes(rt: rio.Runtime, wal_dir: Path) -> None:
    items = [b"bytes", bytearray(b"bytearray"), memoryview(b"..memoryview..")[2:-2],
             array.array("B", b"array"), entry(0, 1 << 20)]
    with rt.open_wal(wal_dir) as w:
        for it in items:
            w.append(it)
        assert [d for _, d in w.replay()] == [bytes(it) for it in items]
        with pytest.raises(TypeError):
            w.append("text")  # type: ignore[arg-type]
        with pytest.raises((TypeError, ValueError)):
            w.append(memoryview(b"abcdef")[::2])


def test_append_batch(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(wal_dir) as w:
        assert w.append(b"solo") == 1
        first = w.append_batch([entry(i) for i in range(2, 12)])
        assert first == 2
        assert w.last_seq == 11
        first = w.append_batch((bytearray(entry(i)) for i in range(12, 14)))  # any iterable
        assert first == 12
        assert all_entries(w) == [(1, b"solo")] + [(i, entry(i)) for i in range(2, 14)]
        with pytest.raises(TypeError):
            w.append_batch([b"ok", "text"])  # type: ignore[list-item]
        assert w.last_seq == 13  # a rejected batch appended nothing


def test_edge_cases(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(wal_dir) as w:
        assert w.append(b"") == 1  # empty entries are entries
        with pytest.raises(OSError) as ei:
            w.append_batch([])
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(OSError) as ei:
            w.append(bytearray((64 << 20) + 1))
        assert ei.value.errno == errno.EINVAL and str(64 << 20) in str(ei.value)
        with pytest.raises(OSError) as ei:
            rt.open_wal(wal_dir)  # already open: locked
        assert ei.value.errno == errno.EBUSY
        assert all_entries(w, 0) == [(1, b"")]  # from_seq 0 means 1
        assert w.last_seq == 1


def test_reopen_continues_sequence(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(wal_dir) as w:
        for i in range(1, 6):
            w.append(entry(i))
    with rt.open_wal(wal_dir) as w:
        assert w.last_seq == 5
        assert all_entries(w) == [(i, entry(i)) for i in range(1, 6)]
        assert w.append(entry(6)) == 6
        assert w.append_batch([entry(7), entry(8)]) == 7
    with rt.open_wal(wal_dir) as w:
        assert all_entries(w) == [(i, entry(i)) for i in range(1, 9)]


def test_truncate_before(rt: rio.Runtime, wal_dir: Path) -> None:
    size, n = 4096, 800
    with rt.open_wal(wal_dir, segment_size=1 << 20) as w:
        for start in range(1, n + 1, 50):
            w.append_batch([entry(i, size) for i in range(start, start + 50)])
        assert w.last_seq == n
        w.truncate_before(500)
        got = all_entries(w)
        seqs = [s for s, _ in got]
        assert seqs == list(range(seqs[0], n + 1))  # contiguous to the end
        assert seqs[0] <= 500  # everything from 500 on is kept
        assert seqs[0] > 1, "3 MB over 1 MiB segments: some segment should have been dropped"
        assert all(d == entry(s, size) for s, d in got)
        assert w.append(b"after") == n + 1
    with rt.open_wal(wal_dir, segment_size=1 << 20) as w:
        assert w.last_seq == n + 1
        assert [s for s, _ in w.replay()][0] == seqs[0]
        # Truncating everything: only the segment being appended to stays,
        # and the numbering goes on.
        w.truncate_before(w.last_seq + 1)
        left = [s for s, _ in w.replay()]
        assert left == list(range(left[0], n + 2)) and left[0] > seqs[0]
        assert w.append(b"next") == n + 2
        with pytest.raises(OSError) as ei:
            w.truncate_before(w.last_seq + 2)  # beyond last_seq + 1
        assert ei.value.errno == errno.EINVAL
    with rt.open_wal(wal_dir, segment_size=1 << 20) as w:
        assert w.last_seq == n + 2
        assert all_entries(w)[-1] == (n + 2, b"next")


def test_config(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(wal_dir, batch_size=16, flush_timeout_us=100, sync_after_batch=False,
                     buffer_size=1 << 20, segment_size=4 << 20,
                     recovery_mode="strict") as w:
        assert w.config["recovery_mode"] == 1 and w.config["sync_after_batch"] is False
        w.append(b"a")
        w.append(b"b")
        w.sync()
        assert all_entries(w) == [(1, b"a"), (2, b"b")]
    with pytest.raises(TypeError, match="bogus"):
        rt.open_wal(wal_dir, bogus=1)
    with pytest.raises(ValueError):
        rt.open_wal(wal_dir, recovery_mode="lenient")
    with pytest.raises(ValueError):
        rt.open_wal(wal_dir, batch_size=-1)
    # Values the library rejects: EINVAL naming the field.
    for field, value in (("segment_size", 100), ("batch_size", 0), ("flush_timeout_us", 2_000_000)):
        with pytest.raises(OSError) as ei:
            rt.open_wal(wal_dir, **{field: value})
        assert ei.value.errno == errno.EINVAL and field in str(ei.value)


def test_open_errors(rt: rio.Runtime, tmp_path: Path) -> None:
    f = tmp_path / "a-file"
    f.write_bytes(b"")
    with pytest.raises(OSError) as ei:
        rt.open_wal(f)
    assert str(f) in str(ei.value)
    with pytest.raises(OSError) as ei:
        rt.open_wal(f / "sub")
    assert ei.value.errno in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT)


def test_threads_appending(rt: rio.Runtime, wal_dir: Path) -> None:
    n_threads, per = 8, 40
    seqs: List[List[int]] = [[] for _ in range(n_threads)]
    failures: list = []
    with rt.open_wal(wal_dir) as w:
        def run(t: int) -> None:
            try:
                for i in range(per):
                    if i % 5 == 4:
                        first = w.append_batch([b"t%d-%d-a" % (t, i), b"t%d-%d-b" % (t, i)])
                        seqs[t] += [first, first + 1]
                    else:
                        seqs[t].append(w.append(b"t%d-%d" % (t, i)))
            except BaseException as e:  # pragma: no cover
                failures.append(e)

        ts = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not failures, failures
        flat = sorted(s for ss in seqs for s in ss)
        total = n_threads * (per + per // 5)
        assert flat == list(range(1, total + 1))
        for t in range(n_threads):
            assert seqs[t] == sorted(seqs[t])  # each thread's order is kept
        data = dict(w.replay())
        assert len(data) == total
        for t in range(n_threads):
            it = iter(seqs[t])
            for i in range(per):
                if i % 5 == 4:
                    assert data[next(it)] == b"t%d-%d-a" % (t, i)
                    assert data[next(it)] == b"t%d-%d-b" % (t, i)
                else:
                    assert data[next(it)] == b"t%d-%d" % (t, i)


def test_close_racing_appends(rt: rio.Runtime, wal_dir: Path) -> None:
    w = rt.open_wal(wal_dir)
    acked: List[int] = []
    ends: list = []
    lock = threading.Lock()
    started = threading.Barrier(5)

    def appender(t: int) -> None:
        started.wait()
        i = 0
        while True:
            try:
                s = w.append(b"%d-%d" % (t, i))
            except ValueError:
                ends.append("closed")
                return
            except BaseException as e:  # pragma: no cover
                ends.append(e)
                return
            with lock:
                acked.append(s)
            i += 1

    ts = [threading.Thread(target=appender, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    started.wait()
    import time
    time.sleep(0.1)
    w.close()
    for t in ts:
        t.join()
    assert ends == ["closed"] * 4
    with rt.open_wal(wal_dir) as w2:
        seqs = {s for s, _ in w2.replay()}
        assert set(acked) <= seqs


def test_lifecycle(rt: rio.Runtime, wal_dir: Path) -> None:
    w = rt.open_wal(wal_dir)
    w.append(b"x")
    w.close()
    w.close()  # idempotent
    assert w.closed
    for call in (lambda: w.append(b"y"), lambda: w.append_batch([b"y"]), w.sync,
                 lambda: w.last_seq, lambda: w.truncate_before(1),
                 lambda: next(w.replay()), lambda: w.reader()):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):
        with w:
            pass


def test_replay_generator_and_reader_cleanup(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(wal_dir) as w:
        for i in range(1, 11):
            w.append(entry(i))
        g = w.replay()
        assert next(g) == (1, entry(1))
        g.close()  # releases the reader
        with w.reader(3) as r:
            assert next(r) == (3, entry(3))
        assert r.closed
        r2 = w.reader(9)
        assert list(r2) == [(9, entry(9)), (10, entry(10))]
        assert r2.closed  # closed when exhausted
        with pytest.raises(StopIteration):
            next(r2)
        # Several readers at once, interleaved.
        a, b = w.replay(), w.replay(5)
        assert next(a)[0] == 1 and next(b)[0] == 5 and next(a)[0] == 2
        # Closing the WAL closes open readers: the generators then fail cleanly.
        live = w.replay()
        next(live)
    with pytest.raises(ValueError):
        next(live)
    with pytest.raises(ValueError):
        next(a)


def test_append_while_replaying(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(wal_dir) as w:
        for i in range(1, 6):
            w.append(entry(i))
        seen = []
        for seq, data in w.replay():
            seen.append(seq)
            if seq <= 5:
                w.append(entry(seq + 100))
        assert seen[:5] == [1, 2, 3, 4, 5]
        assert w.last_seq == 10


# -- recovery ----------------------------------------------------------------

def _segment_files(d: Path) -> List[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file() and p.stat().st_size > 0)


def _flip_in_payload(d: Path, payload: bytes) -> Path:
    """Flips one byte inside the stored copy of ``payload``; returns the file."""
    for p in _segment_files(d):
        raw = bytearray(p.read_bytes())
        at = raw.find(payload)
        if at >= 0:
            raw[at + len(payload) // 2] ^= 0xFF
            p.write_bytes(bytes(raw))
            return p
    raise AssertionError(f"payload not found in {d}")


def _write_log(rt: rio.Runtime, d: Path, n: int) -> None:
    with rt.open_wal(d) as w:
        for i in range(1, n + 1):
            w.append(entry(i, 256))


def test_torn_tail_tolerated_by_default(rt: rio.Runtime, wal_dir: Path) -> None:
    _write_log(rt, wal_dir, 10)
    _flip_in_payload(wal_dir, entry(10, 256))  # the last entry is damaged
    with rt.open_wal(wal_dir) as w:  # default: tolerate_tail
        assert all_entries(w) == [(i, entry(i, 256)) for i in range(1, 10)]
        assert w.last_seq == 9
        assert w.append(b"new tail") == 10
    with rt.open_wal(wal_dir, recovery_mode="tolerate_tail") as w:
        assert all_entries(w)[-1] == (10, b"new tail")


def test_torn_tail_rejected_when_strict(rt: rio.Runtime, wal_dir: Path) -> None:
    _write_log(rt, wal_dir, 10)
    _flip_in_payload(wal_dir, entry(10, 256))
    with pytest.raises(OSError) as ei:
        rt.open_wal(wal_dir, recovery_mode="strict")
    assert ei.value.errno == errno.EBADMSG
    assert ei.value.strerror  # the library's message


def test_corruption_before_tail(rt: rio.Runtime, wal_dir: Path) -> None:
    _write_log(rt, wal_dir, 10)
    damaged = _flip_in_payload(wal_dir, entry(3, 256))
    with pytest.raises(OSError) as ei:
        rt.open_wal(wal_dir, recovery_mode="strict")
    assert ei.value.errno == errno.EBADMSG
    assert damaged.name in str(ei.value)  # the message names the segment file
    # Tolerant mode must never return a corrupted entry.
    try:
        w = rt.open_wal(wal_dir)
    except OSError as e:
        assert e.errno == errno.EBADMSG
    else:
        with w:
            got = all_entries(w)
            assert got == [(i, entry(i, 256)) for i in range(1, len(got) + 1)]
            assert len(got) < 3


# -- asynchronous acknowledgement ------------------------------------------


def test_append_async_wait_and_durable_seq(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(wal_dir) as w:
        seqs = [w.append_async(entry(i)) for i in range(1, 301)]
        assert seqs == list(range(1, 301))
        w.wait(150)
        assert w.durable_seq >= 150
        w.wait(300, timeout=30.0)
        assert w.durable_seq == 300
        assert w.last_seq == 300
        assert w.append(b"blocking") == 301
    with rt.open_wal(wal_dir) as w:
        assert [d for _, d in w.replay()][:300] == [entry(i) for i in range(1, 301)]


def test_wait_bad_input(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(wal_dir) as w:
        for seq in (0, 1):
            with pytest.raises(OSError) as e:
                w.wait(seq)
            assert e.value.errno == errno.EINVAL
            assert "never assigned" in str(e.value)
        with pytest.raises(ValueError):
            w.wait(-1)
        seq = w.append_async(memoryview(b"view"))
        with pytest.raises(ValueError):
            w.wait(seq, timeout=-0.5)
        w.wait(seq, timeout=None)
        with pytest.raises(OSError) as e:
            w.append_async(b"x" * (rio._lib.RIO_WAL_MAX_ENTRY + 1))
        assert e.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        w.wait(1)
    with pytest.raises(ValueError):
        w.durable_seq


def test_wait_timeout_then_success(backend: str, wal_dir: Path) -> None:
    with rio.Runtime(backend, fault_injection=True) as frt, frt.open_wal(wal_dir) as w:
        frt.add_fault("fdatasync", action="delay", delay_us=400_000)
        seq = w.append_async(b"slow")
        with pytest.raises(TimeoutError):
            w.wait(seq, timeout=0.02)
        with pytest.raises(TimeoutError):
            w.wait(seq, timeout=0)
        assert w.durable_seq < seq
        w.wait(seq)
        assert w.durable_seq == seq


def test_wait_after_a_failed_sync_raises_eio(backend: str, wal_dir: Path) -> None:
    with rio.Runtime(backend, fault_injection=True) as frt:
        w = frt.open_wal(wal_dir)
        good = w.append_async(b"good")
        w.wait(good)
        frt.add_fault("fdatasync", error=errno.EIO)
        seqs = []
        for i in range(50):
            try:
                seqs.append(w.append_async(entry(i)))
            except OSError as e:
                assert e.errno == errno.EIO
        assert seqs
        for seq in seqs:
            with pytest.raises(OSError) as e:
                w.wait(seq)
            assert e.value.errno == errno.EIO
        w.wait(good)
        assert w.durable_seq == good
        with pytest.raises(OSError):
            w.close()


def test_threads_append_async(rt: rio.Runtime, wal_dir: Path) -> None:
    with rt.open_wal(wal_dir) as w:
        errors: List[BaseException] = []

        def work(t: int) -> None:
            try:
                last = 0
                for i in range(200):
                    last = w.append_async(entry(t * 1000 + i))
                    if i % 40 == 39:
                        w.wait(last)
                w.wait(last)
            except BaseException as e:  # pragma: no cover
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        assert w.durable_seq == 800
        assert len(all_entries(w)) == 800


def test_forked_child_gets_ebusy_and_the_parent_keeps_the_log(rt: rio.Runtime, wal_dir: Path) -> None:
    """Issue 11 bug 1 (the WAL's part): an inherited handle is the parent's."""
    with rt.open_wal(wal_dir) as w:
        seq = w.append_async(b"parent")  # the flusher thread runs
        w.wait(seq)
        for _ in range(3):
            r, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                os.close(r)
                ok = True
                for call in (lambda: w.append(b"child"), lambda: w.append_async(b"child"),
                             lambda: w.wait(seq), w.sync, lambda: w.append_batch([b"c"])):
                    try:
                        call()
                        ok = False
                    except OSError as e:
                        ok = ok and e.errno == errno.EBUSY
                ok = ok and w.last_seq == 0 and w.durable_seq == 0
                try:
                    w.close()  # frees without touching the log
                except OSError:
                    ok = False
                os.write(wfd, b"Y" if ok else b"N")
                os._exit(0)
            os.close(wfd)
            ready, _, _ = select.select([r], [], [], 60)
            verdict = os.read(r, 1) if ready else b"hung"
            os.close(r)
            if not ready:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            assert verdict == b"Y"
            assert w.append(b"after") == w.last_seq
        with pytest.raises(OSError) as e:
            rt.open_wal(wal_dir)  # the parent's lock survived the children's close
        assert e.value.errno == errno.EBUSY
