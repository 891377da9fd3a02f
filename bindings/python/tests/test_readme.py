"""The READMEs' Python examples run as written (so they cannot rot): the
quick start of the repository's README.md (blocking and asyncio) and the
package's README.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT

READMES = [REPO_ROOT / "README.md", REPO_ROOT / "bindings" / "python" / "README.md"]


def python_blocks(readme: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)


@pytest.mark.parametrize("readme", READMES, ids=["README.md", "bindings/python/README.md"])
def test_readme_example_runs(readme: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks(readme)
    assert blocks, f"no python example in {readme}"
    if readme == READMES[0]:  # the quick start shows the blocking and the asyncio API
        assert any("asyncio.run(" in b and "open_async" in b for b in blocks), "no asyncio example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(readme), "exec"), {"__name__": "__readme__"})
    assert "backend:" in capsys.readouterr().out
    assert (tmp_path / "data.bin").read_bytes() == b"hello"
    assert (tmp_path / "wal").is_dir()
