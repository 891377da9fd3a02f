"""Runtime: backends, config, capabilities, metrics, lifecycle."""

from __future__ import annotations

import re

import pytest

import rio


def test_version() -> None:
    v = rio.version()
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", v), v


def test_strerror() -> None:
    assert "No such file" in rio.strerror(2)
    assert rio.strerror(-2) == rio.strerror(2)


def test_backend_property(rt: rio.Runtime, backend: str) -> None:
    assert rt.backend == backend
    assert backend in repr(rt)


def test_auto_backend() -> None:
    with rio.Runtime() as r:
        assert r.backend in ("io_uring", "thread_pool")
    with rio.Runtime("auto") as r:
        assert r.backend in ("io_uring", "thread_pool")


def test_backend_constants() -> None:
    with rio.Runtime(rio.BACKEND_THREAD_POOL) as r:  # type: ignore[arg-type]
        assert r.backend == "thread_pool"
    with rio.Runtime(backend="thread_pool") as r:
        assert r.backend == "thread_pool"


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="backend"):
        rio.Runtime("epoll")
    with pytest.raises(TypeError):
        rio.Runtime(3)  # type: ignore[arg-type]


def test_config_fields(backend: str) -> None:
    with rio.Runtime(backend, queue_depth=64, max_concurrent_ops=100, worker_threads=5) as r:
        caps = r.capabilities()
        assert caps.max_concurrent_ops == 100
        assert caps.worker_threads == 5
        if backend == "io_uring":
            assert caps.sq_entries == 64


def test_bad_config_values() -> None:
    with pytest.raises(ValueError):
        rio.Runtime(queue_depth=-1)
    with pytest.raises(TypeError):
        rio.Runtime(nonsense=1)  # type: ignore[call-arg]


def test_env_var_invalid_value_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUSTFS_MAX_CONCURRENT_FILE_OPS", "lots")
    with pytest.raises(OSError) as ei:
        rio.Runtime()
    assert ei.value.errno == 22
    assert "RUSTFS_MAX_CONCURRENT_FILE_OPS" in str(ei.value)


def test_capabilities(rt: rio.Runtime, backend: str) -> None:
    caps = rt.capabilities()
    assert isinstance(caps, rio.Capabilities)
    assert caps.backend == backend
    assert caps.kernel_release and caps.kernel_release[0].isdigit()
    assert caps.max_concurrent_ops > 0 and caps.worker_threads > 0
    assert isinstance(caps.io_uring_unavailable_reason, str)
    if backend == "io_uring":
        assert caps.io_uring_available
        assert caps.io_uring_unavailable_reason == ""
        assert caps.sq_entries > 0 and caps.cq_entries >= caps.sq_entries
        # READ, WRITE, FSYNC exist on every kernel with a usable ring.
        assert {1, 2, 3} <= caps.io_uring_opcodes
        assert caps.supports_opcode("READV") and caps.supports_opcode("IORING_OP_FSYNC")
        assert "READV" in caps.io_uring_opcode_names
    else:
        # Thread pool chosen explicitly: the reason says so.
        assert caps.io_uring_unavailable_reason != ""
    d = caps.as_dict()
    assert d["kernel_release"] == caps["kernel_release"] == caps.kernel_release
    assert isinstance(d["io_uring_opcodes"], list)


def test_metrics_prometheus(rt: rio.Runtime, path) -> None:
    before = rt.metrics_prometheus()
    assert "# TYPE" in before and "# HELP" in before
    with rt.open(path, "w+") as f:
        for i in range(10):
            f.write_at(b"x" * 4096, i * 4096)
            f.read_at(4096, i * 4096)
    text = rt.metrics_prometheus()
    assert isinstance(text, str)
    assert f'backend="{rt.backend}"' in text
    # Some counter grew.
    def total(t: str) -> float:
        return sum(float(l.rsplit(" ", 1)[1]) for l in t.splitlines()
                   if l and not l.startswith("#") and "_total" in l.split(" ")[0])
    assert total(text) > total(before)


def test_metrics_snapshot(rt: rio.Runtime, path) -> None:
    before = rt.metrics()
    assert isinstance(before, rio.Metrics)
    assert before.backend == rt.backend
    assert set(before.ops) == {"read", "write", "readv", "writev", "fsync", "fdatasync",
                               "fallocate", "ftruncate"}
    with rt.open(path, "w+") as f:
        for i in range(20):
            f.write_at(b"y" * 4096, i * 4096)
        f.datasync()
        f.writev_at([b"a", b"b"], 0)
        rt.submit_batch([rio.ReadOp(f, 10, 0), rio.ReadOp(f, 10, 10)])
    m = rt.metrics()
    assert m.ops["write"].count >= before.ops["write"].count + 20
    assert m.ops["write"].bytes >= before.ops["write"].bytes + 20 * 4096
    assert m.ops["fdatasync"].count >= before.ops["fdatasync"].count + 1
    assert m.ops["writev"].count >= before.ops["writev"].count + 1
    assert m.batches >= before.batches + 1
    assert m.ops_in_flight == 0
    if rt.backend == "io_uring":
        assert m.io_uring_sqes_submitted > 0
    else:
        assert m.io_uring_sqes_submitted == 0


def test_close_idempotent_and_use_after_close(backend: str, path) -> None:
    r = rio.Runtime(backend)
    r.close()
    r.close()
    assert r.closed
    for call in (lambda: r.backend, r.capabilities, r.metrics_prometheus, r.metrics,
                 lambda: r.open(path, "w"), lambda: r.submit_batch([]),
                 lambda: r.open_wal(str(path) + ".wal")):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):
        with r:
            pass


def test_context_manager_closes(backend: str) -> None:
    with rio.Runtime(backend) as r:
        assert not r.closed
    assert r.closed


def test_files_outlive_runtime(backend: str, path) -> None:
    r = rio.Runtime(backend)
    f = r.open(path, "w+")
    r.close()
    assert f.write_at(b"still works", 0) == 11
    assert f.read_at(11, 0) == b"still works"
    f.close()


def test_many_runtimes(backend: str) -> None:
    for _ in range(20):
        with rio.Runtime(backend) as r:
            r.capabilities()
