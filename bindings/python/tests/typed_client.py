"""A client of the installed package for `mypy --strict` (make test-wheel):
the wheel ships py.typed and annotations precise enough that misuse is
caught. Each `type: ignore[...]` marks a call that must be rejected: with
--strict (warn_unused_ignores) an ignore that is not needed is an error, so
an annotation that degraded to Any fails the check."""

from __future__ import annotations

import array

import rio


def client(path: str) -> int:
    with rio.Runtime("auto") as rt:
        backend: str = rt.backend
        with rt.open(path, "w+") as f:
            n: int = f.write_at(b"hello", 0)
            n += f.write_at(memoryview(b"x"), 5) + f.write_at(array.array("b", [1]), 6)
            data: bytes = f.read_at(n, 0)
            buf = bytearray(len(data))
            got: int = f.readinto_at(buf, 0)
            f.write_at("text", 0)  # type: ignore[arg-type]
            f.read_at("4", 0)  # type: ignore[arg-type]
            wrong: str = f.size()  # type: ignore[assignment]
        with rt.open_wal(path + ".wal") as wal:
            seq: int = wal.append(b"entry")
            for s, entry in wal.replay(seq):
                got += s + len(entry)
    return got + len(backend) + len(wrong) + len(rio.LIBRARY_PATH) + len(rio.__version__)
