"""Runtime.submit_batch with ReadOp/WriteOp/FsyncOp/FdatasyncOp."""

from __future__ import annotations

import errno
import os

import pytest

import rio


def test_write_then_read_batches(rt: rio.Runtime, tmp_path) -> None:
    a = rt.open(tmp_path / "a", "w+")
    b = rt.open(tmp_path / "b", "w+")
    with a, b:
        ops = [rio.WriteOp(a, bytes([i]) * 512, i * 512) for i in range(16)]
        ops.append(rio.WriteOp(b, bytearray(b"other file"), 0))
        res = rt.submit_batch(ops)
        assert res == [512] * 16 + [10]
        assert all(op.result == op_len and op.error is None
                   for op, op_len in zip(ops, res))
        assert rt.submit_batch([rio.FsyncOp(a), rio.FdatasyncOp(b)]) == [0, 0]
        buf = bytearray(10)
        reads = [rio.ReadOp(a, 512, i * 512) for i in range(16)] + [rio.ReadOp(b, buf, 0)]
        res = rt.submit_batch(reads)
        for i in range(16):
            assert res[i] == bytes([i]) * 512
            assert reads[i].data == res[i]
        assert res[16] == 10 and buf == b"other file"


def test_read_past_eof_in_batch(rt: rio.Runtime, path) -> None:
    path.write_bytes(b"0123456789")
    with rt.open(path, "r") as f:
        res = rt.submit_batch([rio.ReadOp(f, 100, 5), rio.ReadOp(f, 10, 100), rio.ReadOp(f, 0, 0)])
        assert res == [b"56789", b"", b""]


def test_empty_batch(rt: rio.Runtime) -> None:
    assert rt.submit_batch([]) == []


def test_per_op_error(rt: rio.Runtime, tmp_path) -> None:
    p = tmp_path / "ro"
    p.write_bytes(b"data")
    with rt.open(p, "r") as ro, rt.open(tmp_path / "rw", "w+") as rw:
        ops = [rio.WriteOp(rw, b"ok", 0), rio.WriteOp(ro, b"no", 0), rio.ReadOp(ro, 4, 0)]
        with pytest.raises(OSError) as ei:
            rt.submit_batch(ops)
        assert ei.value.errno == errno.EBADF
        assert "ops[1]" in str(ei.value)
        # The other ops ran and report their results.
        assert ops[0].result == 2 and ops[2].data == b"data"
        res = rt.submit_batch(ops, check=False)
        assert res[0] == 2
        assert isinstance(res[1], OSError) and res[1].errno == errno.EBADF
        assert ops[1].result == -errno.EBADF
        assert res[2] == b"data"


def test_rejected_batch_runs_nothing(rt: rio.Runtime, tmp_path) -> None:
    try:
        d = rt.open(tmp_path / "direct", "w+", direct=True)
    except OSError as e:
        pytest.skip(f"no O_DIRECT here: {e}")
    with d, rt.open(tmp_path / "plain", "w+") as plain, rio.alloc_buffer(4096) as buf:
        ops = [rio.WriteOp(plain, b"should not be written", 0), rio.WriteOp(d, buf, 1)]
        with pytest.raises(OSError) as ei:
            rt.submit_batch(ops)
        assert ei.value.errno == errno.EINVAL
        assert "ops[1]" in str(ei.value)
        assert plain.size() == 0
        # Aligned direct I/O in a batch, including a sized read.
        buf[:4] = b"dio!"
        assert rt.submit_batch([rio.WriteOp(d, buf, 0)]) == [4096]
        res = rt.submit_batch([rio.ReadOp(d, 4096, 0)])
        assert res[0][:4] == b"dio!"


def test_batch_with_closed_file(rt: rio.Runtime, path) -> None:
    f = rt.open(path, "w+")
    op = rio.WriteOp(f, b"x", 0)
    f.close()
    with pytest.raises(ValueError):
        rt.submit_batch([op])


def test_batch_type_errors(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+") as f:
        with pytest.raises(TypeError):
            rt.submit_batch(["not an op"])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            rio.WriteOp("file", b"x", 0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            rt.submit_batch([rio.WriteOp(f, "text", 0)])  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            rt.submit_batch([rio.ReadOp(f, b"readonly", 0)])
        with pytest.raises(ValueError):
            rio.ReadOp(f, 10, -1)


def test_big_batch(rt: rio.Runtime, path) -> None:
    data = os.urandom(1000 * 128)
    with rt.open(path, "w+") as f:
        rt.submit_batch([rio.WriteOp(f, memoryview(data)[i * 128:(i + 1) * 128], i * 128)
                         for i in range(1000)])
        res = rt.submit_batch([rio.ReadOp(f, 128, i * 128) for i in range(1000)])
        assert b"".join(res) == data


def test_op_keywords(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+") as f:
        assert rt.submit_batch([rio.WriteOp(f, b"kw", off=3), rio.WriteOp(f, data=b"!", offset=0)]) == [2, 1]
        assert rt.submit_batch([rio.ReadOp(f, 5, off=0), rio.ReadOp(file=f, buf_or_size=2, offset=3)]) == [b"!\0\0kw", b"kw"]


def test_ops_reusable(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+") as f:
        w = rio.WriteOp(f, b"abc", 0)
        r = rio.ReadOp(f, 3, 0)
        for _ in range(3):
            rt.submit_batch([w])
            assert rt.submit_batch([r]) == [b"abc"]
