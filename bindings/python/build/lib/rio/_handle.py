"""A C handle shared by threads: use-after-close is a ValueError, and close
waits for calls in flight, so Python code can never hand a freed handle to
the library (which would be undefined behaviour in C)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class Handle:
    """Owns one C handle. ``acquire()``/``release()`` bracket every call."""

    __slots__ = ("_ptr", "_users", "_cond", "_closer", "_what")

    def __init__(self, ptr: Any, closer: Callable[[Any], Any], what: str) -> None:
        self._ptr: Optional[Any] = ptr
        self._users = 0
        self._cond = threading.Condition(threading.Lock())
        self._closer = closer
        self._what = what

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def acquire(self) -> Any:
        """Returns the pointer for one call; ValueError if closed."""
        with self._cond:
            ptr = self._ptr
            if ptr is None:
                raise ValueError(f"I/O operation on closed {self._what}")
            self._users += 1
            return ptr

    def release(self) -> None:
        with self._cond:
            self._users -= 1
            if self._users == 0:
                self._cond.notify_all()

    def close(self) -> Any:
        """Closes once: later acquire() fails at once; waits for calls in
        flight, then runs the closer. Returns its result (None if already closed)."""
        with self._cond:
            ptr = self._ptr
            if ptr is None:
                return None
            self._ptr = None
            while self._users:
                self._cond.wait()
        return self._closer(ptr)

    def __enter__(self) -> Any:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
