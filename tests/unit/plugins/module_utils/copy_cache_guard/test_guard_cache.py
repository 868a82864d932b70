# -*- coding: utf-8 -*-
"""The guard's pass on a synthetic store: budget, LRU order, keep_maps, grace, state; its
parameter file; the lock-token watch; the one-shot idmapguard-prune."""

import contextlib
import io
import json
import os
import time

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard import manual_prune
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.guard_state import (
    GuardState, read_status,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.lock_watch import LockTokenWatcher
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.service import CopyCacheGuard, GuardStopped
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.settings import (
    ParameterError, load_settings, settings_from_params,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store import Store, StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError

from ansible_collections.idmapguard.storage.tests.unit.plugins.module_utils.store.fake_store import FakeStore, standard

MAP = "0:1065537:65536,531571:531571:1"


def _other_map(index):
    return [{"container_id": 0, "host_id": 2000000 + index * 70000, "size": 65536},
            {"container_id": 531571, "host_id": 531571, "size": 1}]


def _map_text(index):
    return "0:%d:65536,531571:531571:1" % (2000000 + index * 70000)


def cache_store(tmp_path, ages):
    """One image, one unused copy per age (seconds), each with its own map, 10 files each."""
    built = FakeStore(tmp_path)
    base = built.add_layer("base", files=2)
    top = built.add_layer("top", parent=base, files=10)
    copies = [built.add_layer("copy%d" % i, parent=base, files=10, uidmap=_other_map(i), age=age, template=top)
              for i, age in enumerate(ages)]
    built.add_image("app", top, copies)
    built.save()
    return built, copies


def make_guard(built, tmp_path, clock=None, **params):
    params.setdefault("grace", 0)
    params.setdefault("state_file", str(tmp_path / "state" / "guard.json"))
    # never this machine's node_exporter directory ("auto" would find it)
    params.setdefault("metrics_dir", str(tmp_path / "metrics"))
    settings = settings_from_params(dict(location=dict(graphroot=built.graphroot, runroot=built.runroot), **params))
    store = Store(StoreLocation(built.graphroot, built.runroot))
    log = io.StringIO()
    kw = {"clock": clock} if clock else {}
    guard = CopyCacheGuard(settings, store, log=log, **kw)
    return guard, log


def mapped(built):
    return built.read("overlay-images/images.json")[0].get("mapped-layers") or []


def events(log, kind="evicted"):
    return [json.loads(line) for line in log.getvalue().splitlines() if json.loads(line)["event"] == kind]


def test_over_budget_evicts_least_recently_used_first(tmp_path):
    built, copies = cache_store(tmp_path, ages=[400, 100, 300, 200])
    probe, _log = make_guard(built, tmp_path, budget_percent=100)
    per_copy = probe.store.inventory().copies[0].inodes
    total = os.statvfs(built.graphroot).f_files
    # room for two copies
    guard, log = make_guard(built, tmp_path, budget_percent=100.0 * (2.5 * per_copy) / total, low_free_percent=0)
    outcome = guard.run_pass("test")
    gone = [e["layer_id"] for e in events(log)]
    assert gone == [copies[0], copies[2]]          # created 400 s and 300 s ago: least recently used
    assert sorted(mapped(built)) == sorted([copies[1], copies[3]])
    assert all(e["reason"].startswith("over budget") and e["inodes"] == per_copy for e in events(log))
    status = outcome["status"]
    assert status["cache"]["copies"] == 2 and status["cache"]["inodes"] == 2 * per_copy
    assert read_status(guard.settings.state_file)["evictions"]["total"] == 2
    # the pass's figures for node_exporter, from the same status
    prom = (tmp_path / "metrics" / "idmapguard_guard.prom").read_text()
    graphroot = 'graphroot="%s"' % built.graphroot
    assert 'idmapguard_guard_evictions_total{%s,reason="over_budget"} 2\n' % graphroot in prom
    assert 'idmapguard_guard_evictions_total{%s,reason="low_free_inodes"} 0\n' % graphroot in prom
    assert 'idmapguard_guard_cached_copies{%s} 2\n' % graphroot in prom
    assert 'idmapguard_guard_cached_inodes{%s} %d\n' % (graphroot, 2 * per_copy) in prom
    assert 'idmapguard_store_inodes{%s} %d\n' % (graphroot, total) in prom
    assert not [n for n in os.listdir(str(tmp_path / "metrics")) if n != "idmapguard_guard.prom"]


def test_last_seen_in_use_beats_creation_time_and_survives_restart(tmp_path):
    built, copies = cache_store(tmp_path, ages=[400, 300, 200])
    built.add_container("c0", built.images[0]["id"], copies[0])
    built.save()
    seen = time.time()
    guard, _log = make_guard(built, tmp_path, budget_percent=100, clock=lambda: seen)
    guard.run_pass("observe")                      # sees copy0 in use
    assert guard.state.copies[copies[0]]["last_used"] == seen
    built.containers = []
    built.layers = [layer for layer in built.layers if layer.get("parent") != copies[0]]  # its container layer
    built.save()
    per_copy = guard.store.inventory().copies[0].inodes
    total = os.statvfs(built.graphroot).f_files
    # a new process: what it knows of copy0 comes from the state file
    guard, log = make_guard(built, tmp_path, budget_percent=100.0 * (1.5 * per_copy) / total, low_free_percent=0)
    guard.run_pass("evict")
    assert [e["layer_id"] for e in events(log)] == [copies[1], copies[2]]
    assert mapped(built) == [copies[0]]


def test_keep_maps_images_and_grace_are_honoured(tmp_path):
    built, copies = cache_store(tmp_path, ages=[400, 300, 2])
    guard, log = make_guard(built, tmp_path, budget_percent=0, low_free_percent=0, grace=5,
                            keep_maps=[{"uidmap": _map_text(0)}])
    guard.run_pass("test")
    # copy0 kept (keep_maps), copy2 in its grace (2 s old), copy1 evicted
    assert [e["layer_id"] for e in events(log)] == [copies[1]]
    assert sorted(mapped(built)) == sorted([copies[0], copies[2]])
    guard, log = make_guard(built, tmp_path, budget_percent=0, low_free_percent=0, images=["localhost/other"])
    guard.run_pass("test")
    assert events(log) == []


def test_in_use_copy_never_evicted_even_at_low_free_inodes(tmp_path):
    built = FakeStore(tmp_path)
    ids = standard(built)
    guard, log = make_guard(built, tmp_path, budget_percent=0, low_free_percent=100)
    guard.run_pass("test")
    gone = {e["layer_id"] for e in events(log)}
    assert gone == {ids["copies"][1], ids["copies"][2], ids["copy2"]}
    assert all(e["reason"].startswith(("over budget", "low free")) for e in events(log))
    assert ids["copies"][0] in mapped(built)       # a container's layer sits on it


def test_no_eviction_within_budget(tmp_path):
    built, _copies = cache_store(tmp_path, ages=[400, 300])
    guard, log = make_guard(built, tmp_path, budget_percent=50, low_free_percent=0)
    status = guard.run_pass("test")["status"]
    assert events(log) == [] and status["cache"]["copies"] == 2
    assert status["budget"]["budget_inodes"] == os.statvfs(built.graphroot).f_files // 2


def test_settings_take_the_location_whole_and_refuse_the_rest(tmp_path):
    location = {"graphroot": "/g", "runroot": "/r", "imagestore": "/i", "transient_store": True,
                "additional_image_stores": ["/ro"], "driver": "overlay"}
    settings = settings_from_params({"location": location, "keep_maps": [{"uidmap": MAP, "gidmap": MAP}],
                                     "images": ["app"], "budget_percent": 20})
    assert settings.location.as_dict() == location and settings.location == StoreLocation.from_dict(location)
    assert settings.keep_maps[0].gidmap and settings.images == ["app"]
    assert settings.budget_percent == 20.0 and settings.grace == 5.0
    # guard.json of earlier versions: the paths one by one
    assert settings_from_params({"graphroot": "/g", "runroot": "/r"}).location == StoreLocation("/g", "/r")
    assert settings_from_params({}).location is None  # found through Podman at start
    for bad, words in (({"min_age": 10}, "min_age"), ({"state": "pruned"}, "state"), ({"graphrot": "/g"}, "graphrot"),
                       ({"location": {"graphroot": "/g"}}, "runroot is required"),
                       ({"location": {"graphroot": "g", "runroot": "/r"}}, "absolute"),
                       ({"location": {"graphroot": "/g", "runroot": "/r", "imagestor": "/i"}}, "imagestor"),
                       ({"location": {"graphroot": "/g", "runroot": "/r"}, "graphroot": "/g"}, "not also"),
                       ({"budget_percent": "lots"}, "budget_percent"), ({"budget_percent": 120}, "budget_percent"),
                       ({"keep_maps": [{"gidmap": MAP}]}, "uidmap"), ({"keep_maps": [{"uidmap": "0:1:0"}]}, "keep_maps"),
                       ({"grace": -1}, "grace"),
                       ({"graphroot": "/g", "runroot": "/r", "transient_store": "yes"}, "transient_store")):
        with pytest.raises(ParameterError, match=words):
            settings_from_params(bad)
    path = tmp_path / "guard.json"
    assert load_settings(str(path)).source.startswith("defaults")
    path.write_text("{not json")
    with pytest.raises(ParameterError, match="not valid JSON"):
        load_settings(str(path))


def test_lock_token_watch(tmp_path):
    built = FakeStore(tmp_path)
    lock = os.path.join(built.graphroot, "overlay-layers/layers.lock")
    watcher = LockTokenWatcher([lock, str(tmp_path / "missing.lock")])
    assert watcher.changed() == []
    with open(lock, "r+b") as handle:
        handle.write(b"\1" * 64)
    assert watcher.changed() == [lock] and watcher.changed() == []
    os.rename(lock, lock + ".old")                # the store re-created: follow the new file
    with open(lock, "wb") as handle:
        handle.write(b"\2" * 64)
    assert watcher.changed() == [lock]
    watcher.close()


def test_state_file_reader(tmp_path):
    path = str(tmp_path / "state.json")
    assert read_status(path) is None
    state = GuardState(path)
    state.status = {"updated": 1000.0, "budget": {"budget_inodes": 5}}
    state.record_eviction({"layer_id": "x", "inodes": 7})
    state.save()
    status = read_status(path, now=1100.0)
    assert status["stale"] is False and status["evictions"]["total"] == 1 and status["evictions"]["inodes"] == 7
    assert read_status(path, now=2000.0)["stale"] is True
    with open(path, "w") as handle:
        handle.write("[]")
    assert "error" in read_status(path)


def test_manual_prune_threshold_check_keep_and_bad_input(tmp_path, capsys):
    built = FakeStore(tmp_path)
    standard(built)
    common = ["--graphroot", built.graphroot, "--runroot", built.runroot, "--min-age", "60"]
    assert manual_prune.main(common + ["--threshold", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is False and "below 100.0%" in out["skipped"]
    assert manual_prune.main(common + ["--check"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["check"] is True and planned["removed"] == 3
    assert manual_prune.main(common + ["--keep-map", MAP + "/" + MAP]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 0
    assert manual_prune.main(common) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 3
    assert manual_prune.main(common + ["--keep-map", "bogus"]) == 2
    assert manual_prune.main(common + ["--threshold", "101"]) == 2


def test_watch_loop_evicts_on_change_and_survives_a_store_error(tmp_path):
    built, copies = cache_store(tmp_path, ages=[400, 300])
    guard, log = make_guard(built, tmp_path, budget_percent=0, low_free_percent=0, poll_interval=0.05,
                            rescan_interval=0.2)
    assert guard.watch(seconds=0.5) == 0
    kinds = [json.loads(line)["event"] for line in log.getvalue().splitlines()]
    assert kinds[0] == "started" and kinds[-1] == "stopped" and kinds.count("evicted") == 2
    os.rename(built.graphroot, built.graphroot + ".gone")   # statvfs fails: logged, retried, no crash
    guard, log = make_guard(built, tmp_path, poll_interval=0.05, rescan_interval=0.2)
    assert guard.watch(seconds=0.5) == 0
    errors = [json.loads(line) for line in log.getvalue().splitlines() if '"error"' in line]
    assert errors and "cannot statvfs" in errors[0]["error"]


def test_a_copy_that_cannot_go_is_set_aside_and_the_next_one_evicted(tmp_path):
    built, copies = cache_store(tmp_path, ages=[400, 300, 200])
    probe, _log = make_guard(built, tmp_path, budget_percent=100)
    per_copy = probe.store.inventory().copies[0].inodes
    total = os.statvfs(built.graphroot).f_files
    guard, log = make_guard(built, tmp_path, budget_percent=100.0 * (2.5 * per_copy) / total, low_free_percent=0,
                            evict_batch=1)
    real_prune = guard.store.prune

    def prune(plan, *args, **kw):
        if plan.copies[0].layer_id == copies[0]:
            raise StoreError("cannot remove %r: [Errno 16] Device or resource busy: 'merged'" % copies[0])
        return real_prune(plan, *args, **kw)

    guard.store.prune = prune
    guard.run_pass("test")
    # the oldest could not go: it is set aside, the next least recently used goes instead
    assert [e["layer_id"] for e in events(log)] == [copies[1]]
    assert events(log, "error")[0]["layer_ids"] == [copies[0]]
    assert guard.state.backing_off(copies[0], time.time())
    guard.run_pass("again")                       # within the back-off: not tried again
    assert len(events(log, "error")) == 1


def test_a_copy_taken_since_the_read_is_not_set_aside(tmp_path):
    """prune skips a copy a container took since the guard read the store ("in use"): it is
    judged again at the next read, not left out for the back-off (only mounted/unstageable are)."""
    built, copies = cache_store(tmp_path, ages=[400, 300])
    guard, log = make_guard(built, tmp_path, budget_percent=0, low_free_percent=0, evict_batch=1)
    real_prune = guard.store.prune
    calls = []

    def prune(plan, *args, **kw):
        calls.append(plan.copies[0].layer_id)
        if len(calls) == 1:
            result = real_prune(type(plan)([], min_age=plan.min_age), *args, **kw)
            result.not_removed.append({"layer_id": plan.copies[0].layer_id, "why": ["used by container c1"],
                                       "reason": "in use"})
            return result
        return real_prune(plan, *args, **kw)

    guard.store.prune = prune
    guard.run_pass("test")
    kept = events(log, "kept")
    assert [k["retry_in"] for k in kept] == [0]
    assert calls == [copies[0], copies[1]]         # not chosen again in the same pass
    assert not guard.state.backing_off(kept[0]["layer_id"], time.time())
    guard.run_pass("again")                       # the container went away: it is evicted now
    assert sorted(e["layer_id"] for e in events(log)) == sorted(copies)


def test_a_guard_behind_works_at_normal_priority_without_pauses_until_caught_up(tmp_path, monkeypatch):
    """Far over budget the pass raises its priority, prunes with catch_up and says so; the next
    pass, caught up, runs at the service's low priority again. One walk per image, not per copy."""
    from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard import service as service_mod
    from ansible_collections.idmapguard.storage.plugins.module_utils.store import store as store_mod
    built, copies = cache_store(tmp_path, ages=[400, 300, 200, 100, 50, 40])
    probe, _log = make_guard(built, tmp_path / "probe", budget_percent=100)
    per_copy = probe.store.inventory().copies[0].inodes
    total = os.statvfs(built.graphroot).f_files
    raised, prunes, walks = [], [], []
    real_prune, real_usage = store_mod.Store.prune, service_mod.copy_usage

    @contextlib.contextmanager
    def fake_normal_priority():
        raised.append(True)
        yield True

    def watched_prune(self, plan, *args, **kwargs):
        prunes.append(kwargs.get("catch_up"))
        return real_prune(self, plan, *args, **kwargs)

    def counted_usage(layout, layer_id, link):
        walks.append(layer_id)
        return real_usage(layout, layer_id, link)

    monkeypatch.setattr(service_mod, "normal_priority", fake_normal_priority)
    monkeypatch.setattr(store_mod.Store, "prune", watched_prune)
    monkeypatch.setattr(service_mod, "copy_usage", counted_usage)
    # a budget of two copies: six cached is three times it
    guard, log = make_guard(built, tmp_path, budget_percent=100.0 * (2 * per_copy) / total, low_free_percent=0)
    status = guard.run_pass("test")["status"]
    assert raised == [True] and prunes and all(prunes)
    assert len(walks) == 1                      # one walk for the image's six copies
    assert len(events(log, "catching up")) == 1 and len(events(log, "caught up")) == 1
    assert len(mapped(built)) == 2 and status["catching_up"] is False
    raised.clear()
    del prunes[:]
    # what the prune left, plus one new unused copy: one copy over budget, the normal case
    built.layers = built.read("overlay-layers/layers.json")
    built.images = built.read("overlay-images/images.json")
    late = built.add_layer("late", parent=built.layers[0]["id"], files=10, uidmap=_other_map(10), age=30,
                           template=built.images[0]["layer"])
    built.images[0]["mapped-layers"].append(late)
    built.save()
    guard.run_pass("test")
    assert raised == [] and prunes == [False] and len(mapped(built)) == 2
    assert len(events(log, "catching up")) == 1 and len(events(log, "caught up")) == 1


@pytest.mark.parametrize("passes,expected", [
    # (cache_inodes, budget_inodes, inodes_used, now) per pass -> the peak record
    ([(10, 100, 500, 1.0)],
     {"since": 1.0, "cache_inodes": 10, "cache_at": 1.0, "budget_inodes": 100, "inodes_used": 500, "inodes_used_at": 1.0}),
    ([(10, 100, 500, 1.0), (250, 100, 400, 2.0), (40, 120, 900, 3.0)],
     {"since": 1.0, "cache_inodes": 250, "cache_at": 2.0, "budget_inodes": 100, "inodes_used": 900, "inodes_used_at": 3.0}),
    ([(0, 100, 50, 1.0), (0, 100, 50, 2.0)],
     {"since": 1.0, "cache_inodes": 0, "cache_at": 1.0, "budget_inodes": 100, "inodes_used": 50, "inodes_used_at": 1.0}),
])
def test_peak_keeps_the_highest_each_pass_saw(tmp_path, passes, expected):
    state = GuardState(str(tmp_path / "state.json"))
    for cache_inodes, budget_inodes, inodes_used, now in passes:
        state.record_peak(cache_inodes, budget_inodes, inodes_used, now)
    assert state.peak == expected
    state.save()
    assert read_status(state.path)["peak"] == expected
    assert GuardState.load(state.path).peak == expected      # kept across a restart


def test_a_pass_records_the_cache_it_saw_before_evicting(tmp_path):
    built, _copies = cache_store(tmp_path, ages=[400, 300, 200, 100])
    probe, _log = make_guard(built, tmp_path, budget_percent=100)
    per_copy = probe.store.inventory().copies[0].inodes
    total = os.statvfs(built.graphroot).f_files
    guard, log = make_guard(built, tmp_path, budget_percent=100.0 * (1.5 * per_copy) / total, low_free_percent=0)
    status = guard.run_pass("test")["status"]
    assert len(events(log)) == 3 and status["cache"]["inodes"] == per_copy
    peak = read_status(guard.settings.state_file)["peak"]
    assert peak["cache_inodes"] == 4 * per_copy          # before the evictions, not after
    assert peak["budget_inodes"] == status["budget"]["budget_inodes"]
    assert peak["inodes_used"] >= 4 * per_copy


def test_sigterm_mid_deletion_stops_at_the_next_entry_and_the_next_start_finishes(tmp_path):
    """SIGTERM (``stopping``) during the deletion of staged copies: the guard stops at the next
    staged entry, leaves a consistent store, and the next start finishes the staging first."""
    built, copies = cache_store(tmp_path, ages=[400, 300, 200])
    guard, log = make_guard(built, tmp_path, budget_percent=0, low_free_percent=0, poll_interval=0.05)
    real_stop_point = guard._stop_point
    seen = []

    def sigterm_at_first_deletion(step):
        if step.startswith("delete:"):
            seen.append(step)
            guard.stopping = True  # what the SIGTERM handler does
        real_stop_point(step)

    guard._stop_point = sigterm_at_first_deletion
    started = time.monotonic()
    assert guard.watch(seconds=30) == 0
    assert time.monotonic() - started < 25  # ended by the stop, not by --seconds
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert lines[-1]["event"] == "stopped" and "next start finishes" in lines[-1]["interrupted"]
    assert len(seen) == 1 and guard.store.stale_staging()
    layer_ids = {r["id"] for r in built.read("overlay-layers/layers.json")}
    staged = seen[0].split(":", 1)[1].split(".", 1)[0]
    assert staged in copies and staged not in mapped(built)  # records consistent: the staged one unlisted
    # The later batches were not begun (the first batch of a prune is one copy): still listed.
    assert set(mapped(built)) == set(copies) - {staged}
    assert all(os.path.isdir(os.path.join(built.graphroot, "overlay", lid, "diff")) for lid in layer_ids)
    again, log2 = make_guard(built, tmp_path, budget_percent=100, low_free_percent=0, poll_interval=0.05)
    assert again.watch(seconds=0.2) == 0
    assert events(log2, "staging") and not again.store.stale_staging()


@pytest.mark.parametrize("step,stops", [
    ("delete:abc.overlay", True), ("batch:1", True), ("locked", False), ("stage:abc", False), ("released", False),
])
def test_a_stopping_guard_stops_at_a_deletion_entry_or_between_batches(tmp_path, step, stops):
    built, _copies = cache_store(tmp_path, ages=[400])
    guard, _log = make_guard(built, tmp_path)
    guard._stop_point(step)  # not stopping: never raises
    guard.stopping = True
    if stops:
        with pytest.raises(GuardStopped):
            guard._stop_point(step)
    else:
        guard._stop_point(step)
