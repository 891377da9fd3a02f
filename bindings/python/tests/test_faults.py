"""Fault injection and simulated power loss through the bindings: errors
surface as the right OSError, the WAL is poisoned after a failed sync, and
acknowledged entries survive a crash. Also the log callback."""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path

import pytest

import rio


@pytest.fixture
def frt(backend: str):
    with rio.Runtime(backend, fault_injection=True) as r:
        yield r


def test_faults_need_fault_injection(rt: rio.Runtime) -> None:
    with pytest.raises(OSError) as ei:
        rt.add_fault("write")
    assert ei.value.errno == errno.EOPNOTSUPP
    with pytest.raises(OSError):
        rt.simulate_power_loss()


def test_bad_fault_arguments(frt: rio.Runtime) -> None:
    with pytest.raises(ValueError):
        frt.add_fault("rename")
    with pytest.raises(ValueError):
        frt.add_fault("write", action="explode")
    with pytest.raises(ValueError):
        frt.simulate_power_loss("meteor")


def test_file_errors_and_short_transfers(frt: rio.Runtime, path: Path) -> None:
    with frt.open(path, "w+") as f:
        frt.add_fault("write", error=errno.ENOSPC)
        with pytest.raises(OSError) as ei:
            f.write_at(b"data", 0)
        assert ei.value.errno == errno.ENOSPC and "rio_file_write_at" in str(ei.value)
        assert f.write_at(b"data", 0) == 4  # the rule hit once
        frt.add_fault("read", error=errno.EIO, nth=2)
        assert f.read_at(4, 0) == b"data"
        with pytest.raises(OSError) as ei:
            f.read_at(4, 0)
        assert ei.value.errno == errno.EIO
        frt.add_fault("any", action="short", count=0)
        payload = bytes(range(256)) * 64
        assert f.write_at(payload, 0) == len(payload)  # short writes are continued
        assert f.read_at(len(payload), 0) == payload
        frt.clear_faults()
        frt.add_fault("fsync", error=errno.EIO)
        with pytest.raises(OSError):
            f.sync()


def test_batch_op_error_from_fault(frt: rio.Runtime, path: Path) -> None:
    with frt.open(path, "w+") as f:
        frt.add_fault("write", error=errno.EIO)
        res = frt.submit_batch([rio.WriteOp(f, b"x", 0)], check=False)
        assert isinstance(res[0], OSError) and res[0].errno == errno.EIO


def test_wal_poisoned_after_failed_sync(backend: str, tmp_path: Path) -> None:
    d = tmp_path / "wal"
    r = rio.Runtime(backend, fault_injection=True)
    w = r.open_wal(d)
    assert w.append(b"one") == 1
    r.add_fault("fdatasync", error=errno.EIO)
    with pytest.raises(OSError) as ei:
        w.append(b"two")
    assert ei.value.errno == errno.EIO
    r.clear_faults()
    with pytest.raises(OSError) as ei:
        w.append(b"three")  # poisoned: no retry-and-pretend
    assert ei.value.errno == errno.EIO
    with pytest.raises(OSError) as ei:
        w.close()
    assert ei.value.errno == errno.EIO
    assert w.closed
    r.close()
    with rio.Runtime(backend) as r2, r2.open_wal(d) as w2:
        got = list(w2.replay())
        assert got[0] == (1, b"one")
        assert len(got) <= 2
        assert w2.append(b"after") == len(got) + 1


@pytest.mark.parametrize("mode", ["discard_all", "torn_prefix"])
def test_acknowledged_wal_entries_survive_power_loss(backend: str, tmp_path: Path, mode: str) -> None:
    for seed in range(3):
        d = tmp_path / f"wal-{mode}-{seed}"
        r = rio.Runtime(backend, fault_injection=True)
        w = r.open_wal(d, segment_size=64 << 10)
        for i in range(1, 101):
            assert w.append(b"acked-%d" % i * 10) == i
        r.simulate_power_loss(mode, seed=seed)
        with pytest.raises(OSError) as ei:
            w.append(b"after the crash")
        assert ei.value.errno == errno.EIO
        try:
            w.close()
        except OSError:
            pass
        r.close()
        with rio.Runtime(backend) as r2, r2.open_wal(d) as w2:
            assert list(w2.replay()) == [(i, b"acked-%d" % i * 10) for i in range(1, 101)]


def test_unsynced_wal_entries_lost_cleanly(backend: str, tmp_path: Path) -> None:
    d = tmp_path / "wal"
    r = rio.Runtime(backend, fault_injection=True)
    w = r.open_wal(d, sync_after_batch=False)
    for i in range(1, 11):
        w.append(b"synced-%d" % i)
    w.sync()
    for i in range(11, 31):
        w.append(b"unsynced-%d" % i)
    r.simulate_power_loss("torn_prefix", seed=7)
    try:
        w.close()
    except OSError:
        pass
    r.close()
    with rio.Runtime(backend) as r2, r2.open_wal(d) as w2:
        got = list(w2.replay())
        assert got[:10] == [(i, b"synced-%d" % i) for i in range(1, 11)]
        for s, data in got[10:]:  # a clean prefix of the rest, never garbage
            assert data == b"unsynced-%d" % s
        assert [s for s, _ in got] == list(range(1, len(got) + 1))


def test_file_power_loss(backend: str, path: Path) -> None:
    r = rio.Runtime(backend, fault_injection=True)
    f = r.open(path, "w+")
    f.write_at(b"x", 0)
    r.simulate_power_loss("discard_all")
    f.close()
    r.close()
    # Created through the crashed runtime, its directory never synced: gone.
    assert not path.exists()

    path.write_bytes(b"")  # created and made durable outside the runtime
    dfd = os.open(path.parent, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    r = rio.Runtime(backend, fault_injection=True)
    f = r.open(path, "r+")
    f.write_at(b"durable", 0)
    f.sync()
    f.write_at(b"volatile", 7)
    r.simulate_power_loss("discard_all")
    with pytest.raises(OSError) as ei:
        f.read_at(15, 0)
    assert ei.value.errno == errno.EIO
    f.close()
    r.close()
    assert path.read_bytes() == b"durable"


# -- logging -------------------------------------------------------------------

def test_log_callback(backend: str) -> None:
    records: list = []
    lock = threading.Lock()

    def cb(level: int, target: str, message: str) -> None:
        with lock:
            records.append((level, target, message))

    rio.set_log_callback(cb, "debug")
    try:
        with rio.Runtime(backend):
            pass
    finally:
        rio.set_log_callback(None)
    assert any("runtime opened" in m and t.startswith("rio") for _, t, m in records), records
    assert all(1 <= lvl <= 4 for lvl, _, _ in records)
    n = len(records)
    with rio.Runtime(backend):
        pass
    assert len(records) == n  # removed


def test_log_callback_exceptions_are_swallowed(backend: str) -> None:
    def bad(level: int, target: str, message: str) -> None:
        raise RuntimeError("boom")

    rio.set_log_callback(bad, "trace")
    try:
        with rio.Runtime(backend) as r:
            assert r.backend == backend
    finally:
        rio.set_log_callback(None)


def test_enable_logging(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="rio"):
        rio.enable_logging("info")
        try:
            with rio.Runtime(backend):
                pass
        finally:
            rio.set_log_callback(None)
    assert any("runtime opened" in rec.getMessage() for rec in caplog.records)
    with pytest.raises(ValueError):
        rio.set_log_callback(print, "loud")


def test_power_loss_at_the_nth_fdatasync(backend: str, tmp_path) -> None:
    with rio.Runtime(backend, fault_injection=True) as rt:
        wal_dir = tmp_path / "wal"
        with rt.open_wal(str(wal_dir)) as wal:
            assert wal.append(b"kept") == 1
            rt.add_fault("fdatasync", action="power_loss", nth=1, crash_mode="torn_prefix", seed=7)
            with pytest.raises(OSError) as e:
                wal.append(b"lost")
            assert e.value.errno == errno.EIO
            with pytest.raises(OSError):
                wal.close()
    with rio.Runtime(backend) as rt, rt.open_wal(str(wal_dir)) as wal:
        assert [d for _, d in wal.replay()] == [b"kept"]
