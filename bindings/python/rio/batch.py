"""Batches: many operations on any files submitted together
(:meth:`rio.Runtime.submit_batch`, one io_uring submission)."""

from __future__ import annotations

import ctypes
from typing import Any, Dict, List, Optional, Union

from . import _lib as L
from ._buffer import BytesLike, alloc_buffer, new_bytes, rbuf, wbuf
from ._errors import make_error, strerror
from .file import File, _count, _offset

__all__ = ["Op", "ReadOp", "WriteOp", "FsyncOp", "FdatasyncOp"]


class Op:
    """One operation of a batch. After :meth:`rio.Runtime.submit_batch`,
    ``result`` holds the C result (bytes transferred, 0, or ``-errno``) and
    ``error`` the matching ``OSError`` (``None`` on success)."""

    opcode: int = -1

    def __init__(self, file: File, off: int = 0) -> None:
        if not isinstance(file, File):
            raise TypeError(f"file must be a rio.File, not {type(file).__name__}")
        self.file = file
        self.offset = _offset(off)
        self.result: Optional[int] = None
        self.error: Optional[OSError] = None

    # Filled by the runtime around the call.
    def _prepare(self) -> "tuple[int, int, Any]":
        """Returns (buf address, length, keepalive) for the C op."""
        return 0, 0, None

    def _finish(self, keep: Any) -> Any:
        """The Python value returned for this op on success."""
        return self.result

    def _describe(self) -> str:
        return f"{type(self).__name__} on {self.file.name!r}"

    def _set_result(self, index: int, result: int) -> None:
        self.result = result
        if result < 0:
            err = -result
            self.error = OSError(
                err, f"rio_submit_batch: ops[{index}] ({self._describe()}): {strerror(err)}"
            )
        else:
            self.error = None

    def __repr__(self) -> str:
        return f"<rio.{self._describe()} result={self.result}>"


class ReadOp(Op):
    """Read at offset ``off``: ``buf_or_size`` is a size (the result is ``bytes``)
    or a writable buffer filled in place (the result is the byte count).
    Short only at end of file."""

    opcode = L.RIO_OP_READ

    def __init__(self, file: File, buf_or_size: Union[int, BytesLike], off: int = 0, *,
                 offset: Optional[int] = None) -> None:
        super().__init__(file, off if offset is None else offset)
        self.size: Optional[int] = None
        self.buffer: Any = None
        if isinstance(buf_or_size, int) or not _is_buffer(buf_or_size):
            self.size = _count(buf_or_size, "size")
        else:
            self.buffer = buf_or_size
        self.data: Optional[bytes] = None

    def _prepare(self) -> "tuple[int, int, Any]":
        self.data = None
        if self.size is not None:
            if self.size == 0:
                return 0, 0, None
            if self.file.direct:
                tmp = _TempAligned(alloc_buffer(self.size))
                return wbuf(tmp.mv)[0], self.size, tmp
            b, addr = new_bytes(self.size)
            return addr, self.size, b
        return wbuf(self.buffer)

    def _finish(self, keep: Any) -> Any:
        if self.size is None:
            return self.result
        n = self.result or 0
        if keep is None:
            self.data = b""
        elif isinstance(keep, _TempAligned):
            self.data = bytes(keep.mv[:n])
        else:
            self.data = keep if n == len(keep) else keep[:n]
        return self.data

    def _describe(self) -> str:
        n = self.size if self.size is not None else "buffer"
        return f"ReadOp({n}) at offset {self.offset} of {self.file.name!r}"


class WriteOp(Op):
    """Write all of ``data`` (bytes-like, not copied) at offset ``off``; the
    result is the byte count."""

    opcode = L.RIO_OP_WRITE

    def __init__(self, file: File, data: BytesLike, off: int = 0, *,
                 offset: Optional[int] = None) -> None:
        super().__init__(file, off if offset is None else offset)
        self.data = data

    def _prepare(self) -> "tuple[int, int, Any]":
        return rbuf(self.data)

    def _describe(self) -> str:
        return f"WriteOp at offset {self.offset} of {self.file.name!r}"


class FsyncOp(Op):
    """fsync the file; the result is 0. Ordered after writes of earlier
    batches only (ops of one batch may run in any order)."""

    opcode = L.RIO_OP_FSYNC

    def __init__(self, file: File) -> None:
        super().__init__(file, 0)


class FdatasyncOp(Op):
    """fdatasync the file; the result is 0."""

    opcode = L.RIO_OP_FDATASYNC

    def __init__(self, file: File) -> None:
        super().__init__(file, 0)


def _is_buffer(obj: Any) -> bool:
    try:
        memoryview(obj).release()
        return True
    except TypeError:
        return False


class _TempAligned:
    """An aligned buffer the batch allocated itself (sized reads on O_DIRECT files)."""

    __slots__ = ("mv",)

    def __init__(self, mv: memoryview) -> None:
        self.mv = mv


def release_keep(keep: Any) -> None:
    if isinstance(keep, _TempAligned):
        keep.mv.release()  # free it now rather than at garbage collection


def submit(runtime_handle: Any, ops: List[Op], check: bool) -> List[Any]:
    """Implementation of :meth:`rio.Runtime.submit_batch`."""
    for i, op in enumerate(ops):
        if not isinstance(op, Op) or type(op) is Op:
            raise TypeError(f"ops[{i}] must be a rio.ReadOp, WriteOp, FsyncOp or FdatasyncOp, not {type(op).__name__}")
    n = len(ops)
    if n == 0:
        return []
    c_ops = (L.rio_op_t * n)()
    keeps: List[Any] = []
    handles: List[Any] = []  # acquired file handles
    try:
        # Pin every buffer, then acquire every file (distinct handles once).
        for op in ops:
            keeps.append(op._prepare())
        seen: Dict[int, Any] = {}
        for i, op in enumerate(ops):
            h = op.file._handle
            if h is None:
                raise ValueError(f"ops[{i}]: I/O operation on closed file")
            ptr = seen.get(id(h))
            if ptr is None:
                try:
                    ptr = h.acquire()
                except ValueError:
                    raise ValueError(f"ops[{i}]: I/O operation on closed file {op.file.name!r}") from None
                handles.append(h)
                seen[id(h)] = ptr
            addr, length, _ = keeps[i]
            c = c_ops[i]
            c.opcode = op.opcode
            c.flags = 0
            c.file = ptr
            c.buf = addr or None
            c.len = length
            c.offset = op.offset
            c.result = 0
            c.user_data = i
        rt = runtime_handle.acquire()
        try:
            rc = L.lib.rio_submit_batch(rt, c_ops, n)
            if rc < 0:
                raise make_error(rc)
        finally:
            runtime_handle.release()
        results: List[Any] = []
        for i, op in enumerate(ops):
            op._set_result(i, c_ops[i].result)
            results.append(op.error if op.error is not None else op._finish(keeps[i][2]))
    finally:
        for h in handles:
            h.release()
        for k in keeps:
            release_keep(k[2])
    if check:
        for op in ops:
            if op.error is not None:
                raise op.error
    return results
