# -*- coding: utf-8 -*-
"""Staged deletion, mount detection, put-back and reads that measure after the locks."""

import fcntl
import os

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.store import Store, StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store import mountinfo
from ansible_collections.idmapguard.storage.plugins.module_utils.store import staging as staging_mod
from ansible_collections.idmapguard.storage.plugins.module_utils.store import store as store_mod
from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import ESTIMATED, VANISHED

from ansible_collections.idmapguard.storage.tests.unit.plugins.module_utils.store.fake_store import standard

STEPS = ["locked", "free-inode", "images", "mark", "stage", "records", "released", "delete", "stale", "done"]


def make(fake_store):
    ids = standard(fake_store)
    return Store(StoreLocation(fake_store.graphroot, fake_store.runroot)), ids


def staged_files(fake_store):
    found = []
    for root in (fake_store.path("idmapguard-staging"), fake_store.path("overlay", "tempdirs")):
        for dirpath, dirnames, filenames in os.walk(root):
            found.extend(os.path.join(dirpath, name) for name in dirnames + filenames)
    return found


def test_mountinfo_parsing_unescapes_and_finds_nested(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:21 / / rw - ext4 /dev/x rw\n"
                    "30 22 0:21 /a /srv/graph/overlay/abc/merged rw - ext4 /dev/x rw\n"
                    "31 22 0:22 / /srv/graph/overlay/abc/diff/with\\040space rw - tmpfs t rw\n")
    points = mountinfo.mount_points(str(info))
    assert "/srv/graph/overlay/abc/diff/with space" in points
    assert mountinfo.mounts_at_or_under(points, "/srv/graph/overlay/abc") == [
        "/srv/graph/overlay/abc/merged", "/srv/graph/overlay/abc/diff/with space"]
    assert mountinfo.mounts_at_or_under(points, "/srv/graph/overlay/ab") == []


def test_mount_id_of_this_process():
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert isinstance(mountinfo.mount_id(fd), int)
    finally:
        os.close(fd)


def test_a_copy_with_a_mount_point_in_its_paths_is_skipped_as_mounted(fake_store, monkeypatch):
    store, ids = make(fake_store)
    plan = store.prune_plan(60)
    victim = plan.copies[0]
    deep = fake_store.path("overlay", victim.layer_id, "diff", "etc")
    monkeypatch.setattr(store_mod, "mount_points", lambda: ["/", deep])
    report = {c.layer_id: c for c in store.inventory(60).copies}
    assert report[victim.layer_id].in_use
    assert any(w.startswith("mounted: %s" % deep) for w in report[victim.layer_id].why)
    # Mounted after planning: the re-check under the locks skips it whole.
    result = store.prune(plan, 60)
    skipped = {s["layer_id"]: s for s in result.not_removed}
    assert skipped[victim.layer_id]["reason"] == "mounted"
    assert os.path.isdir(deep) and os.listdir(deep)
    assert victim.layer_id in {r["id"] for r in fake_store.read("overlay-layers/layers.json")}
    listed = {lid for i in fake_store.read("overlay-images/images.json") for lid in i.get("mapped-layers", [])}
    assert victim.layer_id in listed
    assert len(result.removed) == len(plan.copies) - 1
    monkeypatch.setattr(store_mod, "mount_points", lambda: ["/"])
    again = store.prune(store.prune_plan(60), 60)
    assert [c.layer_id for c in again.removed] == [victim.layer_id]


def test_a_copy_that_cannot_be_staged_is_put_back_whole(fake_store, monkeypatch):
    store, ids = make(fake_store)
    plan = store.prune_plan(60)
    victim = plan.copies[1]
    real_stage = staging_mod.StagingRun.stage

    def failing_stage(self, parent, name, staged_name, area="graph"):
        if staged_name == victim.layer_id + ".tar-split.gz":
            raise OSError(28, "No space left on device")
        return real_stage(self, parent, name, staged_name, area)

    monkeypatch.setattr(staging_mod.StagingRun, "stage", failing_stage)
    before = fake_store.read("overlay-layers/layers.json")
    result = store.prune(plan, 60)
    skipped = {s["layer_id"]: s for s in result.not_removed}
    assert skipped[victim.layer_id]["reason"] == "cannot stage"
    assert "No space left" in skipped[victim.layer_id]["why"][0]
    # Whole again: its dir, its link, its record with its old flags, listed in mapped-layers.
    assert os.path.isdir(fake_store.path("overlay", victim.layer_id, "diff"))
    assert os.path.islink(fake_store.path("overlay", "l", victim.link))
    record = [r for r in fake_store.read("overlay-layers/layers.json") if r["id"] == victim.layer_id][0]
    assert record.get("flags") == [r for r in before if r["id"] == victim.layer_id][0].get("flags")
    listed = {lid for i in fake_store.read("overlay-images/images.json") for lid in i.get("mapped-layers", [])}
    assert victim.layer_id in listed
    assert any("put back" in change for change in result.changes)
    assert staged_files(fake_store) == []


def test_a_driver_home_bind_mounted_mid_prune_changes_no_rename_and_no_put_back(fake_store, monkeypatch):
    """A Podman that starts mid-prune bind-mounts overlay/ onto itself (c/storage does it at
    driver init, before any lock). Here it happens right after a copy's l/ link was staged and
    before the rest of it: the copy then fails to stage (ENOSPC on its tar-split) and must be
    put back whole, through the fds the run opened; the other copies are staged and deleted."""
    import subprocess
    if os.geteuid() != 0:
        pytest.skip("needs root for a bind mount")
    store, _ids = make(fake_store)
    plan = store.prune_plan(60)
    victim = [c for c in plan.copies if c.link][-1]
    driver = fake_store.path("overlay")
    mounted = []
    real_stage = staging_mod.StagingRun.stage

    def stage_then_mount(self, parent, name, staged_name, area="graph"):
        if staged_name == victim.layer_id + ".tar-split.gz":
            raise OSError(28, "No space left on device")
        done = real_stage(self, parent, name, staged_name, area)
        if staged_name == victim.layer_id + ".link" and not mounted:
            subprocess.run(["mount", "--bind", driver, driver], check=True)
            mounted.append(driver)
        return done

    monkeypatch.setattr(staging_mod.StagingRun, "stage", stage_then_mount)
    try:
        result = store.prune(plan, 60)
        assert mounted
        skipped = {s["layer_id"]: s for s in result.not_removed}
        assert list(skipped) == [victim.layer_id] and skipped[victim.layer_id]["reason"] == "cannot stage"
        assert not any("cannot put" in why for why in skipped[victim.layer_id]["why"]), skipped
        assert os.path.isdir(fake_store.path("overlay", victim.layer_id, "diff"))
        assert os.path.islink(fake_store.path("overlay", "l", victim.link))
        assert {c.layer_id for c in result.removed} == {c.layer_id for c in plan.copies} - {victim.layer_id}
        for copy in result.removed:
            assert not os.path.lexists(fake_store.path("overlay", copy.layer_id))
        assert staged_files(fake_store) == []
    finally:
        if mounted:
            subprocess.run(["umount", "-l", driver], check=False)
    assert [c.layer_id for c in store.prune_plan(60).copies] == [victim.layer_id]


def test_driver_home_on_its_own_mount_stages_into_tempdirs(fake_store, monkeypatch):
    """c/storage bind-mounts overlay/ onto itself while a container runs: the driver-side parts
    then go to overlay/tempdirs/idmapguard-run-*, the rest to the graphroot staging."""
    store, _ids = make(fake_store)
    driver = os.path.realpath(fake_store.path("overlay"))

    def same_mount(fd_a, fd_b):
        def side(fd):
            path = os.readlink("/proc/self/fd/%d" % fd)
            return path == driver or path.startswith(driver + "/")
        return side(fd_a) == side(fd_b)

    monkeypatch.setattr(staging_mod, "_same_mount", same_mount)
    plan = store.prune_plan(60)

    class Killed(Exception):
        pass

    def hook(step):
        if step == "released":
            assert os.listdir(fake_store.path("overlay", "tempdirs"))[0].startswith("idmapguard-run-")
            raise Killed(step)

    with pytest.raises(Killed):
        store.prune(plan, 60, hook=hook)
    assert any(p.endswith(".overlay") for p in staged_files(fake_store))
    assert len(store.inventory().staging) == 2
    result = store.prune(store.prune_plan(60), 60)
    assert result.recovered and result.recovered[0]["inodes"] >= plan.inodes
    assert staged_files(fake_store) == []
    assert not os.path.exists(fake_store.path("overlay", "tempdirs"))


def test_the_write_locks_are_not_held_while_deleting(fake_store):
    store, _ids = make(fake_store)
    plan = store.prune_plan(60)
    seen = []

    def hook(step):
        if step.startswith("delete:"):
            # A child (POSIX locks of our own process never conflict with us) takes the
            # store's layers lock without waiting while we delete.
            pid = os.fork()
            if pid == 0:
                try:
                    fcntl.lockf(os.open(store.layout.layers_lock, os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    os._exit(0)
                except OSError:
                    os._exit(1)
            _pid, status = os.waitpid(pid, 0)
            seen.append(os.WEXITSTATUS(status))

    result = store.prune(plan, 60, hook=hook)
    assert seen and set(seen) == {0}
    assert result.lock_seconds >= 0 and len(result.removed) == len(plan.copies)


def test_report_measures_after_the_locks_and_flags_vanished_and_estimates(fake_store, monkeypatch):
    store, _ids = make(fake_store)
    real_measure = store_mod.measure_copies
    gone = {}

    def measure_after_one_vanished(layout, copies, estimate=False, **kwargs):
        victim = [c for c in copies if not c.in_use][0]
        gone["id"] = victim.layer_id
        os.rename(fake_store.path("overlay", victim.layer_id), fake_store.path("moved-away"))
        return real_measure(layout, copies, estimate, **kwargs)

    monkeypatch.setattr(store_mod, "measure_copies", measure_after_one_vanished)
    inv = store.inventory(60)
    by_id = {c.layer_id: c for c in inv.copies}
    assert by_id[gone["id"]].measured == VANISHED and by_id[gone["id"]].inodes == 0
    os.rename(fake_store.path("moved-away"), fake_store.path("overlay", gone["id"]))
    monkeypatch.setattr(store_mod, "measure_copies", real_measure)
    estimated = store.inventory(60, measure="estimate")
    assert estimated.sizes == ESTIMATED
    per_image = {}
    for copy in estimated.copies:
        per_image.setdefault(copy.image_id, []).append(copy)
    labelled = [c for copies in per_image.values() for c in copies[1:]]
    assert labelled and all(c.measured == ESTIMATED for c in labelled)


def test_the_size_walk_runs_in_a_low_priority_thread_and_looks_for_podman_before_each_copy(fake_store, monkeypatch):
    import threading
    from ansible_collections.idmapguard.storage.plugins.module_utils.store import activity as activity_mod
    store, _ids = make(fake_store)
    real_measure = store_mod.measure_copies
    seen = {}
    pauses = []
    monkeypatch.setattr(activity_mod.PodmanActivity, "pause", lambda self: pauses.append(1))

    def watched(layout, copies, estimate=False, pause=None):
        seen["thread"] = threading.current_thread() is not threading.main_thread()
        seen["policy"] = os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return real_measure(layout, copies, estimate, pause=pause)

    monkeypatch.setattr(store_mod, "measure_copies", watched)
    policy_before = os.sched_getscheduler(0)
    inv = store.inventory(60)
    walked = [c for c in inv.copies if c.measured != ESTIMATED]
    assert seen["thread"] and len(pauses) == len(walked) > 0
    if os.geteuid() == 0:
        assert seen["policy"] == (os.SCHED_BATCH, 19)
    assert os.sched_getscheduler(0) == policy_before  # the caller's own priority is untouched
    pauses.clear()
    store.inventory(60, measure="estimate")
    assert 0 < len(pauses) < len(walked) or len(walked) == 1  # one walk per image


def test_deletion_pauses_while_another_process_holds_a_store_lock(fake_store, monkeypatch):
    from ansible_collections.idmapguard.storage.plugins.module_utils.store import activity as activity_mod
    import subprocess
    import sys
    import time
    store, _ids = make(fake_store)
    watch = activity_mod.PodmanActivity([store.layout.layers_lock, store.layout.images_lock])
    assert not watch.busy()
    child = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "fcntl.lockf(fd, fcntl.LOCK_SH)\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"), store.layout.images_lock, "0.6"], stdout=subprocess.PIPE,
        universal_newlines=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert watch.busy()  # a reader counts too: it is at work on the store
        time.sleep(0.4)  # the deletion's own work so far: a pause may take as long
        started = time.monotonic()
        watch.pause()
        assert 0.05 < time.monotonic() - started < activity_mod.MAX_PAUSE
        assert not watch.busy() and watch.pauses == 1
    finally:
        child.wait(timeout=10)
        watch.close()


def test_pauses_never_take_more_than_the_work_they_interrupt(fake_store):
    """A Podman that holds a lock nearly all the time (4.3 chowns a copy per create under it)
    still leaves a long deletion half of its pace: all pauses together <= the time worked plus
    the credit."""
    from ansible_collections.idmapguard.storage.plugins.module_utils.store import activity as activity_mod
    import subprocess
    import sys
    import time
    store, _ids = make(fake_store)
    child = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "fcntl.lockf(fd, fcntl.LOCK_SH)\n"
        "print('held', flush=True)\n"
        "time.sleep(6)\n"), store.layout.layers_lock], stdout=subprocess.PIPE, universal_newlines=True)
    watch = None
    try:
        assert child.stdout.readline().strip() == "held"
        watch = activity_mod.PodmanActivity([store.layout.layers_lock])
        credit = activity_mod.PAUSE_CREDIT
        started = time.monotonic()
        watch.pause()  # no work done yet: the credit at most
        assert credit - 0.05 < time.monotonic() - started < credit + 0.1
        for _round in range(4):
            time.sleep(0.2)  # work
            watch.pause()
        elapsed = time.monotonic() - started
        assert watch.pauses >= 3 and watch.busy()
        assert watch.paused_seconds <= elapsed - watch.paused_seconds + credit + 0.05
        assert elapsed < 1.0 + 2 * credit  # not 5 x MAX_PAUSE
    finally:
        child.kill()
        child.wait(timeout=10)
        if watch is not None:
            watch.close()


def test_a_prune_planned_without_a_walk_gets_one_preflight_walk(fake_store):
    # Every planned copy is walked once, after the locks, by its pre-flight (preflight.py),
    # which measures it too; what the deletion counts agrees with that walk.
    store, _ids = make(fake_store)
    measured = {c.layer_id: c.inodes for c in store.prune_plan(60).copies}
    plan = store.prune_plan(60, measure=False)
    assert {c.layer_id: c.inodes for c in plan.copies} == measured
    assert all(c.measured == "measured" and c.undeletable == [] for c in plan.copies)
    result = store.prune(plan, 60)
    assert {c.layer_id: c.inodes for c in result.removed} == measured
    assert result.inodes_freed == sum(measured.values())
