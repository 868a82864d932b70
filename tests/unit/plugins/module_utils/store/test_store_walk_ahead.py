# -*- coding: utf-8 -*-
"""A prune in batches: the pre-flight walk of batch k + 1 overlaps the deletion of batch k
(walk_ahead.py), each batch a whole prune of its own (own lock hold, own staging run)."""

import os
import time

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.store import Store, StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store import analysis
from ansible_collections.idmapguard.storage.plugins.module_utils.store import operations, walk_ahead
from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import MappedCopy
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.prune import PruneError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.walk_ahead import batches

from ansible_collections.idmapguard.storage.tests.unit.plugins.module_utils.store.fake_store import standard


class Journal:
    """One file both the prune (its step hook) and the walk's child processes append lines to
    (O_APPEND: each line whole), so their order can be read back."""

    def __init__(self, path):
        self.path = str(path)
        open(self.path, "w").close()

    def add(self, *words):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (" ".join(str(w) for w in words) + "\n").encode())
        finally:
            os.close(fd)

    def lines(self):
        with open(self.path) as handle:
            return [line.split() for line in handle.read().splitlines()]


def _record_walks(monkeypatch, journal, extra=None):
    """The walk of each copy writes "walk <id> <pid>" (and ``extra(layer_id)``'s words) first."""
    real_preflight = analysis.preflight_copy

    def watched(layout, layer_id, link):
        journal.add("walk", layer_id, os.getpid(), *(extra(layer_id) if extra else ()))
        return real_preflight(layout, layer_id, link)

    monkeypatch.setattr(analysis, "preflight_copy", watched)


def make(fake_store):
    ids = standard(fake_store)
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    # No walk at plan time: every copy gets its pre-flight walk inside prune, batch by batch.
    plan = store.prune_plan(60, measure=False, preflight=False)
    assert len(plan.copies) == 3 and all(c.undeletable is None for c in plan.copies)
    return store, ids, plan


def _copy(name, inodes):
    return MappedCopy(layer_id=name, image_id="i", image_name="", top_layer="t", uidmap="", gidmap="",
                      created=None, age_seconds=None, in_use=False, why=[], inodes=inodes, bytes=0)


@pytest.mark.parametrize("inodes, max_copies, max_inodes, expected", [
    ([], 8, 100, []),
    ([1, 1, 1], 8, 100, [1, 2]),             # the first walk waited for is one copy's
    ([1] * 20, 8, 100, [1, 2, 4, 8, 5]),     # each batch at most twice the one before
    ([1, 1, 1, 1, 1], 2, 100, [1, 2, 2]),
    ([60, 60, 60], 8, 100, [1, 2]),          # closes at the copy that reaches the inodes
    ([200, 1, 1], 8, 100, [1, 2]),           # one big copy is a batch of its own
    ([30] * 7, 8, 100, [1, 2, 4]),
    ([30] * 8, 8, 100, [1, 2, 4, 1]),
    ([0, 0, 0, 0], 8, 100, [1, 2, 1]),       # no estimates: the copy count alone
    ([1, 1], 0, 100, [1, 1]),                # never an empty batch
])
def test_batches(inodes, max_copies, max_inodes, expected):
    copies = [_copy("c%d" % n, i) for n, i in enumerate(inodes)]
    cut = batches(copies, max_copies, max_inodes)
    assert [len(b) for b in cut] == expected
    assert [c.layer_id for b in cut for c in b] == [c.layer_id for c in copies]  # order kept


@pytest.mark.parametrize("walked, max_copies, growth, expected", [
    # The plan walked one copy per image: that copy alone is the first batch (nothing to wait for).
    ("W.........", 8, 2, [1, 2, 4, 3]),
    ("WWW.......", 8, 2, [3, 6, 1]),        # the walked lead, then at most twice as many
    ("WWWWWWWWWW", 4, 2, [4, 4, 2]),        # all walked (check mode's plan): full batches
    ("WW.W......", 8, 2, [2, 4, 4]),        # a walked copy later on counts like any other
    ("W.W.W", 8, 1, [1, 1, 1, 1, 1]),       # growth 1: every batch as small as the first
    ("-.........", 8, 2, [1, 2, 4, 3]),     # a copy without a record needs no walk either
    ("..........", 8, 3, [1, 3, 6]),
])
def test_batches_start_with_what_is_walked_and_grow(walked, max_copies, growth, expected):
    copies = []
    for n, mark in enumerate(walked):
        copy = _copy("c%d" % n, 1)
        if mark == "W":
            copy.undeletable = []
        elif mark == "-":
            copy.record = False
        copies.append(copy)
    cut = batches(copies, max_copies, 1000, growth)
    assert [len(b) for b in cut] == expected
    assert [c.layer_id for b in cut for c in b] == [c.layer_id for c in copies]
    # The first batch never holds a copy whose walk the prune would wait for, unless it is
    # the first copy alone.
    assert len(cut[0]) == 1 or not any(walk_ahead.needs_walk(c) for c in cut[0])


def _no_walk_child_left():
    """No child process of ours is left (a walk's child is waited for or killed and reaped)."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _layers(fake_store):
    return {r["id"]: r for r in fake_store.read("overlay-layers/layers.json")}


def _listed(fake_store):
    return {lid for i in fake_store.read("overlay-images/images.json") for lid in i.get("mapped-layers", [])}


def _staging(fake_store):
    found = []
    for root in (fake_store.path("idmapguard-staging"), fake_store.path("overlay", "tempdirs")):
        for dirpath, dirnames, filenames in os.walk(root):
            found.extend(os.path.join(dirpath, name) for name in dirnames + filenames)
    return found


def _assert_untouched(fake_store, layer_id):
    record = _layers(fake_store)[layer_id]
    assert not record.get("flags"), record
    assert layer_id in _listed(fake_store)
    assert os.path.isdir(fake_store.path("overlay", layer_id, "diff"))


def _assert_gone(fake_store, layer_id):
    assert layer_id not in _layers(fake_store) and layer_id not in _listed(fake_store)
    assert not os.path.exists(fake_store.path("overlay", layer_id))


def _assert_podman_loads(fake_store):
    """What c/storage needs to load the store: every record without the incomplete flag has
    its data, and every mapped-layers entry has its record and data."""
    layers = _layers(fake_store)
    for layer_id, record in layers.items():
        if not (record.get("flags") or {}).get("incomplete"):
            assert os.path.isdir(fake_store.path("overlay", layer_id, "diff")), layer_id
    for layer_id in _listed(fake_store):
        assert layer_id in layers and os.path.isdir(fake_store.path("overlay", layer_id, "diff"))


def test_the_next_batch_is_walked_while_this_one_is_deleted_never_two_ahead(fake_store, monkeypatch, tmp_path):
    store, _ids, plan = make(fake_store)
    order = plan.layer_ids
    journal = Journal(tmp_path / "journal")
    _record_walks(monkeypatch, journal)
    overlapped = []

    def hook(step):
        journal.add("step", step)
        if step.startswith("delete:%s" % order[0]) and not overlapped:
            # Deleting batch 1: the walk of batch 2 runs meanwhile (it would never start here
            # if the walk came after the deletion: the wait would give up and say so).
            overlapped.append(any(line[:2] == ["walk", order[1]] for line in journal.lines()) or
                              _wait_walk(journal, order[1]))

    result = store.prune(plan, 60, hook=hook, batch_copies=1)
    assert overlapped == [True]
    assert [c.layer_id for c in result.removed] == order and result.not_removed == []
    lines = journal.lines()
    walks = [line for line in lines if line[0] == "walk"]
    assert [w[1] for w in walks] == order
    assert str(os.getpid()) not in {w[2] for w in walks} and len({w[2] for w in walks}) == 3  # a child each
    # One lock hold and one staging run per batch.
    assert [line for line in lines if line == ["step", "locked"]] == [["step", "locked"]] * 3
    assert len({d["run"] for d in result.deletions}) == 3
    # Never two batches ahead: batch 3 is walked only after batch 1 was deleted whole.
    last_delete_1 = max(i for i, line in enumerate(lines)
                        if line[0] == "step" and line[1].startswith("delete:%s" % order[0]))
    third = next(i for i, line in enumerate(lines) if line[:2] == ["walk", order[2]])
    assert third > last_delete_1
    assert result.walk_seconds > 0 and result.as_dict()["walk_seconds"] >= 0
    assert _staging(fake_store) == [] and _no_walk_child_left()
    for layer_id in order:
        _assert_gone(fake_store, layer_id)


def _wait_walk(journal, layer_id, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(line[:2] == ["walk", layer_id] for line in journal.lines()):
            return True
        time.sleep(0.01)
    return False


def test_the_walk_runs_at_low_priority_while_the_prune_deletes(fake_store, monkeypatch, tmp_path):
    store, _ids, plan = make(fake_store)
    order = plan.layer_ids
    journal = Journal(tmp_path / "journal")
    _record_walks(monkeypatch, journal, lambda _id: (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)))
    before = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))
    seen = []

    def hook(step):
        if step.startswith("delete:%s" % order[0]) and not seen:
            # Batch 2 is walked while batch 1 is deleted: at the walk's own low priority.
            assert _wait_walk(journal, order[1])
            seen.extend(tuple(int(w) for w in line[3:]) for line in journal.lines() if line[1] == order[1])

    store.prune(plan, 60, hook=hook, batch_copies=1)
    assert len(seen) == 1
    if os.geteuid() == 0:
        # Its own nice value (a prune at nice 19, as the guard, keeps its walk there).
        assert seen == [(os.SCHED_BATCH, max(walk_ahead.WALK_NICE, before[1]))]
    assert (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)) == before


class Killed(Exception):
    pass


@pytest.mark.parametrize("stop_at", ["locked", "free-inode", "images", "mark", "stage", "records", "released",
                                     "delete"])
def test_a_kill_in_the_second_batch_keeps_the_first_and_a_later_run_finishes(fake_store, stop_at):
    store, ids, plan = make(fake_store)
    first, second, third = plan.layer_ids
    batch = []

    def hook(step):
        if step == "locked":
            batch.append(step)
        if len(batch) == 2 and step.startswith(stop_at):
            raise Killed(step)

    with pytest.raises(Killed):
        store.prune(plan, 60, hook=hook, batch_copies=1)
    assert _no_walk_child_left()
    _assert_gone(fake_store, first)              # batch 1 was a whole prune: it stays done
    _assert_untouched(fake_store, third)         # batch 3 was at most walked
    if stop_at == "mark":
        # Out of mapped-layers only: a complete, unreferenced copy (the next run takes it).
        assert second not in _listed(fake_store) and not _layers(fake_store)[second].get("flags")
        assert os.path.isdir(fake_store.path("overlay", second, "diff"))
    elif stop_at in ("stage", "records"):
        assert second not in _listed(fake_store)
        assert _layers(fake_store)[second]["flags"] == {"incomplete": True, "idmapguard-pruning": True}
    elif stop_at in ("released", "delete"):
        assert second not in _layers(fake_store) and _staging(fake_store)
    else:
        _assert_untouched(fake_store, second)
    _assert_podman_loads(fake_store)
    # A later run (the guard at start-up, or the next prune) finishes what was staged.
    again = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    result = again.prune(again.prune_plan(60), 60)
    if stop_at in ("released", "delete"):
        assert result.recovered
    for layer_id in (first, second, third):
        _assert_gone(fake_store, layer_id)
    assert ids["copies"][0] in _layers(fake_store)
    assert _staging(fake_store) == [] and not os.path.exists(fake_store.path("idmapguard-staging"))


def test_a_failure_in_a_later_batch_says_what_the_earlier_batches_changed(fake_store):
    store, _ids, plan = make(fake_store)
    first, second, third = plan.layer_ids
    batch = []

    def hook(step):
        if step == "locked":
            batch.append(step)
        if len(batch) == 2 and step == "images":
            raise StoreError("images.json cannot be written")

    with pytest.raises(PruneError) as failed:
        store.prune(plan, 60, hook=hook, batch_copies=1)
    text = str(failed.value)
    assert "images.json cannot be written" in text and "layers.json: 1 records removed" in text
    assert "deleted" in text  # batch 1's data is gone, and the message says so
    _assert_gone(fake_store, first)
    _assert_untouched(fake_store, second)
    _assert_untouched(fake_store, third)
    assert _staging(fake_store) == [] and _no_walk_child_left()


def test_a_copy_the_preflight_refuses_is_kept_whole_and_the_other_batches_go_on(fake_store, monkeypatch):
    store, _ids, plan = make(fake_store)
    first, second, third = plan.layer_ids
    real_preflight = analysis.preflight_copy

    def refusing(layout, layer_id, link):
        inodes, size, reasons, seen = real_preflight(layout, layer_id, link)
        if layer_id == second:
            reasons = reasons + ["%s/diff/etc: immutable" % layer_id]
        return inodes, size, reasons, seen

    monkeypatch.setattr(analysis, "preflight_copy", refusing)
    result = store.prune(plan, 60, batch_copies=1)
    assert [c.layer_id for c in result.removed] == [first, third]
    assert result.not_removed == [{"layer_id": second, "reason": "undeletable",
                                   "why": ["undeletable: %s/diff/etc: immutable" % second]}]
    _assert_gone(fake_store, first)
    _assert_gone(fake_store, third)
    _assert_untouched(fake_store, second)
    assert len(result.deletions) == 2 and _staging(fake_store) == []


def test_a_walk_that_fails_in_a_later_batch_keeps_the_earlier_batches(fake_store, monkeypatch):
    store, _ids, plan = make(fake_store)
    first, second, third = plan.layer_ids
    real_preflight = analysis.preflight_copy

    def failing(layout, layer_id, link):
        if layer_id == second:
            raise StoreError("cannot open %s: Input/output error" % layer_id)
        return real_preflight(layout, layer_id, link)

    monkeypatch.setattr(analysis, "preflight_copy", failing)
    with pytest.raises(PruneError) as failed:
        store.prune(plan, 60, batch_copies=1)
    assert "Input/output error" in str(failed.value) and "records removed" in str(failed.value)
    _assert_gone(fake_store, first)
    _assert_untouched(fake_store, second)
    _assert_untouched(fake_store, third)
    assert _no_walk_child_left()


def test_a_real_prune_walks_in_the_pipeline_and_check_mode_walks_the_whole_plan(fake_store, monkeypatch, tmp_path):
    standard(fake_store)
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    journal = Journal(tmp_path / "journal")
    _record_walks(monkeypatch, journal)
    check = operations.prune(store, 60, None, [], check_mode=True)
    me = str(os.getpid())
    assert len(check["removed"]) == 3
    assert [line[2] for line in journal.lines()] == [me] * 3  # the exact plan, walked first, here
    open(journal.path, "w").close()
    done = operations.prune(store, 60, None, [], check_mode=False)
    assert len(done["removed"]) == 3 and "walk_seconds" in done
    # One copy per image measured for the plan (here); the other copy by the pipeline's child.
    assert sorted(line[2] == me for line in journal.lines()) == [False, True, True]


def test_a_stop_between_batches_changes_nothing_of_the_next_batch(fake_store):
    """The "batch:N" step comes before batch N takes the locks (the guard stops there on
    SIGTERM): batch 1 is done, the others untouched, no staging left, the walk's child reaped."""
    store, _ids, plan = make(fake_store)
    first, second, third = plan.layer_ids
    steps = []

    def hook(step):
        steps.append(step)
        if step == "batch:1":
            raise Killed(step)

    with pytest.raises(Killed):
        store.prune(plan, 60, hook=hook, batch_copies=1)
    assert steps.count("locked") == 1 and "batch:1" in steps and "batch:0" not in steps
    _assert_gone(fake_store, first)
    _assert_untouched(fake_store, second)
    _assert_untouched(fake_store, third)
    assert _staging(fake_store) == [] and _no_walk_child_left()


def test_where_no_child_can_be_forked_the_walk_runs_here_and_the_prune_goes_on(fake_store, monkeypatch):
    store, _ids, plan = make(fake_store)

    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(walk_ahead.os, "fork", no_fork)
    result = store.prune(plan, 60, batch_copies=1)
    assert [c.layer_id for c in result.removed] == plan.layer_ids and result.not_removed == []
    assert all(c.measured == "measured" for c in result.removed) and result.walk_seconds > 0
    for layer_id in plan.layer_ids:
        _assert_gone(fake_store, layer_id)


def test_the_deletion_counts_links_only_for_copies_no_walk_measured(fake_store, monkeypatch):
    """Every copy of a batch was walked (measured exactly) before it was staged: its deletion
    takes no lstat per file for link counts (rm -rf takes none); the removed inodes are the
    walk's."""
    from ansible_collections.idmapguard.storage.plugins.module_utils.store import staging

    store, _ids, plan = make(fake_store)
    counted = []
    real_delete = staging.StagingRun.delete

    def watched(self, *args, **kwargs):
        counted.append(kwargs.get("count_links", True))
        return real_delete(self, *args, **kwargs)

    monkeypatch.setattr(staging.StagingRun, "delete", watched)
    result = store.prune(plan, 60)
    assert counted and counted == [False] * len(counted)
    assert all(c.measured == analysis.MEASURED and c.inodes > 3 for c in result.removed)


def test_remove_tree_counts_inodes_or_names(tmp_path):
    from ansible_collections.idmapguard.storage.plugins.module_utils.store.safe_delete import remove_tree_at

    for count_links, expected in ((True, 4), (False, 5)):  # tree, d, f, s (+ the second name of f)
        root = tmp_path / "tree"
        (root / "d").mkdir(parents=True)
        (root / "f").write_bytes(b"x")
        os.link(str(root / "f"), str(root / "d" / "hard"))
        os.symlink("f", str(root / "s"))
        removed = [0]
        fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert remove_tree_at(fd, "tree", removed=removed, count_links=count_links)
        finally:
            os.close(fd)
        assert removed == [expected] and not root.exists()


@pytest.mark.parametrize("walked,expected", [
    ("W.........", [8, 2]),  # the walked lead does not end the first batch
    ("..........", [8, 2]),  # nor does the first copy stand alone
    ("...", [3]),
])
def test_batches_start_full_for_a_store_out_of_inodes(walked, expected):
    # prune.free_an_inode frees the first inodes only inside the first batch's copies: out of
    # inodes, one copy's tar-split and empty dirs may not be enough (Podman 3.0 and 4.3 lab
    # stores at 0 free inodes: a one-copy first batch failed "no more could be freed").
    copies = []
    for n, mark in enumerate(walked):
        copy = _copy("c%d" % n, 1)
        if mark == "W":
            copy.undeletable = []
        copies.append(copy)
    cut = batches(copies, 8, 1000, 2, start_full=True)
    assert [len(b) for b in cut] == expected
    assert [len(b) for b in batches(copies, 8, 1000, 2)][0] == 1
