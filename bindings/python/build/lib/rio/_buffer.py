"""Zero-copy access to bytes-like objects, and aligned buffers.

Any object with the buffer protocol (bytes, bytearray, memoryview,
array.array, mmap, numpy arrays, ctypes arrays, ...) is pinned with
``PyObject_GetBuffer`` for the duration of one library call: the library
reads or writes the caller's memory directly, nothing is copied, and the
object cannot be resized or freed meanwhile. Buffers must be C-contiguous;
reads need a writable buffer.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, Structure, c_char_p, c_int, c_ssize_t, c_void_p, py_object
from typing import Any, List, Sequence

from ._errors import make_error
from ._lib import lib

__all__ = ["Pinned", "pin", "pin_all", "alloc_buffer", "BytesLike"]

BytesLike = Any  # anything with the buffer protocol


class _Py_buffer(Structure):
    _fields_ = [
        ("buf", c_void_p),
        ("obj", c_void_p),  # owned reference, released by PyBuffer_Release
        ("len", c_ssize_t),
        ("itemsize", c_ssize_t),
        ("readonly", c_int),
        ("ndim", c_int),
        ("format", c_char_p),
        ("shape", POINTER(c_ssize_t)),
        ("strides", POINTER(c_ssize_t)),
        ("suboffsets", POINTER(c_ssize_t)),
        ("internal", c_void_p),
    ]


_PyBUF_WRITABLE = 0x0001
_PyBUF_ND = 0x0008
_PyBUF_STRIDES = 0x0010 | _PyBUF_ND
_PyBUF_C_CONTIGUOUS = 0x0020 | _PyBUF_STRIDES

_GetBuffer = ctypes.pythonapi.PyObject_GetBuffer
_GetBuffer.argtypes = [py_object, POINTER(_Py_buffer), c_int]
_GetBuffer.restype = c_int
_ReleaseBuffer = ctypes.pythonapi.PyBuffer_Release
_ReleaseBuffer.argtypes = [POINTER(_Py_buffer)]
_ReleaseBuffer.restype = None


class Pinned:
    """One pinned buffer: ``addr`` and ``nbytes`` are valid until ``release()``."""

    __slots__ = ("_view", "_held", "addr", "nbytes")

    def __init__(self, obj: BytesLike, writable: bool) -> None:
        self._held = False
        try:
            mv = obj if isinstance(obj, memoryview) else memoryview(obj)
        except TypeError:
            raise TypeError(
                f"a bytes-like object is required, not {type(obj).__name__!r}"
            ) from None
        if not mv.c_contiguous:
            raise ValueError("buffer is not C-contiguous; pass a contiguous copy (e.g. bytes(buf))")
        if writable and mv.readonly:
            raise TypeError(
                f"a writable bytes-like object is required (bytearray, memoryview, "
                f"rio.alloc_buffer(...)), not a read-only {type(obj).__name__!r}"
            )
        view = _Py_buffer()
        _GetBuffer(mv, ctypes.byref(view), _PyBUF_C_CONTIGUOUS | (_PyBUF_WRITABLE if writable else 0))
        self._view = view
        self._held = True
        self.addr: int = view.buf or 0
        self.nbytes: int = view.len

    def release(self) -> None:
        if self._held:
            self._held = False
            _ReleaseBuffer(ctypes.byref(self._view))

    def __enter__(self) -> "Pinned":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def pin(obj: BytesLike, writable: bool = False) -> Pinned:
    """Pins ``obj`` (see :class:`Pinned`)."""
    return Pinned(obj, writable)


def pin_all(objs: Sequence[BytesLike], writable: bool = False) -> List[Pinned]:
    """Pins every object or none (on error the ones pinned so far are released)."""
    pins: List[Pinned] = []
    try:
        for o in objs:
            pins.append(Pinned(o, writable))
    except BaseException:
        for p in pins:
            p.release()
        raise
    return pins


def release_all(pins: Sequence[Pinned]) -> None:
    for p in pins:
        p.release()


_array_types: dict = {}


def _aligned_array_type(n: int) -> type:
    t = _array_types.get(n)
    if t is None:

        class AlignedArray(ctypes.c_ubyte * n):  # type: ignore[misc, valid-type]
            """rio_buf_alloc memory; freed when the last view of it goes away."""

            _rio_ptr: int = 0

            def __del__(self) -> None:
                ptr, self._rio_ptr = self._rio_ptr, 0
                if ptr:
                    try:
                        lib.rio_buf_free(ptr)
                    except Exception:  # pragma: no cover - interpreter shutdown
                        pass

        t = AlignedArray
        if len(_array_types) < 256:
            _array_types[n] = t
    return t


def alloc_buffer(size: int) -> memoryview:
    """Allocates ``size`` zeroed bytes with ``rio_buf_alloc``, aligned for O_DIRECT.

    Returns a writable, C-contiguous ``memoryview`` (format ``"B"``) over
    that memory: slice it, assign to it, pass it (or slices of it) to
    ``File.readinto_at``/``write_at``, ``numpy.frombuffer`` and so on. The
    memory is freed with ``rio_buf_free`` when the view is released
    (``mv.release()`` or ``with rio.alloc_buffer(n) as mv:``) or garbage
    collected, once no other view of it (slice, numpy array) remains, so a
    released buffer raises ``ValueError`` when used and never dangles.
    """
    size = int(size)
    if size <= 0:
        raise ValueError(f"buffer size must be positive, not {size}")
    ptr = lib.rio_buf_alloc(size)
    if not ptr:
        raise make_error(-12)  # ENOMEM, with the library's message
    try:
        arr = _aligned_array_type(size).from_address(ptr)
    except BaseException:
        lib.rio_buf_free(ptr)
        raise
    arr._rio_ptr = ptr
    return memoryview(arr).cast("B")
