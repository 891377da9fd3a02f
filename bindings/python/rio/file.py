"""``rio.File``: positioned I/O on one open file."""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING, Any, Optional, Sequence

from . import _lib as L
from ._buffer import _BYTES_OFF, BytesLike, alloc_buffer, new_bytes, rbuf, rbufs, wbuf, wbufs
from ._errors import PathArg, check, make_error
from ._handle import Handle
from ._lib import lib

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Runtime

__all__ = ["File", "parse_mode"]

# Bound once: module globals are one dictionary lookup on the hot paths.
_hot_read_at = L.hot.rio_file_read_at
_hot_write_at = L.hot.rio_file_write_at
_from_buffer = ctypes.c_char.from_buffer
_addressof = ctypes.addressof
_id = id
_LIMIT = 1 << 63  # offsets and counts are below 2**63 (int64 in the library)

_BASE_FLAGS = {
    "r": L.RIO_OPEN_READ,
    "w": L.RIO_OPEN_WRITE | L.RIO_OPEN_CREATE | L.RIO_OPEN_TRUNCATE,
    "a": L.RIO_OPEN_WRITE | L.RIO_OPEN_CREATE | L.RIO_OPEN_APPEND,
    "x": L.RIO_OPEN_WRITE | L.RIO_OPEN_CREATE | L.RIO_OPEN_EXCL,
}


def parse_mode(mode: str) -> int:
    """Maps a built-in ``open`` mode to ``RIO_OPEN_*`` flags.

    ``"r"`` READ; ``"r+"`` READ|WRITE; ``"w"`` WRITE|CREATE|TRUNCATE;
    ``"w+"`` adds READ; ``"a"`` WRITE|CREATE|APPEND; ``"a+"`` adds READ;
    ``"x"`` WRITE|CREATE|EXCL; ``"x+"`` adds READ. ``"b"`` is accepted
    anywhere and ignored (binary is implied); ``"t"`` is rejected.
    """
    if not isinstance(mode, str):
        raise TypeError(f"mode must be str, not {type(mode).__name__}")
    chars = set(mode)
    if len(chars) != len(mode) or not chars <= set("rwax+b") or not mode:
        raise ValueError(f"invalid mode: {mode!r}")
    kinds = chars & set("rwax")
    if len(kinds) != 1:
        raise ValueError(f"invalid mode: {mode!r} (need exactly one of r, w, a, x)")
    flags = _BASE_FLAGS[kinds.pop()]
    if "+" in chars:
        flags |= L.RIO_OPEN_READ | L.RIO_OPEN_WRITE
    return flags


class File:
    """A file opened with :meth:`rio.Runtime.open` (``rt.open(path, mode)``).

    Example::

        with rio.Runtime() as rt, rt.open("data.bin", "w+") as f:
            f.write_at(b"hello", 0)            # any bytes-like object, not copied
            f.read_at(5, 0)                    # -> b"hello" (short only at end of file)
            buf = bytearray(4096)
            n = f.readinto_at(buf, 0)          # into your buffer, no copy
            f.datasync()

    I/O: :meth:`read_at`, :meth:`readinto_at`, :meth:`write_at`,
    :meth:`readv_at`, :meth:`writev_at`; durability: :meth:`sync`,
    :meth:`datasync`; size: :meth:`allocate`, :meth:`truncate`,
    :meth:`size`; :meth:`close` (also by ``with`` and garbage collection).
    Attributes: ``name``, ``mode``, ``direct``, ``flags``, ``closed``.

    All methods are positioned (no file cursor) and may be called from many
    threads at once; the GIL is released while the library does I/O.
    Errors raise the ``OSError`` subclass matching errno with the library's
    message. After :meth:`close` every method raises ``ValueError``.

    With ``direct=True`` (O_DIRECT), buffers, lengths and offsets must be
    aligned (``EINVAL`` otherwise, with the alignment in the message): use
    :func:`rio.alloc_buffer` for buffers. :meth:`read_at` allocates an
    aligned buffer itself.
    """

    def __init__(
        self,
        runtime: "Runtime",
        path: PathArg,
        mode: str = "r",
        direct: bool = False,
        *,
        perm: int = 0o644,
        dsync: bool = False,
        _flags: Optional[int] = None,
    ) -> None:
        """Opens ``path`` on ``runtime``; prefer :meth:`rio.Runtime.open`,
        which takes the same arguments. ``mode`` is as in the built-in
        ``open`` (see :func:`rio.parse_mode`), ``direct`` adds O_DIRECT,
        ``dsync`` O_DSYNC, ``perm`` applies to a created file. Raises the
        ``OSError`` subclass of the failure, with ``filename`` set."""
        self._handle: Optional[Handle] = None
        flags = parse_mode(mode) if _flags is None else int(_flags)
        if direct:
            flags |= L.RIO_OPEN_DIRECT
        if dsync:
            flags |= L.RIO_OPEN_DSYNC
        raw = os.fsencode(path)
        if b"\0" in raw:
            raise ValueError("embedded null byte in path")
        self.name: str = os.fsdecode(raw)
        self.mode: str = mode
        self.direct: bool = bool(direct)
        self.flags: int = flags
        self._runtime = runtime
        out = L.rio_file_p()
        rh = runtime._check_open()
        rt = rh.acquire()
        try:
            rc = lib.rio_file_open(rt, raw, flags, int(perm), ctypes.byref(out))
            if rc < 0:
                raise make_error(rc, self.name)
        finally:
            rh.release()
        self._handle = Handle(out, lib.rio_file_close, "file")

    # -- lifecycle -------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._handle is None or self._handle.closed

    def close(self) -> None:
        """Closes the file; waits for calls in flight. Idempotent.

        Raises OSError if close(2) reports an error (the handle is freed anyway).
        """
        h = self._handle
        if h is None:
            return
        rc = h.close()
        if rc is not None and rc < 0:
            raise make_error(rc, self.name)

    def __enter__(self) -> "File":
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            h = self._handle
            if h is not None and not h.closed:
                h.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<rio.File {self.name!r} mode={self.mode!r} direct={self.direct} {state}>"

    def _acquire(self) -> Any:
        h = self._handle
        if h is None:
            raise ValueError("I/O operation on closed file")
        return h.acquire()

    def _release(self) -> None:
        self._handle.release()  # type: ignore[union-attr]

    # -- I/O ---------------------------------------------------------------

    # The three calls below are the per-call hot paths (docs/bindings.md,
    # "Per-call cost"): the common argument types are handled inline, the
    # handle bookkeeping of Handle.acquire/release is inlined, the library is
    # called through rio._lib.hot with the handle's address, and only the
    # sign of the result is checked. Anything unusual goes through the
    # general helpers (_off, rbuf, wbuf), which also produce the errors.

    def read_at(self, n: int, off: Optional[int] = None, *, offset: Optional[int] = None) -> bytes:
        """Reads up to ``n`` bytes at offset ``off``; fewer only at end of file.
        (``offset=`` is accepted as a keyword alias of ``off``.)

        Returns a new ``bytes`` (the data is read straight into it, no
        intermediate copy). Use :meth:`readinto_at` to reuse a buffer.
        """
        if type(n) is not int or not 0 <= n < _LIMIT:
            n = _count(n, "n")
        if offset is not None or type(off) is not int or not 0 <= off < _LIMIT:
            off = _off(off, offset)
        if n == 0 or self.direct:
            return self._read_at_slow(n, off)
        out, addr = new_bytes(n)
        h = self._handle
        if h is None:
            raise ValueError("I/O operation on closed file")
        inflight = h._inflight
        inflight.append(None)
        try:
            if h.ptr is None:
                raise ValueError("I/O operation on closed file")
            got: int = _hot_read_at(h.addr, addr, n, off)
        finally:
            inflight.pop()
        if got < 0:
            raise make_error(got)
        return out if got == n else out[:got]

    def _read_at_slow(self, n: int, offset: int) -> bytes:
        if n == 0:
            self._acquire()
            self._release()
            return b""
        with alloc_buffer(n) as buf:  # O_DIRECT: an aligned buffer
            got = self.readinto_at(buf, offset)
            return bytes(buf[:got])

    def readinto_at(self, buf: BytesLike, off: Optional[int] = None, *, offset: Optional[int] = None) -> int:
        """Reads into the writable buffer ``buf`` (no copy) at offset ``off``.

        ``buf`` is any writable, C-contiguous buffer: ``bytearray``,
        ``memoryview``, ``array.array``, ``mmap``, numpy arrays,
        :func:`rio.alloc_buffer`. It is pinned (cannot be resized or freed)
        for the duration of the call. Returns the number of bytes read, less
        than ``len(buf)`` only at end of file.
        """
        if offset is not None or type(off) is not int or not 0 <= off < _LIMIT:
            off = _off(off, offset)
        if type(buf) is bytearray and buf:
            n = len(buf)
            pin: Any = _from_buffer(buf)  # the export pins buf until pin is dropped
            addr = _addressof(pin)
        else:
            addr, n, pin = wbuf(buf)
        h = self._handle
        if h is None:
            raise ValueError("I/O operation on closed file")
        inflight = h._inflight
        inflight.append(None)
        try:
            if h.ptr is None:
                raise ValueError("I/O operation on closed file")
            got: int = _hot_read_at(h.addr, addr, n, off)
        finally:
            inflight.pop()
        del pin
        if got < 0:
            raise make_error(got)
        return got

    def write_at(self, data: BytesLike, off: Optional[int] = None, *, offset: Optional[int] = None) -> int:
        """Writes all of ``data`` (any bytes-like object, not copied) at
        offset ``off``; returns ``len(data)`` in bytes. In append mode the
        offset is ignored and the data goes to the end of the file."""
        if offset is not None or type(off) is not int or not 0 <= off < _LIMIT:
            off = _off(off, offset)
        if type(data) is bytes:  # immutable: its address is stable while referenced
            addr = _id(data) + _BYTES_OFF
            n = len(data)
            pin: Any = data
        else:
            addr, n, pin = rbuf(data)
        h = self._handle
        if h is None:
            raise ValueError("I/O operation on closed file")
        inflight = h._inflight
        inflight.append(None)
        try:
            if h.ptr is None:
                raise ValueError("I/O operation on closed file")
            r: int = _hot_write_at(h.addr, addr, n, off)
        finally:
            inflight.pop()
        del pin
        if r < 0:
            raise make_error(r)
        return r

    def write_durable(self, data: BytesLike, off: Optional[int] = None, *, offset: Optional[int] = None) -> int:
        """Writes all of ``data`` at offset ``off`` and returns ``len(data)``
        only once the bytes (and the size needed to read them back) are on
        stable storage (``rio_file_write_durable``: O_DIRECT for the aligned
        middle, one fdatasync). Raises ``OSError`` if any part failed (then
        nothing is promised durable); ``EINVAL`` on an append-mode file."""
        offset = _off(off, offset)
        addr, n, keep = rbuf(data)
        r = self._simple(lib.rio_file_write_durable, addr, n, offset)
        del keep
        return r

    def readv_at(self, buffers: Sequence[BytesLike], off: Optional[int] = None, *,
                 offset: Optional[int] = None) -> int:
        """Scatter read into writable ``buffers`` at offset ``off``; returns
        the bytes read (fewer than the total only at end of file)."""
        return self._vectored(buffers, _off(off, offset), True)

    def writev_at(self, buffers: Sequence[BytesLike], off: Optional[int] = None, *,
                  offset: Optional[int] = None) -> int:
        """Gather write of ``buffers`` at offset ``off``; all or an error.
        Returns the total number of bytes written."""
        return self._vectored(buffers, _off(off, offset), False)

    def _vectored(self, buffers: Sequence[BytesLike], offset: int, read: bool) -> int:
        buffers = list(buffers)
        if len(buffers) > L.RIO_IOV_MAX:
            raise ValueError(f"at most {L.RIO_IOV_MAX} buffers per call, got {len(buffers)}")
        views = wbufs(buffers) if read else rbufs(buffers)
        iov = (L.iovec * max(1, len(views)))()
        for i, (addr, n, _) in enumerate(views):
            iov[i].iov_base = addr or None
            iov[i].iov_len = n
        fn = lib.rio_file_readv_at if read else lib.rio_file_writev_at
        h = self._acquire()
        try:
            r: int = fn(h, iov, len(views), offset)
            if r < 0:
                raise make_error(r)
        finally:
            self._release()
        del views
        return r

    def _simple(self, fn: Any, *args: int) -> int:
        h = self._acquire()
        try:
            rc: int = fn(h, *args)
            if rc < 0:
                raise make_error(rc)
            return rc
        finally:
            self._release()

    def sync(self) -> None:
        """fsync(2): data and metadata on stable storage."""
        self._simple(lib.rio_file_sync)

    def datasync(self) -> None:
        """fdatasync(2): data (and the size) on stable storage."""
        self._simple(lib.rio_file_datasync)

    def allocate(self, off: int, length: int) -> None:
        """Reserves ``length`` bytes at offset ``off`` (fallocate mode 0; the
        file grows to cover them)."""
        self._simple(lib.rio_file_allocate, _offset(off), _count(length, "length"))

    def truncate(self, length: int) -> None:
        """Sets the file size to ``length`` bytes."""
        self._simple(lib.rio_file_truncate, _count(length, "length"))

    def size(self) -> int:
        """The file's size in bytes."""
        return self._simple(lib.rio_file_size)


def _off(off: Any, offset: Any) -> int:
    """The offset given positionally (``off``) or as ``offset=``."""
    if off is None:
        if offset is None:
            raise TypeError("missing the file offset (off)")
        off = offset
    elif offset is not None:
        raise TypeError("give the offset once: off or offset=")
    return _offset(off)


def _offset(offset: Any) -> int:
    if type(offset) is int and 0 <= offset < _LIMIT:
        return offset
    off = _index(offset, "offset")
    if off < 0:
        raise ValueError(f"negative offset: {off}")
    if off >= 1 << 63:
        raise OverflowError(f"offset too large: {off} (at most 2**63 - 1)")
    return off


def _count(n: Any, what: str) -> int:
    if type(n) is int and 0 <= n < _LIMIT:
        return n
    v = _index(n, what)
    if v < 0:
        raise ValueError(f"negative {what}: {v}")
    if v >= 1 << 63:
        raise OverflowError(f"{what} too large: {v}")
    return v


def _index(v: Any, what: str) -> int:
    try:
        index: int = v.__index__()
        return index
    except AttributeError:
        raise TypeError(f"{what} must be an integer, not {type(v).__name__}") from None
