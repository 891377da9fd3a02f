"""Loading ``librio.so`` and declaring every ``rio_*`` function of ``include/rio.h``.

Lookup order (first that loads wins):

1. ``RIO_LIBRARY``: an explicit path. If it is set and does not load, that is
   an error (no silent fallback to some other copy).
2. Next to the package: ``rio/librio.so*`` (wheels that bundle the library).
3. The build tree: walking up from the package directory, the first
   ``target/release/librio.so`` or ``target/debug/librio.so``.
4. The system loader: ``ctypes.util.find_library("rio")``, ``librio.so.0``,
   ``librio.so`` (``LD_LIBRARY_PATH``, ``ldconfig`` cache, default paths).

If nothing loads, :class:`LibraryNotFoundError` (an ``OSError``) lists
every place that was tried and why it failed.

Every C function is declared with ``argtypes``/``restype`` in
:data:`SIGNATURES`; handles are distinct opaque ``ctypes.Structure`` types.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import os
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "LibraryNotFoundError",
    "SIGNATURES",
    "LIBRARY_PATH",
    "MISSING",
    "lib",
    "hot",
    "find_library",
    "candidate_paths",
]

# --------------------------------------------------------------------------
# Constants (values from include/rio.h / src/ffi)
# --------------------------------------------------------------------------

RIO_BACKEND_AUTO = 0
RIO_BACKEND_IO_URING = 1
RIO_BACKEND_THREAD_POOL = 2

RIO_OPEN_READ = 1 << 0
RIO_OPEN_WRITE = 1 << 1
RIO_OPEN_CREATE = 1 << 2
RIO_OPEN_TRUNCATE = 1 << 3
RIO_OPEN_EXCL = 1 << 4
RIO_OPEN_APPEND = 1 << 5
RIO_OPEN_DIRECT = 1 << 6
RIO_OPEN_DSYNC = 1 << 7

RIO_FD_OWNED = 1 << 0

RIO_OP_READ = 0
RIO_OP_WRITE = 1
RIO_OP_FSYNC = 2
RIO_OP_FDATASYNC = 3

RIO_IOV_MAX = 1024
RIO_QUEUE_MAX_DEPTH = 4096
RIO_BUF_ALIGN = 4096

RIO_WAL_RECOVER_TOLERATE_TAIL = 0
RIO_WAL_RECOVER_STRICT = 1
RIO_WAL_MAX_ENTRY = 64 << 20
RIO_WAL_MAX_BATCH = 1 << 16
RIO_WAL_WAIT_FOREVER = -1

RIO_METRIC_OP_READ = 0
RIO_METRIC_OP_WRITE = 1
RIO_METRIC_OP_READV = 2
RIO_METRIC_OP_WRITEV = 3
RIO_METRIC_OP_FSYNC = 4
RIO_METRIC_OP_FDATASYNC = 5
RIO_METRIC_OP_FALLOCATE = 6
RIO_METRIC_OP_FTRUNCATE = 7
RIO_METRIC_OPS = 8

RIO_FAULT_ON_ANY = 0
RIO_FAULT_ON_READ = 1
RIO_FAULT_ON_WRITE = 2
RIO_FAULT_ON_FSYNC = 3
RIO_FAULT_ON_FDATASYNC = 4
RIO_FAULT_ON_FALLOCATE = 5
RIO_FAULT_ON_FTRUNCATE = 6

RIO_FAULT_ERROR = 0
RIO_FAULT_SHORT = 1
RIO_FAULT_DELAY = 2
RIO_FAULT_POWER_LOSS = 3

RIO_CRASH_DISCARD_ALL = 0
RIO_CRASH_TORN_PREFIX = 1

RIO_LOG_OFF = 0
RIO_LOG_ERROR = 1
RIO_LOG_WARN = 2
RIO_LOG_INFO = 3
RIO_LOG_DEBUG = 4
RIO_LOG_TRACE = 5

# --------------------------------------------------------------------------
# Opaque handles: distinct types so a rio_file_t* can never be passed where a
# rio_runtime_t* is expected.
# --------------------------------------------------------------------------


class rio_runtime_t(Structure):
    """Opaque ``rio_runtime_t``."""

    _fields_: ClassVar[List[Tuple[str, Any]]] = []


class rio_file_t(Structure):
    """Opaque ``rio_file_t``."""

    _fields_: ClassVar[List[Tuple[str, Any]]] = []


class rio_wal_t(Structure):
    """Opaque ``rio_wal_t``."""

    _fields_: ClassVar[List[Tuple[str, Any]]] = []


class rio_wal_reader_t(Structure):
    """Opaque ``rio_wal_reader_t``."""

    _fields_: ClassVar[List[Tuple[str, Any]]] = []


class rio_queue_t(Structure):
    """Opaque ``rio_queue_t``."""

    _fields_: ClassVar[List[Tuple[str, Any]]] = []


rio_runtime_p = POINTER(rio_runtime_t)
rio_file_p = POINTER(rio_file_t)
rio_wal_p = POINTER(rio_wal_t)
rio_wal_reader_p = POINTER(rio_wal_reader_t)
rio_queue_p = POINTER(rio_queue_t)

# --------------------------------------------------------------------------
# Structs: layouts identical to include/rio.h (checked by tests/test_header.py
# against the C compiler's sizeof/offsetof).
# --------------------------------------------------------------------------


class rio_runtime_config_t(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("backend", c_uint32),
        ("queue_depth", c_uint32),
        ("max_concurrent_ops", c_uint32),
        ("worker_threads", c_uint32),
        ("fault_injection", c_bool),
    ]


class rio_fault_t(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("target", c_uint32),
        ("nth", c_uint64),
        ("count", c_uint64),
        ("action", c_uint32),
        ("error", c_int),
        ("delay_us", c_uint64),
        ("crash_mode", c_uint32),
        ("seed", c_uint64),
    ]


#: ``void (*)(int level, const char *target, const char *message, void *user_data)``
rio_log_callback_t = ctypes.CFUNCTYPE(None, c_int, c_char_p, c_char_p, c_void_p)


class rio_capabilities_t(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("backend", c_int),
        ("io_uring_available", c_bool),
        ("sq_entries", c_uint32),
        ("cq_entries", c_uint32),
        ("ring_setup_flags", c_uint32),
        ("max_concurrent_ops", c_uint32),
        ("worker_threads", c_uint32),
        ("io_uring_opcodes", c_uint8 * 32),
        ("kernel_release", c_char * 65),
        ("ring_setup", c_char * 64),
        ("io_uring_unavailable_reason", c_char * 256),
        ("buffer_registration_failures", c_uint64),
        ("buffer_registration_failure_reason", c_char * 256),
    ]


class rio_op_metrics_t(Structure):
    _fields_ = [
        ("count", c_uint64),
        ("bytes", c_uint64),
        ("errors", c_uint64),
        ("latency_samples", c_uint64),
        ("latency_sum_ns", c_uint64),
        ("p50_ns", c_uint64),
        ("p99_ns", c_uint64),
        ("p999_ns", c_uint64),
    ]


class rio_metrics_t(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("backend", c_int),
        ("ops_in_flight", c_uint64),
        ("batches", c_uint64),
        ("io_uring_sqes_submitted", c_uint64),
        ("io_uring_enter_calls", c_uint64),
        ("io_uring_direct_ops", c_uint64),
        ("io_uring_ring_failures", c_uint64),
        ("ops", rio_op_metrics_t * RIO_METRIC_OPS),
    ]


class rio_op_t(Structure):
    _fields_ = [
        ("opcode", c_uint32),
        ("flags", c_uint32),
        ("file", rio_file_p),
        ("buf", c_void_p),
        ("len", c_uint64),
        ("offset", c_uint64),
        ("result", c_int64),
        ("user_data", c_uint64),
    ]


class iovec(Structure):
    """``struct iovec`` from ``<sys/uio.h>``."""

    _fields_ = [("iov_base", c_void_p), ("iov_len", c_size_t)]


class rio_wal_config_t(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("batch_size", c_uint32),
        ("flush_timeout_us", c_uint32),
        ("sync_after_batch", c_bool),
        ("buffer_size", c_uint64),
        ("segment_size", c_uint64),
        ("recovery_mode", c_uint32),
    ]


class rio_slice_t(Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t)]


# --------------------------------------------------------------------------
# Function table: name -> (restype, argtypes). Must cover every rio_*
# prototype of include/rio.h (tests/test_header.py enforces it).
# --------------------------------------------------------------------------

SIGNATURES: Dict[str, Tuple[Any, Sequence[Any]]] = {
    # library
    "rio_version": (c_char_p, []),
    "rio_strerror": (c_char_p, [c_int]),
    "rio_last_error_message": (c_char_p, []),
    # runtime
    "rio_runtime_config_default": (None, [POINTER(rio_runtime_config_t)]),
    "rio_runtime_open": (c_int, [POINTER(rio_runtime_config_t), POINTER(rio_runtime_p)]),
    "rio_runtime_backend": (c_int, [rio_runtime_p]),
    "rio_runtime_capabilities": (c_int, [rio_runtime_p, POINTER(rio_capabilities_t)]),
    "rio_runtime_metrics_prometheus": (c_int64, [rio_runtime_p, c_char_p, c_size_t]),
    "rio_runtime_metrics": (c_int, [rio_runtime_p, POINTER(rio_metrics_t)]),
    "rio_runtime_close": (None, [rio_runtime_p]),
    # fault injection (runtimes opened with fault_injection)
    "rio_fault_default": (None, [POINTER(rio_fault_t)]),
    "rio_runtime_add_fault": (c_int, [rio_runtime_p, POINTER(rio_fault_t)]),
    "rio_runtime_clear_faults": (c_int, [rio_runtime_p]),
    "rio_runtime_simulate_power_loss": (c_int, [rio_runtime_p, c_uint32, c_uint64]),
    # logging
    "rio_set_log_callback": (c_int, [c_int, rio_log_callback_t, c_void_p]),
    # files
    "rio_file_open": (c_int, [rio_runtime_p, c_char_p, c_uint32, c_uint32, POINTER(rio_file_p)]),
    "rio_file_read_at": (c_int64, [rio_file_p, c_void_p, c_size_t, c_uint64]),
    "rio_file_write_at": (c_int64, [rio_file_p, c_void_p, c_size_t, c_uint64]),
    "rio_file_from_fd": (c_int, [rio_runtime_p, c_int, c_uint32, POINTER(rio_file_p)]),
    "rio_file_write_durable": (c_int64, [rio_file_p, c_void_p, c_size_t, c_uint64]),
    "rio_file_readv_at": (c_int64, [rio_file_p, POINTER(iovec), c_int, c_uint64]),
    "rio_file_writev_at": (c_int64, [rio_file_p, POINTER(iovec), c_int, c_uint64]),
    "rio_file_sync": (c_int, [rio_file_p]),
    "rio_file_datasync": (c_int, [rio_file_p]),
    "rio_file_allocate": (c_int, [rio_file_p, c_uint64, c_uint64]),
    "rio_file_truncate": (c_int, [rio_file_p, c_uint64]),
    "rio_file_size": (c_int64, [rio_file_p]),
    "rio_file_close": (c_int, [rio_file_p]),
    # batches
    "rio_submit_batch": (c_int64, [rio_runtime_p, POINTER(rio_op_t), c_size_t]),
    # asynchronous queues
    "rio_queue_open": (c_int, [rio_runtime_p, c_uint32, POINTER(rio_queue_p)]),
    "rio_queue_push": (c_int, [rio_queue_p, POINTER(rio_op_t), c_size_t]),
    "rio_queue_submit": (c_int, [rio_queue_p]),
    "rio_queue_reap": (c_int, [rio_queue_p, POINTER(rio_op_t), c_size_t, c_size_t, c_int64]),
    "rio_queue_pending": (c_int, [rio_queue_p]),
    "rio_queue_fd": (c_int, [rio_queue_p]),
    "rio_queue_close": (c_int, [rio_queue_p]),
    # aligned buffers
    "rio_buf_alloc": (c_void_p, [c_size_t]),
    "rio_buf_free": (None, [c_void_p]),
    # write-ahead log
    "rio_wal_config_default": (None, [POINTER(rio_wal_config_t)]),
    "rio_wal_open": (c_int, [rio_runtime_p, c_char_p, POINTER(rio_wal_config_t), POINTER(rio_wal_p)]),
    "rio_wal_append": (c_int, [rio_wal_p, c_void_p, c_size_t, POINTER(c_uint64)]),
    "rio_wal_append_batch": (c_int, [rio_wal_p, POINTER(rio_slice_t), c_size_t, POINTER(c_uint64)]),
    "rio_wal_append_async": (c_int, [rio_wal_p, c_void_p, c_size_t, POINTER(c_uint64)]),
    "rio_wal_wait": (c_int, [rio_wal_p, c_uint64, c_int64]),
    "rio_wal_durable_seq": (c_uint64, [rio_wal_p]),
    "rio_wal_sync": (c_int, [rio_wal_p]),
    "rio_wal_last_seq": (c_uint64, [rio_wal_p]),
    "rio_wal_truncate_before": (c_int, [rio_wal_p, c_uint64]),
    "rio_wal_reader_open": (c_int, [rio_wal_p, c_uint64, POINTER(rio_wal_reader_p)]),
    "rio_wal_reader_next": (
        c_int,
        [rio_wal_reader_p, POINTER(c_uint64), POINTER(c_void_p), POINTER(c_size_t)],
    ),
    "rio_wal_reader_close": (None, [rio_wal_reader_p]),
    "rio_wal_close": (c_int, [rio_wal_p]),
}

#: Hot-path twins of the positioned read and write: the same symbols, the
#: file declared as ``c_void_p`` so :mod:`rio.file` passes its handle's
#: address as an int; ctypes then skips the ``POINTER(rio_file_t)`` instance
#: check and conversion, a measurable part of a 4 KiB call (docs/bindings.md,
#: "Per-call cost"). Only rio.file calls them, with a live File's own handle.
HOT_SIGNATURES: Dict[str, Tuple[Any, Sequence[Any]]] = {
    "rio_file_read_at": (c_int64, [c_void_p, c_void_p, c_size_t, c_uint64]),
    "rio_file_write_at": (c_int64, [c_void_p, c_void_p, c_size_t, c_uint64]),
}

# --------------------------------------------------------------------------
# Lookup
# --------------------------------------------------------------------------

PACKAGE_DIR = Path(__file__).resolve().parent


class LibraryNotFoundError(OSError):
    """librio could not be loaded (errno ``ENOENT``); the message lists every
    place tried. Raised by ``import rio``, like ``ctypes.CDLL`` raises OSError."""


def candidate_paths(package_dir: Path = PACKAGE_DIR) -> List[Tuple[str, str]]:
    """Returns ``(what, path_or_name)`` pairs in lookup order, without ``RIO_LIBRARY``.

    Only files that exist are returned for the package and build-tree steps;
    the system-loader names are always returned (dlopen decides).
    """
    out: List[Tuple[str, str]] = []
    # 2. next to the package
    for p in sorted(package_dir.glob("librio.so*")):
        out.append(("next to the package", str(p)))
    # 3. the build tree
    for parent in [package_dir, *package_dir.parents]:
        for profile in ("release", "debug"):
            p = parent / "target" / profile / "librio.so"
            if p.is_file():
                out.append(("build tree", str(p)))
    # 4. the system loader
    found = None
    try:
        found = ctypes.util.find_library("rio")
    except Exception:  # pragma: no cover - find_library may spawn tools
        found = None
    names = [n for n in (found, "librio.so.0", "librio.so") if n]
    for n in dict.fromkeys(names):
        out.append(("system loader", n))
    return out


def find_library(
    env: Optional[Mapping[str, str]] = None,
    package_dir: Path = PACKAGE_DIR,
    loader: Callable[[str], Any] = ctypes.CDLL,
) -> Tuple[Any, str]:
    """Loads librio following the documented lookup order.

    Returns ``(handle, path_or_name)``. Raises :class:`LibraryNotFoundError`
    listing every place that was looked at, in order, and why each failed.
    Parameters exist for the tests.
    """
    explicit = (os.environ if env is None else env).get("RIO_LIBRARY")
    if explicit:
        try:
            return loader(explicit), explicit
        except OSError as e:
            raise LibraryNotFoundError(
                _errno.ENOENT,
                f"cannot load librio from RIO_LIBRARY={explicit!r}: {e} "
                "(unset RIO_LIBRARY to search next to the package, the build tree and the system loader)",
            ) from None
    failures: Dict[str, str] = {}
    for _what, path in candidate_paths(package_dir):
        try:
            return loader(path), path
        except OSError as e:
            failures[path] = str(e)

    def status(path: str) -> str:
        return f"{path}: {failures[path]}" if path in failures else f"{path}: not found"

    lines: List[str] = ["RIO_LIBRARY: not set", "next to the package:"]
    beside = sorted(str(p) for p in package_dir.glob("librio.so*"))
    lines += [f"  {status(p)}" for p in beside] or [f"  {package_dir / 'librio.so*'}: not found"]
    lines.append("the build tree (walking up from the package):")
    for parent in [package_dir, *package_dir.parents]:
        for profile in ("release", "debug"):
            lines.append(f"  {status(str(parent / 'target' / profile / 'librio.so'))}")
    lines.append("the system loader (LD_LIBRARY_PATH, ld.so.cache, default paths):")
    system = [p for w, p in candidate_paths(package_dir) if w == "system loader"]
    lines += [f"  {status(p)}" for p in system]
    raise LibraryNotFoundError(
        _errno.ENOENT,
        "cannot find librio.so; looked in:\n  " + "\n  ".join(lines)
        + "\nbuild it with `make` (or `cargo build --release`) or set RIO_LIBRARY to its path",
    )


def _declare(
    handle: Any, signatures: Mapping[str, Tuple[Any, Sequence[Any]]]
) -> Tuple[Dict[str, Any], List[str]]:
    """Declares every function of ``signatures`` on its own function object
    (``handle[name]`` is a new one each time, so two tables never share one)."""
    funcs: Dict[str, Any] = {}
    missing: List[str] = []
    for name, (restype, argtypes) in signatures.items():
        try:
            fn = handle[name]
        except AttributeError:
            missing.append(name)
            funcs[name] = _missing_stub(name)
            continue
        fn.restype = restype
        fn.argtypes = list(argtypes)
        funcs[name] = fn
    return funcs, missing


def _missing_stub(name: str) -> Callable[..., Any]:
    def stub(*_args: Any) -> Any:
        raise OSError(
            _errno.ENOSYS,
            f"{name}: not exported by the loaded librio ({LIBRARY_PATH}); "
            "it is older than this binding, rebuild it",
        )

    stub.__name__ = name
    return stub


class _Lib:
    """Attribute access to the declared functions (``lib.rio_file_open(...)``)."""

    def __init__(self, funcs: Dict[str, Any]) -> None:
        self.__dict__.update(funcs)

    def __getattr__(self, name: str) -> Any:  # only reached for undeclared names
        raise AttributeError(f"{name} is not a declared librio function")


_handle, LIBRARY_PATH = find_library()
_funcs, MISSING = _declare(_handle, SIGNATURES)
lib = _Lib(_funcs)
hot = _Lib(_declare(_handle, HOT_SIGNATURES)[0])
