"""The controller the integration tests run is the one an operator has: ansible-core and the
collections galaxy.yml declares, nothing more. The full "ansible" package once sat in the test
venv and its community.general hid that `ansible.builtin.filetree` is not in ansible-core: the
guard could not be installed from the execution environment, and no test noticed.

Runs with the environment `make` gives every integration test (ANSIBLE_COLLECTIONS_PATH, the
venv on PATH), through the same ansible-galaxy / ansible-doc the tests' playbooks use.
"""
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata

import ansible
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def tool(name: str) -> str:
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else (shutil.which(name) or name)


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300, check=False)


def declared() -> set:
    with open(os.path.join(REPO, "galaxy.yml")) as handle:
        galaxy = yaml.safe_load(handle)
    return {"%s.%s" % (galaxy["namespace"], galaxy["name"])} | set(galaxy.get("dependencies") or {})


def test_only_declared_collections_resolve():
    proc = run(tool("ansible-galaxy"), "collection", "list", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    # ansible-core's own collections (ansible.builtin, ansible._protomatter) live in its package
    core = os.path.dirname(ansible.__file__)
    found = {name for path, per_path in json.loads(proc.stdout).items()
             if not os.path.realpath(path).startswith(core + os.sep) for name in per_path}
    assert found == declared(), "the controller resolves collections galaxy.yml does not declare: %s" % sorted(
        found - declared())


def test_lookups_outside_ansible_core_do_not_resolve():
    # the redirect of ansible.builtin.filetree leads to community.general, which is not there
    for name in ("ansible.builtin.filetree", "community.general.filetree"):
        proc = run(tool("ansible-doc"), "-t", "lookup", name)
        assert proc.returncode != 0 or "not found" in (proc.stdout + proc.stderr).lower(), (name, proc.stdout[:300])
    proc = run(tool("ansible-doc"), "-t", "lookup", "ansible.builtin.fileglob")
    assert proc.returncode == 0, proc.stderr  # the check above can fail: ansible-doc works here


def test_no_full_ansible_package_in_the_venv():
    for dist in ("ansible", "molecule", "ansible-lint"):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        raise AssertionError("%s %s is installed in the test venv %s: it belongs in a tools venv "
                             "(requirements/tools/)" % (dist, version, sys.prefix))
    assert metadata.version("ansible-core")
