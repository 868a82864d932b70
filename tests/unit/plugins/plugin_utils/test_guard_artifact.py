# -*- coding: utf-8 -*-
"""plugin_utils.guard_artifact: which modules go into the guard's archive (read from imports),
that it is refused when the guard reaches past the standard library, that its bytes depend on
file contents only, and that the archive runs and knows which build it is."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.idmapguard.storage.plugins.plugin_utils import guard_artifact as ga

MODULE_UTILS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..",
                            "plugins", "module_utils")
P = ga.PACKAGE
STDLIB = sys.stdlib_module_names


def tree(root, files):
    for rel, text in files.items():
        path = os.path.join(str(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
    return str(root)


ENTRY = "copy_cache_guard/zipapp_main.py"

CLOSURE_CASES = [
    # (name, files besides the entry's package __init__, entry source, expected modules or error text)
    ("absolute from-import of a module",
     {"a.py": "import os\n", "unused.py": ""},
     "from %s.a import x\n" % P, ["a.py"]),
    ("from the package import a submodule",
     {"a.py": ""},
     "from %s import a\n" % P, ["a.py"]),
    ("a package's __init__ comes along with its module",
     {"store/__init__.py": "", "store/s.py": "from .t import y\n", "store/t.py": ""},
     "from %s.store.s import S\n" % P, ["store/__init__.py", "store/s.py", "store/t.py"]),
    ("relative import two levels up",
     {"store/__init__.py": "", "store/s.py": "from ..b import z\n", "b.py": ""},
     "from %s.store import s\n" % P, ["b.py", "store/__init__.py", "store/s.py"]),
    ("an import inside a function counts",
     {"late.py": ""},
     "def f():\n    from %s import late\n" % P, ["late.py"]),
    ("plain import statement of a collection module",
     {"c.py": ""},
     "import %s.c\n" % P, ["c.py"]),
    ("ansible's own library is refused",
     {}, "from ansible.module_utils.basic import AnsibleModule\n", "imports ansible.module_utils.basic"),
    ("a third-party package is refused",
     {}, "import yaml\n", "imports yaml"),
    ("a collection module that does not exist is refused",
     {}, "from %s.gone import x\n" % P, "imports %s.gone" % P),
]


@pytest.mark.parametrize("name,files,entry,expected", CLOSURE_CASES, ids=[c[0] for c in CLOSURE_CASES])
def test_closure_follows_imports(tmp_path, name, files, entry, expected):
    del name
    files = dict(files, **{"copy_cache_guard/__init__.py": "", ENTRY: "from __future__ import annotations\n" + entry})
    root = tree(tmp_path, files)
    if isinstance(expected, str):
        with pytest.raises(ga.ArtifactError, match=expected.replace(".", r"\.")):
            ga.closure(root, stdlib=STDLIB)
        return
    assert ga.closure(root, stdlib=STDLIB) == sorted(expected + ["copy_cache_guard/__init__.py", ENTRY])


def test_the_real_guard_reaches_the_store_library_and_nothing_outside_module_utils():
    modules = ga.closure(MODULE_UTILS, stdlib=STDLIB)
    assert ENTRY in modules and "copy_cache_guard/cli.py" in modules and "copy_cache_guard/manual_prune.py" in modules
    assert "store/store.py" in modules and "store/__init__.py" in modules
    # module-only code (the verify side) stays out
    assert "verdict.py" not in modules and "canary.py" not in modules


def test_build_is_deterministic_and_ignores_file_times(tmp_path):
    first = ga.build(MODULE_UTILS, "1.2.3", STDLIB)
    root = str(tmp_path / "mu")
    import shutil
    shutil.copytree(MODULE_UTILS, root, ignore=shutil.ignore_patterns("__pycache__"))
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (1e9, 1e9))
    again = ga.build(root, "1.2.3", STDLIB)
    assert again.data == first.data and again.sha256 == first.sha256
    assert first.file_name == "idmapguard-guard-1.2.3-%s.pyz" % first.sha256[:12]
    # the version is part of the bytes; so is every module's content
    assert ga.build(MODULE_UTILS, "1.2.4", STDLIB).sha256 != first.sha256
    with open(os.path.join(root, "copy_cache_guard", "cli.py"), "a") as handle:
        handle.write("# changed\n")
    assert ga.build(root, "1.2.3", STDLIB).sha256 != first.sha256


def test_archive_layout(tmp_path):
    built = ga.build(MODULE_UTILS, "1.2.3", STDLIB)
    path = tmp_path / built.file_name
    path.write_bytes(built.data)
    with zipfile.ZipFile(str(path)) as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        manifest = json.loads(archive.read(ga.MANIFEST))
    assert names == sorted(names)
    assert all(i.date_time == ga.FIXED_DATE and i.compress_type == zipfile.ZIP_STORED for i in infos)
    assert "__main__.py" in names and "ansible_collections/__init__.py" in names
    assert "ansible_collections/idmapguard/storage/plugins/module_utils/__init__.py" in names
    assert manifest == {"name": "idmapguard-guard", "version": "1.2.3", "entry": ga.ENTRY_MODULE,
                        "modules": built.modules}


@pytest.mark.parametrize("version", ["", "1.0/../x", "1 0"])
def test_a_version_that_is_no_file_name_is_refused(version):
    with pytest.raises(ga.ArtifactError, match="not a version"):
        ga.build(MODULE_UTILS, version, STDLIB)


def test_the_archive_runs_its_subcommands_and_reports_its_identity(tmp_path):
    built = ga.build(MODULE_UTILS, "1.2.3", STDLIB)
    path = tmp_path / built.file_name
    path.write_bytes(built.data)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # no PYTHONPATH: only the archive
    usage = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, check=False)
    assert usage.returncode == 2 and "{guard|prune}" in usage.stderr
    for command, prog in (("guard", "idmapguard-guard"), ("prune", "idmapguard-prune")):
        proc = subprocess.run([sys.executable, str(path), command, "--help"], capture_output=True, text=True,
                              env=env, check=False)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: %s" % prog), proc.stderr
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from %s.copy_cache_guard.artifact import running_artifact; print(json.dumps(running_artifact()))" % P)
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True)
    assert json.loads(proc.stdout) == {"path": str(path), "sha256": built.sha256, "version": "1.2.3"}


STALE_CASES = [
    (["idmapguard-guard-0.1.0-aaaaaaaaaaaa.pyz", "idmapguard-guard-0.1.0-bbbbbbbbbbbb.pyz", "other.pyz", "x"],
     "idmapguard-guard-0.1.0-bbbbbbbbbbbb.pyz", ["idmapguard-guard-0.1.0-aaaaaaaaaaaa.pyz"]),
    (["idmapguard-guard-0.1.0-aaaaaaaaaaaa.pyz"], "idmapguard-guard-0.1.0-aaaaaaaaaaaa.pyz", []),
    ([], "idmapguard-guard-0.2.0-cccccccccccc.pyz", []),
]


@pytest.mark.parametrize("names,keep,expected", STALE_CASES)
def test_stale_files(names, keep, expected):
    assert ga.stale_files(names, keep) == expected
