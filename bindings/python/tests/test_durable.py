"""File.write_durable on both backends: the bytes read back through the
buffered file and from the device, survive a simulated power loss, and
bad inputs raise clear errors."""

from __future__ import annotations

import errno
import os

import pytest

import rio


def _pattern(n: int, seed: int) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 9)) & 0xFF for i in range(n))


def test_write_durable_is_read_back(rt, path):
    with rt.open(path, "w+") as f:
        f.write_at(b"\xaa" * (3 << 20), 0)  # dirty page-cache pages under the writes
        model = bytearray(b"\xaa" * (3 << 20))
        for i, (off, n) in enumerate([(0, 1 << 20), (100, 1 << 20), (4095, 3 * 4096 + 2), (3 << 20, 77777)]):
            data = _pattern(n, i)
            assert f.write_durable(data, off) == n
            model[off:off + n] = data
            assert f.read_at(len(model), 0) == bytes(model)
        assert f.size() == len(model)
        # memoryview and bytearray inputs, unaligned memory (bounced).
        assert f.write_durable(memoryview(bytearray(_pattern(9000, 9)))[1:], 4096) == 8999
        assert f.read_at(8999, 4096) == _pattern(9000, 9)[1:]
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        assert os.fstat(fd).st_size == len(model)
    finally:
        os.close(fd)
    assert "rio_durable_writes_total 5" in rt.metrics_prometheus()


def test_durable_writes_survive_power_loss(backend, tmp_path):
    with rio.Runtime(backend, fault_injection=True) as rt:
        p = tmp_path / "pl"
        f = rt.open(p, "w+")
        with rt.open(tmp_path, "r") as d:  # the directory entry, through the runtime
            d.sync()
        writes = []
        for i in range(20):
            off, data = i * 300_000 + i * 37, _pattern(1 + i * 13_001, i)
            f.write_durable(data, off)
            writes.append((off, data))
            f.write_at(b"lost", i * 300_000 + 295_000)  # never synced
        rt.simulate_power_loss("torn_prefix", seed=5)
    disk = p.read_bytes()
    for off, data in writes:
        assert disk[off:off + len(data)] == data


def test_bad_inputs(rt, path):
    with rt.open(path, "w+") as f:
        with pytest.raises(OverflowError):  # checked in Python, as for write_at
            f.write_durable(b"x", 1 << 63)
        with pytest.raises(OSError) as e:
            f.write_durable(b"xy", (1 << 63) - 1)
        assert e.value.errno == errno.EINVAL
        assert f.write_durable(b"", 0) == 0
        with pytest.raises(TypeError):
            f.write_durable("text", 0)
    with rt.open(path, "r") as ro:
        with pytest.raises(OSError) as e:
            ro.write_durable(b"x", 0)
        assert e.value.errno == errno.EBADF and "not open for writing" in str(e.value)
    with rt.open(path, "a") as ap:
        with pytest.raises(OSError) as e:
            ap.write_durable(b"x", 0)
        assert e.value.errno == errno.EINVAL and "O_APPEND" in str(e.value)
    f = rt.open(path, "r+")
    f.close()
    with pytest.raises(ValueError):
        f.write_durable(b"x", 0)
