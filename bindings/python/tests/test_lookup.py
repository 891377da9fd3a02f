"""Library lookup: RIO_LIBRARY, next to the package, build tree, system loader."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rio
from rio import _lib as L

from conftest import REPO_ROOT


def _run(env_update: dict, code: str = "import rio; print(rio.library_path)") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RIO_LIBRARY"}
    env.update(env_update)
    pkg_parent = str(Path(rio.__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg_parent
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_loaded_library_is_real() -> None:
    assert Path(rio.library_path).name.startswith("librio.so") or "librio" in rio.library_path
    assert rio.version()


def test_rio_library_env_is_used() -> None:
    lib = os.environ.get("RIO_LIBRARY") or L.LIBRARY_PATH
    r = _run({"RIO_LIBRARY": lib})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == lib


def test_rio_library_env_bad_path_is_an_error() -> None:
    r = _run({"RIO_LIBRARY": "/nonexistent/librio.so"})
    assert r.returncode != 0
    assert "RIO_LIBRARY" in r.stderr and "/nonexistent/librio.so" in r.stderr
    assert "LibraryNotFoundError" in r.stderr


def test_without_env_finds_the_build_tree() -> None:
    """With RIO_LIBRARY unset, the package (installed in .venv inside the
    repository, or imported from bindings/python) finds target/*/librio.so."""
    r = _run({})
    assert r.returncode == 0, r.stderr
    found = Path(r.stdout.strip())
    pkg = Path(rio.__file__).resolve().parent
    if list(pkg.glob("librio.so*")):
        assert found.parent == pkg
    else:
        assert found.parts[-3:-1] in (("target", "release"), ("target", "debug")), found
        assert found.resolve().is_relative_to(REPO_ROOT.resolve())


def test_next_to_package_wins_over_build_tree(tmp_path: Path) -> None:
    pkg = tmp_path / "repo" / "site" / "rio"
    pkg.mkdir(parents=True)
    build = tmp_path / "repo" / "target" / "release"
    build.mkdir(parents=True)
    shutil.copy(L.LIBRARY_PATH, build / "librio.so")
    cands = L.candidate_paths(pkg)
    assert cands[0] == ("build tree", str(build / "librio.so"))
    shutil.copy(L.LIBRARY_PATH, pkg / "librio.so.0")
    cands = L.candidate_paths(pkg)
    assert cands[0] == ("next to the package", str(pkg / "librio.so.0"))
    handle, where = L.find_library(env={}, package_dir=pkg)
    assert where == str(pkg / "librio.so.0")
    assert handle.rio_version


def test_release_before_debug(tmp_path: Path) -> None:
    pkg = tmp_path / "a" / "b" / "rio"
    pkg.mkdir(parents=True)
    for prof in ("debug", "release"):
        d = tmp_path / "a" / "target" / prof
        d.mkdir(parents=True)
        (d / "librio.so").write_bytes(b"")
    cands = [p for w, p in L.candidate_paths(pkg) if w == "build tree"]
    assert cands[0].endswith("target/release/librio.so")
    assert cands[1].endswith("target/debug/librio.so")


def test_nothing_found_lists_every_place(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg" / "rio"
    pkg.mkdir(parents=True)
    (pkg / "librio.so").write_bytes(b"not an ELF file")

    def loader(name: str):
        if name == str(pkg / "librio.so"):
            return ctypes.CDLL(name)  # fails: invalid ELF header
        raise OSError(f"{name}: cannot open shared object file")

    with pytest.raises(L.LibraryNotFoundError) as ei:
        L.find_library(env={}, package_dir=pkg, loader=loader)
    msg = str(ei.value)
    assert isinstance(ei.value, OSError)
    assert "RIO_LIBRARY" in msg
    assert str(pkg / "librio.so") in msg                   # next to the package, tried
    assert f"{tmp_path}/target/" in msg                    # build tree, searched
    assert "librio.so.0" in msg and "system loader" in msg
