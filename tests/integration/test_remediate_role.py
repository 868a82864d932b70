"""The remediate role over real SSH: check mode shows the plan, a run frees inodes per host,
the threshold policy leaves a host alone, and the guard service installs (unit, parameter file,
its one archive with the sha256 this checkout builds, entry points) and runs from its unit's
ExecStart; a second run changes nothing."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import remediate_support as rs

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  roles:
    - role: idmapguard.storage.remediate
      vars:
        idmapguard_remediate_policy: "{policy}"
        idmapguard_remediate_min_age: 0
        idmapguard_remediate_guard: {guard}
        idmapguard_remediate_guard_enable: false
        idmapguard_remediate_guard_budget_percent: 0
        idmapguard_remediate_guard_grace: 0
        idmapguard_remediate_keep_maps:
          - uidmap: "{keep}"
  post_tasks:
    - name: Result for the test
      ansible.builtin.debug:
        msg: "RESULT {{{{ inventory_hostname }}}} {{{{ idmapguard_remediate | to_json }}}}"
"""


KEEP = rs.noncontig_map(50)  # a map the role part never uses


def ansible_playbook(inv, playbook, *extra):
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(binary):
        binary = shutil.which("ansible-playbook") or "ansible-playbook"
    proc = subprocess.run([binary, "-i", inv, playbook] + list(extra), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    results = {}
    for match in re.finditer(r'"msg": "RESULT (\S+) (.*)"\n', proc.stdout):
        results[match.group(1)] = json.loads(match.group(2).replace('\\"', '"'))
    return proc.stdout, results


def _garbage(host, copies):
    tag = host.image(files=100)
    for index in range(copies):
        idmap = rs.noncontig_map(index)
        host.podman("create", "--name", "r%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true", check=True)
        host.podman("rm", "r%d" % index, check=True)


def test_role_check_mode_run_threshold_and_guard(lab_host, inventory, tmp_path):
    hosts = [lab_host("bookworm"), lab_host("trixie")]
    for host in hosts:
        _garbage(host, 3)
    inv = inventory(*hosts)
    book = tmp_path / "remediate.yml"

    # threshold policy: the stores are far below 80% inode use, nothing happens.
    book.write_text(PLAYBOOK.format(policy="threshold", guard="false", keep=KEEP))
    _out, results = ansible_playbook(inv, str(book))
    for host in hosts:
        assert results[host.name]["pruned"] is False and rs.mapped_copy_count(host) == 3

    # check mode: the plan, nothing changed
    book.write_text(PLAYBOOK.format(policy="always", guard="false", keep=KEEP))
    out, results = ansible_playbook(inv, str(book), "--check")
    for host in hosts:
        assert len(results[host.name]["plan"]) == 3 and int(results[host.name]["inodes_freed"]) > 300
        assert rs.mapped_copy_count(host) == 3
    assert "would free" in out

    # the run, with the guard installed (its timer is not started: lab hosts run no systemd)
    before = {host.name: host.inodes_used() for host in hosts}
    # an archive of an earlier build, and the library tree of earlier versions: both go
    old_archive = "/usr/local/lib/idmapguard/idmapguard-guard-0.0.9-0123456789ab.pyz"
    os.makedirs(hosts[0].path("/usr/local/lib/idmapguard/ansible_collections/idmapguard"))
    with open(hosts[0].path(old_archive), "wb") as handle:
        handle.write(b"PK\x05\x06" + bytes(18))
    book.write_text(PLAYBOOK.format(policy="always", guard="true", keep=KEEP))
    out, results = ansible_playbook(inv, str(book))
    for host in hosts:
        freed = int(results[host.name]["inodes_freed"])
        assert before[host.name] - host.inodes_used() == freed > 300
        assert rs.mapped_copy_count(host) == 0
        assert re.search(r"%s: freed %d inodes" % (re.escape(host.name), freed), out)

    # the guard service: its unit (lab hosts run no systemd: the content is checked, and its
    # ExecStart run by hand), the parameter file with the module's names, the entry points.
    host = hosts[0]
    unit = open(host.path("/etc/systemd/system/idmapguard-guard.service")).read()
    for line in ("Type=simple", "Restart=on-failure", "Nice=19", "IOSchedulingClass=idle",
                 "CPUSchedulingPolicy=batch", "WantedBy=multi-user.target"):
        assert re.search(r"^%s$" % re.escape(line), unit, re.M), (line, unit)
    execstart = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
    assert execstart == ["/usr/local/sbin/idmapguard-guard", "--config", "/etc/idmapguard/guard.json", "watch"]
    assert not os.path.exists(host.path("/etc/systemd/system/idmapguard-prune.timer"))
    params = json.load(open(host.path("/etc/idmapguard/guard.json")))
    assert params == {"location": {"graphroot": rs.STORE, "runroot": "/run/containers/storage", "imagestore": None,
                                   "transient_store": False, "additional_image_stores": [], "driver": "overlay"},
                      "images": [],
                      "keep_maps": [{"uidmap": KEEP}], "budget_percent": 0.0, "low_free_percent": 10.0,
                      "grace": 0.0, "state_file": "/var/lib/idmapguard/guard-state.json", "metrics_dir": "auto"}
    # the guard's code: one archive, the bytes this checkout builds, named by version and sha256
    with open(os.path.join(rs.REPO, "galaxy.yml")) as handle:
        version = re.search(r"^version: *(\S+)", handle.read(), re.M).group(1)
    built = rs.build_archive(version=version)
    archive = "/usr/local/lib/idmapguard/" + built.file_name
    assert sorted(os.listdir(host.path("/usr/local/lib/idmapguard"))) == [built.file_name]
    with open(host.path(archive), "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == built.sha256
    # what the guard tasks did, published after them: files only, no unit read, no state
    did = results[host.name]["guard"]
    assert (did["installed"], did["enable"], did["unit"], did["state"]) == (True, False, {}, None), did
    assert did["artifact"]["sha256"] == built.sha256 and did["status_wait"] == 60, did
    assert "copy_cache_guard/zipapp_main.py" in built.modules and "store/store.py" in built.modules
    entry = open(host.path("/usr/local/sbin/idmapguard-guard")).read()
    assert entry.startswith("#!/bin/sh") and entry.splitlines()[-1] == 'exec /usr/bin/python3 %s guard "$@"' % archive
    _garbage(host, 2)
    host.podman("create", "--name", "kept", "--uidmap", KEEP, "--gidmap", KEEP, host.image(files=100), "true", check=True)
    host.podman("rm", "kept", check=True)
    proc = host.exec(execstart + ["--seconds", "3"], check=True)
    evicted = [json.loads(line) for line in proc.stdout.splitlines() if '"evicted"' in line]
    assert len(evicted) == 2 and rs.mapped_copy_count(host) == 1, proc.stdout
    status = json.loads(host.exec(["/usr/local/sbin/idmapguard-guard", "status"], check=True).stdout)
    assert status["evictions"]["total"] == 2 and status["cache"]["copies"] == 0
    # the running guard says which build it is
    assert status["artifact"] == {"path": archive, "sha256": built.sha256, "version": version}, status

    # a second role run changes nothing
    out, results = ansible_playbook(inv, str(book))
    assert all(int(r["inodes_freed"]) == 0 for r in results.values())
    assert re.search(r"changed=0 ", out), out[-2000:]
