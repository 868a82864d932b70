"""The default rollout (no variables) on a host that still copies and whose PID 1 is the suite's
own systemd (bookworm, Podman 4.3; lab host with ``init="systemd"``), next to a host that shares
(sid, Podman 5.8): protection by default, end to end.

1. First rollout: on bookworm the guard's unit is enabled and active (``systemctl``), with a
   MainPID; the fleet report's guard line for that host shows that very pid (the state the
   started guard wrote). sid gets no unit, and its report says why (it shares).
2. Second rollout: converged (changed=0 on both hosts) and the guard was not restarted (same
   MainPID, same NRestarts); the report now reads the guard as running, with the same pid.
What is asserted comes from systemd and the host's files, beside the report.
"""
import glob
import hashlib
import json
import os
import subprocess

from test_rollout import FILES, MAPS, create_with_map, mapped_layers, recap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = "idmapguard-guard.service"


def rollout(inv, report_dir):
    """The rollout as an operator runs it: no variables but where to write the report."""
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="1")
    proc = subprocess.run(["ansible-playbook", "-i", inv, "idmapguard.storage.rollout",
                           "-e", "idmapguard_rollout_report_dir=%s" % report_dir],
                          env=env, capture_output=True, text=True, timeout=1200, cwd=REPO, check=False)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    with open(os.path.join(report_dir, "fleet-report.json")) as f:
        rows = {row["host"]: row for row in json.load(f)["hosts"]}
    with open(os.path.join(report_dir, "fleet-report.md")) as f:
        markdown = f.read()
    return recap(proc.stdout), rows, markdown


def unit(host):
    out = host.exec(["systemctl", "show", UNIT, "-p", "MainPID,NRestarts,ActiveState,UnitFileState"]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def guard_line(markdown, host):
    """The report's "Copy-cache guard:" line in HOST's section of the Markdown report."""
    section = markdown.split("\n### %s " % host.name, 1)[1]
    return next(line for line in section.splitlines() if line.startswith("- Copy-cache guard:"))


def test_default_rollout_guards_a_copying_systemd_host(lab_host, inventory, tmp_path):
    copying, sharing = lab_host("bookworm", init="systemd"), lab_host("sid")
    for host in (copying, sharing):
        image = host.image(files=FILES)
        for idmap in MAPS:
            create_with_map(host, image, idmap)
    assert (mapped_layers(copying), mapped_layers(sharing)) == (2, 0)
    inv = inventory(copying, sharing)

    _rc, rows, markdown = rollout(inv, str(tmp_path / "first"))
    assert copying.exec(["systemctl", "is-enabled", UNIT]).stdout.strip() == "enabled"
    assert copying.exec(["systemctl", "is-active", UNIT]).stdout.strip() == "active"
    first = unit(copying)
    pid = int(first["MainPID"])
    assert pid > 0, first
    guard = rows[copying.name]["guard"]
    print("[rollout-systemd] first run: MainPID %d, report: %s" % (pid, guard["line"]))
    assert guard["status"] == "started" and guard["protected"] is True and guard["pid"] == pid, guard
    # what the role's guard tasks did (idmapguard_remediate.guard), not the plan: systemd's
    # MainPID and the archive on the host
    assert guard["running"] is True and "running as pid %d (systemd's MainPID)" % pid in guard["why"], guard
    archives = glob.glob(copying.path("/usr/local/lib/idmapguard/idmapguard-guard-*.pyz"))
    assert len(archives) == 1, archives
    with open(archives[0], "rb") as f:
        assert guard["artifact"]["sha256"] == hashlib.sha256(f.read()).hexdigest(), guard["artifact"]
    assert "pid %d," % pid in guard_line(markdown, copying)
    assert guard["budget_inodes"] and guard["last_pass"], guard
    # the host that shares: no guard installed, and the report says it is not needed
    assert not os.path.exists(sharing.path("/etc/systemd/system/" + UNIT))
    assert rows[sharing.name]["verdict"] == "shares"
    shared = rows[sharing.name]["guard"]
    assert shared["status"] == "not_installed" and "no guard is needed" in shared["why"], shared

    rc, rows, markdown = rollout(inv, str(tmp_path / "second"))
    assert {name: r["changed"] for name, r in rc.items()} == {copying.name: 0, sharing.name: 0}, rc
    second = unit(copying)
    print("[rollout-systemd] second run: %s" % second)
    assert (second["MainPID"], second["NRestarts"], second["ActiveState"]) == (
        first["MainPID"], first["NRestarts"], "active"), (first, second)
    guard = rows[copying.name]["guard"]
    print("[rollout-systemd] second run report: %s" % guard["line"])
    assert guard["status"] == "running" and guard["pid"] == pid, guard
    assert "pid %d," % pid in guard_line(markdown, copying)
    assert not os.path.exists(sharing.path("/etc/systemd/system/" + UNIT))
