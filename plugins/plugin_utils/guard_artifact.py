# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guard's code as one file: a Python zip application built from the collection's own
host-side library (plugins/module_utils), for ``idmapguard.storage.guard_artifact``.

What goes in is found by reading the imports (``ast``) of the entry module
(``copy_cache_guard/zipapp_main.py``: the ``guard`` and ``prune`` subcommands) and of everything it
reaches, not from a hand-kept list: when the library's modules move, the archive follows.
Anything the guard reaches outside the collection and the standard library (``ansible.*``, a
third-party package) is refused, because the host has only its Python.

The bytes depend on the files' contents only: entries sorted, fixed timestamps and modes, and
stored uncompressed, so the archive (and its sha256) is the same on every controller and in the
execution environment, whatever its zlib.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import re
import zipfile
from typing import Dict, Iterable, List, Sequence, Set, Tuple

PACKAGE = "ansible_collections.idmapguard.storage.plugins.module_utils"
# The module whose ``main`` dispatches the subcommands (plugins/module_utils/copy_cache_guard/zipapp_main.py).
ENTRY_MODULE = PACKAGE + ".copy_cache_guard.zipapp_main"
# Inside the archive: the identity the running guard reports (artifact.py reads it back).
MANIFEST = "idmapguard-artifact.json"
# The zip format's earliest timestamp: no build time, no file time in the bytes.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
MAIN = (
    "# idmapguard guard artifact: python3 THIS.pyz {guard|prune} ... (built by idmapguard.storage.guard_artifact)\n"
    "import sys\n"
    "from %s import main\n"
    "sys.exit(main(sys.argv[1:]))\n" % ENTRY_MODULE
)
# The name of the file on a host: version and the first hex digits of the sha256, so a new
# build never overwrites the archive a running guard still imports from.
FILE_NAME = "idmapguard-guard-{version}-{short}.pyz"
SHORT_SHA = 12


class ArtifactError(Exception):
    """The archive cannot be built (an import outside the standard library, a missing module)."""


class Artifact:
    """One built archive."""

    def __init__(self, data: bytes, version: str, modules: List[str]) -> None:
        self.data = data
        self.version = version
        self.modules = modules
        self.sha256 = hashlib.sha256(data).hexdigest()

    @property
    def file_name(self) -> str:
        return FILE_NAME.format(version=self.version, short=self.sha256[:SHORT_SHA])


def _module_file(module_utils: str, dotted: str) -> str:
    """The file of a module or package under ``module_utils``, or '' when there is none."""
    parts = dotted.split(".")
    base = os.path.join(module_utils, *parts)
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return ""


def _relative(dotted: str) -> str:
    """``ansible_collections...module_utils.a.b`` -> ``a.b`` ('' for the package itself)."""
    if dotted == PACKAGE:
        return ""
    return dotted[len(PACKAGE) + 1:] if dotted.startswith(PACKAGE + ".") else dotted


def _current_package(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def imported_names(source: str, module: str, is_package: bool) -> List[Tuple[str, List[str]]]:
    """Every import of ``source`` (module ``module``) as (absolute module, names imported from
    it); relative imports are made absolute. Imports inside functions and ``try`` count too."""
    found: List[Tuple[str, List[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = _current_package(module, is_package).split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([target] if target else []))
            found.append((target, [alias.name for alias in node.names]))
    return found


def _outside(name: str, stdlib: Iterable[str]) -> bool:
    top = name.split(".")[0]
    return top not in stdlib and top != "__future__"


def closure(module_utils: str, entry: str = ENTRY_MODULE, stdlib: Iterable[str] = ()) -> List[str]:
    """The modules of the collection that ``entry`` reaches, as paths relative to
    ``module_utils`` (sorted, package ``__init__.py`` files included).

    Raises ArtifactError for an import that is neither the standard library (``stdlib``: top
    level names) nor a module of this collection's module_utils.
    """
    stdlib = set(stdlib)
    todo = [_relative(entry)]
    seen: Set[str] = set()
    files: Set[str] = set()
    while todo:
        dotted = todo.pop()
        if dotted in seen:
            continue
        seen.add(dotted)
        path = _module_file(module_utils, dotted) if dotted else ""
        if dotted and not path:
            raise ArtifactError("the guard imports %s.%s, which is not in %s" % (PACKAGE, dotted, module_utils))
        # every package on the way in: it is imported first
        parts = dotted.split(".") if dotted else []
        for depth in range(1, len(parts)):
            package = ".".join(parts[:depth])
            if _module_file(module_utils, package).endswith("__init__.py"):
                todo.append(package)
        if not path:
            continue
        files.add(os.path.relpath(path, module_utils))
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        full = PACKAGE + "." + dotted
        for target, names in imported_names(source, full, path.endswith("__init__.py")):
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                rel = _relative(target)
                if rel:
                    todo.append(rel)
                # ``from package import name``: name may be a submodule
                for name in names:
                    sub = (rel + "." + name) if rel else name
                    if _module_file(module_utils, sub):
                        todo.append(sub)
            elif _outside(target, stdlib):
                raise ArtifactError("%s imports %s: the guard runs on a host's Python with the standard library only"
                                    % (full, target))
    return sorted(files)


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # unix, so the mode below is read as one
    info.external_attr = 0o100644 << 16
    return info


def _namespace_packages() -> List[str]:
    """``ansible_collections/__init__.py`` ... ``module_utils/__init__.py``: regular packages in
    the archive, so a host's own ansible_collections never mixes in (and zipimport needs no
    namespace-package support)."""
    parts = PACKAGE.split(".")
    return ["/".join(parts[:depth]) + "/__init__.py" for depth in range(1, len(parts) + 1)]


def build(module_utils: str, version: str, stdlib: Iterable[str]) -> Artifact:
    """The archive of the guard as the collection at ``module_utils`` has it."""
    if not re.match(r"^[0-9A-Za-z.+_-]+$", version or ""):
        raise ArtifactError("not a version for a file name: %r" % version)
    modules = closure(module_utils, ENTRY_MODULE, stdlib)
    prefix = PACKAGE.replace(".", "/")
    entries: Dict[str, bytes] = {name: b"" for name in _namespace_packages()}
    for rel in modules:
        with open(os.path.join(module_utils, rel), "rb") as handle:
            entries[prefix + "/" + rel.replace(os.sep, "/")] = handle.read()
    entries["__main__.py"] = MAIN.encode("utf-8")
    manifest = {"name": "idmapguard-guard", "version": version, "entry": ENTRY_MODULE,
                "modules": modules}
    entries[MANIFEST] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            archive.writestr(_entry(name), entries[name])
    return Artifact(buffer.getvalue(), version, modules)


def stale_files(names: Sequence[str], keep: str) -> List[str]:
    """Archives of earlier builds among ``names`` (a directory listing), all but ``keep``."""
    pattern = re.compile(r"^" + re.escape(FILE_NAME.split("{", 1)[0]) + r".+\.pyz$")
    return sorted(name for name in names if pattern.match(name) and name != keep)
