"""Library log records: a callback (``rio_set_log_callback``) or Python's
``logging``."""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any, Callable, Optional, Union

from . import _lib as L
from ._errors import check
from ._lib import lib

__all__ = ["set_log_callback", "enable_logging", "LEVELS"]

LEVELS = {
    "off": L.RIO_LOG_OFF,
    "error": L.RIO_LOG_ERROR,
    "warn": L.RIO_LOG_WARN,
    "warning": L.RIO_LOG_WARN,
    "info": L.RIO_LOG_INFO,
    "debug": L.RIO_LOG_DEBUG,
    "trace": L.RIO_LOG_TRACE,
}

_TO_LOGGING = {
    L.RIO_LOG_ERROR: logging.ERROR,
    L.RIO_LOG_WARN: logging.WARNING,
    L.RIO_LOG_INFO: logging.INFO,
    L.RIO_LOG_DEBUG: logging.DEBUG,
    L.RIO_LOG_TRACE: 5,
}

LogCallback = Callable[[int, str, str], Any]

_lock = threading.Lock()
_current: Optional[Any] = None  # the registered CFUNCTYPE object, kept alive


def _level(level: Union[int, str]) -> int:
    if isinstance(level, str):
        try:
            return LEVELS[level.lower()]
        except KeyError:
            raise ValueError(f"unknown log level {level!r}: expected one of {', '.join(LEVELS)}") from None
    return int(level)


def set_log_callback(callback: Optional[LogCallback], level: Union[int, str] = "info") -> None:
    """Sends library log records at ``level`` and more severe to
    ``callback(level: int, target: str, message: str)`` (``level`` is
    ``RIO_LOG_ERROR`` (1) .. ``RIO_LOG_TRACE`` (5)). ``None`` or level
    ``"off"`` removes it. Process-wide; the callback may run on any thread
    (it holds the GIL while it runs); exceptions it raises are swallowed.
    """
    global _current
    lvl = _level(level)
    with _lock:
        if callback is None or lvl == L.RIO_LOG_OFF:
            check(lib.rio_set_log_callback(L.RIO_LOG_OFF, L.rio_log_callback_t(), None))
            _current = None
            return

        def trampoline(level: int, target: Optional[bytes], message: Optional[bytes], _ud: Any) -> None:
            try:
                callback(
                    level,
                    (target or b"").decode("utf-8", "replace"),
                    (message or b"").decode("utf-8", "replace"),
                )
            except BaseException:  # never unwind into the library
                pass

        cb = L.rio_log_callback_t(trampoline)
        check(lib.rio_set_log_callback(lvl, cb, None))
        # The library guarantees the previous callback is no longer running.
        _current = cb


def enable_logging(level: Union[int, str] = "info", logger: Optional[logging.Logger] = None) -> None:
    """Forwards library log records to ``logging`` (logger ``"rio"`` by
    default; the record's ``rio_target`` attribute names the module)."""
    log = logger or logging.getLogger("rio")

    def emit(lvl: int, target: str, message: str) -> None:
        log.log(_TO_LOGGING.get(lvl, logging.INFO), "%s: %s", target, message,
                extra={"rio_target": target})

    set_log_callback(emit, level)


@atexit.register
def _unregister() -> None:
    # No Python callback may run from library threads during interpreter teardown.
    if _current is not None:
        try:
            lib.rio_set_log_callback(L.RIO_LOG_OFF, L.rio_log_callback_t(), None)
        except Exception:  # pragma: no cover
            pass
