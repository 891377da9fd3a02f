"""A C handle shared by threads: use-after-close is a ValueError, and close
waits for calls in flight, so Python code can never hand a freed handle to
the library (which would be undefined behaviour in C).

The bookkeeping is two list operations per call (atomic in CPython), not a
lock: ``acquire`` registers the call *then* reads the pointer; ``close``
clears the pointer *then* waits for the registry to drain. Whatever the
interleaving, a call either sees the pointer cleared (ValueError) or is
waited for. ``rio.file`` inlines that same pair of steps on its per-call hot
paths (``_inflight.append``, then the ``ptr`` check; ``_inflight.pop``).
"""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Any, Callable, List, Optional


class Handle:
    """Owns one C handle. ``acquire()``/``release()`` bracket every call."""

    __slots__ = ("ptr", "addr", "_inflight", "_closer", "_what", "_close_lock")

    def __init__(self, ptr: Any, closer: Callable[[Any], Any], what: str) -> None:
        self.ptr: Optional[Any] = ptr
        #: The pointer as an int, for functions declared with ``c_void_p``
        #: (``rio._lib.hot``); only meaningful while ``ptr`` is not None.
        self.addr: int = ctypes.cast(ptr, ctypes.c_void_p).value or 0
        self._inflight: List[None] = []
        self._closer = closer
        self._what = what
        self._close_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self.ptr is None

    def acquire(self) -> Any:
        """Returns the pointer for one call; ValueError if closed."""
        inflight = self._inflight
        inflight.append(None)
        ptr = self.ptr
        if ptr is None:
            inflight.pop()
            raise ValueError(f"I/O operation on closed {self._what}")
        return ptr

    def release(self) -> None:
        self._inflight.pop()

    def close(self) -> Any:
        """Closes once: later acquire() fails at once; waits for calls in
        flight, then runs the closer. Returns its result (None if already closed)."""
        with self._close_lock:
            ptr = self.ptr
            if ptr is None:
                return None
            self.ptr = None
        delay = 0.00005
        while self._inflight:
            time.sleep(delay)
            delay = min(delay * 2, 0.005)
        return self._closer(ptr)

    def __enter__(self) -> Any:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self._inflight.pop()
