"""Shared fixtures: every I/O test runs on both backends."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Run against the installed package when there is one (make test-wheel runs
# a copy of these tests against the wheel in a fresh virtualenv), else the
# source tree (make test-python).
try:
    import rio  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import rio  # noqa: F401

BACKENDS = ["io_uring", "thread_pool"]

# The repository, for the header and the READMEs: RIO_SOURCE_DIR when the
# tests run from a copy outside it (make test-wheel).
REPO_ROOT = Path(os.environ.get("RIO_SOURCE_DIR") or Path(__file__).resolve().parents[3])
HEADER = REPO_ROOT / "include" / "rio.h"


def _io_uring_reason() -> str:
    """Why io_uring cannot be used here ('' when it can)."""
    try:
        with rio.Runtime("io_uring"):
            return ""
    except OSError as e:
        return str(e)


_IO_URING_REASON = None


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    global _IO_URING_REASON
    if request.param == "io_uring":
        if _IO_URING_REASON is None:
            _IO_URING_REASON = _io_uring_reason()
        if _IO_URING_REASON:
            if os.environ.get("RIO_REQUIRE_IO_URING") == "1":
                pytest.fail(f"io_uring required but unavailable: {_IO_URING_REASON}")
            pytest.skip(f"io_uring unavailable on this machine: {_IO_URING_REASON}")
    return request.param


@pytest.fixture
def rt(backend: str):
    with rio.Runtime(backend) as r:
        assert r.backend == backend
        yield r


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data.bin"


def pytest_report_header(config: pytest.Config) -> str:
    from rio import _lib

    missing = f"; MISSING: {', '.join(_lib.MISSING)}" if _lib.MISSING else ""
    return (f"rio package: {Path(rio.__file__).parent}\n"
            f"librio: {rio.library_path} (version {rio.version()}){missing}")
