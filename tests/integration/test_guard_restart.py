"""The guard's one archive under systemd (issue 18 item 3): the remediate role with its defaults
on a bookworm lab host whose PID 1 is systemd. The service runs the archive this checkout builds
(sha256 in its state); a second run changes nothing and leaves the same process; a changed
parameter restarts it; a changed collection installs a new archive under a new name, the
wrappers point at it, the service restarts onto it and the earlier archive goes."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

import remediate_support as rs

LIB = "/usr/local/lib/idmapguard"
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  roles:
    - role: idmapguard.storage.remediate
      vars:
        idmapguard_remediate_guard: true
        idmapguard_remediate_guard_budget_percent: {budget}
"""


def run_role(inv, book, collections=None):
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    env = dict(os.environ)
    if collections:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections
    proc = subprocess.run([binary if os.path.exists(binary) else "ansible-playbook", "-i", inv, book],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def main_pid(host) -> int:
    assert host.exec(["systemctl", "is-active", "idmapguard-guard"]).stdout.strip() == "active"
    return int(host.exec(["systemctl", "show", "-p", "MainPID", "--value", "idmapguard-guard"],
                         check=True).stdout.strip())


def running_artifact(host, pid: int) -> dict:
    """The archive the guard with PID says it runs (its state, written at its first pass)."""
    deadline = time.time() + 120
    status = {}
    while time.time() < deadline:
        proc = host.exec(["/usr/local/sbin/idmapguard-guard", "status"])
        status = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
        if status.get("pid") == pid and status.get("artifact"):
            return status["artifact"]
        time.sleep(1)
    raise AssertionError("guard pid %d wrote no state with its archive: %s" % (pid, status))


def collection_copy(root: str) -> str:
    """This collection under ROOT/ansible_collections/idmapguard/storage, with one guard module changed."""
    dest = os.path.join(root, "ansible_collections", "idmapguard", "storage")
    os.makedirs(dest)
    for name in ("galaxy.yml", "meta", "plugins", "roles", "playbooks"):
        src = os.path.join(rs.REPO, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, name), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, os.path.join(dest, name))
    with open(os.path.join(dest, "plugins", "module_utils", "copy_cache_guard", "service.py"), "a") as handle:
        handle.write("# another build\n")
    return root


def test_archive_restart_only_on_change_and_atomic_replace(lab_host, inventory, tmp_path):
    host = lab_host("bookworm", init="systemd")
    host.image(files=20)
    inv = inventory(host)
    book = tmp_path / "remediate.yml"
    with open(os.path.join(rs.REPO, "galaxy.yml")) as handle:
        version = re.search(r"^version: *(\S+)", handle.read(), re.M).group(1)
    built = rs.build_archive(version=version)
    archive = LIB + "/" + built.file_name

    # 1. installed and started by systemd, running this checkout's archive
    book.write_text(PLAYBOOK.format(budget=10))
    run_role(inv, str(book))
    assert host.exec(["systemctl", "is-enabled", "idmapguard-guard"]).stdout.strip() == "enabled"
    first = main_pid(host)
    assert running_artifact(host, first) == {"path": archive, "sha256": built.sha256, "version": version}
    with open(host.path(archive), "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == built.sha256

    # 2. nothing changed: no task changed, the same process runs
    out = run_role(inv, str(book))
    assert re.search(r"changed=0 ", out), out[-2000:]
    assert main_pid(host) == first

    # 3. a parameter changed: restarted, same archive
    book.write_text(PLAYBOOK.format(budget=7))
    run_role(inv, str(book))
    second = main_pid(host)
    assert second != first
    assert json.load(open(host.path("/etc/idmapguard/guard.json")))["budget_percent"] == 7.0
    assert running_artifact(host, second)["sha256"] == built.sha256

    # 4. another build of the collection: a new archive under a new name, the service restarted
    #    onto it, the earlier archive removed after the restart
    other = collection_copy(str(tmp_path / "collections"))
    rebuilt = rs.build_archive(os.path.join(other, "ansible_collections", "idmapguard", "storage", "plugins",
                                            "module_utils"), version=version)
    assert rebuilt.sha256 != built.sha256
    run_role(inv, str(book), collections=other)
    third = main_pid(host)
    assert third != second
    assert running_artifact(host, third) == {"path": LIB + "/" + rebuilt.file_name, "sha256": rebuilt.sha256,
                                             "version": version}
    assert sorted(os.listdir(host.path(LIB))) == [rebuilt.file_name]
    wrapper = open(host.path("/usr/local/sbin/idmapguard-prune")).read().splitlines()[-1]
    assert wrapper == 'exec /usr/bin/python3 %s/%s prune "$@"' % (LIB, rebuilt.file_name)
    print("guard pids %d -> %d (parameter) -> %d (new archive %s)" % (first, second, third, rebuilt.file_name))
