"""rio.File on both backends: modes, I/O, buffers, errors, lifecycle, threads."""

from __future__ import annotations

import array
import ctypes
import errno
import mmap
import os
import threading

import pytest

import rio


# -- modes -----------------------------------------------------------------

def test_parse_mode_flags() -> None:
    R, W, C, T, E, A = (rio.OPEN_READ, rio.OPEN_WRITE, rio.OPEN_CREATE,
                        rio.OPEN_TRUNCATE, rio.OPEN_EXCL, rio.OPEN_APPEND)
    expect = {
        "r": R, "r+": R | W, "w": W | C | T, "w+": R | W | C | T,
        "a": W | C | A, "a+": R | W | C | A, "x": W | C | E, "x+": R | W | C | E,
    }
    for mode, flags in expect.items():
        assert rio.parse_mode(mode) == flags, mode
        assert rio.parse_mode(mode + "b") == flags
        assert rio.parse_mode("b" + mode) == flags
    assert rio.parse_mode("r+b") == rio.parse_mode("rb+") == R | W


@pytest.mark.parametrize("mode", ["", "rw", "rt", "z", "r++", "wa", "rbb", "U"])
def test_invalid_modes(rt: rio.Runtime, path, mode: str) -> None:
    with pytest.raises(ValueError):
        rt.open(path, mode)


def test_mode_r(rt: rio.Runtime, path) -> None:
    with pytest.raises(FileNotFoundError):
        rt.open(path, "r")
    path.write_bytes(b"abc")
    with rt.open(path) as f:  # default mode "r"
        assert f.read_at(3, 0) == b"abc"
        with pytest.raises(OSError) as ei:
            f.write_at(b"x", 0)
        assert ei.value.errno == errno.EBADF
    assert path.read_bytes() == b"abc"


def test_mode_r_plus(rt: rio.Runtime, path) -> None:
    with pytest.raises(FileNotFoundError):
        rt.open(path, "r+")
    path.write_bytes(b"abcdef")
    with rt.open(path, "r+b") as f:
        f.write_at(b"XY", 2)
        assert f.read_at(10, 0) == b"abXYef"


def test_mode_w_truncates_and_creates(rt: rio.Runtime, path) -> None:
    path.write_bytes(b"old contents")
    with rt.open(path, "w") as f:
        assert f.size() == 0
        f.write_at(b"new", 0)
        with pytest.raises(OSError) as ei:
            f.read_at(3, 0)
        assert ei.value.errno == errno.EBADF
    assert path.read_bytes() == b"new"
    other = path.parent / "created.bin"
    with rt.open(other, "wb"):
        pass
    assert other.exists() and (other.stat().st_mode & 0o777) == 0o644 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_perm_applies_to_created_file(rt: rio.Runtime, path) -> None:
    with rt.open(path, "x", perm=0o600):
        pass
    assert path.stat().st_mode & 0o777 == 0o600 & ~_umask()


def test_mode_w_plus(rt: rio.Runtime, path) -> None:
    path.write_bytes(b"old")
    with rt.open(path, "w+") as f:
        assert f.read_at(10, 0) == b""
        f.write_at(b"hello", 0)
        assert f.read_at(10, 0) == b"hello"


def test_mode_a_appends_ignoring_offset(rt: rio.Runtime, path) -> None:
    path.write_bytes(b"123")
    with rt.open(path, "a") as f:
        f.write_at(b"45", 0)
        f.write_at(b"67", 0)
    assert path.read_bytes() == b"1234567"
    with rt.open(path, "a+") as f:
        f.write_at(b"8", 0)
        assert f.read_at(100, 0) == b"12345678"


def test_mode_x(rt: rio.Runtime, path) -> None:
    with rt.open(path, "x") as f:
        f.write_at(b"first", 0)
    with pytest.raises(FileExistsError) as ei:
        rt.open(path, "x")
    assert ei.value.errno == errno.EEXIST
    assert str(path) in str(ei.value)
    with pytest.raises(FileExistsError):
        rt.open(path, "x+")
    other = path.parent / "other.bin"
    with rt.open(other, "x+") as f:
        f.write_at(b"rw", 0)
        assert f.read_at(2, 0) == b"rw"


# -- I/O ---------------------------------------------------------------------

def test_roundtrip_and_size(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+") as f:
        assert f.write_at(b"hello world", 0) == 11
        assert f.read_at(5, 6) == b"world"
        assert f.size() == 11
        assert f.write_at(b"!", 100) == 1
        assert f.size() == 101
        assert f.read_at(3, 98) == b"\0\0!"
    assert path.stat().st_size == 101


def test_keyword_names_from_design(rt: rio.Runtime, path) -> None:
    """DESIGN.md's names: read_at(n, off), readinto_at(buf, off), write_at(data, off);
    offset= is an alias."""
    with rt.open(path=path, mode="w+", direct=False) as f:
        assert f.write_at(data=b"abcdef", off=0) == 6
        assert f.write_at(b"XY", offset=2) == 2
        assert f.read_at(n=6, off=0) == b"abXYef"
        assert f.read_at(2, offset=4) == b"ef"
        buf = bytearray(2)
        assert f.readinto_at(buf=buf, off=1) == 2 and buf == b"bX"
        assert f.readinto_at(buf, offset=0) == 2 and buf == b"ab"
        assert f.writev_at([b"1", b"2"], offset=0) == 2
        with pytest.raises(TypeError):
            f.read_at(1)
        with pytest.raises(TypeError):
            f.read_at(1, 0, offset=0)


def test_short_read_only_at_eof(rt: rio.Runtime, path) -> None:
    path.write_bytes(b"0123456789")
    with rt.open(path, "r") as f:
        assert f.read_at(100, 0) == b"0123456789"
        assert f.read_at(100, 7) == b"789"
        assert f.read_at(5, 10) == b""
        assert f.read_at(5, 1 << 40) == b""
        assert f.read_at(0, 0) == b""
        buf = bytearray(8)
        assert f.readinto_at(buf, 6) == 4
        assert buf[:4] == b"6789"


def test_large_io(rt: rio.Runtime, path) -> None:
    data = os.urandom(8 << 20) + b"tail"
    with rt.open(path, "w+") as f:
        assert f.write_at(data, 4096) == len(data)
        assert f.read_at(len(data) + 100, 4096) == data
        out = bytearray(len(data))
        assert f.readinto_at(out, 4096) == len(data)
        assert out == data


def test_write_accepts_bytes_likes(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+") as f:
        f.write_at(b"by", 0)
        f.write_at(bytearray(b"ba"), 2)
        f.write_at(memoryview(b"xxmvxx")[2:4], 4)      # read-only slice, no copy
        f.write_at(array.array("B", b"ar"), 6)
        f.write_at(array.array("h", [0x4241]), 8)        # multi-byte items: raw bytes
        f.write_at((ctypes.c_char * 2)(*b"ct"), 10)
        m = mmap.mmap(-1, 2)
        m.write(b"mm")
        f.write_at(m, 12)
        f.write_at(memoryview(bytearray(b"2d")).cast("B", (1, 2)), 14)  # 2-D contiguous
        f.write_at(b"", 16)
        assert f.read_at(100, 0) == b"bybamvarABctmm2d"


def test_write_rejects_non_buffers(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+") as f:
        with pytest.raises(TypeError):
            f.write_at("text", 0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            f.write_at(123, 0)  # type: ignore[arg-type]
        with pytest.raises((ValueError, TypeError)):
            f.write_at(memoryview(b"abcdef")[::2], 0)  # not contiguous
        with pytest.raises(ValueError):
            f.write_at(b"x", -1)
        with pytest.raises(TypeError):
            f.write_at(b"x", 1.5)  # type: ignore[arg-type]


def test_readinto_is_zero_copy(rt: rio.Runtime, path) -> None:
    path.write_bytes(b"abcdefgh")
    with rt.open(path, "r") as f:
        ba = bytearray(b"........")
        assert f.readinto_at(memoryview(ba)[2:5], 0) == 3
        assert ba == b"..abc..."
        arr = array.array("B", bytes(4))
        assert f.readinto_at(arr, 4) == 4
        assert arr.tobytes() == b"efgh"
        cbuf = ctypes.create_string_buffer(3)
        assert f.readinto_at(cbuf, 1) == 3
        assert cbuf.raw == b"bcd"
        m = mmap.mmap(-1, 4)
        assert f.readinto_at(m, 0) == 4
        assert m[:] == b"abcd"
        assert f.readinto_at(bytearray(), 0) == 0


def test_readinto_rejects_readonly(rt: rio.Runtime, path) -> None:
    path.write_bytes(b"abc")
    with rt.open(path, "r") as f:
        with pytest.raises(TypeError):
            f.readinto_at(b"xxx", 0)
        with pytest.raises(TypeError):
            f.readinto_at(memoryview(b"xxx"), 0)
        with pytest.raises((ValueError, TypeError)):
            f.readinto_at(memoryview(bytearray(6))[::2], 0)


def test_numpy_buffers(rt: rio.Runtime, path) -> None:
    np = pytest.importorskip("numpy")
    with rt.open(path, "w+") as f:
        a = np.arange(1000, dtype=np.int64)
        assert f.write_at(a, 0) == 8000
        b = np.zeros(1000, dtype=np.int64)
        assert f.readinto_at(b, 0) == 8000
        assert (a == b).all()
        with pytest.raises((ValueError, TypeError)):
            f.write_at(a[::2], 0)
        with pytest.raises((ValueError, TypeError)):
            f.readinto_at(b[::2], 0)
        m = np.arange(12, dtype=np.float32).reshape(3, 4)  # 2-D, C-contiguous
        assert f.write_at(m, 0) == 48
        back = np.empty((3, 4), dtype=np.float32)
        assert f.readinto_at(back, 0) == 48 and (back == m).all()
        ro = np.frombuffer(b"readonly", dtype=np.uint8)  # read-only numpy array
        assert f.write_at(ro, 0) == 8
        with pytest.raises(TypeError):
            f.readinto_at(ro, 0)
        # Zero-copy: the library writes straight into the numpy array's memory.
        big = np.zeros(8, dtype=np.uint8)
        view = big[2:6]
        assert f.readinto_at(view, 0) == 4
        assert bytes(big) == b"\0\0read\0\0"


def test_vectored(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+") as f:
        assert f.writev_at([b"ab", bytearray(b"cde"), memoryview(b"f"), b""], 10) == 6
        assert f.read_at(6, 10) == b"abcdef"
        a, b = bytearray(4), bytearray(4)
        assert f.readv_at([a, b], 10) == 6
        assert a == b"abcd" and b == b"ef\0\0"
        assert f.readv_at([], 0) == 0
        with pytest.raises(ValueError):
            f.writev_at([b"x"] * (rio.IOV_MAX + 1), 0)
        with pytest.raises(TypeError):
            f.readv_at([b"readonly"], 0)


def test_sync_allocate_truncate(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+") as f:
        f.write_at(b"x" * 100, 0)
        f.sync()
        f.datasync()
        f.truncate(10)
        assert f.size() == 10
        assert f.read_at(100, 0) == b"x" * 10
        f.truncate(5000)
        assert f.size() == 5000
        try:
            f.allocate(0, 1 << 20)
        except OSError as e:  # filesystems without fallocate
            assert e.errno == errno.EOPNOTSUPP
        else:
            assert f.size() == 1 << 20
        with pytest.raises(OSError) as ei:
            f.allocate(0, 0)
        assert ei.value.errno == errno.EINVAL


def test_dsync_open(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w+", dsync=True) as f:
        assert f.flags & rio.OPEN_DSYNC
        f.write_at(b"durable", 0)
        assert f.read_at(7, 0) == b"durable"


def test_pathlike_and_bytes_paths(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w") as f:
        f.write_at(b"1", 0)
    with rt.open(str(path)) as f:
        assert f.read_at(1, 0) == b"1"
    with rt.open(os.fsencode(path)) as f:
        assert f.read_at(1, 0) == b"1"
        assert f.name == str(path)
    with pytest.raises(ValueError):
        rt.open("bad\0path", "w")


# -- errors ------------------------------------------------------------------

def test_file_not_found_has_path_and_message(rt: rio.Runtime, tmp_path) -> None:
    missing = tmp_path / "no" / "such" / "file"
    with pytest.raises(FileNotFoundError) as ei:
        rt.open(missing, "r")
    e = ei.value
    assert e.errno == errno.ENOENT
    assert str(missing) in str(e)
    assert e.filename == str(missing)
    assert "rio_file_open" in e.strerror  # the library's message, not just strerror


def test_is_a_directory(rt: rio.Runtime, tmp_path) -> None:
    with pytest.raises(IsADirectoryError):
        rt.open(tmp_path, "r+")


def test_permission_denied(rt: rio.Runtime, path) -> None:
    path.write_bytes(b"")
    if os.geteuid() != 0:
        path.chmod(0o000)
        with pytest.raises(PermissionError) as ei:
            rt.open(path, "r")
        assert ei.value.errno == errno.EACCES and str(path) in str(ei.value)
        return
    # root bypasses modes, but not the immutable attribute (EPERM).
    import shutil
    import subprocess
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root and cannot make a file immutable here")
    try:
        with pytest.raises(PermissionError) as ei:
            rt.open(path, "r+")
        assert ei.value.errno == errno.EPERM and str(path) in str(ei.value)
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_error_messages_are_per_thread(rt: rio.Runtime, tmp_path) -> None:
    errors: dict = {}
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        p = tmp_path / f"missing-{i}"
        barrier.wait()
        for _ in range(200):
            try:
                rt.open(p, "r")
            except FileNotFoundError as e:
                if f"missing-{i}" not in e.strerror:
                    errors[i] = e.strerror

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


# -- lifecycle ---------------------------------------------------------------

def test_use_after_close_raises_value_error(rt: rio.Runtime, path) -> None:
    f = rt.open(path, "w+")
    f.close()
    f.close()  # idempotent
    assert f.closed
    for call in (lambda: f.read_at(1, 0), lambda: f.readinto_at(bytearray(1), 0),
                 lambda: f.write_at(b"x", 0), lambda: f.readv_at([bytearray(1)], 0),
                 lambda: f.writev_at([b"x"], 0), f.sync, f.datasync,
                 lambda: f.allocate(0, 1), lambda: f.truncate(0), f.size):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):
        with f:
            pass
    assert "closed" in repr(f)


def test_context_manager(rt: rio.Runtime, path) -> None:
    with rt.open(path, "w") as f:
        assert not f.closed
    assert f.closed


def test_gc_closes(rt: rio.Runtime, path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(200):
        f = rt.open(path, "w")
        del f
    import gc
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 2


# -- direct I/O --------------------------------------------------------------

def _direct_or_skip(rt: rio.Runtime, path, mode: str = "w+") -> rio.File:
    try:
        return rt.open(path, mode, direct=True)
    except OSError as e:
        if e.errno == errno.EINVAL and "O_DIRECT" in str(e):
            pytest.skip(f"filesystem without O_DIRECT: {e}")
        raise


def test_direct_io_roundtrip(rt: rio.Runtime, path) -> None:
    with _direct_or_skip(rt, path) as f, rio.alloc_buffer(8192) as buf:
        assert f.direct and f.flags & rio.OPEN_DIRECT
        buf[:] = os.urandom(8192)
        assert f.write_at(buf, 4096) == 8192
        with rio.alloc_buffer(8192) as back:
            assert f.readinto_at(back, 4096) == 8192
            assert bytes(back) == bytes(buf)
        # read_at allocates an aligned buffer itself.
        assert f.read_at(4096, 8192) == bytes(buf[4096:])
        assert f.read_at(4096, 1 << 20) == b""  # EOF


def test_direct_io_misaligned_is_einval(rt: rio.Runtime, path) -> None:
    with _direct_or_skip(rt, path) as f, rio.alloc_buffer(8192) as buf:
        for call in (
            lambda: f.write_at(buf[:4096], 1),         # offset
            lambda: f.write_at(buf[:100], 0),          # length
            lambda: f.write_at(buf[1:4097], 0),        # buffer address
            lambda: f.readinto_at(buf[:4096], 3),
            lambda: f.read_at(100, 0),
        ):
            with pytest.raises(OSError) as ei:
                call()
            assert ei.value.errno == errno.EINVAL
            assert "align" in str(ei.value)
        assert f.size() == 0


# -- threads -------------------------------------------------------------------

def test_threads_on_one_file(rt: rio.Runtime, path) -> None:
    n_threads, blocks, bs = 8, 64, 4096
    with rt.open(path, "w+") as f:
        f.truncate(n_threads * blocks * bs)
        failures: list = []

        def writer(t: int) -> None:
            try:
                for b in range(blocks):
                    off = (b * n_threads + t) * bs
                    data = bytes([t]) * (bs - 8) + off.to_bytes(8, "little")
                    assert f.write_at(data, off) == bs
                    assert f.read_at(bs, off) == data
            except BaseException as e:  # pragma: no cover
                failures.append(e)

        ts = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not failures, failures
        content = f.read_at(n_threads * blocks * bs, 0)
    for i in range(n_threads * blocks):
        block = content[i * bs:(i + 1) * bs]
        assert block[:-8] == bytes([i % n_threads]) * (bs - 8)
        assert int.from_bytes(block[-8:], "little") == i * bs


def test_close_while_other_threads_use_the_file(rt: rio.Runtime, path) -> None:
    f = rt.open(path, "w+")
    f.write_at(b"z" * 65536, 0)
    stop = threading.Event()
    outcomes: list = []

    def reader() -> None:
        buf = bytearray(65536)
        while not stop.is_set():
            try:
                f.readinto_at(buf, 0)
            except ValueError:
                outcomes.append("closed")
                return
        outcomes.append("stopped")  # pragma: no cover

    ts = [threading.Thread(target=reader) for _ in range(4)]
    for t in ts:
        t.start()
    import time
    time.sleep(0.05)
    f.close()
    stop.set()
    for t in ts:
        t.join()
    assert outcomes.count("closed") == 4
