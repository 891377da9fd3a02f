"""The bindings against include/rio.h: every rio_* function declared with the
right arity and compatible types, struct layouts identical to the C
compiler's, constants equal, opaque handle types."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from typing import Dict, List, Tuple

import pytest

import rio
from rio import _lib as L

from conftest import HEADER

STRUCTS = {
    "rio_runtime_config_t": L.rio_runtime_config_t,
    "rio_capabilities_t": L.rio_capabilities_t,
    "rio_op_t": L.rio_op_t,
    "rio_wal_config_t": L.rio_wal_config_t,
    "rio_slice_t": L.rio_slice_t,
    "rio_fault_t": L.rio_fault_t,
    "rio_metrics_t": L.rio_metrics_t,
    "rio_op_metrics_t": L.rio_op_metrics_t,
}

CALLBACKS = {"rio_log_callback_t": L.rio_log_callback_t}

HANDLES = {
    "rio_runtime_t": L.rio_runtime_t,
    "rio_file_t": L.rio_file_t,
    "rio_wal_t": L.rio_wal_t,
    "rio_wal_reader_t": L.rio_wal_reader_t,
}


def _header_text() -> str:
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # block comments
    text = re.sub(r"//[^\n]*", " ", text)
    return text


def parse_prototypes() -> Dict[str, Tuple[str, List[str]]]:
    """name -> (return type, [parameter declarations]) for every rio_* function."""
    text = re.sub(r"(?m)^\s*#.*$", " ", _header_text())  # preprocessor lines
    text = text.replace('extern "C" {', " ")
    protos: Dict[str, Tuple[str, List[str]]] = {}
    pat = re.compile(r"([A-Za-z_][\w\s\*]*?)\b(rio_\w+)\s*\(([^;{}()]*)\)\s*;")
    for m in pat.finditer(text):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        ret = " ".join(ret.split())
        if ret.startswith("typedef"):
            continue
        plist = [" ".join(p.split()) for p in params.split(",")]
        if plist == ["void"] or plist == [""]:
            plist = []
        protos[name] = (ret, plist)
    return protos


def parse_defines() -> Dict[str, int]:
    out: Dict[str, int] = {}
    for m in re.finditer(r"#define\s+(RIO_\w+)\s+(.+)", _header_text()):
        expr = m.group(2).strip()
        if re.fullmatch(r"[0-9xXa-fA-FuUlL()<<\s+|-]+", expr):
            expr = re.sub(r"(?<=[0-9a-fA-F])[uUlL]+", "", expr)
            try:
                out[m.group(1)] = int(eval(expr, {"__builtins__": {}}))  # noqa: S307
            except Exception:
                pass
    return out


PROTOS = parse_prototypes()

INT_TYPES = {
    "int": ctypes.c_int,
    "uint32_t": ctypes.c_uint32,
    "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    "size_t": ctypes.c_size_t,
    "bool": ctypes.c_bool,
}


def _base_type(decl: str) -> Tuple[str, int]:
    """'const rio_wal_t *w' -> ('rio_wal_t', 1); 'size_t n' -> ('size_t', 0)."""
    stars = decl.count("*")
    words = decl.replace("*", " ").split()
    words = [w for w in words if w not in ("const", "struct", "volatile")]
    if len(words) >= 2 and decl.strip() not in INT_TYPES:
        words = words[:-1]  # drop the parameter name
    return " ".join(words), stars


def _is_pointer_type(t: object) -> bool:
    return t in (ctypes.c_void_p, ctypes.c_char_p) or (
        isinstance(t, type) and issubclass(t, ctypes._Pointer)
    )


def test_header_parsed() -> None:
    assert "rio_file_open" in PROTOS and "rio_version" in PROTOS, PROTOS.keys()
    assert len(PROTOS["rio_file_open"][1]) == 5


@pytest.mark.parametrize("name", sorted(PROTOS))
def test_function_declared_with_header_arity(name: str) -> None:
    assert name in L.SIGNATURES, f"{name} is in include/rio.h but not declared in rio/_lib.py"
    restype, argtypes = L.SIGNATURES[name]
    ret, params = PROTOS[name]
    assert len(argtypes) == len(params), f"{name}: header has {len(params)} params {params}, binding {len(argtypes)}"
    # The function object itself carries the declaration.
    fn = getattr(L.lib, name)
    if name not in L.MISSING:
        assert list(fn.argtypes) == list(argtypes)
        assert fn.restype is restype
    # Types: integers of the same width and signedness, pointers for pointers,
    # and the distinct opaque type for handle pointers.
    for decl, ctype in zip(params, argtypes):
        base, stars = _base_type(decl)
        if stars:
            assert _is_pointer_type(ctype), f"{name}: {decl!r} is a pointer, binding has {ctype}"
            if base in HANDLES and stars == 1:
                assert ctype is ctypes.POINTER(HANDLES[base]), f"{name}: {decl!r} must be POINTER({base})"
            if base in STRUCTS and stars == 1:
                assert ctype is ctypes.POINTER(STRUCTS[base]), f"{name}: {decl!r} must be POINTER({base})"
        elif base in CALLBACKS:
            assert ctype is CALLBACKS[base], f"{name}: {decl!r} must be {base}"
        else:
            assert base in INT_TYPES, f"{name}: unexpected parameter type {decl!r}"
            assert ctypes.sizeof(ctype) == ctypes.sizeof(INT_TYPES[base]), f"{name}: {decl!r} vs {ctype}"
            assert ctype is INT_TYPES[base] or (
                ctypes.sizeof(ctype) == ctypes.sizeof(INT_TYPES[base])
                and (ctype(-1).value < 0) == (INT_TYPES[base](-1).value < 0)
            ), f"{name}: {decl!r} vs {ctype}"
    rbase, rstars = _base_type(ret + " x")
    if ret == "void":
        assert restype is None, f"{name} returns void"
    elif rstars:
        assert _is_pointer_type(restype), f"{name} returns {ret}"
    else:
        assert ctypes.sizeof(restype) == ctypes.sizeof(INT_TYPES[rbase]), f"{name} returns {ret}"


@pytest.mark.parametrize("name", sorted(L.HOT_SIGNATURES))
def test_hot_twin_matches_declaration(name: str) -> None:
    """A hot-path twin differs from the declaration only by taking the
    handle as c_void_p: same arity, widths, signedness and restype, and it
    is a separate function object (the declared one keeps its types)."""
    restype, argtypes = L.SIGNATURES[name]
    hot_restype, hot_argtypes = L.HOT_SIGNATURES[name]
    assert hot_restype is restype
    assert len(hot_argtypes) == len(argtypes)
    assert argtypes[0] is ctypes.POINTER(L.rio_file_t) and hot_argtypes[0] is ctypes.c_void_p
    for declared, hot in zip(argtypes[1:], hot_argtypes[1:]):
        assert ctypes.sizeof(hot) == ctypes.sizeof(declared)
        assert _is_pointer_type(hot) == _is_pointer_type(declared)
        if not _is_pointer_type(hot):
            assert (hot(-1).value < 0) == (declared(-1).value < 0)
    fn = getattr(L.hot, name)
    assert fn is not getattr(L.lib, name)
    assert list(fn.argtypes) == list(hot_argtypes) and fn.restype is hot_restype
    assert list(getattr(L.lib, name).argtypes) == list(argtypes)


def test_every_declaration_is_in_header() -> None:
    extra = sorted(set(L.SIGNATURES) - set(PROTOS))
    assert not extra, f"declared in the bindings but missing from include/rio.h: {extra}"


def test_every_declared_function_is_exported() -> None:
    assert not L.MISSING, f"{L.LIBRARY_PATH} does not export {L.MISSING}"


def test_handles_are_distinct_opaque_structures() -> None:
    types = list(HANDLES.values())
    assert len(set(types)) == len(types)
    for t in types:
        assert issubclass(t, ctypes.Structure) and t._fields_ == []
    for name, (_, argtypes) in L.SIGNATURES.items():
        for a in argtypes:
            if a is ctypes.c_void_p:
                # Only data buffers are void*, never handles.
                assert any(k in name for k in ("read_at", "write_at", "write_durable", "buf_", "wal_append", "log_callback")), name


def _defines_struct(text: str, name: str) -> bool:
    """`} name;` ends a struct typedef; `typedef struct tag name;` aliases one."""
    return bool(re.search(r"\}\s*%s\s*;|typedef\s+struct\s+\w+\s+%s\s*;" % (name, name), text))


@pytest.mark.parametrize("struct", sorted(STRUCTS))
def test_struct_in_header(struct: str) -> None:
    assert _defines_struct(_header_text(), struct), f"{struct} is not defined in include/rio.h"


def _c_layouts() -> Dict[str, Dict[str, int]]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to compare struct layouts with")
    text = _header_text()
    lines = ['#include <stdio.h>', '#include <stddef.h>', f'#include "{HEADER}"', "int main(void) {"]
    for sname, st in STRUCTS.items():
        if not _defines_struct(text, sname):
            continue
        lines.append(f'printf("{sname} sizeof %zu\\n", sizeof({sname}));')
        lines.append(f'printf("{sname} alignof %zu\\n", _Alignof({sname}));')
        for fname, _ in st._fields_:
            lines.append(f'printf("{sname} {fname} %zu %zu\\n", offsetof({sname}, {fname}), sizeof((({sname}*)0)->{fname}));')
    lines.append("return 0; }")
    import tempfile
    import os

    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "layout.c")
        exe = os.path.join(d, "layout")
        with open(src, "w") as f:
            f.write("\n".join(lines))
        subprocess.run([cc, "-std=c11", "-o", exe, src], check=True, capture_output=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    layouts: Dict[str, Dict[str, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        d = layouts.setdefault(parts[0], {})
        if parts[1] in ("sizeof", "alignof"):
            d["__" + parts[1]] = int(parts[2])
        else:
            d[parts[1]] = (int(parts[2]), int(parts[3]))  # type: ignore[assignment]
    return layouts


@pytest.mark.parametrize("struct", sorted(STRUCTS))
def test_struct_layout_matches_c(struct: str) -> None:
    layouts = _c_layouts()
    assert struct in layouts, f"{struct} is not defined in include/rio.h"
    c = layouts[struct]
    st = STRUCTS[struct]
    assert ctypes.sizeof(st) == c["__sizeof"], f"sizeof({struct})"
    assert ctypes.alignment(st) == c["__alignof"], f"alignof({struct})"
    for fname, ftype in st._fields_:
        off, size = c[fname]  # type: ignore[misc]
        assert getattr(st, fname).offset == off, f"{struct}.{fname} offset"
        assert ctypes.sizeof(ftype) == size, f"{struct}.{fname} size"


def test_struct_fields_cover_header() -> None:
    """Every field the header declares is in the ctypes struct (same order)."""
    text = _header_text()
    for sname, st in STRUCTS.items():
        m = re.search(r"typedef struct\s*\w*\s*\{([^}]*)\}\s*%s\s*;" % sname, text)
        if not m:
            continue
        names = re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*;", m.group(1))
        assert names == [f for f, _ in st._fields_], sname


def test_constants_match_header() -> None:
    defines = parse_defines()
    assert defines, "no #define RIO_* parsed"
    ours = {k: v for k, v in vars(L).items() if k.startswith("RIO_") and isinstance(v, int)}
    for name, value in ours.items():
        assert name in defines, f"{name} is not in include/rio.h"
        assert defines[name] == value, f"{name}: header {defines[name]}, binding {value}"
    for name, value in defines.items():
        if name.startswith(("RIO_OPEN_", "RIO_BACKEND_", "RIO_OP_", "RIO_WAL_", "RIO_FAULT_",
                            "RIO_CRASH_", "RIO_LOG_", "RIO_BUF_", "RIO_IOV_",
                            "RIO_METRIC_")):
            assert ours.get(name) == value, f"{name} = {value} is not in the bindings"


def test_version_matches_header() -> None:
    defines = parse_defines()
    v = f"{defines['RIO_VERSION_MAJOR']}.{defines['RIO_VERSION_MINOR']}.{defines['RIO_VERSION_PATCH']}"
    assert rio.version() == v
