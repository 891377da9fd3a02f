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
import weakref
from typing import TYPE_CHECKING, Any, Deque, Dict, Optional, Tuple

from . import _lib as L
from ._buffer import BytesLike, alloc_buffer, new_bytes, rbuf, wbuf
from ._errors import make_error
from ._lib import lib
from .file import File, _count, _off

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Runtime

__all__ = ["AsyncFile", "open_async"]

# Ops reaped per rio_queue_reap call when the fd turns readable.
_REAP_BATCH = 256


class _Pending:
    """One pushed op: its future, and what must stay alive until it is reaped."""

    __slots__ = ("future", "keep", "file", "what")

    # `what` is (verb, bytes, offset): the error message is built only on failure.
    def __init__(self, future: "asyncio.Future[int]", keep: Any, file: "AsyncFile", what: Tuple[str, int, int]) -> None:
        self.future = future
        self.keep = keep
        self.file = file
        self.what = what


class _LoopQueue:
    """The queue of one runtime on one event loop."""

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
        self.ops: Dict[int, _Pending] = {}
        self.backlog: Deque[Tuple[L.rio_op_t, _Pending]] = collections.deque()
        self.next_token = 1
        self.files = 0
        self.submit_scheduled = False
        self.out = (L.rio_op_t * _REAP_BATCH)()
        self.op = L.rio_op_t()
        self.op_ref = ctypes.byref(self.op)
        self.fd = lib.rio_queue_fd(out)
        if self.fd < 0:
            err = make_error(self.fd)
            lib.rio_queue_close(out)
            raise err
        loop.add_reader(self.fd, self._on_readable)

    # -- pushing ---------------------------------------------------------

    def start(self, opcode: int, file: Any, addr: Optional[int], n: int, offset: int, pending: _Pending) -> None:
        """Pushes one op (or keeps it until a slot frees); raises for a bad op.

        The push copies the op, so one reusable struct serves every push; an
        op that has to wait for a slot gets a copy of its own."""
        token = self.next_token
        self.next_token += 1
        op = self.op
        op.opcode = opcode
        op.file = file
        op.buf = addr
        op.len = n
        op.offset = offset
        op.user_data = token
        rc = -_errno.EAGAIN if self.backlog else lib.rio_queue_push(self.q, self.op_ref, 1)
        if rc == -_errno.EAGAIN:
            # Slots go to the backlog first, in order.
            waiting = L.rio_op_t()
            ctypes.pointer(waiting)[0] = op
            self.backlog.append((waiting, pending))
        elif rc < 0:
            raise make_error(rc, pending.file.name)
        self.ops[token] = pending
        self._schedule_submit()

    def _schedule_submit(self) -> None:
        if not self.submit_scheduled:
            self.submit_scheduled = True
            self.loop.call_soon(self._submit)

    def _submit(self) -> None:
        self.submit_scheduled = False
        if self.q is not None:
            rc = lib.rio_queue_submit(self.q)
            if rc < 0:  # pragma: no cover - only on a queue used after fork
                self._fail_all(make_error(rc))

    def _refill(self) -> None:
        """Moves ops waiting for a slot into the queue, as slots free up."""
        while self.backlog:
            op, pending = self.backlog[0]
            if pending.future.cancelled():
                # Never pushed: nothing references its buffer.
                self.backlog.popleft()
                self._resolve(self.ops.pop(op.user_data), 0)
                continue
            rc = lib.rio_queue_push(self.q, ctypes.byref(op), 1)
            if rc == -_errno.EAGAIN:
                break
            self.backlog.popleft()
            if rc < 0:  # checked when first pushed; cannot fail now
                self._resolve(self.ops.pop(op.user_data), rc)  # pragma: no cover
        self._schedule_submit()

    # -- completions -----------------------------------------------------

    def _on_readable(self) -> None:
        while self.q is not None:
            n = lib.rio_queue_reap(self.q, self.out, _REAP_BATCH, 0, 0)
            if n < 0:  # pragma: no cover - only on a queue used after fork
                self._fail_all(make_error(n))
                return
            for i in range(n):
                done = self.out[i]
                self._resolve(self.ops.pop(done.user_data), done.result)
            if n < _REAP_BATCH:
                break
        if self.backlog:
            self._refill()
        self._maybe_close()

    def _resolve(self, pending: _Pending, result: int) -> None:
        pending.file._op_done()
        fut = pending.future
        pending.keep = None
        if fut.done():  # the awaiting task was cancelled; the buffer was kept until now
            return
        if result < 0:
            err = -result
            verb, n, offset = pending.what
            what = f"{verb} of {n} bytes at offset {offset}" if verb in ("read", "write") else verb
            fut.set_exception(OSError(err, f"{os.strerror(err)}: {what}", pending.file.name))
        else:
            fut.set_result(result)

    def _fail_all(self, exc: BaseException) -> None:  # pragma: no cover
        for pending in self.ops.values():
            if not pending.future.done():
                pending.future.set_exception(exc)

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
        self.backlog.clear()


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

    def _op_done(self) -> None:
        self._in_flight -= 1
        self._file._release()
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set()

    # -- I/O ---------------------------------------------------------------

    def _start(self, opcode: int, addr: int, n: int, offset: int, keep: Any, verb: str) -> "asyncio.Future[int]":
        if self._closing:
            raise ValueError("I/O operation on closed file")
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("an AsyncFile is used from the event loop it was opened on")
        # The file handle stays acquired (a blocking close would wait) until reaped.
        file = self._file._acquire()
        fut: "asyncio.Future[int]" = self._loop.create_future()
        self._in_flight += 1
        try:
            self._queue.start(opcode, file, addr or None, n, offset, _Pending(fut, keep, self, (verb, n, offset)))
        except BaseException:
            self._in_flight -= 1
            self._file._release()
            raise
        return fut

    async def read_at(self, n: int, off: Optional[int] = None, *, offset: Optional[int] = None) -> bytes:
        """Reads up to ``n`` bytes at ``off``; fewer only at end of file."""
        n = _count(n, "n")
        offset = _off(off, offset)
        if n == 0:
            return b""
        if self.direct:
            buf = alloc_buffer(n)
            addr, _, keep = wbuf(buf)
            got = await self._start(L.RIO_OP_READ, addr, n, offset, (keep, buf), "read")
            return bytes(buf[:got])
        out, addr = new_bytes(n)
        got = await self._start(L.RIO_OP_READ, addr, n, offset, out, "read")
        return out if got == n else out[:got]

    async def readinto_at(self, buf: BytesLike, off: Optional[int] = None, *, offset: Optional[int] = None) -> int:
        """Reads into the writable ``buf`` (no copy) at ``off``; returns the
        bytes read (fewer than ``len(buf)`` only at end of file)."""
        offset = _off(off, offset)
        addr, n, keep = wbuf(buf)
        return await self._start(L.RIO_OP_READ, addr, n, offset, (keep, buf), "read")

    async def write_at(self, data: BytesLike, off: Optional[int] = None, *, offset: Optional[int] = None) -> int:
        """Writes all of ``data`` at ``off`` (not copied); returns ``len(data)``."""
        offset = _off(off, offset)
        addr, n, keep = rbuf(data)
        return await self._start(L.RIO_OP_WRITE, addr, n, offset, (keep, data), "write")

    async def sync(self) -> None:
        """fsync(2) through the queue."""
        await self._start(L.RIO_OP_FSYNC, 0, 0, 0, None, "fsync")

    async def datasync(self) -> None:
        """fdatasync(2) through the queue."""
        await self._start(L.RIO_OP_FDATASYNC, 0, 0, 0, None, "fdatasync")

    async def write_durable(self, data: BytesLike, off: Optional[int] = None, *, offset: Optional[int] = None) -> int:
        """``File.write_durable`` (``rio_file_write_durable``): returns
        ``len(data)`` once the bytes are on stable storage. A queue has no
        such op (it is a sequence of writes and a sync chosen by the
        library), so this one call runs on the loop's default executor, not
        on the queue; the loop keeps running meanwhile."""
        offset = _off(off, offset)
        if self._closing:
            raise ValueError("I/O operation on closed file")
        self._file._acquire()
        self._in_flight += 1
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
