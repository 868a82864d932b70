# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side of storage_conf: refusal checks on store trees, and the backend's run() with a fake Podman."""

import hashlib
import json
import os

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.store.location import StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils import storage_conf as backend
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf.safety import (
    StorageConfInvalid,
    StorageConfRefused,
    check_safety,
    clear_marker,
    containers_with_noncontiguous_maps,
    count_layers,
    find_mount_program_indicator,
    podman_store,
    validation_env,
)

LAYER_ID = "a" * 64


def make_store(root, layers=1, marker=None, containers=()):
    """A minimal overlay store tree: layers.json, the marker, containers.json."""
    graphroot = root / "graph"
    (graphroot / "overlay-layers").mkdir(parents=True)
    (graphroot / "overlay-layers" / "layers.json").write_text(
        json.dumps([{"id": "%064x" % i} for i in range(layers)]))
    (graphroot / "overlay" / LAYER_ID / "diff").mkdir(parents=True)
    if marker is not None:
        (graphroot / "overlay" / ".has-mount-program").write_text(marker)
    (graphroot / "overlay-containers").mkdir()
    (graphroot / "overlay-containers" / "containers.json").write_text(json.dumps([
        {"id": "%064x" % (100 + i), "names": [name], "layer": "%064x" % i, "uidmap": uidmap, "gidmap": uidmap}
        for i, (name, uidmap) in enumerate(containers)]))
    # Podman creates the lock files with the store; the Store API reads under them
    (graphroot / "overlay-layers" / "layers.lock").write_text("")
    (graphroot / "overlay-containers" / "containers.lock").write_text("")
    return str(graphroot)


def view(graphroot, runroot, **kw):
    base = {"driver": "overlay", "graphroot": graphroot, "runroot": runroot, "imagestore": None,
            "mount_program": None}
    base.update(kw)
    return base


NONCONTIGUOUS = [{"container_id": 0, "host_id": 1000000, "size": 65536},
                 {"container_id": 531571, "host_id": 531571, "size": 1}]
CONTIGUOUS = [{"container_id": 0, "host_id": 1000000, "size": 65536}]
FUSE = "/usr/bin/fuse-overlayfs"


def test_count_layers(tmp_path):
    assert count_layers(str(tmp_path / "none")) == 0
    graphroot = make_store(tmp_path, layers=3)
    assert count_layers(graphroot) == 3
    with open(os.path.join(graphroot, "overlay-layers", "layers.json"), "w") as f:
        f.write("{broken")
    assert count_layers(graphroot) == -1


def test_store_key_change_is_refused_while_layers_exist(tmp_path):
    graphroot = make_store(tmp_path, layers=2)
    run = str(tmp_path / "run")
    with pytest.raises(StorageConfRefused, match="holds 2 layer"):
        check_safety(view(graphroot, run), view("/srv/new", run), allow_store_change=False)
    report = check_safety(view(graphroot, run), view("/srv/new", run), allow_store_change=True)
    assert report.store_changes == {"graphroot": {"before": graphroot, "after": "/srv/new"}}


def test_store_key_change_on_an_empty_store_is_fine(tmp_path):
    graphroot = make_store(tmp_path, layers=0)
    run = str(tmp_path / "run")
    report = check_safety(view(graphroot, run), view(graphroot, run, driver="vfs"), allow_store_change=False)
    assert report.store_changes == {"driver": {"before": "overlay", "after": "vfs"}}


def test_naming_the_driver_already_in_use_is_no_store_change(tmp_path):
    graphroot = make_store(tmp_path, layers=2)
    run = str(tmp_path / "run")
    report = check_safety(view(graphroot, run, driver=None), view(graphroot, run), allow_store_change=False)
    assert report.store_changes == {}
    with pytest.raises(StorageConfRefused):
        check_safety(view(graphroot, run, driver=None), view(graphroot, run, driver="vfs"), False)


def test_removing_mount_program_without_marker_needs_nothing(tmp_path):
    graphroot = make_store(tmp_path)
    run = str(tmp_path / "run")
    report = check_safety(view(graphroot, run, mount_program=FUSE), view(graphroot, run), False)
    assert report.marker.content is None and report.marker.clear is False


def test_removing_mount_program_with_marker_true_is_refused_by_default(tmp_path):
    graphroot = make_store(tmp_path, marker="true")
    run = str(tmp_path / "run")
    with pytest.raises(StorageConfRefused, match="keeps using fuse-overlayfs"):
        check_safety(view(graphroot, run, mount_program=FUSE), view(graphroot, run), False)


def test_marker_is_cleared_when_the_scan_is_clean(tmp_path):
    graphroot = make_store(tmp_path, marker="true\n", containers=[("plain", None), ("contig", CONTIGUOUS)])
    run = str(tmp_path / "run")
    report = check_safety(view(graphroot, run, mount_program=FUSE), view(graphroot, run), True)
    assert report.marker.clear is True
    assert clear_marker(report.marker) is True
    assert not os.path.exists(report.marker.path)
    assert clear_marker(report.marker) is False


def test_aufs_whiteout_in_a_layer_is_refused_even_when_allowed(tmp_path):
    graphroot = make_store(tmp_path, marker="true")
    open(os.path.join(graphroot, "overlay", LAYER_ID, "diff", ".wh.etc"), "w").close()
    assert find_mount_program_indicator(os.path.join(graphroot, "overlay")).endswith(".wh.etc")
    run = str(tmp_path / "run")
    with pytest.raises(StorageConfRefused, match="needs it"):
        check_safety(view(graphroot, run, mount_program=FUSE), view(graphroot, run), True)
    assert open(os.path.join(graphroot, "overlay", ".has-mount-program")).read() == "true"


def test_container_with_noncontiguous_map_is_refused(tmp_path):
    graphroot = make_store(tmp_path, marker="true", containers=[("web", NONCONTIGUOUS), ("db", CONTIGUOUS)])
    run = str(tmp_path / "run")
    assert containers_with_noncontiguous_maps(StoreLocation(graphroot, run)) == ["web"]
    with pytest.raises(StorageConfRefused, match=r"container\(s\) web"):
        check_safety(view(graphroot, run, mount_program=FUSE), view(graphroot, run), True)


def test_podman_store_reads_podman_info_and_uses_a_scratch_database(tmp_path):
    env = validation_env("/etc/x.conf", scratch=str(tmp_path))
    assert env["CONTAINERS_STORAGE_CONF"] == "/etc/x.conf"
    assert 'static_dir = "%s/static"' % tmp_path in open(env["CONTAINERS_CONF_OVERRIDE"]).read()
    assert validation_env(None) == {}

    def run(argv):
        return 0, json.dumps({"store": {"graphDriverName": "overlay", "graphRoot": "/g", "runRoot": "/r",
                                        "graphOptions": {"overlay.mount_program": {"Executable": FUSE}}}}), ""
    store = podman_store(run, "podman", str(tmp_path / "missing.conf"))
    assert store["mount_program"] == FUSE and store["driver"] == "overlay"
    assert (store["graphroot"], store["runroot"], store["imagestore"]) == ("/g", "/r", None)
    with pytest.raises(StorageConfInvalid, match="rc=125"):
        podman_store(lambda argv: (125, "", "driver not supported"), "podman", None)


def test_podman_store_sees_a_split_imagestore_podman_info_does_not_print(tmp_path):
    """One producer (podman_host.settings_from_podman): the imagestore comes from the file Podman read."""
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "overlay"\nimagestore = "/img"\n')
    info = {"store": {"graphDriverName": "overlay", "graphRoot": "/g", "runRoot": "/r", "graphOptions": {},
                      "configFile": str(conf)}}
    assert podman_store(lambda argv: (0, json.dumps(info), ""), "podman", None)["imagestore"] == "/img"


class FakeHost:
    """What run() is given on a host: a runner per environment; podman answers `podman_rc`."""

    def __init__(self, params, check_mode=False, podman_rc=0):
        self.params = dict({k: v.get("default") for k, v in backend.argument_spec().items()}, **params)
        self.check_mode = check_mode
        self.podman_rc = podman_rc
        self.calls = []

    def runner_for(self, env):
        def run(argv):
            self.calls.append((argv, dict(env)))
            info = {"store": {"graphDriverName": "overlay", "graphRoot": "/var/lib/containers/storage",
                              "runRoot": "/run/containers/storage", "graphOptions": {}}}
            return self.podman_rc, json.dumps(info), "boom" if self.podman_rc else ""
        return run

    def run(self):
        return backend.run(self.params, self.check_mode, self.runner_for, podman="/usr/bin/podman")


def params_for(path, old, new, **kw):
    sha = hashlib.sha1(old.encode()).hexdigest() if old is not None else None
    edit = dict(content=new, source=str(path), source_sha1=sha, changed_keys=[], store_before={}, store_after={})
    edit.update(kw)
    return dict(path=str(path), _edit=edit, validate=True, backup=True)


def test_writes_atomically_with_backup_and_keeps_the_mode(tmp_path):
    path = tmp_path / "storage.conf"
    path.write_text("[storage]\n")
    os.chmod(path, 0o640)
    module = FakeHost(params_for(path, "[storage]\n", '[storage]\ndriver = "overlay"\n'))
    result = module.run()
    assert result["changed"] is True
    assert path.read_text() == '[storage]\ndriver = "overlay"\n'
    assert result["backup_file"].startswith(str(path) + ".") and result["backup_file"].endswith("~")
    assert open(result["backup_file"]).read() == "[storage]\n"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert result["podman"]["driver"] == "overlay"
    # validated first with the candidate and a scratch database, then as Podman reads it
    assert module.calls[0][1]["CONTAINERS_STORAGE_CONF"] != str(path)
    assert "CONTAINERS_CONF_OVERRIDE" in module.calls[0][1]
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "storage.conf"
    path.write_text("[storage]\n")
    module = FakeHost(params_for(path, "[storage]\n", '[storage]\ndriver = "overlay"\n'), check_mode=True)
    assert module.run()["changed"] is True
    assert path.read_text() == "[storage]\n"
    assert module.calls == []


def test_rejected_candidate_leaves_the_file_and_no_temp(tmp_path):
    path = tmp_path / "storage.conf"
    path.write_text("[storage]\n")
    module = FakeHost(params_for(path, "[storage]\n", '[storage]\ndriver = "bad"\n'), podman_rc=125)
    with pytest.raises(StorageConfInvalid):
        module.run()
    assert path.read_text() == "[storage]\n"
    assert os.listdir(tmp_path) == ["storage.conf"]


def test_a_file_changed_since_the_controller_read_it_is_not_overwritten(tmp_path):
    path = tmp_path / "storage.conf"
    path.write_text("[storage]\n# edited meanwhile\n")
    module = FakeHost(params_for(path, "[storage]\n", '[storage]\ndriver = "overlay"\n'))
    with pytest.raises(backend.StorageConfConflict):
        module.run()


def test_identical_content_is_no_change(tmp_path):
    path = tmp_path / "storage.conf"
    path.write_text("[storage]\n")
    module = FakeHost(params_for(path, "[storage]\n", "[storage]\n"))
    assert module.run()["changed"] is False
    assert module.calls == []


def test_refusal_is_the_one_error_type_with_refused(tmp_path):
    graphroot = make_store(tmp_path, layers=1)
    path = tmp_path / "storage.conf"
    path.write_text("[storage]\n")
    module = FakeHost(params_for(path, "[storage]\n", '[storage]\ngraphroot = "/srv"\n',
                                 store_before={"graphroot": graphroot}, store_after={"graphroot": "/srv"}))
    with pytest.raises(backend.StorageConfError) as info:
        module.run()
    assert info.value.fields == {"refused": True}
    assert path.read_text() == "[storage]\n"


def test_the_result_says_what_undoes_the_change(tmp_path):
    path = tmp_path / "storage.conf"
    path.write_text("[storage]\n# site comment\n")
    os.chmod(path, 0o640)
    for check_mode in (True, False):
        module = FakeHost(params_for(path, "[storage]\n# site comment\n", '[storage]\ndriver = "overlay"\n'),
                          check_mode=check_mode)
        undo = module.run()["undo"]
        assert undo == {"path": str(path), "existed": True, "content": "[storage]\n# site comment\n", "mode": "0640",
                        "owner": str(os.getuid()), "group": str(os.getgid())}
    # the undo writes back exactly what was there
    path.write_text(undo["content"])
    assert path.read_text() == "[storage]\n# site comment\n"


def test_undo_of_a_new_file_is_its_removal(tmp_path):
    path = tmp_path / "storage.conf"
    params = params_for(path, None, '[storage]\ndriver = "overlay"\n', source="/usr/share/containers/storage.conf")
    result = FakeHost(params).run()
    assert path.exists()
    assert result["undo"] == {"path": str(path), "existed": False, "content": None, "mode": None, "owner": None,
                              "group": None}
    assert "undo" not in FakeHost(params_for(path, path.read_text(), path.read_text())).run()


class DropinHost(FakeHost):
    """Podman uses mount_program FUSE until `dropin` exists and (unless `later` overrides it) says
    otherwise; its answers follow the files, as the real one's do."""

    def __init__(self, params, dropin, later=False, **kw):
        super().__init__(params, **kw)
        self.dropin, self.later = dropin, later

    def runner_for(self, env):
        def run(argv):
            self.calls.append((argv, dict(env)))
            candidate = env.get("CONTAINERS_STORAGE_CONF_OVERRIDE")
            overridden = (candidate or os.path.exists(self.dropin)) and not self.later
            options = {} if overridden else {"overlay.mount_program": {"Executable": FUSE}}
            info = {"store": {"graphDriverName": "overlay", "graphRoot": self.graphroot,
                              "runRoot": "/run/containers/storage", "graphOptions": options}}
            return 0, json.dumps(info), ""
        return run


def dropin_params(path, old, new, **kw):
    params = params_for(path, old, new, dropin_sets={"driver": "overlay", "mount_program": None}, **kw)
    params["_edit"]["source_sha1"] = "" if old is None else params["_edit"]["source_sha1"]
    return dict(params, dropin=True, allow_store_change=True)


NEW_DROPIN = '[storage]\ndriver = "overlay"\n[storage.options.overlay]\nmount_program = ""\n'


def test_a_dropin_is_judged_against_what_podman_uses_and_its_undo_removes_it(tmp_path):
    graphroot = make_store(tmp_path, marker="true")
    path = tmp_path / "storage.rootful.conf.d" / "zz-idmapguard.conf"
    host = DropinHost(dropin_params(path, None, NEW_DROPIN), str(path))
    host.graphroot = graphroot
    result = host.run()
    assert path.read_text() == NEW_DROPIN
    assert result["undo"] == {"path": str(path), "existed": False, "content": None, "mode": None, "owner": None,
                              "group": None}
    # the store settings before came from Podman (fuse-overlayfs), so the marker was judged and cleared
    assert result["mount_program_marker"]["cleared"] is True
    # the candidate was judged with Podman's own files, read last; then Podman was asked as always
    assert host.calls[1][1]["CONTAINERS_STORAGE_CONF_OVERRIDE"].endswith(".tmp")
    assert "CONTAINERS_STORAGE_CONF" not in host.calls[1][1] and host.calls[-1][1] == {}
    assert result["podman"]["mount_program"] is None


def test_a_dropin_in_check_mode_writes_nothing_and_still_refuses(tmp_path):
    graphroot = make_store(tmp_path, marker="true")
    path = tmp_path / "zz-idmapguard.conf"
    host = DropinHost(dict(dropin_params(path, None, NEW_DROPIN), allow_store_change=False), str(path),
                      check_mode=True)
    host.graphroot = graphroot
    with pytest.raises(StorageConfRefused, match="has-mount-program"):
        host.run()
    host = DropinHost(dropin_params(path, None, NEW_DROPIN), str(path), check_mode=True)
    host.graphroot = graphroot
    assert host.run()["changed"] is True
    assert not path.exists() and os.path.exists(os.path.join(graphroot, "overlay", ".has-mount-program"))


def test_a_dropin_podman_does_not_follow_is_removed_again_and_refused(tmp_path):
    graphroot = make_store(tmp_path)
    path = tmp_path / "zz-idmapguard.conf"
    host = DropinHost(dropin_params(path, None, NEW_DROPIN), str(path), later=True)
    host.graphroot = graphroot
    with pytest.raises(StorageConfRefused, match="a storage.conf file it reads later sets it") as info:
        host.run()
    assert info.value.fields == {"refused": True}
    assert not path.exists()


def test_a_dropin_that_appeared_meanwhile_is_not_overwritten(tmp_path):
    path = tmp_path / "zz-idmapguard.conf"
    path.write_text("# someone else's\n")
    host = DropinHost(dropin_params(path, None, NEW_DROPIN), str(path))
    host.graphroot = make_store(tmp_path)
    with pytest.raises(backend.StorageConfConflict):
        host.run()
    assert path.read_text() == "# someone else's\n"
