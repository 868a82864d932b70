"""The remediate role over real SSH: check mode shows the plan, a run frees inodes per host,
the threshold policy leaves a host alone, and the guard installs and runs from its unit."""
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
        idmapguard_remediate_guard_threshold: 0
        idmapguard_remediate_guard_min_age: 0
  post_tasks:
    - name: Result for the test
      ansible.builtin.debug:
        msg: "RESULT {{{{ inventory_hostname }}}} {{{{ idmapguard_remediate | to_json }}}}"
"""


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
    book.write_text(PLAYBOOK.format(policy="threshold", guard="false"))
    _out, results = ansible_playbook(inv, str(book))
    for host in hosts:
        assert results[host.name]["pruned"] is False and rs.mapped_copy_count(host) == 3

    # check mode: the plan, nothing changed
    book.write_text(PLAYBOOK.format(policy="always", guard="false"))
    out, results = ansible_playbook(inv, str(book), "--check")
    for host in hosts:
        assert len(results[host.name]["plan"]) == 3 and int(results[host.name]["inodes_freed"]) > 300
        assert rs.mapped_copy_count(host) == 3
    assert "would free" in out

    # the run, with the guard installed (its timer is not started: lab hosts run no systemd)
    before = {host.name: host.inodes_used() for host in hosts}
    book.write_text(PLAYBOOK.format(policy="always", guard="true"))
    out, results = ansible_playbook(inv, str(book))
    for host in hosts:
        freed = int(results[host.name]["inodes_freed"])
        assert before[host.name] - host.inodes_used() == freed > 300
        assert rs.mapped_copy_count(host) == 0
        assert re.search(r"%s: freed %d inodes" % (re.escape(host.name), freed), out)

    # the guard runs from its unit's ExecStart, with the library the role installed
    host = hosts[0]
    _garbage(host, 2)
    unit = open(host.path("/etc/systemd/system/idmapguard-prune.service")).read()
    execstart = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
    assert execstart[0] == "/usr/local/sbin/idmapguard-prune"
    assert "OnUnitActiveSec=15min" in open(host.path("/etc/systemd/system/idmapguard-prune.timer")).read()
    proc = host.exec(execstart, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["removed"] == 2 and rs.mapped_copy_count(host) == 0

    # a second role run changes nothing
    out, results = ansible_playbook(inv, str(book))
    assert all(int(r["inodes_freed"]) == 0 for r in results.values())
    assert re.search(r"changed=0 ", out), out[-2000:]
