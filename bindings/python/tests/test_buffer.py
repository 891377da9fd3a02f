"""rio.alloc_buffer: aligned, writable, zero-copy, released safely."""

from __future__ import annotations

import ctypes
import gc

import pytest

import rio


def _addr(mv: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(mv))


def test_alloc_buffer_basics() -> None:
    buf = rio.alloc_buffer(8192)
    assert isinstance(buf, memoryview)
    assert len(buf) == 8192 and buf.nbytes == 8192
    assert not buf.readonly and buf.c_contiguous and buf.format == "B"
    assert _addr(buf) % rio.BUF_ALIGN == 0
    assert bytes(buf) == bytes(8192)  # zeroed
    buf[:5] = b"hello"
    buf[5] = 33
    assert bytes(buf[:6]) == b"hello!"
    buf.release()
    with pytest.raises(ValueError):
        buf[0]


def test_alloc_buffer_context_manager() -> None:
    with rio.alloc_buffer(4096) as buf:
        buf[0] = 1
    with pytest.raises(ValueError):
        bytes(buf)


def test_alloc_buffer_bad_sizes() -> None:
    with pytest.raises(ValueError):
        rio.alloc_buffer(0)
    with pytest.raises(ValueError):
        rio.alloc_buffer(-1)


def test_alloc_buffer_views_outlive_release() -> None:
    buf = rio.alloc_buffer(4096)
    part = buf[100:200]
    buf[100:103] = b"abc"
    buf.release()
    # The slice keeps the memory alive: no dangling pointer.
    assert bytes(part[:3]) == b"abc"
    part.release()


def test_alloc_buffer_many_freed() -> None:
    for _ in range(2000):
        b = rio.alloc_buffer(1 << 16)
        b[0] = 1
        del b
    gc.collect()


def test_file_io_with_aligned_buffer(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+") as f, rio.alloc_buffer(4096) as buf:
        buf[:] = bytes(range(256)) * 16
        assert f.write_at(buf, 0) == 4096
        with rio.alloc_buffer(4096) as back:
            assert f.readinto_at(back, 0) == 4096
            assert bytes(back) == bytes(range(256)) * 16
