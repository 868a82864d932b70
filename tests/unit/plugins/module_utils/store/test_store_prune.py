# -*- coding: utf-8 -*-
"""Inventory, plan and prune of the store library on synthetic stores."""

import fcntl
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.store import Store, StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store import prune as prune_mod
from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import KeepMap, parse_go_time
from ansible_collections.idmapguard.storage.plugins.module_utils.store.consistency import InconsistentStoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import (
    NoFreeInodeError, TamperedStoreError,
)

from ansible_collections.idmapguard.storage.tests.unit.plugins.module_utils.store.fake_store import NONCONTIG, gid, standard


def make(fake_store):
    ids = standard(fake_store)
    return Store(StoreLocation(fake_store.graphroot, fake_store.runroot)), ids


def test_inventory_lists_copies_and_reasons(fake_store):
    store, ids = make(fake_store)
    inv = store.inventory(min_age=60)
    by_id = {c.layer_id: c for c in inv.copies}
    assert set(by_id) == set(ids["copies"]) | {ids["copy2"]}
    used = by_id[ids["copies"][0]]
    assert used.in_use and used.why[0].startswith("parent of layer")
    assert "container" in used.why[0]
    free = by_id[ids["copies"][1]]
    assert not free.in_use and free.why == []
    assert free.uidmap == "0:1065537:65536,531571:531571:1"
    assert free.image_name == "localhost/app:latest"
    # dir, diff, etc, etc/sub, 6 files, work, merged, link file + l/ symlink + tar-split
    assert free.inodes == 1 + 1 + 2 + 6 + 2 + 1 + 1 + 1
    assert free.bytes > 0


def test_plan_rules(fake_store):
    ids = standard(fake_store)
    young = fake_store.add_layer("young", parent=ids["base"], uidmap=NONCONTIG, age=5)
    busy = fake_store.add_layer("busy", parent=ids["base"], uidmap=NONCONTIG,
                                flags={"incomplete": True})
    mounted = fake_store.add_layer("mounted", parent=ids["base"], uidmap=NONCONTIG)
    fake_store.mount(mounted)
    fake_store.images[0]["mapped-layers"] += [young, busy, mounted, ids["top2"]]
    fake_store.save()
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    plan = store.prune_plan(min_age=60)
    assert sorted(plan.layer_ids) == sorted([ids["copies"][1], ids["copies"][2], ids["copy2"]])
    why = {c.layer_id: c.why for c in store.inventory(min_age=60).copies}
    assert any("younger" in w for w in why[young])
    assert any("incomplete" in w for w in why[busy])
    assert any("mounted" in w for w in why[mounted])
    assert any("top layer of image" in w for w in why[ids["top2"]])
    # images filter (name and id prefix) and keep_maps
    assert store.prune_plan(60, images=["localhost/other:latest"]).layer_ids == [ids["copy2"]]
    assert store.prune_plan(60, images=[ids["image2"][:12]]).layer_ids == [ids["copy2"]]
    keep = [KeepMap.parse("531571:531571:1,0:1065537:65536")]  # order does not matter
    assert store.prune_plan(60, keep_maps=keep).layer_ids == []
    other = [KeepMap.parse("0:1065537:65536,531571:531571:1", "0:5:1")]
    assert len(store.prune_plan(60, keep_maps=other).layer_ids) == 3


def test_prune_removes_only_the_copies_and_keeps_unknown_fields(fake_store):
    store, ids = make(fake_store)
    before = fake_store.snapshot()
    tokens = (fake_store.token("overlay-layers/layers.lock"), fake_store.token("overlay-images/images.lock"))
    plan = store.prune_plan(min_age=60)
    result = store.prune(plan, 60)
    doomed = set(plan.layer_ids)
    assert {c.layer_id for c in result.removed} == doomed and result.changed
    assert result.inodes_freed == plan.inodes > 0
    layers = fake_store.read("overlay-layers/layers.json")
    assert doomed.isdisjoint(r["id"] for r in layers)
    assert all(r["x-unknown-field"] == {"keep": True} for r in layers)
    images = {i["id"]: i for i in fake_store.read("overlay-images/images.json")}
    assert images[ids["image"]]["mapped-layers"] == [ids["copies"][0]]
    assert "mapped-layers" not in images[ids["image2"]]
    assert images[ids["image"]]["x-image-unknown"] == [1, 2]
    after = fake_store.snapshot()
    gone = {p for p, _t in before - after}
    for path in gone:
        assert any(d in path for d in doomed) or path.startswith("graph/overlay/l/"), path
    links = [p for p in gone if p.startswith("graph/overlay/l/")]
    assert len(links) == len(doomed)
    new = {p for p, _t in after - before}
    assert new == set(), new
    assert fake_store.token("overlay-layers/layers.lock") != tokens[0]
    assert fake_store.token("overlay-images/images.lock") != tokens[1]
    # idempotent
    assert store.prune(store.prune_plan(60), 60).changed is False


def test_prune_rechecks_under_lock(fake_store):
    store, ids = make(fake_store)
    plan = store.prune_plan(min_age=60)
    # A container appears on copy 1 between planning and pruning.
    fake_store.add_container("late", ids["image"], ids["copies"][1])
    fake_store.save()
    result = store.prune(plan, 60)
    assert ids["copies"][1] in [s["layer_id"] for s in result.not_removed]
    assert os.path.isdir(fake_store.path("overlay", ids["copies"][1], "diff"))


@pytest.mark.parametrize("tamper", ["bad-id", "link-elsewhere", "dir-symlink", "json", "dup", "link-content"])
def test_tampered_metadata_deletes_nothing(fake_store, tamper):
    ids = standard(fake_store)
    victim = ids["copies"][1]
    if tamper == "bad-id":
        fake_store.images[0]["mapped-layers"].append("../../outside")
        fake_store.save()
    elif tamper == "link-elsewhere":
        link = open(fake_store.path("overlay", victim, "link")).read()
        os.unlink(fake_store.path("overlay", "l", link))
        os.symlink(fake_store.outside, fake_store.path("overlay", "l", link))
    elif tamper == "dir-symlink":
        os.rename(fake_store.path("overlay", victim), fake_store.path("overlay", "moved"))
        os.symlink(fake_store.outside, fake_store.path("overlay", victim))
    elif tamper == "json":
        with open(fake_store.path("overlay-layers", "layers.json"), "w") as handle:
            handle.write('{"not": "a list"}')
    elif tamper == "dup":
        fake_store.layers.append(dict(fake_store.layers[0]))
        fake_store.save()
    elif tamper == "link-content":
        with open(fake_store.path("overlay", victim, "link"), "w") as handle:
            handle.write("../../outside")
    before = fake_store.snapshot()
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    with pytest.raises(TamperedStoreError):
        store.prune(store.prune_plan(min_age=60), 60)
    assert fake_store.snapshot() == before
    assert open(os.path.join(fake_store.outside, "precious")).read() == "must survive"


def test_symlinks_inside_a_copy_are_not_followed(fake_store):
    ids = standard(fake_store)
    victim = ids["copies"][1]
    os.symlink(fake_store.outside, fake_store.path("overlay", victim, "diff", "etc", "evil"))
    os.symlink(os.path.join(fake_store.outside, "precious"), fake_store.path("overlay", victim, "diff", "p"))
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    store.prune(store.prune_plan(60), 60)
    assert not os.path.exists(fake_store.path("overlay", victim))
    assert open(os.path.join(fake_store.outside, "precious")).read() == "must survive"


STEPS = ["locked", "free-inode", "images", "mark", "stage", "records", "released", "delete", "stale", "done"]


def _staging(fake_store):
    root = fake_store.path("idmapguard-staging")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found.extend(os.path.join(dirpath, name) for name in dirnames + filenames)
    return found


@pytest.mark.parametrize("stop_at", STEPS)
def test_interrupted_prune_leaves_a_consistent_store_and_is_finished_later(fake_store, stop_at):
    store, ids = make(fake_store)
    plan = store.prune_plan(60)

    class Killed(Exception):
        pass

    def hook(step):
        if step.startswith(stop_at):
            raise Killed(step)

    with pytest.raises(Killed):
        store.prune(plan, 60, hook=hook)
    layers = {r["id"]: r for r in fake_store.read("overlay-layers/layers.json")}
    images = fake_store.read("overlay-images/images.json")
    listed = {lid for i in images for lid in i.get("mapped-layers", [])}
    for copy_id in plan.layer_ids:
        if stop_at in ("stage", "records"):
            # Already dropped from images.json and flagged for c/storage's own cleanup.
            assert copy_id not in listed
            assert layers[copy_id]["flags"] == {"incomplete": True, "idmapguard-pruning": True}
        if stop_at in ("released", "delete", "stale", "done"):
            assert copy_id not in layers and copy_id not in listed
            assert not os.path.exists(fake_store.path("overlay", copy_id))
    # c/storage never sees a record without its data unless it is flagged incomplete (which
    # it deletes itself): every other record has its driver dir and diff.
    for layer_id, record in layers.items():
        if not (record.get("flags") or {}).get("incomplete"):
            assert os.path.isdir(fake_store.path("overlay", layer_id, "diff")), (stop_at, layer_id)
    for copy_id in listed:
        assert copy_id in layers and os.path.isdir(fake_store.path("overlay", copy_id, "diff"))
    if stop_at in ("released", "delete"):
        assert _staging(fake_store), "staged data expected before its deletion"
    # A later run finishes: all planned copies gone, records too, staging empty.
    again = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    if stop_at in ("released", "delete"):
        assert again.inventory().staging
    result = again.prune(again.prune_plan(60), 60)
    if stop_at in ("released", "delete"):
        assert result.recovered and result.changed
    layers = {r["id"] for r in fake_store.read("overlay-layers/layers.json")}
    for copy_id in plan.layer_ids:
        assert copy_id not in layers
        assert not os.path.exists(fake_store.path("overlay", copy_id))
    assert ids["copies"][0] in layers
    assert _staging(fake_store) == []
    assert not os.path.exists(fake_store.path("idmapguard-staging"))


def test_zero_free_inodes_frees_one_inside_a_doomed_copy(fake_store, monkeypatch):
    store, ids = make(fake_store)
    plan = store.prune_plan(60)
    state = {"free": 0}
    real_rmdir = os.rmdir

    def fake_free(_path):
        return state["free"]

    def counting_rmdir(path, *args, **kwargs):
        real_rmdir(path, *args, **kwargs)
        state["free"] += 1

    monkeypatch.setattr(prune_mod, "_free_inodes", fake_free)
    monkeypatch.setattr(prune_mod.os, "rmdir", counting_rmdir)
    result = store.prune(plan, 60)
    assert result.freed_first and result.freed_first[0].endswith("/merged")
    assert os.path.basename(os.path.dirname(result.freed_first[0])) in plan.layer_ids
    assert len(result.removed) == 3


def test_no_inode_to_free_changes_nothing(fake_store, monkeypatch):
    store, _ids = make(fake_store)
    plan = store.prune_plan(60)
    for copy in plan.copies:
        os.rmdir(fake_store.path("overlay", copy.layer_id, "merged"))
        os.unlink(fake_store.path("overlay-layers", copy.layer_id + ".tar-split.gz"))
        # a work dir that is not empty is left alone too
        with open(fake_store.path("overlay", copy.layer_id, "work", "busy"), "w"):
            pass
    before = fake_store.snapshot()
    monkeypatch.setattr(prune_mod, "_free_inodes", lambda _path: 0)
    with pytest.raises(NoFreeInodeError):
        store.prune(plan, 60)
    assert fake_store.snapshot() == before


def test_zero_free_inodes_on_a_podman_3_store_frees_an_empty_work_dir(fake_store, monkeypatch):
    """Podman 3.0's mapped copies have no merged/ and no tar-split: their empty work/ goes."""
    store, _ids = make(fake_store)
    plan = store.prune_plan(60)
    for copy in plan.copies:
        os.rmdir(fake_store.path("overlay", copy.layer_id, "merged"))
        os.unlink(fake_store.path("overlay-layers", copy.layer_id + ".tar-split.gz"))
    state = {"free": 0}
    real_rmdir = os.rmdir

    def counting_rmdir(path, *args, **kwargs):
        real_rmdir(path, *args, **kwargs)
        state["free"] += 1

    monkeypatch.setattr(prune_mod, "_free_inodes", lambda _path: state["free"])
    monkeypatch.setattr(prune_mod.os, "rmdir", counting_rmdir)
    result = store.prune(plan, 60)
    assert result.freed_first and result.freed_first[0].endswith("/work")
    assert os.path.basename(os.path.dirname(result.freed_first[0])) in plan.layer_ids
    assert len(result.removed) == 3


def test_prune_waits_for_a_podman_lock(fake_store, tmp_path):
    """A writer holding layers.lock (POSIX lock, another process) makes the prune wait."""
    store, _ids = make(fake_store)
    plan = store.prune_plan(60)
    marker = tmp_path / "released"
    child = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "open(sys.argv[2], 'w').close()\n"
        "fcntl.lockf(fd, fcntl.LOCK_UN)\n"), fake_store.path("overlay-layers", "layers.lock"), str(marker)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    # While the child holds the lock, a non-blocking attempt of ours fails...
    fd = os.open(fake_store.path("overlay-layers", "layers.lock"), os.O_RDWR)
    with pytest.raises(OSError):
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    child.stdin.write("go\n")
    child.stdin.flush()
    result = store.prune(plan, 60)  # blocks until the child released
    child.wait()
    assert marker.exists() and result.changed


def test_lock_files_are_never_created(fake_store):
    store, _ids = make(fake_store)
    os.unlink(fake_store.path("overlay-containers", "containers.lock"))
    plan = store.prune_plan(60)
    with pytest.raises(Exception) as err:
        store.prune(plan, 60)
    assert "containers.lock" in str(err.value)
    assert not os.path.exists(fake_store.path("overlay-containers", "containers.lock"))


def test_volatile_layers_and_containers(fake_store):
    ids = standard(fake_store)
    vol = fake_store.add_layer("volatile-copy", parent=ids["base"], uidmap=NONCONTIG)
    record = fake_store.layers.pop()
    with open(fake_store.path("overlay-layers", "volatile-layers.json"), "w") as handle:
        json.dump([record], handle)
    fake_store.images[0]["mapped-layers"].append(vol)
    fake_store.save()
    # a volatile container on copy 2
    ctr_layer = fake_store.add_layer("vctr", parent=ids["copies"][2], uidmap=NONCONTIG)
    fake_store.save()
    with open(fake_store.path("overlay-containers", "volatile-containers.json"), "w") as handle:
        json.dump([{"id": gid("vctr"), "layer": ctr_layer}], handle)
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    plan = store.prune_plan(60)
    assert vol in plan.layer_ids and ids["copies"][2] not in plan.layer_ids
    store.prune(plan, 60)
    with open(fake_store.path("overlay-layers", "volatile-layers.json")) as handle:
        assert json.load(handle) == []


def test_dangling_mapped_reference_is_refused(fake_store):
    # A mapped layer missing from layers.json is what an emptied or damaged layers.json looks
    # like: the consistency gate refuses the store instead of "dropping" the reference.
    standard(fake_store)
    ghost = gid("ghost")
    fake_store.images[0]["mapped-layers"].append(ghost)
    fake_store.save()
    before = fake_store.snapshot()
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    with pytest.raises(InconsistentStoreError) as err:
        store.prune_plan(60)
    assert "mapped layer %s" % ghost[:12] in str(err.value) and "nothing was changed" in str(err.value)
    report = store.inventory()
    assert report.consistency == "inconsistent" and report.copies == []
    assert fake_store.snapshot() == before


def test_empty_or_missing_store(tmp_path):
    store = Store(StoreLocation(str(tmp_path), str(tmp_path / "r")))
    assert store.inventory().copies == []
    assert store.prune(store.prune_plan(0), 0).changed is False


def test_parse_go_time():
    assert parse_go_time("1970-01-01T00:00:10.5Z") == 10.5
    assert parse_go_time("1970-01-01T01:00:10+01:00") == 10.0
    assert parse_go_time("garbage") is None
    assert parse_go_time(None) is None


def test_orphaned_copy_is_found_and_other_unreferenced_layers_are_not(fake_store):
    ids = standard(fake_store)
    orphan = ids["copies"][2]
    fake_store.images[0]["mapped-layers"].remove(orphan)  # as a stop after the images step leaves it
    # an unreferenced layer with a map that is no copy of any top layer: not ours to touch
    stranger = fake_store.add_layer("stranger", parent=ids["base"], uidmap=NONCONTIG)
    fake_store.save()
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    plan = store.prune_plan(60)
    assert orphan in plan.layer_ids and stranger not in plan.layer_ids
    assert [c.image_id for c in plan.copies if c.layer_id == orphan] == [ids["image"]]
    store.prune(plan)
    assert os.path.isdir(fake_store.path("overlay", stranger, "diff"))
    assert not os.path.exists(fake_store.path("overlay", orphan))
