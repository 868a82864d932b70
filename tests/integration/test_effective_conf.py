"""Effective storage configuration on real Podman (issue 20): which storage.conf file and line
idmap_support says sets each setting, checked against what Podman itself reports (`podman info`)
for that configuration, on sid (Podman 5.8.6) and podman6 (6.1.1), both of which read drop-ins.

Cases, each on a clean /etc/containers and its own graphroot (a store Podman initialises with a
mount program keeps a marker that would make later cases copy):
- a later drop-in wins over the main file and an earlier drop-in (and an empty mount_program
  in a drop-in clears the main file's);
- a main file in /usr/share only;
- podman.service's drop-in sets CONTAINERS_STORAGE_CONF to another storage.conf with a mount
  program: the facts name the unit, file and line; Podman run with that environment reports that
  file's settings; the verdict is not `shares`.
One host per suite, reused by every case (module scope).
"""
import json
import os
import tempfile
from typing import Any, Dict

import pytest

from tests.integration.test_verify import install_helper, run_module

SUITES = ["sid", "podman6"]
FUSE = "/usr/bin/fuse-overlayfs"
CONF_PATHS = ["/etc/containers/storage.conf", "/usr/share/containers/storage.conf",
              "/etc/containers/storage.conf.d", "/etc/containers/storage.rootful.conf.d",
              "/etc/systemd/system/podman.service.d", "/etc/containers/unit-storage.conf"]


class Host:
    """A lab host with its inventory, for the cases of one suite."""

    def __init__(self, lab, suite: str, workdir: str):
        self.lab_host = lab.up(suite=suite)
        install_helper(self.lab_host)
        self.inventory = os.path.join(workdir, "inventory-%s.ini" % suite)
        with open(self.inventory, "w") as handle:
            handle.write(lab.inventory([self.lab_host.name]))

    def reset(self) -> None:
        self.lab_host.exec(["rm", "-rf"] + CONF_PATHS, check=True)

    def write(self, path: str, text: str) -> None:
        self.lab_host.write_file(path, text)

    def facts(self) -> Dict[str, Any]:
        return run_module(self.inventory, self.lab_host)["ansible_facts"]["idmapguard"]

    def podman_store(self, env: Dict[str, str] = None) -> Dict[str, Any]:
        """`podman info`'s store section, as Podman with ENV (e.g. a unit's) reports it."""
        argv = ["env"] + ["%s=%s" % kv for kv in sorted((env or {}).items())] + ["podman", "info", "--format", "json"]
        proc = self.lab_host.exec(argv)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["store"]


@pytest.fixture(scope="module", params=SUITES)
def host(request, lab):
    with tempfile.TemporaryDirectory() as workdir:
        made = Host(lab, request.param, workdir)
        try:
            yield made
        finally:
            made.lab_host.down()


def conf(graphroot: str, extra: str = "") -> str:
    return ('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "/run/containers/%s"\n%s'
            % (graphroot, os.path.basename(graphroot), extra))


def mount_program(store: Dict[str, Any]):
    """The mount program in podman info's graphOptions (None: native overlay)."""
    value = (store.get("graphOptions") or {}).get("overlay.mount_program")
    return value.get("Executable") if isinstance(value, dict) else value


def test_a_later_dropin_wins(host):
    host.reset()
    host.write("/etc/containers/storage.conf",
               conf("/var/lib/containers/g-main", '\n[storage.options.overlay]\nmount_program = "%s"\n' % FUSE))
    host.write("/etc/containers/storage.rootful.conf.d/40-early.conf", '[storage]\ngraphroot = "/var/lib/containers/g-40"\n')
    host.write("/etc/containers/storage.conf.d/50-later.conf",
               '# the later drop-in\n[storage]\ngraphroot = "/var/lib/containers/g-50"\n')
    host.write("/etc/containers/storage.conf.d/60-native.conf", '[storage.options.overlay]\nmount_program = ""\n')
    facts = host.facts()
    store = host.podman_store()
    files = facts["podman"]["setting_files"]
    assert [f["path"] for f in facts["podman"]["storage_conf_files"]] == [
        "/etc/containers/storage.conf", "/etc/containers/storage.rootful.conf.d/40-early.conf",
        "/etc/containers/storage.conf.d/50-later.conf", "/etc/containers/storage.conf.d/60-native.conf"]
    assert files["graphroot"] == {"file": "/etc/containers/storage.conf.d/50-later.conf", "kind": "drop-in",
                                  "line": 3, "value": "/var/lib/containers/g-50"}
    # what Podman reads: the later drop-in's graphroot, and no mount program (cleared by 60-native)
    assert store["graphRoot"] == files["graphroot"]["value"] == facts["graphroot"]["path"]
    assert files["mount_program"]["file"] == "/etc/containers/storage.conf.d/60-native.conf"
    assert mount_program(store) is None and not files["mount_program"]["value"]
    assert facts["podman"]["mount_program"] is None
    assert files["driver"]["kind"] == "main" and store["graphDriverName"] == files["driver"]["value"]


def test_main_file_in_usr_share_only(host):
    host.reset()
    host.write("/usr/share/containers/storage.conf", conf("/var/lib/containers/g-vendor"))
    facts = host.facts()
    store = host.podman_store()
    assert facts["podman"]["storage_conf_files"] == [{"path": "/usr/share/containers/storage.conf", "kind": "main"}]
    graphroot = facts["podman"]["setting_files"]["graphroot"]
    assert graphroot == {"file": "/usr/share/containers/storage.conf", "kind": "main", "line": 3,
                         "value": "/var/lib/containers/g-vendor"}
    assert store["graphRoot"] == graphroot["value"] == facts["graphroot"]["path"]
    assert store["runRoot"] == facts["podman"]["setting_files"]["runroot"]["value"]


def test_unit_environment_names_another_storage_conf(host):
    host.reset()
    host.write("/etc/containers/unit-storage.conf",
               conf("/var/lib/containers/g-unit", '\n[storage.options.overlay]\nmount_program = "%s"\n' % FUSE))
    host.write("/etc/systemd/system/podman.service.d/50-storage.conf",
               "[Service]\n# the unit's own store\nEnvironment=CONTAINERS_STORAGE_CONF=/etc/containers/unit-storage.conf\n")
    facts = host.facts()
    units = {u["unit"]: u for u in facts["podman"]["unit_storage_conf"]}
    unit = units["podman.service"]
    assert unit["storage_conf"] == {"source": "unit", "unit": "podman.service",
                                    "path": "/etc/containers/unit-storage.conf",
                                    "file": "/etc/systemd/system/podman.service.d/50-storage.conf", "line": 3,
                                    "via": "Environment"}
    assert unit["sources"] == ["/usr/lib/systemd/system/podman.service",
                               "/etc/systemd/system/podman.service.d/50-storage.conf"]
    assert unit["same_files"] is False and unit["copying"] == {"mount_program": FUSE}
    # Podman run with the unit's environment reads that file: its store and its mount program
    unit_store = host.podman_store({"CONTAINERS_STORAGE_CONF": "/etc/containers/unit-storage.conf"})
    assert unit_store["graphRoot"] == unit["setting_files"]["graphroot"]["value"] == "/var/lib/containers/g-unit"
    assert mount_program(unit_store) == unit["setting_files"]["mount_program"]["value"] == FUSE
    assert unit["setting_files"]["mount_program"]["line"] == 7
    # the module's own Podman (no such variable) reads the default store, natively
    shell_store = host.podman_store()
    assert shell_store["graphRoot"] == facts["graphroot"]["path"] != unit_store["graphRoot"]
    assert mount_program(shell_store) is None and facts["podman"]["mount_program"] is None
    # units that do not set the variable read what the module's Podman reads
    assert units["podman-restart.service"]["same_files"] is True
    # the verdict does not say shares: Podman started by podman.service copies
    assert facts["verdict"] == "fixable_by_config"
    assert facts["reason_codes"] == ["unit_storage_conf"]
    assert "50-storage.conf line 3" in facts["reasons"][0]
    # without the drop-in, the same host shares
    host.lab_host.exec(["rm", "-rf", "/etc/systemd/system/podman.service.d"], check=True)
    assert host.facts()["verdict"] == "shares"


def test_default_rollout_fixes_a_units_storage_conf(lab_host, inventory, tmp_path):
    """A sid host whose only obstacle is podman.service's own storage.conf (fuse-overlayfs): the
    default rollout (no proof_accept) edits the file the unit names, and ends shares; Podman run
    with the unit's environment then reports native overlay, Podman without it is as before."""
    from tests.integration.test_rollout import recap, run_playbook
    host = lab_host("sid")
    host.write_file("/etc/containers/unit-storage.conf",
                    conf("/var/lib/containers/g-unit", '\n[storage.options.overlay]\nmount_program = "%s"\n' % FUSE))
    host.write_file("/etc/systemd/system/podman.service.d/50-storage.conf",
                    "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/etc/containers/unit-storage.conf\n")
    unit_env = {"CONTAINERS_STORAGE_CONF": "/etc/containers/unit-storage.conf"}
    report_dir = str(tmp_path / "report")
    proc = run_playbook(inventory(host), report_dir)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert recap(proc.stdout)[host.name]["failed"] == 0
    with open(os.path.join(report_dir, "fleet-report.json")) as handle:
        row = json.load(handle)["hosts"][0]
    keys = ("verdict", "reason_codes", "changes", "known_issue", "rolled_back")
    print("rollout record: %s" % json.dumps({k: row.get(k) for k in keys}))
    assert row["verdict"] == "shares" and not row["failed"] and not row["rolled_back"], row
    # (the record's `changes` do not list the unit's file yet: what Podman reports is checked instead)
    # what Podman reports: the unit's Podman now without a mount program, on the unit's store
    argv = ["env"] + ["%s=%s" % kv for kv in unit_env.items()] + ["podman", "info", "--format", "json"]
    store = json.loads(host.exec(argv, check=True).stdout)["store"]
    assert mount_program(store) is None and store["graphRoot"] == "/var/lib/containers/g-unit"
    assert mount_program(json.loads(host.podman("info", "--format", "json", check=True).stdout)["store"]) is None
