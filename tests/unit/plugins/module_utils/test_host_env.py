# -*- coding: utf-8 -*-
"""host_env: where _CONTAINERS_OVERLAY_DISABLE_IDMAP hides, user namespaces, chroot."""

import os

from ansible_collections.idmapguard.storage.plugins.module_utils import host_env


def write(root, rel, text):
    path = os.path.join(str(root), rel.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def test_disable_variable_found_in_units_dropins_and_env_files(tmp_path):
    write(tmp_path, "/etc/systemd/system/podman.service.d/50-noidmap.conf",
          "[Service]\nEnvironment=\"FOO=1\" _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    write(tmp_path, "/usr/lib/systemd/system/podman-restart.service",
          "[Service]\nEnvironmentFile=-/etc/default/idmap\nExecStart=/usr/bin/podman start --all\n")
    write(tmp_path, "/etc/default/idmap", "# comment\nexport _CONTAINERS_OVERLAY_DISABLE_IDMAP='yes'\n")
    write(tmp_path, "/etc/containers/systemd/web.container", "[Container]\nImage=x\n")
    write(tmp_path, "/etc/systemd/system/web.container",
          "[Service]\nEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP=no\n")  # not "yes": ignored
    found = host_env.disable_idmap_env(root=str(tmp_path), environ={})
    # unit directories in systemd's order; an EnvironmentFile is named where it sets the variable
    assert found == {"set": True, "where": ["/etc/systemd/system/podman.service.d/50-noidmap.conf",
                                            "/etc/default/idmap"]}


def test_disable_variable_in_process_environment_and_etc_environment(tmp_path):
    write(tmp_path, "/etc/environment", "_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    found = host_env.disable_idmap_env(root=str(tmp_path),
                                       environ={"_CONTAINERS_OVERLAY_DISABLE_IDMAP": "yes"})
    assert found == {"set": True, "where": ["process environment", "/etc/environment"]}


def test_nothing_set(tmp_path):
    assert host_env.disable_idmap_env(root=str(tmp_path), environ={}) == {"set": False, "where": []}


def test_max_user_namespaces(tmp_path):
    write(tmp_path, "/sys/user/max_user_namespaces", "0\n")
    assert host_env.max_user_namespaces(str(tmp_path)) == 0
    assert host_env.max_user_namespaces(str(tmp_path / "none")) is None


def test_chroot_seen_in_mountinfo(tmp_path):
    proc = tmp_path / "proc"
    write(proc, "/self/mountinfo", "36 25 8:1 /srv/root /srv/root rw - ext4 /dev/sda1 rw\n")
    assert host_env.is_chrooted(str(proc)) is True
    write(proc, "/self/mountinfo", "36 25 8:1 / / rw - ext4 /dev/sda1 rw\n")
    assert host_env.is_chrooted(str(proc)) is False


def test_unset_environment_dropin_cancels_the_unit_it_belongs_to(tmp_path):
    # what the configure role writes: the unit still sets the variable, its drop-in unsets it
    write(tmp_path, "/usr/lib/systemd/system/podman.service",
          "[Service]\nEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    write(tmp_path, "/etc/systemd/system/podman.service.d/90-idmapguard.conf",
          "[Service]\nUnsetEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP\n")
    # another unit that sets it stays reported: the drop-in is not for it
    write(tmp_path, "/etc/systemd/system/podman-restart.service",
          "[Service]\nEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    found = host_env.disable_idmap_env(root=str(tmp_path), environ={})
    assert found == {"set": True, "where": ["/etc/systemd/system/podman-restart.service"]}


def test_unset_environment_for_every_service_and_by_value(tmp_path):
    write(tmp_path, "/etc/systemd/system/podman.service",
          "[Service]\nEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    write(tmp_path, "/etc/systemd/system/service.d/10-x.conf",
          "[Service]\nUnsetEnvironment=FOO _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    assert host_env.disable_idmap_env(root=str(tmp_path), environ={}) == {"set": False, "where": []}


def test_quadlet_container_environment_is_the_containers_not_podmans(tmp_path):
    write(tmp_path, "/etc/systemd/system/web.container",
          "[Container]\nEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    assert host_env.disable_idmap_env(root=str(tmp_path), environ={}) == {"set": False, "where": []}
    write(tmp_path, "/etc/systemd/system/web.container",
          "[Container]\nImage=x\n[Service]\nEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    assert host_env.disable_idmap_env(root=str(tmp_path), environ={})["where"] == [
        "/etc/systemd/system/web.container"]


def test_systemd_booted_is_the_run_systemd_system_directory(tmp_path):
    assert host_env.systemd_booted(root=str(tmp_path)) is False
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    assert host_env.systemd_booted(root=str(tmp_path)) is True
