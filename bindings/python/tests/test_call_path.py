"""The per-call hot paths of File.read_at / readinto_at / write_at (inlined
argument handling, rio._lib.hot, inlined handle bookkeeping) behave exactly
like the general path: same results, same errors, buffers pinned during the
call, results never shared."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, List

import pytest

import rio


class Index:
    """An integer-like object (like numpy.int64): accepted through __index__."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v


def test_read_at_results_are_new_objects(rt: rio.Runtime, path: Path) -> None:
    """read_at fills a fresh bytes object: never a shared one (b"\\x00" or
    another result), and later reads do not change earlier results."""
    data = bytes(range(1, 256)) * 17
    with rt.open(path, "w+") as f:
        f.write_at(data, 0)
        for n in (1, 2, 3, 4096):
            first = f.read_at(n, 0)
            second = f.read_at(n, 1)
            assert first == data[:n] and second == data[1:1 + n]
            assert first is not second
            assert first == data[:n], "an earlier result changed"
        # The interpreter's shared one-byte and empty objects are untouched.
        assert bytes([0])[0] == 0 and bytes(1) == b"\x00" and bytes(2) == b"\x00\x00"
        assert b"" == bytes(0) and len(b"") == 0


def test_offsets_alike_on_every_hot_path(rt: rio.Runtime, path: Path) -> None:
    with rt.open(path, "w+") as f:
        assert f.write_at(b"abcdef", Index(0)) == 6
        assert f.write_at(b"X", offset=1) == 1
        assert f.read_at(3, Index(0)) == b"aXc"
        assert f.read_at(Index(2), offset=4) == b"ef"
        buf = bytearray(2)
        assert f.readinto_at(buf, True) == 2 and buf == b"Xc"  # bool is an int
        assert f.readinto_at(buf, offset=Index(3)) == 2 and buf == b"de"
        calls: List[Callable[..., Any]] = [
            lambda *a, **k: f.read_at(1, *a, **k),
            lambda *a, **k: f.readinto_at(bytearray(1), *a, **k),
            lambda *a, **k: f.write_at(b"x", *a, **k),
        ]
        for call in calls:
            with pytest.raises(ValueError, match="negative offset"):
                call(-1)
            with pytest.raises(OverflowError):
                call(1 << 63)
            with pytest.raises(TypeError, match="integer"):
                call(1.0)
            with pytest.raises(TypeError, match="missing the file offset"):
                call()
            with pytest.raises(TypeError, match="once"):
                call(0, offset=0)
        with pytest.raises(ValueError, match="negative n"):
            f.read_at(-1, 0)
        with pytest.raises(TypeError):
            f.read_at(1.5, 0)


def test_empty_buffers(rt: rio.Runtime, path: Path) -> None:
    with rt.open(path, "w+") as f:
        f.write_at(b"data", 0)
        assert f.readinto_at(bytearray(), 0) == 0
        assert f.write_at(b"", 0) == 0
        assert f.write_at(bytearray(), 0) == 0
        assert f.read_at(0, 0) == b""
        assert f.read_at(4, 0) == b"data"


def test_closed_file_on_every_hot_path(rt: rio.Runtime, path: Path) -> None:
    f = rt.open(path, "w+")
    f.close()
    for call in (lambda: f.read_at(1, 0), lambda: f.readinto_at(bytearray(1), 0),
                 lambda: f.write_at(b"x", 0)):
        with pytest.raises(ValueError, match="closed file"):
            call()


def test_errors_carry_the_library_message(rt: rio.Runtime, path: Path) -> None:
    path.write_bytes(b"x")
    with rt.open(path, "r") as f:
        with pytest.raises(OSError) as ei:
            f.write_at(b"y", 0)  # opened read-only: EBADF from the library
        assert ei.value.errno is not None and ei.value.strerror
    with rt.open(path, "w") as f:
        with pytest.raises(OSError):
            f.readinto_at(bytearray(1), 0)
        with pytest.raises(OSError):
            f.read_at(1, 0)


def test_bytearray_is_pinned_during_the_call(backend: str, path: Path) -> None:
    """While readinto_at runs (a delayed read: the GIL is released), another
    thread cannot resize the bytearray it reads into, so the library never
    writes into freed memory; afterwards it can."""
    with rio.Runtime(backend, fault_injection=True) as rt:
        with rt.open(path, "w+") as f:
            f.write_at(b"z" * 4096, 0)
            rt.add_fault("read", action="delay", delay_us=300_000, count=1)
            buf = bytearray(4096)
            outcome: List[str] = []

            def resize() -> None:
                time.sleep(0.1)
                try:
                    buf.extend(b"more")
                    outcome.append("resized")
                except BufferError:
                    outcome.append("pinned")

            t = threading.Thread(target=resize)
            t.start()
            assert f.readinto_at(buf, 0) == 4096
            t.join()
            assert outcome == ["pinned"]
            assert buf == b"z" * 4096
            buf.extend(b"more")  # the pin is gone once the call returned
            assert len(buf) == 4100
