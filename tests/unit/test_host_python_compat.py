# -*- coding: utf-8 -*-
"""Host-side code must run on Python 3.8 (RHEL 8 and 9 hosts), but the tests run on 3.11, where
code that 3.8 rejects works fine. These checks read the source and catch what 3.8 would refuse:
syntax newer than 3.8, built-in generics and `X | Y` evaluated in annotations, and standard
library names that 3.8 does not have."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOST_FILES = sorted(p for d in ("plugins/modules", "plugins/module_utils") for p in (ROOT / d).rglob("*.py"))
NEW_MODULES = {"tomllib", "zoneinfo", "graphlib"}
NEW_METHODS = {"removeprefix", "removesuffix", "is_relative_to", "with_stem"}
BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}


def _annotations(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    yield arg.annotation
            if node.returns is not None:
                yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation


def problems(path):
    source = path.read_text()
    tree = ast.parse(source, str(path), feature_version=(3, 8))
    postponed = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                    and any(a.name == "annotations" for a in n.names) for n in tree.body)
    found = []
    if not postponed:
        for ann in _annotations(tree):
            for node in ast.walk(ann):
                if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                        and node.value.id in BUILTIN_GENERICS:
                    found.append("line %d: %s[...] in an annotation" % (node.lineno, node.value.id))
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
                    found.append("line %d: X | Y in an annotation" % node.lineno)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += ["line %d: import %s" % (node.lineno, a.name) for a in node.names
                      if a.name.split(".")[0] in NEW_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in NEW_MODULES:
            found.append("line %d: from %s import" % (node.lineno, node.module))
        elif isinstance(node, ast.Attribute) and node.attr in NEW_METHODS:
            found.append("line %d: .%s() is newer than Python 3.8" % (node.lineno, node.attr))
    return found


def test_there_is_host_code_to_check():
    assert len(HOST_FILES) > 5


@pytest.mark.parametrize("path", HOST_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_host_code_runs_on_python_38(path):
    assert problems(path) == []


def test_the_checker_catches_what_38_rejects(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import tomllib\ndef f(a: list[int]) -> int | None:\n    return 'x'.removeprefix('y')\n")
    assert len(problems(bad)) == 4
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=(3, 8))
