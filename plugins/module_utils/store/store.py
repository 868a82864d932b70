# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one entry point to a containers/storage overlay store: inventory, plan, prune."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from ansible_collections.idmapguard.storage.plugins.module_utils.store.activity import PodmanActivity
from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import (
    COUNTED, ESTIMATED, MEASURED, NOT_MEASURED, Inventory, KeepMap, MappedCopy, build_inventory, measure_copies,
    select_prunable,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.consistency import (
    INCONSISTENT, InconsistentStoreError, check_store, read_images_for_gate,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout
from ansible_collections.idmapguard.storage.plugins.module_utils.store.location import StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store.locks import LockFile, StoreLocks, store_lock_paths
from ansible_collections.idmapguard.storage.plugins.module_utils.store.mountinfo import mount_points
from ansible_collections.idmapguard.storage.plugins.module_utils.store.preflight import flags_changed
from ansible_collections.idmapguard.storage.plugins.module_utils.store.priority import run_in_background
from ansible_collections.idmapguard.storage.plugins.module_utils.store.prune import (
    DRIVER_SIDE_INODES, MIN_FREE_INODES, Plan, PruneError, Result, StepHook, account_staging, check_writable,
    execute,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.staging import (
    StagingRun, finish_stale_runs, finish_staging, stale_runs, staging_root, stranded_entries,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.state import StoreState
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage
from ansible_collections.idmapguard.storage.plugins.module_utils.store.walk_ahead import (
    BATCH_COPIES, BATCH_INODES, WalkAhead, batches,
)

# Store.inventory/prune_plan ``measure``: True (walk every copy, after the locks), "estimate"
# (walk one copy per image), False (no sizes).
Measure = Union[bool, str]


class Store:
    """The overlay store of containers/storage at ``location``: the one place a store is built
    from its location (every caller passes a StoreLocation whole).

    Read-only additional image stores (``location.additional_image_stores``) are never changed:
    c/storage does not make mapped copies in them (imageTopLayerForMapping sets
    createMappedLayer = false), so they hold nothing to prune.
    """

    def __init__(self, location: StoreLocation) -> None:
        if not isinstance(location, StoreLocation):
            raise TypeError("Store() takes a StoreLocation, got %r" % (location,))
        if location.driver != "overlay":
            raise StoreError("storage driver %r: only overlay stores hold mapped copies" % location.driver)
        self.location = location
        self.layout = StoreLayout(location.graphroot, location.runroot, location.imagestore,
                                  location.transient_store)
        self.additional = list(location.additional_image_stores)

    # --- locking ---------------------------------------------------------------------------
    def _lock_paths(self) -> List[str]:
        return store_lock_paths(self.layout)

    def _load_with_mounts(self) -> StoreState:
        mounts = LockFile(self.layout.mountpoints_lock)
        have_mounts = os.path.exists(self.layout.mountpoints_lock)
        if have_mounts:
            mounts.acquire(exclusive=False)
        try:
            return StoreState.load(self.layout)
        finally:
            if have_mounts:
                mounts.release()

    def is_initialized(self) -> bool:
        return os.path.exists(self.layout.layers_lock)

    def _graph_mounts(self) -> List[str]:
        try:
            return mount_points()
        except OSError as exc:
            raise StoreError("cannot read the mount table: %s" % exc)

    def _load_checked(self) -> "tuple[Optional[StoreState], List[str]]":
        """The state and the consistency gate's findings, under the caller's locks."""
        return check_store(self.layout, self.additional, self._load_with_mounts)

    def _read(self, min_age: float, now: Optional[float] = None,
              refuse_inconsistent: bool = True) -> "tuple[Optional[StoreState], Inventory]":
        """Metadata under shared locks: JSON and a few small files, nothing that grows with data.
        A store that fails the consistency gate raises InconsistentStoreError, or with
        ``refuse_inconsistent=False`` gives an inventory marked inconsistent, without copies."""
        paths = [p for p in self._lock_paths() if os.path.exists(p)]
        points = self._graph_mounts()
        with StoreLocks(paths, exclusive=False):
            state, findings = self._load_checked()
            if findings:
                if refuse_inconsistent:
                    raise InconsistentStoreError(findings)
                images = state.images if state is not None else (read_images_for_gate(self.layout.images_json) or [])
                inventory = Inventory(graphroot=self.layout.graphroot, consistency=INCONSISTENT,
                                      inconsistencies=findings)
                inventory.images = [{"id": i.get("id"), "names": list(i.get("names") or []),
                                     "top_layer": i.get("layer"), "mapped_layers": list(i.get("mapped-layers") or [])}
                                    for i in images]
                return state, inventory
            inventory = build_inventory(state, min_age=min_age, now=now, measure=False, mount_points=points)
        return state, inventory

    def _measure(self, inventory: Inventory, measure: Measure) -> None:
        if measure:
            # The walk stats every file of every copy it measures: it runs in a thread at low
            # CPU and idle I/O priority and waits while Podman holds a store lock, so on a busy
            # host the report slows down rather than Podman (benchmark: make bench-latency).
            estimate = measure == ESTIMATED
            activity = PodmanActivity([p for p in self._lock_paths() if os.path.exists(p)])
            try:
                run_in_background(lambda: measure_copies(self.layout, inventory.copies, estimate=estimate,
                                                         pause=activity.pause))
            finally:
                activity.close()
            inventory.sizes = ESTIMATED if estimate else MEASURED
        else:
            inventory.sizes = NOT_MEASURED

    # --- the API of contracts.md -----------------------------------------------------------
    def inventory(self, min_age: float = 0.0, measure: Measure = True) -> Inventory:
        """Images, top layers and mapped copies, read under shared locks; sizes are measured
        after the locks are released (``measure``: True, "estimate" or False)."""
        if not self.is_initialized():
            return Inventory(graphroot=self.layout.graphroot)
        _state, inventory = self._read(min_age, refuse_inconsistent=False)
        self._measure(inventory, measure)
        inventory.staging = self.stale_staging()
        inventory.stranded = self.stranded()
        return inventory

    def check_consistency(self) -> None:
        """The consistency gate alone, under shared locks: raises InconsistentStoreError."""
        if self.is_initialized():
            self._read(0.0)

    def finish_staging(self, retry_stranded: bool = True) -> Result:
        """Finish what this library staged before, ahead of planning anything new: runs of
        crashed prunes, and one more try at each stranded run (``retry_stranded``). The
        module calls it at the start of a prune, the guard at start-up. Never raises for what
        it cannot delete: that stays stranded and is reported."""
        result = Result()
        if os.path.isdir(staging_root(self.layout)):
            account_staging(result, finish_staging(self.layout, retry_stranded=retry_stranded))
        return result

    def stranded(self) -> List[Dict[str, str]]:
        """Stranded staged entries (read only): path, errno, what_to_do."""
        return stranded_entries(self.layout)

    def stale_staging(self) -> List[str]:
        """Staging directories left by killed prunes (the next prune deletes them)."""
        return [os.path.join(staging_root(self.layout), name) for name in stale_runs(self.layout)]

    def records(self) -> Dict[str, List[Dict[str, Any]]]:
        """The layer, image and container records as stored, read under shared locks (held
        for the JSON reads only). Read-only; for callers that compare or inspect records."""
        if not self.is_initialized():
            return {"layers": [], "images": [], "containers": []}
        paths = [p for p in self._lock_paths() if os.path.exists(p)]
        with StoreLocks(paths, exclusive=False):
            state = self._load_with_mounts()
        return {"layers": list(state.layers.values()), "images": list(state.images),
                "containers": list(state.containers)}

    def prune_plan(self, min_age: float, images: Optional[Sequence[str]] = None,
                   keep_maps: Iterable[KeepMap] = (), measure: Measure = True, preflight: bool = True) -> Plan:
        """What a prune would remove; read like :meth:`inventory`. With ``preflight`` every
        copy is walked now and those the pre-flight refuses are moved to ``undeletable`` (the
        exact plan check mode reports); without, :meth:`prune` walks them batch by batch,
        overlapped with the deletion."""
        keep = list(keep_maps)
        if not self.is_initialized():
            return Plan()
        state, inventory = self._read(min_age)
        names = {image["id"]: list(image.get("names") or []) for image in state.images}
        plan = Plan(select_prunable(inventory, images, keep, names), min_age=min_age)
        self._measure(Inventory(graphroot=self.layout.graphroot, copies=plan.copies), measure)
        if preflight:
            self._preflight(plan)
        return plan

    def _preflight(self, plan: Plan) -> None:
        """Walk every planned copy not walked yet (an estimated size, or a caller's own plan),
        after the locks are released and at the measuring walk's priority, and move the copies
        whose deletion something would stop (preflight.py) out of the plan: each is skipped
        whole with its reasons, and the rest of the run goes on."""
        todo = [copy for copy in plan.copies if copy.record and copy.undeletable is None]
        if todo:
            activity = PodmanActivity([p for p in self._lock_paths() if os.path.exists(p)])
            try:
                run_in_background(lambda: measure_copies(self.layout, todo, pause=activity.pause))
            finally:
                activity.close()
        keep = []
        for copy in plan.copies:
            if copy.undeletable:
                plan.undeletable.append({"layer_id": copy.layer_id, "why": list(copy.undeletable),
                                         "reason": "undeletable"})
            else:
                keep.append(copy)
        plan.copies = keep

    def _walk_batch(self, batch: List[MappedCopy]) -> None:
        """The pre-flight walk of one batch (in walk_ahead's child process, its priority already
        low): each copy not walked yet, waiting while Podman holds a store lock."""
        todo = [copy for copy in batch if copy.record and copy.undeletable is None]
        if not todo:
            return
        activity = PodmanActivity([p for p in self._lock_paths() if os.path.exists(p)])
        try:
            measure_copies(self.layout, todo, pause=activity.pause)
        finally:
            activity.close()

    def prune(self, plan: Plan, min_age: Optional[float] = None, hook: Optional[StepHook] = None,
              finish_staged: bool = True, catch_up: bool = False,
              batch_copies: int = BATCH_COPIES, batch_inodes: int = BATCH_INODES) -> Result:
        """Remove the copies of ``plan`` that are still unused (and unmounted) when we hold the
        write locks (``min_age`` defaults to the plan's). The locks are held for metadata and
        renames only; the data is deleted after they are released, at idle I/O priority and
        pausing while Podman holds a lock, or with ``catch_up`` at the caller's priority and
        without pausing. ``finish_staged`` also deletes what crashed prunes left in staging.

        The plan goes in batches (walk_ahead.py): the pre-flight walk of the next batch runs in
        a low-priority child process while this one stages a batch and deletes it; each batch is a
        whole prune of its own (own lock hold, own staging run), so a failure or a kill between
        batches keeps what the earlier ones removed, and a copy the pre-flight refuses leaves
        the others alone."""
        min_age = plan.min_age if min_age is None else min_age
        step = hook or (lambda name: None)
        result = Result(fs_before=fs_usage(self.layout.graphroot))
        result.not_removed.extend(plan.undeletable)
        if plan.copies:
            check_writable(self.layout)
            missing = [p for p in self._lock_paths() if not os.path.exists(p)]
            if missing:
                raise StoreError("lock file(s) missing: %s; is this a store Podman created?" % ", ".join(missing))
            # Out of inodes: the first batch is a full one, its copies hold what frees the first few.
            out_of_inodes = 0 < result.fs_before["inodes_total"] and (
                result.fs_before["inodes_free"] < MIN_FREE_INODES + DRIVER_SIDE_INODES)
            ahead = WalkAhead(batches(plan.copies, batch_copies, batch_inodes, start_full=out_of_inodes),
                              self._walk_batch)
            try:
                for number, batch in enumerate(ahead):
                    if number:
                        step("batch:%d" % number)  # between two batches: a caller may stop here
                    todo = []
                    for copy in batch:
                        if copy.undeletable:  # refused by its walk: skipped whole, the rest goes on
                            result.not_removed.append({"layer_id": copy.layer_id, "why": list(copy.undeletable),
                                                       "reason": "undeletable"})
                        else:
                            todo.append(copy)
                    if todo:
                        self._prune_batch(todo, min_age, step, catch_up, result)
            except StoreError as exc:
                if result.changes and not isinstance(exc, PruneError):
                    raise PruneError(str(exc), result.changes)
                raise
            finally:
                ahead.close()
                result.walk_seconds = ahead.walk_seconds
                result.walk_waited_seconds = ahead.waited_seconds
        if finish_staged:
            step("stale")
            # Crashed runs only: stranded ones are retried once per run by finish_staging().
            account_staging(result, finish_stale_runs(self.layout, hook=step))
        step("done")
        result.inodes_freed = sum(copy.inodes for copy in result.removed)
        result.bytes_freed = sum(copy.bytes for copy in result.removed)
        result.fs_after = fs_usage(self.layout.graphroot)
        return result

    def _prune_batch(self, copies: List[MappedCopy], min_age: float, step: StepHook, catch_up: bool,
                     result: Result) -> None:
        """One batch, walked already: staged under one hold of the write locks into a staging
        run of its own, then deleted after release (prune.py steps 1-7)."""
        run = StagingRun(self.layout)
        changes_before = len(result.changes)
        removed_before = len(result.removed)
        try:
            self._prune_locked(copies, min_age, step, run, result)
        except StoreError:
            if len(result.changes) == changes_before and run.fd is not None:
                run.delete()  # nothing staged: remove the empty run directories again
            run.close()  # what it staged is a leftover now: the next run deletes it
            raise
        except BaseException:
            run.close()
            raise
        try:
            step("released")
        except BaseException:
            run.close()
            raise
        if run.fd is None:
            return
        # A copy walked by its pre-flight has its exact inode count: the deletion counts only
        # for the others (a plan made without walks), and saves an lstat per file otherwise.
        unmeasured = any(copy.measured != MEASURED for copy in result.removed[removed_before:])
        deleted = run.delete(hook=step, catch_up=catch_up, count_links=unmeasured)
        result.deletions.append(deleted.as_dict())
        staged = result.removed[removed_before:]
        for copy in staged:
            # Counted while deleting: exact, and no walk of its own (a plan made with
            # measure=False or "estimate" gets its real figure here).
            if copy.layer_id in deleted.removed_per_layer and copy.measured != MEASURED:
                copy.inodes = deleted.removed_per_layer[copy.layer_id]
                copy.measured = COUNTED
        result.staging_left.extend(deleted.left)
        if deleted.entries:
            result.changes.append("deleted %d staged entries of %d copies" % (len(deleted.entries), len(staged)))
        if deleted.stranded:
            # Our own run, still held: never judged "stale" (it is stranded-*).
            result.stranded.extend(deleted.stranded)
            result.changes.append("kept %d staged entries that could not be deleted as stranded in %s" % (
                len(deleted.stranded), deleted.run))

    def _prune_locked(self, copies: List[MappedCopy], min_age: float, step: StepHook, run: StagingRun,
                      result: Result) -> None:
        with StoreLocks(self._lock_paths(), exclusive=True) as locks:
            started = time.monotonic()
            try:
                step("locked")
                # Mounts are read under the locks: no Podman can mount a layer meanwhile.
                points = self._graph_mounts()
                # The gate, in this same hold: nothing is changed in a store Podman could not
                # trust (an emptied layers.json would otherwise make every copy look dangling).
                state, findings = self._load_checked()
                if findings:
                    raise InconsistentStoreError(findings)
                # Same rules as the plan, now that nobody can change the store under us.
                current = {copy.layer_id: copy for copy in build_inventory(
                    state, min_age=min_age, now=time.time(), measure=False, mount_points=points).copies}
                todo: List[MappedCopy] = []
                for planned in copies:
                    fresh = current.get(planned.layer_id)
                    if fresh is None:
                        result.not_removed.append({"layer_id": planned.layer_id, "why": ["gone since planning"],
                                                   "reason": "gone"})
                    elif fresh.in_use:
                        mounted = any(why.startswith("mounted") for why in fresh.why)
                        result.not_removed.append({"layer_id": planned.layer_id, "why": fresh.why,
                                                   "reason": "mounted" if mounted else "in use"})
                    else:
                        # Sizes were measured for the plan; an unused copy does not change.
                        fresh.inodes, fresh.bytes, fresh.measured = planned.inodes, planned.bytes, planned.measured
                        # Flags set since the pre-flight walk (chattr meanwhile): held back.
                        changed = flags_changed(self.layout, fresh.layer_id, fresh.link, planned.flags_seen) \
                            if planned.record else None
                        if changed:
                            result.not_removed.append({"layer_id": planned.layer_id, "reason": "undeletable",
                                                       "why": ["undeletable: %s" % changed]})
                            continue
                        todo.append(fresh)
                freed_first, staged, put_back = execute(self.layout, locks, state, todo, run, step, result.changes)
                result.freed_first.extend(freed_first)
                result.removed.extend(staged)
                result.not_removed.extend(put_back)
            finally:
                result.lock_seconds += time.monotonic() - started
