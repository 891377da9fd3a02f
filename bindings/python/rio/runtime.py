"""``rio.Runtime``: the I/O engine (io_uring or the thread pool)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

from . import _lib as L
from ._errors import check, make_error
from ._handle import Handle
from ._lib import lib
from .batch import Op, submit
from .file import File
from .wal import Wal

if TYPE_CHECKING:  # pragma: no cover
    from .aio import AsyncFile

__all__ = ["Runtime", "Capabilities", "Metrics", "OpMetrics", "BACKENDS", "IO_URING_OPCODE_NAMES"]

BACKENDS: Dict[str, int] = {
    "auto": L.RIO_BACKEND_AUTO,
    "io_uring": L.RIO_BACKEND_IO_URING,
    "thread_pool": L.RIO_BACKEND_THREAD_POOL,
}
_BACKEND_NAMES = {L.RIO_BACKEND_IO_URING: "io_uring", L.RIO_BACKEND_THREAD_POOL: "thread_pool"}

#: IORING_OP_* names by opcode number (linux/io_uring.h).
IO_URING_OPCODE_NAMES: Tuple[str, ...] = (
    "NOP", "READV", "WRITEV", "FSYNC", "READ_FIXED", "WRITE_FIXED", "POLL_ADD",
    "POLL_REMOVE", "SYNC_FILE_RANGE", "SENDMSG", "RECVMSG", "TIMEOUT",
    "TIMEOUT_REMOVE", "ACCEPT", "ASYNC_CANCEL", "LINK_TIMEOUT", "CONNECT",
    "FALLOCATE", "OPENAT", "CLOSE", "FILES_UPDATE", "STATX", "READ", "WRITE",
    "FADVISE", "MADVISE", "SEND", "RECV", "OPENAT2", "EPOLL_CTL", "SPLICE",
    "PROVIDE_BUFFERS", "REMOVE_BUFFERS", "TEE", "SHUTDOWN", "RENAMEAT",
    "UNLINKAT", "MKDIRAT", "SYMLINKAT", "LINKAT", "MSG_RING", "FSETXATTR",
    "SETXATTR", "FGETXATTR", "GETXATTR", "SOCKET", "URING_CMD", "SEND_ZC",
    "SENDMSG_ZC", "READ_MULTISHOT", "WAITID", "FUTEX_WAIT", "FUTEX_WAKE",
    "FUTEX_WAITV", "FIXED_FD_INSTALL", "FTRUNCATE", "BIND", "LISTEN",
)


FAULT_TARGETS: Dict[str, int] = {
    "any": L.RIO_FAULT_ON_ANY,
    "read": L.RIO_FAULT_ON_READ,
    "write": L.RIO_FAULT_ON_WRITE,
    "fsync": L.RIO_FAULT_ON_FSYNC,
    "fdatasync": L.RIO_FAULT_ON_FDATASYNC,
    "fallocate": L.RIO_FAULT_ON_FALLOCATE,
    "ftruncate": L.RIO_FAULT_ON_FTRUNCATE,
}
FAULT_ACTIONS: Dict[str, int] = {
    "error": L.RIO_FAULT_ERROR,
    "short": L.RIO_FAULT_SHORT,
    "delay": L.RIO_FAULT_DELAY,
    "power_loss": L.RIO_FAULT_POWER_LOSS,
}
CRASH_MODES: Dict[str, int] = {
    "discard_all": L.RIO_CRASH_DISCARD_ALL,
    "torn_prefix": L.RIO_CRASH_TORN_PREFIX,
}


def _enum(value: Union[str, int], table: Dict[str, int], what: str) -> int:
    if isinstance(value, str):
        try:
            return table[value.lower()]
        except KeyError:
            raise ValueError(f"unknown {what} {value!r}: expected one of {', '.join(table)}") from None
    return int(value)


def _backend_name(code: int) -> str:
    return _BACKEND_NAMES.get(code, f"unknown({code})")


@dataclass(frozen=True)
class Capabilities:
    """What a runtime can do (``rio_capabilities_t``) and, when io_uring is
    not in use, why (``io_uring_unavailable_reason``, empty when it is)."""

    backend: str
    io_uring_available: bool
    sq_entries: int
    cq_entries: int
    ring_setup_flags: int
    ring_setup: str
    max_concurrent_ops: int
    worker_threads: int
    kernel_release: str
    io_uring_unavailable_reason: str
    #: Times the kernel refused to register ``rio_buf_alloc`` memory (their
    #: I/O then runs unregistered), and why the last refusal happened.
    buffer_registration_failures: int = 0
    buffer_registration_failure_reason: str = ""
    #: Supported io_uring opcode numbers (IORING_REGISTER_PROBE); empty without io_uring.
    io_uring_opcodes: FrozenSet[int] = field(default_factory=frozenset)

    @property
    def io_uring_opcode_names(self) -> List[str]:
        """Names (``"READ"``, ``"WRITEV"``, ...) of the supported opcodes."""
        return [
            IO_URING_OPCODE_NAMES[n] if n < len(IO_URING_OPCODE_NAMES) else f"OP_{n}"
            for n in sorted(self.io_uring_opcodes)
        ]

    def supports_opcode(self, op: Any) -> bool:
        """Whether io_uring opcode ``op`` (number or name like ``"READ"``) is supported."""
        if isinstance(op, str):
            name = op.upper().removeprefix("IORING_OP_")
            if name not in IO_URING_OPCODE_NAMES:
                raise ValueError(f"unknown io_uring opcode name {op!r}")
            op = IO_URING_OPCODE_NAMES.index(name)
        return int(op) in self.io_uring_opcodes

    def as_dict(self) -> Dict[str, Any]:
        """A plain dict (opcodes as a sorted list), e.g. for JSON."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["io_uring_opcodes"] = sorted(self.io_uring_opcodes)
        d["io_uring_opcode_names"] = self.io_uring_opcode_names
        return d

    # dict-style access for convenience: caps["kernel_release"]
    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]


#: Keys of :attr:`Metrics.ops`, in RIO_METRIC_OP_* order.
METRIC_OPS: Tuple[str, ...] = (
    "read", "write", "readv", "writev", "fsync", "fdatasync", "fallocate", "ftruncate",
)


@dataclass(frozen=True)
class OpMetrics:
    """One operation kind's figures (``rio_op_metrics_t``). Latency
    quantiles are histogram bucket upper bounds, in nanoseconds."""

    count: int
    bytes: int
    errors: int
    latency_samples: int
    latency_sum_ns: int
    p50_ns: int
    p99_ns: int
    p999_ns: int


@dataclass(frozen=True)
class Metrics:
    """A snapshot of a runtime's metrics (``rio_metrics_t``); ``ops`` maps
    ``"read"``, ``"write"``, ``"readv"``, ``"writev"``, ``"fsync"``,
    ``"fdatasync"``, ``"fallocate"``, ``"ftruncate"`` to :class:`OpMetrics`."""

    backend: str
    ops_in_flight: int
    batches: int
    io_uring_sqes_submitted: int
    io_uring_enter_calls: int
    io_uring_direct_ops: int
    io_uring_ring_failures: int
    ops: Dict[str, OpMetrics]


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class Runtime:
    """An I/O runtime (``rio_runtime_t``).

    ``backend`` is ``"auto"`` (io_uring when it works, else the thread pool;
    ``RUSTFS_ENABLE_IO_URING`` may force either), ``"io_uring"`` (fail with
    ``OSError(EOPNOTSUPP)`` and the reason if unavailable) or
    ``"thread_pool"``. The other fields of ``rio_runtime_config_t`` are
    keyword arguments; 0 means "environment, else default".
    ``fault_injection=True`` wraps the backend in the fault-injecting one
    (a testing tool: :meth:`add_fault`, :meth:`simulate_power_loss`).

    Thread-safe. A context manager; :meth:`close` is idempotent and files
    and WALs opened from the runtime stay usable until they are closed.
    """

    def __init__(
        self,
        backend: str = "auto",
        *,
        queue_depth: int = 0,
        max_concurrent_ops: int = 0,
        worker_threads: int = 0,
        fault_injection: bool = False,
    ) -> None:
        self._handle: Optional[Handle] = None
        if isinstance(backend, str):
            try:
                code = BACKENDS[backend.lower().replace("-", "_")]
            except KeyError:
                raise ValueError(
                    f"unknown backend {backend!r}: expected 'auto', 'io_uring' or 'thread_pool'"
                ) from None
        elif backend is None:
            code = L.RIO_BACKEND_AUTO
        elif isinstance(backend, int) and not isinstance(backend, bool) and backend in BACKENDS.values():
            code = backend  # rio.BACKEND_* constants
        else:
            raise TypeError(
                f"backend must be 'auto', 'io_uring' or 'thread_pool', not {backend!r}"
            )
        cfg = L.rio_runtime_config_t()
        lib.rio_runtime_config_default(ctypes.byref(cfg))
        cfg.backend = code
        for name, value in (
            ("queue_depth", queue_depth),
            ("max_concurrent_ops", max_concurrent_ops),
            ("worker_threads", worker_threads),
        ):
            v = int(value)
            if not 0 <= v < 1 << 32:
                raise ValueError(f"{name} out of range: {v}")
            setattr(cfg, name, v)
        cfg.fault_injection = bool(fault_injection)
        out = L.rio_runtime_p()
        check(lib.rio_runtime_open(ctypes.byref(cfg), ctypes.byref(out)))
        self._handle = Handle(out, lib.rio_runtime_close, "runtime")
        self._backend = _backend_name(lib.rio_runtime_backend(out))

    # -- lifecycle -------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._handle is None or self._handle.closed

    def close(self) -> None:
        """Releases the runtime. Idempotent. Open files and WALs keep the
        engine alive until they are closed."""
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> "Runtime":
        self._check_open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover
            pass

    def __repr__(self) -> str:
        return f"<rio.Runtime backend={self._backend!r}{' closed' if self.closed else ''}>"

    def _check_open(self) -> Handle:
        h = self._handle
        if h is None or h.closed:
            raise ValueError("operation on closed runtime")
        return h

    # -- information -----------------------------------------------------

    @property
    def backend(self) -> str:
        """The backend in use: ``"io_uring"`` or ``"thread_pool"``."""
        self._check_open()
        return self._backend

    def capabilities(self) -> Capabilities:
        """The runtime's :class:`Capabilities`."""
        h = self._check_open()
        # Output structs are versioned: the library fills at most
        # struct_size bytes, so it must say how large ours is.
        caps = L.rio_capabilities_t(struct_size=ctypes.sizeof(L.rio_capabilities_t))
        with h as rt:
            rc = lib.rio_runtime_capabilities(rt, ctypes.byref(caps))
            if rc < 0:
                raise make_error(rc)
        opcodes = frozenset(
            n for n in range(256) if caps.io_uring_opcodes[n // 8] & (1 << (n % 8))
        )
        return Capabilities(
            backend=_backend_name(caps.backend),
            io_uring_available=bool(caps.io_uring_available),
            sq_entries=caps.sq_entries,
            cq_entries=caps.cq_entries,
            ring_setup_flags=caps.ring_setup_flags,
            ring_setup=_cstr(caps.ring_setup),
            max_concurrent_ops=caps.max_concurrent_ops,
            worker_threads=caps.worker_threads,
            kernel_release=_cstr(caps.kernel_release),
            io_uring_unavailable_reason=_cstr(caps.io_uring_unavailable_reason),
            buffer_registration_failures=caps.buffer_registration_failures,
            buffer_registration_failure_reason=_cstr(caps.buffer_registration_failure_reason),
            io_uring_opcodes=opcodes,
        )

    def metrics(self) -> Metrics:
        """A :class:`Metrics` snapshot (``rio_runtime_metrics``)."""
        h = self._check_open()
        m = L.rio_metrics_t(struct_size=ctypes.sizeof(L.rio_metrics_t))
        with h as rt:
            rc = lib.rio_runtime_metrics(rt, ctypes.byref(m))
            if rc < 0:
                raise make_error(rc)
        ops = {
            name: OpMetrics(**{f: getattr(m.ops[i], f) for f, *_ in L.rio_op_metrics_t._fields_})
            for i, name in enumerate(METRIC_OPS)
        }
        return Metrics(
            backend=_backend_name(m.backend),
            ops_in_flight=m.ops_in_flight,
            batches=m.batches,
            io_uring_sqes_submitted=m.io_uring_sqes_submitted,
            io_uring_enter_calls=m.io_uring_enter_calls,
            io_uring_direct_ops=m.io_uring_direct_ops,
            io_uring_ring_failures=m.io_uring_ring_failures,
            ops=ops,
        )

    def metrics_prometheus(self) -> str:
        """The runtime's metrics in Prometheus text exposition format (0.0.4)."""
        h = self._check_open()
        with h as rt:
            need = lib.rio_runtime_metrics_prometheus(rt, None, 0)
            for _ in range(8):
                if need < 0:
                    raise make_error(need)
                cap = need + 1 + 4096  # room for counters that grow meanwhile
                buf = ctypes.create_string_buffer(cap)
                n = lib.rio_runtime_metrics_prometheus(rt, buf, cap)
                if 0 <= n < cap:
                    return buf.raw[:n].decode("utf-8", "replace")
                need = n
        raise RuntimeError("rio_runtime_metrics_prometheus: text kept growing")

    # -- fault injection (runtimes opened with fault_injection=True) -----

    def add_fault(
        self,
        target: Union[str, int] = "any",
        *,
        action: Union[str, int] = "error",
        error: int = errno.EIO,
        nth: int = 1,
        count: int = 1,
        delay_us: int = 0,
        crash_mode: Union[str, int] = "discard_all",
        seed: int = 0,
    ) -> None:
        """Adds a fault rule: operations of kind ``target`` (``"any"``,
        ``"read"``, ``"write"``, ``"fsync"``, ``"fdatasync"``, ``"fallocate"``,
        ``"ftruncate"``), from the ``nth`` matching one on, ``count`` of them
        (0 = all), fail with ``error`` (``action="error"``), move half of what
        is left per attempt (``"short"``), wait ``delay_us`` (``"delay"``), or
        lose power just before running (``"power_loss"``, with ``crash_mode``
        and ``seed`` as in :meth:`simulate_power_loss`).
        ``OSError(EOPNOTSUPP)`` unless opened with ``fault_injection=True``.
        """
        h = self._check_open()
        f = L.rio_fault_t()
        lib.rio_fault_default(ctypes.byref(f))
        f.target = _enum(target, FAULT_TARGETS, "target")
        f.action = _enum(action, FAULT_ACTIONS, "action")
        f.error = int(error)
        f.nth = int(nth)
        f.count = int(count)
        f.delay_us = int(delay_us)
        f.crash_mode = _enum(crash_mode, CRASH_MODES, "crash_mode")
        f.seed = int(seed)
        with h as rt:
            rc = lib.rio_runtime_add_fault(rt, ctypes.byref(f))
            if rc < 0:
                raise make_error(rc)

    def clear_faults(self) -> None:
        """Removes every fault rule."""
        h = self._check_open()
        with h as rt:
            rc = lib.rio_runtime_clear_faults(rt)
            if rc < 0:
                raise make_error(rc)

    def simulate_power_loss(self, mode: Union[str, int] = "discard_all", seed: int = 0) -> None:
        """Rolls back what was not synced through this runtime (``"discard_all"``,
        or ``"torn_prefix"``: a random torn prefix survives, repeatable with
        ``seed``). Every later operation on the runtime fails with ``EIO``:
        close its files and WALs and open a new runtime to "reboot"."""
        h = self._check_open()
        with h as rt:
            rc = lib.rio_runtime_simulate_power_loss(rt, _enum(mode, CRASH_MODES, "mode"), int(seed))
            if rc < 0:
                raise make_error(rc)

    # -- files, batches, WAL ---------------------------------------------

    def open(
        self,
        path: Any,
        mode: str = "r",
        direct: bool = False,
        *,
        perm: int = 0o644,
        dsync: bool = False,
    ) -> File:
        """Opens ``path`` with ``mode`` as in the built-in ``open`` (``"r"``,
        ``"r+"``, ``"w"``, ``"w+"``, ``"a"``, ``"a+"``, ``"x"``, ``"x+"``;
        binary is implied, a ``"b"`` is accepted). ``direct=True`` opens with
        O_DIRECT, ``dsync=True`` with O_DSYNC; ``perm`` applies to a created file.
        Raises ``FileNotFoundError``, ``FileExistsError``, ``PermissionError``...
        """
        self._check_open()
        return File(self, path, mode, direct, perm=perm, dsync=dsync)

    def open_async(self, path: Any, mode: str = "r", direct: bool = False, **kw: Any) -> "AsyncFile":
        """Opens ``path`` for asyncio (call from a running event loop): an
        :class:`rio.AsyncFile` whose operations go through this loop's
        queue (``rio_queue_*``, see :mod:`rio.aio`). Same modes as :meth:`open`."""
        from .aio import AsyncFile

        self._check_open()
        return AsyncFile(self, path, mode, direct, **kw)

    def open_fd(self, fd: int, owned: bool = False) -> File:
        """A :class:`File` over the open descriptor ``fd`` (an ``int`` or an
        object with ``fileno()``). Its mode, O_DIRECT and O_APPEND come from
        the descriptor. With ``owned=False`` closing the File leaves ``fd``
        open (and the process's POSIX locks on the file intact); with
        ``owned=True`` the File closes it. ``OSError`` (EBADF) for a bad fd."""
        h = self._check_open()
        fd = fd.fileno() if hasattr(fd, "fileno") else fd
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"fd must be an int or have fileno(), not {type(fd).__name__}")
        if not -(1 << 31) <= fd < (1 << 31):
            raise OSError(errno.EBADF, f"fd {fd} is not a file descriptor")
        out = L.rio_file_p()
        rt = h.acquire()
        try:
            rc = lib.rio_file_from_fd(rt, fd, L.RIO_FD_OWNED if owned else 0, ctypes.byref(out))
            if rc < 0:
                raise make_error(rc)
        finally:
            h.release()
        return _adopted_file(self, out, fd)

    def submit_batch(self, ops: Sequence[Op], *, check: bool = True) -> List[Any]:
        """Submits ``ops`` together (one io_uring submission) and waits for all.

        Returns one result per op: ``bytes`` for a ``ReadOp`` given a size,
        the byte count for a ``ReadOp`` given a buffer and for a ``WriteOp``,
        0 for ``FsyncOp``/``FdatasyncOp``. Each op's ``result`` (C result)
        and ``error`` are set too. If an op failed, its ``OSError`` is raised
        (the first one) unless ``check=False``, in which case it is returned
        in that op's place. A malformed batch (e.g. O_DIRECT misalignment)
        raises before anything runs. Ops of one batch may run in any order.
        """
        h = self._check_open()
        return submit(h, list(ops), check)

    def open_wal(self, dir: Any, **config: Any) -> Wal:  # noqa: A002 (DESIGN.md's name)
        """Opens (creating and recovering) the write-ahead log in directory ``dir``.

        Keyword arguments set ``rio_wal_config_t`` fields: ``batch_size``,
        ``flush_timeout_us``, ``sync_after_batch``, ``buffer_size``,
        ``segment_size``, ``recovery_mode`` (``"tolerate_tail"`` (default)
        or ``"strict"``). See :class:`rio.Wal`.
        """
        self._check_open()
        return Wal(self, dir, **config)


def _adopted_file(runtime: "Runtime", ptr: Any, fd: int) -> File:
    """Builds the File object of :meth:`Runtime.open_fd` around ``ptr``,
    describing it as :meth:`Runtime.open` would (mode from F_GETFL)."""
    status = fcntl.fcntl(fd, fcntl.F_GETFL)
    acc = status & os.O_ACCMODE
    append = bool(status & os.O_APPEND)
    mode = {os.O_RDONLY: "r", os.O_WRONLY: "a" if append else "w"}.get(acc, "a+" if append else "r+")
    f = File.__new__(File)
    try:
        f.name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        f.name = f"<fd {fd}>"
    f.mode = mode
    f.direct = bool(status & getattr(os, "O_DIRECT", 0))
    f.flags = (L.RIO_OPEN_READ if acc != os.O_WRONLY else 0) | (L.RIO_OPEN_WRITE if acc != os.O_RDONLY else 0) \
        | (L.RIO_OPEN_APPEND if append else 0) | (L.RIO_OPEN_DIRECT if f.direct else 0)
    f._runtime = runtime
    f._handle = Handle(ptr, lib.rio_file_close, "file")
    return f
