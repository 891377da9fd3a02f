"""``rio.Wal``: a durable write-ahead log."""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Tuple

from . import _lib as L
from ._buffer import BytesLike, rbuf, rbufs
from ._errors import make_error
from ._handle import Handle
from ._lib import lib

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Runtime

__all__ = ["Wal", "WalReader", "RECOVERY_MODES"]

RECOVERY_MODES = {
    "tolerate_tail": L.RIO_WAL_RECOVER_TOLERATE_TAIL,
    "strict": L.RIO_WAL_RECOVER_STRICT,
}

_CONFIG_FIELDS = (
    "batch_size",
    "flush_timeout_us",
    "sync_after_batch",
    "buffer_size",
    "segment_size",
    "recovery_mode",
)


def _recovery_mode(value: Any) -> int:
    if isinstance(value, str):
        try:
            return RECOVERY_MODES[value.lower().replace("-", "_")]
        except KeyError:
            raise ValueError(
                f"unknown recovery_mode {value!r}: expected 'tolerate_tail' or 'strict'"
            ) from None
    return int(value)


class Wal:
    """A write-ahead log opened with :meth:`rio.Runtime.open_wal`.

    Sequence numbers start at 1 and rise by one per entry, across restarts
    and truncations. With the default config an append returns only once the
    entry is on stable storage; threads appending at once share syncs.
    Thread-safe; a context manager; after :meth:`close` every method raises
    ``ValueError``. A failed write or sync poisons the log: later appends
    raise ``OSError(EIO)`` until it is reopened.
    """

    def __init__(self, runtime: "Runtime", directory: Any, **config: Any) -> None:
        self._handle: Optional[Handle] = None
        unknown = set(config) - set(_CONFIG_FIELDS)
        if unknown:
            raise TypeError(
                f"unknown WAL config field(s): {', '.join(sorted(unknown))}; "
                f"expected {', '.join(_CONFIG_FIELDS)}"
            )
        raw = os.fsencode(directory)
        if b"\0" in raw:
            raise ValueError("embedded null byte in path")
        self.path: str = os.fsdecode(raw)
        cfg = L.rio_wal_config_t()
        lib.rio_wal_config_default(ctypes.byref(cfg))
        for name, value in config.items():
            if value is None:
                continue
            if name == "recovery_mode":
                value = _recovery_mode(value)
            elif name == "sync_after_batch":
                value = bool(value)
            else:
                value = int(value)
                limit = 64 if name in ("buffer_size", "segment_size") else 32
                if not 0 <= value < 1 << limit:
                    raise ValueError(f"{name} out of range: {value}")
            setattr(cfg, name, value)
        self.config = {name: getattr(cfg, name) for name in _CONFIG_FIELDS}
        self._readers: "weakref.WeakSet[WalReader]" = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        out = L.rio_wal_p()
        h = runtime._check_open()
        with h as rt:
            rc = lib.rio_wal_open(rt, raw, ctypes.byref(cfg), ctypes.byref(out))
            if rc < 0:
                raise make_error(rc, self.path)
        self._handle = Handle(out, lib.rio_wal_close, "WAL")

    # -- lifecycle -------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._handle is None or self._handle.closed

    def close(self) -> None:
        """Closes open readers, then the log (waiting for calls in flight).
        Idempotent."""
        h = self._handle
        if h is None or h.closed:
            return
        with self._readers_lock:
            readers = list(self._readers)
        for r in readers:
            r.close()
        rc = h.close()
        if rc is not None and rc < 0:
            raise make_error(rc, self.path)

    def __enter__(self) -> "Wal":
        self._acquire_check()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover
            pass

    def __repr__(self) -> str:
        return f"<rio.Wal {self.path!r}{' closed' if self.closed else ''}>"

    def _acquire_check(self) -> Handle:
        h = self._handle
        if h is None or h.closed:
            raise ValueError("operation on closed WAL")
        return h

    # -- writing ---------------------------------------------------------

    def append(self, data: BytesLike) -> int:
        """Appends one entry (any bytes-like object, not copied); returns its
        sequence number once it is durable (per the config)."""
        return self._append_one(lib.rio_wal_append, data)

    def _append_one(self, append: Any, data: BytesLike) -> int:
        """One entry through ``append`` (``rio_wal_append`` or
        ``rio_wal_append_async``); its sequence number."""
        h = self._acquire_check()
        seq = ctypes.c_uint64()
        addr, n, keep = rbuf(data)
        with h as w:
            rc = append(w, addr, n, ctypes.byref(seq))
            if rc < 0:
                raise make_error(rc)
        del keep
        return seq.value

    def append_batch(self, entries: Iterable[BytesLike]) -> int:
        """Appends ``entries`` atomically (after a crash all or none are
        replayed); returns the sequence number of the first."""
        h = self._acquire_check()
        views = rbufs(list(entries))
        slices = (L.rio_slice_t * max(1, len(views)))()
        for i, (addr, n, _) in enumerate(views):
            slices[i].data = addr or None
            slices[i].len = n
        first = ctypes.c_uint64()
        with h as w:
            rc = lib.rio_wal_append_batch(w, slices, len(views), ctypes.byref(first))
            if rc < 0:
                raise make_error(rc)
        del views
        return first.value

    def append_async(self, data: BytesLike) -> int:
        """Appends one entry without waiting for it to be durable: the
        library copies it and assigns its sequence number, which this
        returns. Blocks only while ``buffer_size`` bytes already wait to be
        written. Entries become durable in order; :meth:`wait` or
        :attr:`durable_seq` tell when."""
        return self._append_one(lib.rio_wal_append_async, data)

    def wait(self, seq: int, timeout: Optional[float] = None) -> None:
        """Waits until every entry up to ``seq`` is durable (written, with
        ``sync_after_batch=False``). ``timeout`` in seconds (``None``: no
        limit, 0: poll); raises ``TimeoutError`` when it passes first,
        ``OSError(EIO)`` when the log is poisoned, ``OSError(EINVAL)`` for a
        seq never assigned. The GIL is released while waiting."""
        h = self._acquire_check()
        seq = int(seq)
        if not 0 <= seq < 1 << 64:
            raise ValueError(f"seq out of range: {seq}")
        if timeout is None:
            timeout_us = L.RIO_WAL_WAIT_FOREVER
        else:
            if timeout < 0:
                raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout!r}")
            timeout_us = min(int(timeout * 1_000_000), (1 << 63) - 1)
        with h as w:
            rc = lib.rio_wal_wait(w, seq, timeout_us)
            if rc < 0:
                raise make_error(rc)

    @property
    def durable_seq(self) -> int:
        """Every entry up to this sequence number is durable (0: none yet)."""
        h = self._acquire_check()
        with h as w:
            return int(lib.rio_wal_durable_seq(w))

    def sync(self) -> None:
        """Makes every appended entry durable (for configs that do not sync
        each append)."""
        h = self._acquire_check()
        with h as w:
            rc = lib.rio_wal_sync(w)
            if rc < 0:
                raise make_error(rc)

    @property
    def last_seq(self) -> int:
        """The sequence number of the last acknowledged entry (0 for an
        empty log; an :meth:`append_async` entry counts once :meth:`wait`
        would return for it)."""
        h = self._acquire_check()
        with h as w:
            return int(lib.rio_wal_last_seq(w))

    def truncate_before(self, seq: int) -> None:
        """Drops entries before ``seq`` (whole segments; later replays start
        at or before ``seq``). Sequence numbers keep rising."""
        h = self._acquire_check()
        seq = int(seq)
        if not 0 <= seq < 1 << 64:
            raise ValueError(f"seq out of range: {seq}")
        with h as w:
            rc = lib.rio_wal_truncate_before(w, seq)
            if rc < 0:
                raise make_error(rc)

    # -- reading ---------------------------------------------------------

    def reader(self, from_seq: int = 1) -> "WalReader":
        """An iterator over ``(seq, bytes)`` from ``from_seq``; close it (or
        use it as a context manager) to release the library's reader."""
        return WalReader(self, from_seq)

    def replay(self, from_seq: int = 1) -> Iterator[Tuple[int, bytes]]:
        """Yields ``(seq, data)`` for every entry from ``from_seq`` on.

        The library's reader is closed when the generator is exhausted,
        closed, or garbage collected, and when the WAL is closed (the
        generator then raises ``ValueError``).
        """
        r = WalReader(self, from_seq)
        try:
            yield from r
        finally:
            r.close()

    def __iter__(self) -> Iterator[Tuple[int, bytes]]:
        return self.replay()


class WalReader:
    """Iterates ``(seq, bytes)`` over a WAL (``rio_wal_reader_*``)."""

    def __init__(self, wal: Wal, from_seq: int = 1) -> None:
        self._handle: Optional[Handle] = None
        self._done = True
        from_seq = int(from_seq)
        if not 0 <= from_seq < 1 << 64:
            raise ValueError(f"from_seq out of range: {from_seq}")
        h = wal._acquire_check()
        out = L.rio_wal_reader_p()
        with h as w:
            rc = lib.rio_wal_reader_open(w, from_seq, ctypes.byref(out))
            if rc < 0:
                raise make_error(rc)
            self._handle = Handle(out, lib.rio_wal_reader_close, "WAL reader")
            with wal._readers_lock:
                wal._readers.add(self)
        self._done = False
        self._wal = wal  # keeps the log open while the reader is referenced

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._handle is None or self._handle.closed

    def close(self) -> None:
        """Releases the reader. Idempotent."""
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> "WalReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover
            pass

    def __iter__(self) -> "WalReader":
        return self

    def __next__(self) -> Tuple[int, bytes]:
        if self._done:
            raise StopIteration
        h = self._handle
        if h is None or h.closed:
            raise ValueError("read from closed WAL reader")
        seq = ctypes.c_uint64()
        data = ctypes.c_void_p()
        n = ctypes.c_size_t()
        with h as r:
            rc = lib.rio_wal_reader_next(r, ctypes.byref(seq), ctypes.byref(data), ctypes.byref(n))
            if rc < 0:
                raise make_error(rc)
            if rc == 0:
                self._done = True
            else:
                # Copy now: the data is valid only until the next call.
                payload = ctypes.string_at(data.value or 0, n.value) if n.value else b""
        if self._done:
            self.close()
            raise StopIteration
        return seq.value, payload
