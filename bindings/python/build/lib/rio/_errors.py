"""Turning ``-errno`` results into Python exceptions."""

from __future__ import annotations

import os
from typing import Optional, Union

from ._lib import lib

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def last_error_message() -> str:
    """The calling thread's librio message for its last failed call."""
    raw = lib.rio_last_error_message()
    return raw.decode("utf-8", "replace") if raw else ""


def strerror(code: int) -> str:
    """librio's static description of an error code (``errno`` or ``-errno``)."""
    raw = lib.rio_strerror(int(code))
    return raw.decode("utf-8", "replace") if raw else "Unknown error"


def make_error(code: int, filename: Optional[PathArg] = None) -> OSError:
    """Builds the OSError subclass for ``-code`` with the thread's library message.

    Must be called on the thread that made the failing call, before any other
    librio call on it (the message is thread-local in the library). ctypes
    calls run on the calling thread, so reading it right after is enough.
    """
    err = -code if code < 0 else code
    msg = last_error_message() or strerror(err)
    if filename is not None:
        name = os.fsdecode(filename) if not isinstance(filename, str) else filename
        return OSError(err, msg, name)
    # OSError(errno, msg) picks FileNotFoundError, PermissionError, ... by errno.
    return OSError(err, msg)


def check(code: int, filename: Optional[PathArg] = None) -> int:
    """Returns ``code`` when it is >= 0, else raises the matching OSError."""
    if code < 0:
        raise make_error(code, filename)
    return code
