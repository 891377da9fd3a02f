"""help() is useful: every public class, method and property of the package
has a docstring, and the main classes show an example."""

from __future__ import annotations

import inspect
import pydoc
from typing import List

import pytest

import rio


def public_classes() -> List[type]:
    return [obj for name in rio.__all__ if inspect.isclass(obj := getattr(rio, name))]


@pytest.mark.parametrize("cls", public_classes(), ids=lambda c: c.__name__)
def test_public_members_documented(cls: type) -> None:
    assert (cls.__doc__ or "").strip(), f"rio.{cls.__name__} has no docstring"
    undocumented = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not (callable(member) or isinstance(member, property)):
            continue
        if not (inspect.getdoc(member) or "").strip():
            undocumented.append(name)
    assert not undocumented, f"rio.{cls.__name__}: no docstring on {undocumented}"


def test_public_functions_documented() -> None:
    funcs = [n for n in rio.__all__ if inspect.isfunction(getattr(rio, n))]
    assert funcs
    assert [n for n in funcs if not (getattr(rio, n).__doc__ or "").strip()] == []


@pytest.mark.parametrize("cls", [rio.File, rio.Runtime, rio.Wal], ids=lambda c: c.__name__)
def test_help_shows_methods_and_docs(cls: type) -> None:
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    for name in ("close", "__enter__"):
        assert name in text
    public = [n for n, m in vars(cls).items() if not n.startswith("_") and callable(m)]
    for name in public:
        assert f"{name}(" in text, f"help(rio.{cls.__name__}) does not show {name}"
    if cls is rio.File:
        assert "Example" in text and "readinto_at(buf, 0)" in text
