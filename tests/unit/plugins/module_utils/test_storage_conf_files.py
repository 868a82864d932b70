# -*- coding: utf-8 -*-
"""podman_host.storage_conf_files / setting_origins: which storage.conf files rootful Podman reads,
and which one sets each setting (file and line). The order rules were measured on the lab:
Podman 5.8.6 and 6.1.1 read drop-ins sorted by file name across storage.conf.d and
storage.rootful.conf.d (50-a.conf in storage.conf.d beat 40-b.conf in storage.rootful.conf.d);
with CONTAINERS_STORAGE_CONF they read that file alone; 5.4.2 and 4.3.1 read no drop-ins."""

import os

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    reads_dropins,
    setting_origins,
    storage_conf_files,
    unit_storage_conf,
)

MAIN = '[storage]\ndriver = "overlay"\ngraphroot = "/var/lib/containers/storage"\n\n' \
       '[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n'


def put(root, path, text):
    full = str(root) + path
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as handle:
        handle.write(text)


@pytest.mark.parametrize("version,expected", [("4.3.1", False), ("5.4.2", False), ("5.8.6", True),
                                              ("6.1.1", True), (None, None)])
def test_which_podman_reads_dropins(version, expected):
    assert reads_dropins(version) is expected


def test_a_later_dropin_wins_by_name_across_directories(tmp_path):
    put(tmp_path, "/etc/containers/storage.conf", MAIN)
    put(tmp_path, "/etc/containers/storage.conf.d/50-a.conf", '[storage]\ngraphroot = "/a"\n')
    put(tmp_path, "/etc/containers/storage.rootful.conf.d/40-b.conf", '[storage]\ngraphroot = "/b"\n')
    put(tmp_path, "/etc/containers/storage.rootful.conf.d/zz-idmapguard.conf",
        '# ours\n[storage.options.overlay]\nmount_program = ""\n')
    put(tmp_path, "/etc/containers/storage.conf.d/zzz-later.conf",
        '[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n')
    put(tmp_path, "/etc/containers/storage.conf.d/ignored.toml", '[storage]\ndriver = "vfs"\n')
    files = storage_conf_files("6.1.1", {}, root=str(tmp_path))
    assert [f["path"] for f in files] == [
        "/etc/containers/storage.conf", "/etc/containers/storage.rootful.conf.d/40-b.conf",
        "/etc/containers/storage.conf.d/50-a.conf", "/etc/containers/storage.rootful.conf.d/zz-idmapguard.conf",
        "/etc/containers/storage.conf.d/zzz-later.conf"]
    origins = setting_origins(files, root=str(tmp_path))
    assert origins["graphroot"] == {"file": "/etc/containers/storage.conf.d/50-a.conf", "kind": "drop-in", "line": 2,
                                    "value": "/a"}
    # a drop-in sorting after ours would override it: that is what configure must refuse
    assert origins["mount_program"]["file"] == "/etc/containers/storage.conf.d/zzz-later.conf"
    assert origins["driver"] == {"file": "/etc/containers/storage.conf", "kind": "main", "line": 2, "value": "overlay"}
    assert origins["runroot"] == {"file": None, "kind": "default", "line": None, "value": None}
    # Podman 5.4 reads the main file only
    assert [f["path"] for f in storage_conf_files("5.4.2", {}, root=str(tmp_path))] == [
        "/etc/containers/storage.conf"]


def test_same_name_in_etc_replaces_usr_share(tmp_path):
    put(tmp_path, "/usr/share/containers/storage.conf", MAIN)
    put(tmp_path, "/usr/share/containers/storage.conf.d/10-vendor.conf", '[storage]\nrunroot = "/v"\n')
    put(tmp_path, "/etc/containers/storage.conf.d/10-vendor.conf", "# emptied by the admin\n")
    files = storage_conf_files("5.8.6", {}, root=str(tmp_path))
    # a main file in /usr/share only
    assert files == [{"path": "/usr/share/containers/storage.conf", "kind": "main"},
                     {"path": "/etc/containers/storage.conf.d/10-vendor.conf", "kind": "drop-in"}]
    origins = setting_origins(files, root=str(tmp_path))
    assert origins["runroot"]["kind"] == "default"
    assert origins["mount_program"] == {"file": "/usr/share/containers/storage.conf", "kind": "main", "line": 6,
                                        "value": "/usr/bin/fuse-overlayfs"}


def test_containers_storage_conf_is_read_alone(tmp_path):
    put(tmp_path, "/etc/containers/storage.conf", MAIN)
    put(tmp_path, "/etc/containers/storage.conf.d/50-a.conf", '[storage]\ngraphroot = "/a"\n')
    put(tmp_path, "/srv/unit-storage.conf", '[storage]\ngraphroot = "/unit"\n')
    env = {"CONTAINERS_STORAGE_CONF": "/srv/unit-storage.conf"}
    files = storage_conf_files("6.1.1", env, root=str(tmp_path))
    assert files == [{"path": "/srv/unit-storage.conf", "kind": "env", "set_by": {"source": "process environment"}}]
    assert setting_origins(files, root=str(tmp_path))["graphroot"] == {
        "file": "/srv/unit-storage.conf", "kind": "env", "line": 2, "value": "/unit",
        "set_by": {"source": "process environment"}}
    assert storage_conf_files("6.1.1", {"CONTAINERS_STORAGE_CONF": "/missing"}, root=str(tmp_path)) == []


UNIT_CONF = '[storage]\ndriver = "overlay"\n\n[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n'


def test_a_unit_environment_names_another_storage_conf(tmp_path):
    put(tmp_path, "/etc/containers/storage.conf", '[storage]\ndriver = "overlay"\n')
    put(tmp_path, "/etc/containers/storage.conf.d/50-a.conf", '[storage]\ngraphroot = "/a"\n')
    put(tmp_path, "/srv/unit-storage.conf", UNIT_CONF)
    put(tmp_path, "/usr/lib/systemd/system/podman.service", "[Service]\nExecStart=/usr/bin/podman system service\n")
    put(tmp_path, "/etc/systemd/system/podman.service.d/10-conf.conf",
        "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/srv/unit-storage.conf\n")
    put(tmp_path, "/usr/lib/systemd/system/podman-restart.service", "[Service]\nExecStart=/usr/bin/podman start\n")
    put(tmp_path, "/etc/systemd/system/backup.service", "[Service]\nEnvironmentFile=/etc/default/backup\n")
    put(tmp_path, "/etc/default/backup", "CONTAINERS_STORAGE_CONF=/srv/missing.conf\n")
    shell = storage_conf_files("6.1.1", {}, root=str(tmp_path))
    units = {u["unit"]: u for u in unit_storage_conf("6.1.1", shell, ["backup.service", "absent.service"],
                                                     root=str(tmp_path))}
    assert sorted(units) == ["backup.service", "podman-restart.service", "podman.service"]
    unit = units["podman.service"]
    set_by = {"source": "unit", "unit": "podman.service", "path": "/srv/unit-storage.conf",
              "file": "/etc/systemd/system/podman.service.d/10-conf.conf", "line": 2, "via": "Environment"}
    assert unit["storage_conf"] == set_by
    assert unit["storage_conf_files"] == [{"path": "/srv/unit-storage.conf", "kind": "env", "set_by": set_by}]
    assert unit["setting_files"]["mount_program"] == {
        "file": "/srv/unit-storage.conf", "kind": "env", "line": 5, "value": "/usr/bin/fuse-overlayfs", "set_by": set_by}
    assert unit["same_files"] is False
    assert unit["differs"] == ["graphroot", "mount_program"]
    assert unit["copying"] == {"mount_program": "/usr/bin/fuse-overlayfs"}
    # a unit without the variable reads what the shell's Podman reads
    restart = units["podman-restart.service"]
    assert restart["storage_conf"] is None and restart["same_files"] is True and restart["differs"] == []
    # the variable names a file that is not there: containers/storage's defaults, no file
    backup = units["backup.service"]
    assert backup["storage_conf"]["env_file"] == "/etc/default/backup"
    assert backup["storage_conf_files"] == [] and backup["copying"] == {}
    assert backup["differs"] == ["driver", "graphroot"]


def test_shell_environment_names_a_file_the_units_do_not(tmp_path):
    put(tmp_path, "/etc/containers/storage.conf", UNIT_CONF)
    put(tmp_path, "/srv/shell.conf", '[storage]\ndriver = "overlay"\n')
    put(tmp_path, "/usr/lib/systemd/system/podman.service", "[Service]\n")
    shell = storage_conf_files("5.8.6", {"CONTAINERS_STORAGE_CONF": "/srv/shell.conf"}, root=str(tmp_path))
    unit, = unit_storage_conf("5.8.6", shell, root=str(tmp_path))
    # the unit's Podman reads /etc's main file, whose mount_program the shell's Podman never sees
    assert unit["storage_conf"] is None and unit["same_files"] is False
    assert unit["copying"] == {"mount_program": "/usr/bin/fuse-overlayfs"}
    assert unit["setting_files"]["mount_program"]["kind"] == "main"


def test_old_spelling_of_mount_program_and_an_empty_override(tmp_path):
    put(tmp_path, "/etc/containers/storage.conf",
        '[storage]\ndriver = "overlay"\n[storage.options]\nmount_program = "/usr/bin/fuse-overlayfs"\n')
    files = storage_conf_files("5.4.2", {}, root=str(tmp_path))
    assert setting_origins(files, root=str(tmp_path))["mount_program"]["line"] == 4
    put(tmp_path, "/etc/containers/storage.conf.d/99-ours.conf", '[storage.options.overlay]\nmount_program = ""\n')
    origin = setting_origins(storage_conf_files("6.1.1", {}, root=str(tmp_path)), root=str(tmp_path))["mount_program"]
    assert origin == {"file": "/etc/containers/storage.conf.d/99-ours.conf", "kind": "drop-in", "line": 2, "value": ""}
