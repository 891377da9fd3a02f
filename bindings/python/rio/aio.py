"""``rio.AsyncFile``: positioned file I/O for asyncio, through a librio queue.

Every event loop gets one ``rio_queue_t`` per runtime (``rio_queue_open``);
the loop watches the queue's eventfd with ``loop.add_reader``. An awaited
operation is pushed at once and submitted with every other operation pushed
in the same loop iteration (one ``rio_queue_submit``); when the fd polls
readable, one ``rio_queue_reap`` collects what completed and resolves the
futures. No thread runs per operation: the kernel (io_uring) or the
runtime's workers (thread pool) do the I/O while the loop runs other tasks.

Buffers belong to the queue until their operation is reaped: a task
cancelled while its read is in flight gets ``CancelledError`` at once, but
the buffer (and the file handle) stay referenced until the completion
arrives, so the kernel never writes into freed memory.

Errors are the ``OSError`` subclasses of the blocking API, by errno.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import errno as _errno
import os
import struct
import weakref
from ctypes import c_int, c_int64, c_size_t, c_void_p
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Tuple

from . import _lib as L
from ._buffer import BytesLike, alloc_buffer, new_bytes, rbuf, wbuf
from ._errors import make_error
from ._lib import lib
from .file import _LIMIT, File, _count, _off

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Runtime

__all__ = ["AsyncFile", "open_async"]

# Ops pushed per rio_queue_push call and reaped per rio_queue_reap call.
_CHUNK = 256

# The per-op cost is the interpreter's (docs/queues.md, "Python asyncio"):
# ops are packed into and unpacked from preallocated rio_op_t arrays with
# struct (one call per op instead of a ctypes field access per field), and
# the queue calls go through their own function objects taking addresses.
_OP = struct.Struct("@IIPPQQqQ")  # rio_op_t: opcode flags file buf len offset result user_data
_DONE = struct.Struct("@40xqQ")  # result, user_data of a reaped rio_op_t
assert _OP.size == _DONE.size == ctypes.sizeof(L.rio_op_t), "rio_op_t layout changed"
assert L.rio_op_t.result.offset == 40 and L.rio_op_t.user_data.offset == 48

_q = L._declare(
    L._handle,
    {
        "rio_queue_push": (c_int, [c_void_p, c_void_p, c_size_t]),
        "rio_queue_submit": (c_int, [c_void_p]),
        "rio_queue_reap": (c_int, [c_void_p, c_void_p, c_size_t, c_size_t, c_int64]),
    },
)[0]
_push, _submit, _reap = _q["rio_queue_push"], _q["rio_queue_submit"], _q["rio_queue_reap"]
_pack_into = _OP.pack_into
_from_buffer = ctypes.c_char.from_buffer
_addressof = ctypes.addressof
_EAGAIN = -_errno.EAGAIN
_get_running_loop = asyncio.get_running_loop
_READ, _WRITE = L.RIO_OP_READ, L.RIO_OP_WRITE

# One op until it is reaped: [future, keepalive, AsyncFile, opcode, file
# address, buffer address, length, offset, token]. The keepalive (buffer
# pin) and the file's hold stay until the completion is reaped, even when
# the awaiting task was cancelled. A list: cheaper to build than an object.
_Entry = List[Any]


class _LoopQueue:
    """The queue of one runtime on one event loop.

    Ops awaited during one loop iteration are collected and, in one
    ``call_soon`` callback at the end of it, pushed with one
    ``rio_queue_push`` and started with one ``rio_queue_submit``. The
    reader callback reaps up to ``_CHUNK`` completions per call."""

    def __init__(self, runtime: "Runtime", loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.runtime = runtime
        out = L.rio_queue_p()
        h = runtime._check_open()
        rt = h.acquire()
        try:
            rc = lib.rio_queue_open(rt, 0, ctypes.byref(out))
            if rc < 0:
                raise make_error(rc)
        finally:
            h.release()
        self.q: Optional[Any] = out
        self.qaddr: int = ctypes.cast(out, c_void_p).value or 0
        self.ops: Dict[int, _Entry] = {}
        # Awaited and not pushed yet, in order (the queue's free slots go
        # to them first, then to new ops).
        self.waiting: Deque[_Entry] = collections.deque()
        self.in_queue = 0  # pushed, not reaped
        # The queue's depth, learned at the first -EAGAIN (rio_queue_open
        # with 0 takes the runtime's queue_depth, which Python does not see).
        self.capacity: Optional[int] = None
        self.next_token = 1
        self.files = 0
        self.flush_scheduled = False
        self.push_buf = (L.rio_op_t * _CHUNK)()
        self.push_addr = _addressof(self.push_buf)
        self.out = (L.rio_op_t * _CHUNK)()
        self.out_addr = _addressof(self.out)
        self.out_view = memoryview(self.out).cast("B")
        self.fd = lib.rio_queue_fd(out)
        if self.fd < 0:
            err = make_error(self.fd)
            lib.rio_queue_close(out)
            raise err
        loop.add_reader(self.fd, self._on_readable)

    # -- pushing ---------------------------------------------------------

    def start(self, future: "asyncio.Future[int]", keep: Any, afile: "AsyncFile", opcode: int, addr: int, n: int, offset: int) -> None:
        """Registers one op; it is pushed and submitted at the end of this loop iteration."""
        token = self.next_token
        self.next_token = token + 1
        entry = [future, keep, afile, opcode, afile._faddr, addr, n, offset, token]
        self.ops[token] = entry
        self.waiting.append(entry)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Pushes waiting ops into the free slots, then submits once."""
        self.flush_scheduled = False
        if self.q is None:
            return
        waiting = self.waiting
        while waiting:
            free = len(waiting) if self.capacity is None else self.capacity - self.in_queue
            batch: List[_Entry] = []
            buf = self.push_buf
            while waiting and len(batch) < free and len(batch) < _CHUNK:
                e = waiting.popleft()
                if e[0].cancelled():  # never pushed: nothing references its buffer
                    self._resolve(self.ops.pop(e[8]), 0)
                    continue
                _pack_into(buf, len(batch) * 56, e[3], 0, e[4], e[5], e[6], e[7], 0, e[8])
                batch.append(e)
            if not batch:
                break
            rc = _push(self.qaddr, self.push_addr, len(batch))
            if rc >= 0:
                self.in_queue += len(batch)
            else:
                # Full (the depth is learned here) or a bad op: one at a time,
                # so that only the bad op fails, with the library's message.
                waiting.extendleft(reversed(batch))
                if not self._push_one_by_one(len(batch)):
                    break
        rc = _submit(self.qaddr)
        if rc < 0:  # pragma: no cover - only on a queue used after fork
            self._fail_all(make_error(rc))

    def _push_one_by_one(self, n: int) -> bool:
        """Pushes the first ``n`` waiting ops singly; False once the queue is full."""
        waiting = self.waiting
        for _ in range(n):
            e = waiting[0]
            _pack_into(self.push_buf, 0, e[3], 0, e[4], e[5], e[6], e[7], 0, e[8])
            rc = _push(self.qaddr, self.push_addr, 1)
            if rc == _EAGAIN:
                self.capacity = self.in_queue
                return False
            waiting.popleft()
            if rc < 0:
                err = make_error(rc, e[2].name)
                self.ops.pop(e[8])
                e[2]._op_done()
                e[1] = None
                if not e[0].done():
                    e[0].set_exception(err)
            else:
                self.in_queue += 1
        return True

    # -- completions -----------------------------------------------------

    def _on_readable(self) -> None:
        # rio_queue_reap drains the eventfd (and re-arms it when it leaves
        # completions behind), so one reap per callback is the common case.
        unpack = _DONE.iter_unpack
        while self.q is not None:
            n = _reap(self.qaddr, self.out_addr, _CHUNK, 0, 0)
            if n <= 0:
                if n < 0:  # pragma: no cover - only on a queue used after fork
                    self._fail_all(make_error(n))
                    return
                break
            self.in_queue -= n
            pop = self.ops.pop
            for result, token in unpack(self.out_view[: n * 56]):
                e = pop(token)
                fut = e[0]
                afile = e[2]
                if result >= 0 and afile._in_flight > 1 and not fut.done():  # the common case, inline
                    afile._in_flight -= 1
                    fut.set_result(result)
                else:
                    self._resolve(e, result)
            if n < _CHUNK:
                break
        if self.waiting:
            self._flush()
        self._maybe_close()

    def _resolve(self, e: _Entry, result: int) -> None:
        e[2]._op_done()
        fut = e[0]
        e[1] = None
        if fut.done():  # the awaiting task was cancelled; the buffer was kept until now
            return
        if result < 0:
            err = -result
            verb = {_READ: "read", _WRITE: "write", L.RIO_OP_FSYNC: "fsync"}.get(e[3], "fdatasync")
            what = f"{verb} of {e[6]} bytes at offset {e[7]}" if e[3] in (_READ, _WRITE) else verb
            fut.set_exception(OSError(err, f"{os.strerror(err)}: {what}", e[2].name))
        else:
            fut.set_result(result)

    def _fail_all(self, exc: BaseException) -> None:  # pragma: no cover
        for e in self.ops.values():
            if not e[0].done():
                e[0].set_exception(exc)

    # -- lifetime --------------------------------------------------------

    def file_opened(self) -> None:
        self.files += 1

    def file_closed(self) -> None:
        self.files -= 1
        self._maybe_close()

    def _maybe_close(self) -> None:
        """Closes the queue once no file uses it and nothing is in flight."""
        if self.files == 0 and not self.ops and self.q is not None:
            self.close()

    def close(self) -> None:
        q, self.q = self.q, None
        if q is None:
            return
        _forget(self)
        if not self.loop.is_closed():
            self.loop.remove_reader(self.fd)
        # Waits for every started op (there is none left when called from
        # _maybe_close); their buffers are still referenced by self.ops.
        lib.rio_queue_close(q)
        self.ops.clear()
        self.waiting.clear()


# runtime -> {loop: queue}; weak on the runtime so a dropped runtime's
# queues go with it (each queue holds a reference to the C runtime itself).
_QUEUES: "weakref.WeakKeyDictionary[Any, Dict[asyncio.AbstractEventLoop, _LoopQueue]]" = weakref.WeakKeyDictionary()


def _queue_for(runtime: "Runtime", loop: asyncio.AbstractEventLoop) -> _LoopQueue:
    per_loop = _QUEUES.setdefault(runtime, {})
    q = per_loop.get(loop)
    if q is None or q.q is None:
        q = per_loop[loop] = _LoopQueue(runtime, loop)
    return q


def _forget(q: _LoopQueue) -> None:
    per_loop = _QUEUES.get(q.runtime)
    if per_loop is not None and per_loop.get(q.loop) is q:
        del per_loop[q.loop]


class AsyncFile:
    """A file for asyncio, from :meth:`rio.Runtime.open_async`.

    ``await read_at / readinto_at / write_at / sync / datasync /
    write_durable``, ``size()``, ``await close()``, ``async with``. Many tasks
    may await on one file at once; their operations are in flight together.
    Use it from the event loop it was opened on.
    """

    def __init__(self, runtime: "Runtime", path: Any, mode: str = "r", direct: bool = False, **kw: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._file = File(runtime, path, mode, direct, **kw)
        self.name: str = self._file.name
        self.mode: str = mode
        self.direct: bool = bool(direct)
        self._in_flight = 0
        self._idle: Optional[asyncio.Event] = None
        try:
            self._queue = _queue_for(runtime, self._loop)
        except BaseException:
            self._file.close()
            raise
        self._queue.file_opened()
        self._closing = False
        h = self._file._handle
        self._faddr: int = h.addr if h is not None else 0

    # -- lifecycle -------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing or self._file.closed

    async def close(self) -> None:
        """Waits for this file's operations in flight (cancelled ones
        included), then closes it. Idempotent."""
        if self._closing:
            return
        self._closing = True
        while self._in_flight:
            self._idle = asyncio.Event()
            await self._idle.wait()
        try:
            self._file.close()
        finally:
            self._queue.file_closed()

    async def __aenter__(self) -> "AsyncFile":
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<rio.AsyncFile {self.name!r} mode={self.mode!r} direct={self.direct} {state}>"

    def _hold(self) -> None:
        """One more op in flight; the first holds the file handle (a blocking
        close would wait) until the last is reaped."""
        if self._in_flight == 0:
            self._file._acquire()
        self._in_flight += 1

    def _op_done(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._file._release()
            if self._idle is not None:
                self._idle.set()

    # -- I/O ---------------------------------------------------------------

    # read_at/readinto_at/write_at are the per-op hot paths: the common
    # argument types are handled inline, anything else goes through the
    # general helpers (_off, rbuf, wbuf), which also produce the errors.

    def _start(self, opcode: int, addr: int, n: int, offset: int, keep: Any) -> "asyncio.Future[int]":
        if self._closing:
            raise ValueError("I/O operation on closed file")
        loop = self._loop
        if _get_running_loop() is not loop:
            raise RuntimeError("an AsyncFile is used from the event loop it was opened on")
        fut: "asyncio.Future[int]" = loop.create_future()
        if self._in_flight == 0:  # _hold, inline
            self._file._acquire()
        self._in_flight += 1
        self._queue.start(fut, keep, self, opcode, addr, n, offset)
        return fut

    async def read_at(self, n: int, off: Optional[int] = None, *, offset: Optional[int] = None) -> bytes:
        """Reads up to ``n`` bytes at ``off``; fewer only at end of file."""
        if type(n) is not int or not 0 <= n < _LIMIT:
            n = _count(n, "n")
        if offset is not None or type(off) is not int or not 0 <= off < _LIMIT:
            off = _off(off, offset)
        if n == 0:
            return b""
        if self.direct:
            buf = alloc_buffer(n)
            pin = _from_buffer(buf)
            got = await self._start(_READ, _addressof(pin), n, off, pin)
            return bytes(buf[:got])
        out, addr = new_bytes(n)
        got = await self._start(_READ, addr, n, off, out)
        return out if got == n else out[:got]

    async def readinto_at(self, buf: BytesLike, off: Optional[int] = None, *, offset: Optional[int] = None) -> int:
        """Reads into the writable ``buf`` (no copy) at ``off``; returns the
        bytes read (fewer than ``len(buf)`` only at end of file)."""
        if offset is not None or type(off) is not int or not 0 <= off < _LIMIT:
            off = _off(off, offset)
        pin: Any
        if type(buf) is memoryview and buf.c_contiguous and not buf.readonly and buf.nbytes:
            n = buf.nbytes
        elif type(buf) is bytearray and buf:
            n = len(buf)
        else:
            addr, n, pin = wbuf(buf)
            return await self._start(_READ, addr, n, off, (pin, buf))
        # The export pins buf (no resize, no release) until pin is dropped.
        pin = _from_buffer(buf)
        return await self._start(_READ, _addressof(pin), n, off, pin)
        return await self._start(_READ, addr, n, off, (pin, buf))

    async def write_at(self, data: BytesLike, off: Optional[int] = None, *, offset: Optional[int] = None) -> int:
        """Writes all of ``data`` at ``off`` (not copied); returns ``len(data)``."""
        if offset is not None or type(off) is not int or not 0 <= off < _LIMIT:
            off = _off(off, offset)
        addr, n, pin = rbuf(data)
        return await self._start(_WRITE, addr, n, off, (pin, data))

    async def sync(self) -> None:
        """fsync(2) through the queue."""
        await self._start(L.RIO_OP_FSYNC, 0, 0, 0, None)

    async def datasync(self) -> None:
        """fdatasync(2) through the queue."""
        await self._start(L.RIO_OP_FDATASYNC, 0, 0, 0, None)

    async def write_durable(self, data: BytesLike, off: Optional[int] = None, *, offset: Optional[int] = None) -> int:
        """``File.write_durable`` (``rio_file_write_durable``): returns
        ``len(data)`` once the bytes are on stable storage. A queue has no
        such op (it is a sequence of writes and a sync chosen by the
        library), so this one call runs on the loop's default executor, not
        on the queue; the loop keeps running meanwhile."""
        offset = _off(off, offset)
        if self._closing:
            raise ValueError("I/O operation on closed file")
        self._hold()
        loop = self._loop

        def durable_write() -> int:
            try:
                return self._file.write_durable(data, offset)
            finally:
                # Only once the call returned (even if the awaiting task was
                # cancelled meanwhile) may close() proceed.
                if not loop.is_closed():
                    loop.call_soon_threadsafe(self._op_done)

        return await loop.run_in_executor(None, durable_write)

    def size(self) -> int:
        """The file's size in bytes."""
        return self._file.size()


def open_async(runtime: "Runtime", path: Any, mode: str = "r", direct: bool = False, **kw: Any) -> AsyncFile:
    """Opens ``path`` for asyncio; see :class:`AsyncFile`. Call it from a
    running event loop (it binds the file to that loop's queue)."""
    return AsyncFile(runtime, path, mode, direct, **kw)
