"""Build of the ``librio`` distribution: the ``rio`` package with ``librio.so`` inside.

Everything declarative is in pyproject.toml; this file holds what cannot be
declared there:

- The version is read from the Rust crate's Cargo.toml (the one source of
  truth) and written into the built package as ``rio/_version.py``.
- ``build_py`` puts ``librio.so`` into the package (``rio/librio.so``, the
  "next to the package" step of the lookup order). The library is
  ``$RIO_WHEEL_LIBRARY`` when that is set (``make wheel`` passes the one
  ``make lib`` built), else it is built with ``cargo build --release --lib``
  from the crate: the repository around this directory, or ``rust/`` inside
  an sdist. Without cargo the build stops with an error saying so.
- ``sdist`` adds the crate (``rust/``) so an sdist builds on its own.
- The wheel is tagged ``py3-none-<platform>``: the code is pure Python (any
  Python 3, no ABI), the library is not. ``make wheel`` retags the plain
  ``linux_<arch>`` wheel to the manylinux policy ``auditwheel`` verifies.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

try:  # setuptools >= 70.1 ships bdist_wheel itself
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover - older setuptools with the wheel package
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
SDIST_CRATE = "rust"
# What of the repository an sdist needs to build the library: the crate, the
# workspace's other member and the declared bench target (cargo reads every
# manifest and target path of the workspace, even to build only the library).
CRATE_FILES = ["Cargo.toml", "Cargo.lock", "build.rs", "cbindgen.toml", "cli/Cargo.toml"]
CRATE_DIRS = ["src", "cli/src", "benches/compare"]


def crate_dir() -> Path:
    """The Rust crate: ``rust/`` in an sdist, else the repository root."""
    for candidate in (HERE / SDIST_CRATE, HERE.parent.parent):
        if (candidate / "Cargo.toml").is_file() and (candidate / "src" / "lib.rs").is_file():
            return candidate
    raise SystemExit(
        f"librio: cannot find the Rust crate (Cargo.toml and src/lib.rs) in {HERE / SDIST_CRATE} "
        f"or {HERE.parent.parent}; build from the repository or from an sdist made by `make sdist`"
    )


def cargo_version(manifest: Path) -> str:
    """The ``version`` of the ``[package]`` table of Cargo.toml."""
    section = None
    for line in manifest.read_text().splitlines():
        header = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1).strip()
            continue
        m = re.match(r'\s*version\s*=\s*"([^"]+)"', line)
        if section == "package" and m:
            return m.group(1)
    raise SystemExit(f"librio: no [package] version in {manifest}")


def build_library(crate: Path) -> Path:
    """Runs ``cargo build --release --lib`` in ``crate``; returns librio.so."""
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if not cargo:
        raise SystemExit(
            "librio: building the library from source needs cargo (the Rust toolchain, "
            f"Rust {rust_version(crate)} or newer; https://rustup.rs), and no `cargo` was found "
            f"on PATH={os.environ.get('PATH', '')!r}. Install Rust, or install a prebuilt "
            "librio wheel (`pip install librio-*.whl`), or set RIO_WHEEL_LIBRARY to a built librio.so."
        )
    target = Path(os.environ.get("CARGO_TARGET_DIR") or crate / "target")
    cmd = [cargo, "build", "--release", "--lib", "--locked", "-p", "librio",
           "--manifest-path", str(crate / "Cargo.toml")]
    print("librio: " + " ".join(cmd), file=sys.stderr, flush=True)
    rc = subprocess.call(cmd, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    if rc != 0:
        raise SystemExit(f"librio: cargo build failed (exit status {rc}); see its output above")
    return target / "release" / "librio.so"


def rust_version(crate: Path) -> str:
    m = re.search(r'^rust-version\s*=\s*"([^"]+)"', (crate / "Cargo.toml").read_text(), re.M)
    return m.group(1) if m else "(stable)"


def strip_debug_info(lib: Path) -> None:
    """Drops DWARF from the packaged copy (keeps the symbol table, so
    backtraces still name functions): ~14 MB of line tables otherwise."""
    strip = shutil.which("strip")
    if strip is None:
        print("librio: `strip` not found; packaging the library with its debug info",
              file=sys.stderr)
        return
    subprocess.check_call([strip, "--strip-debug", str(lib)])


class BuildPyWithLibrary(build_py):
    """Copies (or builds) librio.so into the package and writes _version.py."""

    def run(self) -> None:
        super().run()
        package = Path(self.build_lib) / "rio"
        package.mkdir(parents=True, exist_ok=True)
        prebuilt = os.environ.get("RIO_WHEEL_LIBRARY")
        source = Path(prebuilt) if prebuilt else build_library(crate_dir())
        if not source.is_file():
            raise SystemExit(f"librio: the library to package, {source}, does not exist")
        for stale in package.glob("librio.so*"):
            stale.unlink()
        dest = package / "librio.so"
        shutil.copyfile(source, dest)
        dest.chmod(0o755)
        strip_debug_info(dest)
        (package / "_version.py").write_text(
            '"""Generated by setup.py from Cargo.toml; do not edit."""\n\n'
            f'__version__ = "{VERSION}"\n'
        )


class SdistWithCrate(sdist):
    """Adds the Rust crate under ``rust/`` so the sdist builds by itself."""

    def make_release_tree(self, base_dir: str, files: List[str]) -> None:
        super().make_release_tree(base_dir, files)
        crate = crate_dir()
        dest = Path(base_dir) / SDIST_CRATE
        if crate == HERE / SDIST_CRATE:
            shutil.copytree(crate, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("target"))
            return
        for name in CRATE_FILES:
            if (crate / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(crate / name, dest / name)
        for name in CRATE_DIRS:
            shutil.copytree(crate / name, dest / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "target"))


class LibraryDistribution(Distribution):
    """Not pure: the package carries a native library, so it installs to
    platlib and the wheel gets a platform tag."""

    def has_ext_modules(self) -> bool:
        return True


class PlatformWheel(bdist_wheel):
    """``py3-none-<platform>``: pure-Python code around a native library."""

    def get_tag(self) -> Tuple[str, str, str]:
        _python, _abi, plat = super().get_tag()
        return "py3", "none", plat


VERSION = cargo_version(crate_dir() / "Cargo.toml")

setup(
    version=VERSION,
    distclass=LibraryDistribution,
    cmdclass={"build_py": BuildPyWithLibrary, "sdist": SdistWithCrate, "bdist_wheel": PlatformWheel},
)
