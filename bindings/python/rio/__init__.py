"""librio for Python: io_uring file I/O and a durable write-ahead log, with a
thread-pool fallback, through ctypes (no compiled extension).

Example::

    import rio

    with rio.Runtime() as rt:                 # "auto", "io_uring" or "thread_pool"
        print(rt.backend)
        with rt.open("/tmp/data", "w+") as f:
            f.write_at(b"hello", 0)
            assert f.read_at(5, 0) == b"hello"
        with rt.open_wal("/tmp/wal") as wal:
            seq = wal.append(b"entry")
            for seq, data in wal.replay():
                ...

The library is found through ``RIO_LIBRARY`` (a path), else next to this
package, else the build tree (``target/release/librio.so``), else the system
loader. Errors raise the ``OSError`` subclass matching errno
(``FileNotFoundError``, ``FileExistsError``, ``PermissionError``...) with the
library's message; use after ``close()`` raises ``ValueError``.
"""

from __future__ import annotations

import importlib

from . import _lib
from ._buffer import alloc_buffer
from ._errors import last_error_message, strerror
from ._lib import (
    RIO_BACKEND_AUTO as BACKEND_AUTO,
    RIO_BACKEND_IO_URING as BACKEND_IO_URING,
    RIO_BACKEND_THREAD_POOL as BACKEND_THREAD_POOL,
    RIO_BUF_ALIGN as BUF_ALIGN,
    RIO_IOV_MAX as IOV_MAX,
    RIO_OPEN_APPEND as OPEN_APPEND,
    RIO_OPEN_CREATE as OPEN_CREATE,
    RIO_OPEN_DIRECT as OPEN_DIRECT,
    RIO_OPEN_DSYNC as OPEN_DSYNC,
    RIO_OPEN_EXCL as OPEN_EXCL,
    RIO_OPEN_READ as OPEN_READ,
    RIO_OPEN_TRUNCATE as OPEN_TRUNCATE,
    RIO_OPEN_WRITE as OPEN_WRITE,
    LibraryNotFoundError,
)
from .aio import AsyncFile
from .batch import FdatasyncOp, FsyncOp, Op, ReadOp, WriteOp
from .file import File, parse_mode
from .log import enable_logging, set_log_callback
from .runtime import Capabilities, Metrics, OpMetrics, Runtime
from .wal import Wal, WalReader

#: Path (or soname) of the loaded librio: ``<package>/librio.so`` when the
#: library came with the wheel, else what ``RIO_LIBRARY``, the build tree or
#: the system loader provided (see :mod:`rio._lib` for the order).
LIBRARY_PATH: str = _lib.LIBRARY_PATH
library_path: str = LIBRARY_PATH  # the older spelling


def version() -> str:
    """The loaded library's version, e.g. ``"0.1.0"`` (``rio_version()``)."""
    raw: bytes = _lib.lib.rio_version()
    return raw.decode("ascii", "replace")


def _package_version() -> str:
    # setup.py writes rio/_version.py (from Cargo.toml) into built packages;
    # a source checkout has none, and its version is the library's.
    try:
        generated = importlib.import_module(f"{__name__}._version")
    except ImportError:
        return version()
    return str(generated.__version__)


#: The distribution's version (Cargo.toml's, like the library's).
__version__: str = _package_version()


__all__ = [
    "Runtime",
    "Capabilities",
    "Metrics",
    "OpMetrics",
    "File",
    "AsyncFile",
    "Wal",
    "WalReader",
    "Op",
    "ReadOp",
    "WriteOp",
    "FsyncOp",
    "FdatasyncOp",
    "alloc_buffer",
    "set_log_callback",
    "enable_logging",
    "version",
    "strerror",
    "last_error_message",
    "parse_mode",
    "library_path",
    "LIBRARY_PATH",
    "LibraryNotFoundError",
    "BACKEND_AUTO",
    "BACKEND_IO_URING",
    "BACKEND_THREAD_POOL",
    "BUF_ALIGN",
    "IOV_MAX",
    "OPEN_READ",
    "OPEN_WRITE",
    "OPEN_CREATE",
    "OPEN_TRUNCATE",
    "OPEN_EXCL",
    "OPEN_APPEND",
    "OPEN_DIRECT",
    "OPEN_DSYNC",
]
