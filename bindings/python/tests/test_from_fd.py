"""rt.open_fd: a File over an existing descriptor, on both backends. A
borrowed fd stays open after close (the process's POSIX locks survive,
seen from a child process); an owned one is closed; mode, O_DIRECT and
O_APPEND come from the descriptor; bad fds raise EBADF."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct

import pytest

import rio


def _locked_by_us(path) -> bool:
    """Whether another process sees our write lock (opened in the child:
    a close here would drop the lock)."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        held = False
        try:
            fd = os.open(path, os.O_RDONLY)
            probe = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
            got = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
            l_type, _, _, _, l_pid = struct.unpack("hhqqi", got)
            held = l_type != fcntl.F_UNLCK and l_pid == parent
        finally:
            os._exit(0 if held else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def test_borrowed_fd_stays_open_and_keeps_locks(rt, path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        assert _locked_by_us(path)
        f = rt.open_fd(fd)
        assert f.mode == "r+" and not f.direct
        assert f.write_at(b"hello", 0) == 5
        assert f.write_durable(b"world", 5) == 5
        assert f.read_at(10, 0) == b"helloworld"
        f.close()
        assert os.fstat(fd).st_size == 10
        assert _locked_by_us(path)
        with rt.open_fd(fd) as g:  # a context manager, closing at exit
            assert g.size() == 10
        assert os.pread(fd, 10, 0) == b"helloworld"
    finally:
        os.close(fd)


def test_owned_fd_is_closed(rt, path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    f = rt.open_fd(fd, owned=True)
    f.write_durable(b"owned", 0)
    f.close()
    assert not _locked_by_us(path)
    with pytest.raises(OSError) as e:
        os.fstat(fd)
    assert e.value.errno == errno.EBADF
    assert path.read_bytes() == b"owned"


def test_mode_comes_from_the_descriptor(rt, path):
    path.write_bytes(b"0123456789")
    with open(path, "rb") as ro:
        f = rt.open_fd(ro)
        assert f.mode == "r"
        assert f.read_at(4, 2) == b"2345"
        with pytest.raises(OSError) as e:
            f.write_at(b"x", 0)
        assert e.value.errno == errno.EBADF
        with pytest.raises(OSError) as e:
            f.write_durable(b"x", 0)
        assert e.value.errno == errno.EBADF
        f.close()
    with open(path, "ab") as ap:
        f = rt.open_fd(ap.fileno())
        assert f.mode == "a"
        f.write_at(b"ab", 0)
        assert f.size() == 12
        with pytest.raises(OSError) as e:
            f.write_durable(b"ab", 0)
        assert e.value.errno == errno.EINVAL and "O_APPEND" in str(e.value)
        f.close()
    fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    f = rt.open_fd(fd, owned=True)
    assert f.direct
    with pytest.raises(OSError) as e:
        f.write_at(b"abc", 1)
    assert e.value.errno == errno.EINVAL
    buf = mmap.mmap(-1, 4096)
    buf.write(b"z" * 4096)
    assert f.write_durable(buf, 4096) == 4096
    assert f.read_at(4096, 4096) == b"z" * 4096
    f.close()


def test_bad_descriptors(rt, tmp_path):
    with pytest.raises(OSError) as e:
        rt.open_fd(-1)
    assert e.value.errno == errno.EBADF and "fd -1" in str(e.value)
    fd = os.open(tmp_path / "c", os.O_RDWR | os.O_CREAT, 0o644)
    os.close(fd)
    with pytest.raises(OSError) as e:
        rt.open_fd(fd, owned=True)
    assert e.value.errno == errno.EBADF and f"fd {fd}" in str(e.value)
    with pytest.raises(TypeError):
        rt.open_fd("3")
    with pytest.raises(OSError) as e:
        rt.open_fd(1 << 40)
    assert e.value.errno == errno.EBADF
