# -*- coding: utf-8 -*-
"""podman_host: podman info parsing, the storage.conf fallback and its TOML reader."""

import json

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils import podman_host
from ansible_collections.idmapguard.storage.plugins.module_utils.mini_toml import TomlError, loads

# The store section as Podman 4.3.1 (Debian bookworm) prints it, and as Podman 5.x prints it
# with fuse-overlayfs configured (mount_program is an object there).
INFO_431 = {
    "version": {"Version": "4.3.1"},
    "store": {
        "configFile": "/etc/containers/storage.conf",
        "graphDriverName": "overlay",
        "graphOptions": {"overlay.mountopt": "nodev"},
        "graphRoot": "/var/lib/containers/storage",
        "graphStatus": {"Backing Filesystem": "extfs", "Native Overlay Diff": "true",
                        "Supports d_type": "true", "Using metacopy": "false"},
        "imageStore": {"number": 0},
        "runRoot": "/run/containers/storage",
    },
}
INFO_5_FUSE = {
    "version": {"Version": "5.8.0"},
    "store": {
        "configFile": "/etc/containers/storage.conf",
        "graphDriverName": "overlay",
        "graphOptions": {
            "overlay.mount_program": {"Executable": "/usr/bin/fuse-overlayfs",
                                      "Package": "fuse-overlayfs_1.14-1", "Version": "1.14"},
            "overlay.mountopt": "nodev,metacopy=on",
            "overlay.imagestore": ["/srv/ro-images"],
        },
        "graphRoot": "/srv/containers",
        "graphStatus": {"Backing Filesystem": "xfs", "Supports shifting": "false"},
        "runRoot": "/run/containers/storage",
        "transientStore": True,
    },
}


def fake_run(table):
    calls = []

    def run(argv):
        calls.append(list(argv))
        key = tuple(argv[1:])
        if key not in table:
            raise AssertionError("unexpected command %r" % (argv,))
        result = table[key]
        if isinstance(result, Exception):
            raise result
        return result

    run.calls = calls
    return run


def test_settings_from_podman_431_info():
    s = podman_host.settings_from_info(INFO_431)
    assert s.driver == "overlay"
    assert s.graphroot == "/var/lib/containers/storage"
    assert s.runroot == "/run/containers/storage"
    assert s.mount_program is None
    assert s.mountopt == "nodev"
    assert s.graph_options == ["overlay.mountopt=nodev"]
    assert s.supports_shifting is None  # 4.3 does not print it
    assert s.backing_filesystem == "extfs"
    assert s.source == "podman"
    assert s.transient_store is False


def test_settings_from_podman_5_info_with_mount_program():
    s = podman_host.settings_from_info(INFO_5_FUSE)
    assert s.mount_program == "/usr/bin/fuse-overlayfs"
    assert s.mountopt == "nodev,metacopy=on"
    assert s.additional_image_stores == ["/srv/ro-images"]
    assert "overlay.mount_program=/usr/bin/fuse-overlayfs" in s.graph_options
    assert s.supports_shifting is False
    assert s.transient_store is True
    assert s.graphroot == "/srv/containers"


def test_podman_version_parses_and_tolerates_failure():
    assert podman_host.podman_version(fake_run({("--version",): (0, "podman version 4.3.1\n", "")})) == "4.3.1"
    assert podman_host.podman_version(fake_run({("--version",): (0, "podman version 5.6.0-dev\n", "")})) == "5.6.0-dev"
    assert podman_host.podman_version(fake_run({("--version",): (127, "", "not found")})) is None
    assert podman_host.podman_version(fake_run({("--version",): OSError("enoent")})) is None


def test_podman_info_errors_are_podman_errors():
    with pytest.raises(podman_host.PodmanError, match="rc=125"):
        podman_host.podman_info(fake_run({("info", "--format", "json"): (125, "", "no space left on device")}))
    with pytest.raises(podman_host.PodmanError, match="no JSON"):
        podman_host.podman_info(fake_run({("info", "--format", "json"): (0, "garbage", "")}))
    with pytest.raises(podman_host.PodmanError, match="cannot run"):
        podman_host.podman_info(fake_run({("info", "--format", "json"): OSError("enoent")}))


STORAGE_CONF = r'''
# storage.conf as Debian ships it, edited
[storage]
driver = "overlay"   # trailing comment
runroot = "/run/containers/storage"
graphroot = '/srv/containers/storage'
imagestore = "/srv/images"
transient_store = true

[storage.options]
additionalimagestores = [
  "/ro/one",   # first
  '/ro/two',
]
pull_options = {enable_partial_images = "false", use_hard_links = "false"}

[storage.options.overlay]
mount_program = "/usr/bin/fuse-overlayfs"
mountopt = "nodev,metacopy=on"
force_mask = ""

[storage.options.thinpool]
size = "10G"
'''


def test_fallback_reads_storage_conf_when_podman_fails(tmp_path):
    conf = tmp_path / "storage.conf"
    conf.write_text(STORAGE_CONF)
    run = fake_run({("info", "--format", "json"): (125, "", "Error: open /var/lib/containers/storage/"
                                                   "overlay-layers/.tmp: no space left on device")})
    s = podman_host.storage_settings(run, conf_path=str(conf))
    assert s.source == "storage.conf"
    assert s.driver == "overlay"
    assert s.graphroot == "/srv/containers/storage"
    assert s.runroot == "/run/containers/storage"
    assert s.imagestore == "/srv/images"
    assert s.transient_store is True
    assert s.mount_program == "/usr/bin/fuse-overlayfs"
    assert s.mountopt == "nodev,metacopy=on"
    assert s.additional_image_stores == ["/ro/one", "/ro/two"]
    assert "overlay.mount_program=/usr/bin/fuse-overlayfs" in s.graph_options
    assert s.config_file == str(conf)


def test_storage_settings_prefer_podman_and_add_imagestore_from_conf(tmp_path):
    conf = tmp_path / "storage.conf"
    conf.write_text(STORAGE_CONF)
    info = json.loads(json.dumps(INFO_431))
    info["store"]["configFile"] = str(conf)
    run = fake_run({("info", "--format", "json"): (0, json.dumps(info), "")})
    s = podman_host.storage_settings(run)
    assert s.source == "podman"
    assert s.graphroot == "/var/lib/containers/storage"
    assert s.mount_program is None
    assert s.imagestore == "/srv/images"


def test_defaults_without_any_storage_conf():
    s = podman_host.settings_from_conf_text("")
    assert (s.driver, s.graphroot, s.runroot, s.mount_program) == (
        "", "/var/lib/containers/storage", "/run/containers/storage", None)


def test_old_style_mount_program_in_storage_options():
    s = podman_host.settings_from_conf_text('[storage]\ndriver="overlay"\n[storage.options]\n'
                                            'mount_program = "/usr/bin/fuse-overlayfs"\n')
    assert s.mount_program == "/usr/bin/fuse-overlayfs"


def test_dotted_keys_and_escapes():
    doc = loads('[storage]\noptions.overlay.mount_program = "/a\\tb\\u0041"\n'
                "s = '''\nraw\\n'''\nm = \"\"\"\nx\\\n   y\"\"\"\nn = -3_000\nf = 1.5\nb = false\n")
    assert doc["storage"]["options"]["overlay"]["mount_program"] == "/a\tbA"
    assert doc["storage"]["s"] == "raw\\n"
    assert doc["storage"]["m"] == "xy"
    assert doc["storage"]["n"] == -3000
    assert doc["storage"]["f"] == 1.5
    assert doc["storage"]["b"] is False


@pytest.mark.parametrize("bad", [
    '[storage\n',
    'driver = "overlay\n',
    'driver = overlay\n',
    'a = 1\na = 2\n',
    'a = [ "x" "y" ]\n',
    'a = "x" b\n',
    "a = 'x\n",
])
def test_reader_rejects_what_it_cannot_read(bad):
    with pytest.raises(TomlError, match="line"):
        loads(bad)


def test_bad_storage_conf_is_a_storage_conf_error(tmp_path):
    conf = tmp_path / "storage.conf"
    conf.write_text("[storage\n")
    with pytest.raises(podman_host.StorageConfError, match="storage.conf"):
        podman_host.read_storage_conf(str(conf))


def test_find_storage_conf_order(tmp_path):
    env_conf = tmp_path / "env.conf"
    env_conf.write_text("")
    assert podman_host.find_storage_conf(None, {"CONTAINERS_STORAGE_CONF": str(env_conf)}) == str(env_conf)
    assert podman_host.find_storage_conf(str(env_conf), {}) == str(env_conf)


def test_run_json_names_the_command_in_every_failure():
    from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import run_json

    class Boom(RuntimeError):
        pass

    def runner(result):
        def run(argv):
            if isinstance(result, Exception):
                raise result
            return result
        return run

    cases = [(OSError(2, "No such file"), "cannot run x"), ((1, "", "bad"), "x a failed (rc=1): bad"),
             ((0, "not json", ""), "x a printed no JSON"), ((0, "[1]", ""), "x a printed JSON that is not an object")]
    for result, message in cases:
        try:
            run_json(runner(result), ["x", "a"], Boom)
        except Boom as exc:
            assert message in str(exc)
        else:
            raise AssertionError("no error for %r" % (result,))
    assert run_json(runner((0, '{"a": 1}', "")), ["x"], Boom) == {"a": 1}
