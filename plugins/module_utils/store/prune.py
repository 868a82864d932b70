# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remove unused ID-mapped copies with lock holds that do not grow with the data, in an order
that leaves a store every Podman (4.3 to 5.8) loads and uses if we are killed at any point.

Under the store's write locks (taken as store.go writeToAllStores does: layers -> images ->
containers) only constant-time work per copy is done; the plan is checked again there, so a
copy that came into use or got a mount since planning is skipped:

1. At 0 free inodes: free inodes inside doomed copies without touching metadata: their
   ``merged`` directory (empty while unmounted; overlay.go get() recreates it before every
   mount), else their tar-split file (only read to export the layer's diff).
2. A staging run ``<graphroot>/idmapguard-staging/run-*`` (see staging.py), locked by us.
3. images.json without the copies in ``mapped-layers``: from here no Podman picks a copy for a
   new container (imageTopLayerForMapping only walks mapped-layers).
4. layers.json with the copies flagged ``incomplete`` (+ our own flag), as layers.go
   internalDelete does before deleting. If we die from here on, every c/storage that loads the
   store for writing deletes the layer itself (missing data is fine for it), and so does our
   next run.
5. Per copy, by rename into the staging run: its ``l/<link>`` symlink first (its name is read
   from the driver dir, so it must go before it), its driver dir ``overlay/<id>``, its
   tar-split, its big-data dir. A copy whose data cannot be staged whole is put back whole.
6. fsync of the renames, then layers.json without the staged copies' records (and with the
   flags of a put-back copy restored; images.json gets it back in mapped-layers after that).
7. Locks released. The staged data is then deleted at idle I/O and CPU priority, checking the
   mount id at every directory; staging left by a crashed run is found and deleted too.

Store.prune runs these steps once per batch of the plan (walk_ahead.py), each batch with its
own lock hold and staging run, deleted before the next batch takes the locks; only the
read-only pre-flight walk of the next batch runs meanwhile. So a kill leaves at most one batch
in one of the states above, the earlier batches done and the later ones untouched.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import copy as copy_module
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import MappedCopy
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import NoFreeInodeError, StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.jsonfile import write_json_list
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout, checked_id
from ansible_collections.idmapguard.storage.plugins.module_utils.store.locks import StoreLocks
from ansible_collections.idmapguard.storage.plugins.module_utils.store.safe_delete import open_dir, remove_file_at
from ansible_collections.idmapguard.storage.plugins.module_utils.store.staging import (
    DRIVER_AREA, GRAPH_AREA, StagingRun, driver_home_shares_mount,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.state import (
    INCOMPLETE_FLAG, PRUNING_FLAG, StoreState,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage

# The staging root and run directories, and the temp file of each JSON write (freed again by
# its rename); 3 more (overlay/tempdirs, its run, our marker) when the driver home is its own
# mount (see staging.py).
MIN_FREE_INODES = 3
DRIVER_SIDE_INODES = 3

# Test hook: called with a step name before each step; the kill -9 tests use it through the
# IDMAPGUARD_TEST_STEP_SLEEP environment variable of the guard's entry point, never in production.
StepHook = Callable[[str], None]


@dataclass
class Plan:
    """What a prune removes: exactly what check mode reports."""

    copies: List[MappedCopy] = field(default_factory=list)
    min_age: float = 0.0  # the age rule the plan was made with; prune() re-applies it
    # Copies the pre-flight holds back (preflight.py), as skipped entries: reason "undeletable".
    undeletable: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def layer_ids(self) -> List[str]:
        return [copy.layer_id for copy in self.copies]

    @property
    def inodes(self) -> int:
        return sum(copy.inodes for copy in self.copies)

    @property
    def bytes(self) -> int:
        return sum(copy.bytes for copy in self.copies)

    def as_dict(self) -> Dict[str, Any]:
        return {"copies": [copy.as_dict() for copy in self.copies], "count": len(self.copies),
                "inodes": self.inodes, "bytes": self.bytes, "undeletable": self.undeletable}


@dataclass
class Result:
    removed: List[MappedCopy] = field(default_factory=list)
    # Planned copies left alone, with reason and why. Not "skipped": Ansible reads a result's
    # "skipped" key as the task's own skipped flag (a non-empty list makes `is skipped` true).
    not_removed: List[Dict[str, Any]] = field(default_factory=list)
    inodes_freed: int = 0
    bytes_freed: int = 0
    freed_first: List[str] = field(default_factory=list)
    fs_before: Dict[str, int] = field(default_factory=dict)
    fs_after: Dict[str, int] = field(default_factory=dict)
    changes: List[str] = field(default_factory=list)        # what was changed, in order
    deletions: List[Dict[str, Any]] = field(default_factory=list)  # staging runs deleted
    staging_left: List[Dict[str, str]] = field(default_factory=list)  # staged data not deleted (why)
    recovered: List[Dict[str, Any]] = field(default_factory=list)  # stale runs of crashed prunes
    # Staged entries that could not be deleted, kept under names that say why (staging.py):
    # path, errno, blocked_by, what_to_do. Also those a retry could not delete again.
    stranded: List[Dict[str, str]] = field(default_factory=list)
    retried: List[str] = field(default_factory=list)         # one line per stranded run retried
    lock_seconds: float = 0.0                                # how long the write locks were held (all batches)
    walk_seconds: float = 0.0          # the pre-flight walk in its child (overlapped with the deletion)
    walk_waited_seconds: float = 0.0   # time the prune waited for that walk (the first batch's, mostly)

    @property
    def changed(self) -> bool:
        # Only what really changed on disk this run: a retry that deleted nothing is not a change.
        return bool(self.removed or self.changes)

    def as_dict(self) -> Dict[str, Any]:
        return {"removed": [copy.as_dict() for copy in self.removed], "not_removed": self.not_removed,
                "inodes_freed": self.inodes_freed, "bytes_freed": self.bytes_freed,
                "freed_first": self.freed_first, "fs_before": self.fs_before, "fs_after": self.fs_after,
                "changes": self.changes, "staging_left": self.staging_left, "recovered": self.recovered,
                "stranded": self.stranded, "stranded_retried": self.retried,
                "lock_seconds": round(self.lock_seconds, 4),
                "walk_seconds": round(self.walk_seconds, 3), "walk_waited_seconds": round(self.walk_waited_seconds, 3),
                "delete_seconds": round(sum(d.get("seconds", 0.0) for d in self.deletions), 3),
                "delete_paused_seconds": round(sum(d.get("paused_seconds", 0.0) for d in self.deletions), 3)}


class PruneError(StoreError):
    """A prune failed part-way; ``changes`` says what was changed before the failure."""

    def __init__(self, message: str, changes: List[str]) -> None:
        done = "; ".join(changes) if changes else "nothing"
        super().__init__("%s (changed before the failure: %s; the store stays one Podman loads)" % (message, done))
        self.changes = list(changes)


def _free_inodes(path: str) -> int:
    return fs_usage(path)["inodes_free"]


def _remove_empty_dirs(layout: StoreLayout, copy: MappedCopy, names: Sequence[str], freed: List[str]) -> None:
    """rmdir the NAMES (in order) inside a doomed copy's driver dir, where they are empty: EBUSY
    if mounted, ENOTEMPTY if in use leave them alone."""
    layer_dir = os.path.join(layout.driver_dir, checked_id(copy.layer_id, "layer"))
    try:
        fd = open_dir(layer_dir)
    except FileNotFoundError:
        return
    try:
        for name in names:
            try:
                os.rmdir(name, dir_fd=fd)
                freed.append(os.path.join(layer_dir, name))
            except OSError:
                pass
    finally:
        os.close(fd)


def free_an_inode(layout: StoreLayout, copies: List[MappedCopy], needed: int = MIN_FREE_INODES) -> List[str]:
    """Step 1: free inodes inside doomed copies until staging and JSON writes can succeed."""
    freed: List[str] = []
    for copy in copies:
        if _free_inodes(layout.graphroot) >= needed:
            return freed
        _remove_empty_dirs(layout, copy, ("merged",), freed)
    for copy in copies:
        if _free_inodes(layout.graphroot) >= needed:
            return freed
        parent_fd = open_dir(layout.layer_dir)
        try:
            name = layout.tar_split_name(copy.layer_id)
            if remove_file_at(parent_fd, name):
                freed.append(os.path.join(layout.layer_dir, name))
        finally:
            os.close(parent_fd)
    # Podman 3.0's copies have neither (no merged/, no tar-split): their empty work/ dir goes.
    # An image layer's copy is only ever a lower layer, never mounted with that workdir.
    for copy in copies:
        if _free_inodes(layout.graphroot) >= needed:
            return freed
        _remove_empty_dirs(layout, copy, ("work/work", "work"), freed)
    if _free_inodes(layout.graphroot) < needed:
        raise NoFreeInodeError("%s has fewer than %d free inodes and no more could be freed inside the copies to "
                               "remove (changed: %s)" % (layout.graphroot, needed,
                                                         ", ".join("removed " + p for p in freed) or "nothing"))
    return freed


def _write_layer_files(state: StoreState, files: List[str]) -> None:
    for path in files:
        write_json_list(path, state.layer_files[path])


def staged_parts(layout: StoreLayout, copy: MappedCopy) -> List[Tuple[str, str, str, str]]:
    """(parent, name, staged name, staging area) of each part of a copy, in staging order."""
    layer_id = checked_id(copy.layer_id, "layer")
    parts = []
    if copy.link:
        parts.append((layout.link_dir, copy.link, layer_id + ".link", DRIVER_AREA))
    parts.append((layout.driver_dir, layer_id, layer_id + ".overlay", DRIVER_AREA))
    parts.append((layout.layer_dir, layout.tar_split_name(layer_id), layer_id + ".tar-split.gz", GRAPH_AREA))
    parts.append((layout.layer_dir, layer_id, layer_id + ".big-data", GRAPH_AREA))
    return parts


def stage_copy(layout: StoreLayout, run: StagingRun, copy: MappedCopy, moved: Optional[List[Any]] = None) -> Optional[str]:
    """Step 5 for one copy: None when staged whole, else why it was put back whole.
    ``moved`` gets the parts that were really renamed (none for a copy without data)."""
    moved = [] if moved is None else moved
    try:
        for parent, name, staged_name, area in staged_parts(layout, copy):
            if run.stage(parent, name, staged_name, area):
                moved.append((parent, name, staged_name, area))
    except (OSError, StoreError) as exc:
        for parent, name, staged_name, area in reversed(moved):
            try:
                run.unstage(parent, name, staged_name, area)
            except OSError as back_exc:
                return "cannot stage (%s) and cannot put %s back (%s)" % (exc, staged_name, back_exc)
        del moved[:]
        return "cannot stage: %s" % exc
    return None


def execute(layout: StoreLayout, locks: StoreLocks, state: StoreState, copies: List[MappedCopy],
            run: StagingRun, hook: Optional[StepHook] = None,
            changes: Optional[List[str]] = None) -> Tuple[List[str], List[MappedCopy], List[Dict[str, Any]]]:
    """Steps 1-6 for ``copies`` (already re-checked under ``locks``).

    Returns (freed-first paths, staged copies, copies put back whole with why). ``changes``
    gets one line per change made, as it is made."""
    step = hook or (lambda name: None)
    done = changes if changes is not None else []
    if not copies:
        return [], [], []
    step("free-inode")
    needed = MIN_FREE_INODES + (0 if driver_home_shares_mount(layout) else DRIVER_SIDE_INODES)
    freed_first = free_an_inode(layout, copies, needed)
    done.extend("removed %s to free an inode" % path for path in freed_first)
    run.open()
    run.check_same_mount({DRIVER_AREA: [layout.driver_dir, layout.link_dir], GRAPH_AREA: [layout.layer_dir]})
    doomed = set(copy.layer_id for copy in copies)
    image_of = {copy.layer_id: {copy.image_id, *copy.also_listed_by} for copy in copies}

    step("images")
    images_changed = 0
    for image in state.images:
        mapped = image.get("mapped-layers")
        if mapped and any(layer_id in doomed for layer_id in mapped):
            kept = [layer_id for layer_id in mapped if layer_id not in doomed]
            images_changed += len(mapped) - len(kept)
            if kept:
                image["mapped-layers"] = kept
            else:
                del image["mapped-layers"]  # Go writes it with omitempty
    if images_changed:
        write_json_list(layout.images_json, state.images)
        locks.lock_for(layout.images_lock).record_write()
        done.append("images.json: %d mapped-layers entries taken out (%d copies)" % (images_changed, len(doomed)))

    step("mark")
    marked_files = []
    old_flags: Dict[str, Any] = {}
    for copy in copies:
        record = state.layer(copy.layer_id)
        if record is None:
            continue
        old_flags[copy.layer_id] = copy_module.deepcopy(record.get("flags"))
        flags = record.get("flags")
        if not isinstance(flags, dict):
            flags = record["flags"] = {}
        if flags.get(INCOMPLETE_FLAG) is not True or flags.get(PRUNING_FLAG) is not True:
            flags[INCOMPLETE_FLAG] = True
            flags[PRUNING_FLAG] = True
            marked_files.append(state.layer_file_of[copy.layer_id])
    if marked_files:
        _write_layer_files(state, sorted(set(marked_files)))
        locks.lock_for(layout.layers_lock).record_write()
        done.append("layers.json: %d copies flagged incomplete" % len(old_flags))

    staged: List[MappedCopy] = []
    put_back: List[Dict[str, Any]] = []
    with_data = 0
    for copy in copies:
        step("stage:%s" % copy.layer_id)
        moved: List[Any] = []
        why = stage_copy(layout, run, copy, moved) if copy.record else None
        if why is None:
            staged.append(copy)
            with_data += 1 if moved else 0
        else:
            put_back.append({"layer_id": copy.layer_id, "why": [why], "reason": "cannot stage"})
    if with_data:
        # Only copies whose data was really renamed: a record without data moves nothing.
        done.append("%d copies moved into %s" % (
            with_data, run.path if run.driver_path == run.path else "%s and %s" % (run.driver_path, run.path)))
    run.sync()

    step("records")
    back = set(entry["layer_id"] for entry in put_back)
    record_files = set()
    for copy in copies:
        if copy.layer_id not in state.layers:
            continue
        record_files.add(state.layer_file_of[copy.layer_id])
        if copy.layer_id in back:
            flags = old_flags.get(copy.layer_id)
            if flags is None:
                state.layers[copy.layer_id].pop("flags", None)
            else:
                state.layers[copy.layer_id]["flags"] = flags
        else:
            del state.layers[copy.layer_id]
    for path in record_files:
        state.layer_files[path] = [r for r in state.layer_files[path]
                                   if r.get("id") not in doomed or r.get("id") in back]
    if record_files:
        _write_layer_files(state, sorted(record_files))
        locks.lock_for(layout.layers_lock).record_write()
        done.append("layers.json: %d records removed%s" % (
            len(staged), ", %d restored" % len(back) if back else ""))
    if back:
        restored = 0
        for image in state.images:
            again = [lid for lid in back if image.get("id") in image_of.get(lid, ()) and lid in state.layers]
            if again:
                image["mapped-layers"] = list(image.get("mapped-layers") or []) + again
                restored += len(again)
        if restored:
            write_json_list(layout.images_json, state.images)
            locks.lock_for(layout.images_lock).record_write()
            done.append("images.json: %d copies put back into mapped-layers" % restored)
    return freed_first, staged, put_back


def check_writable(layout: StoreLayout) -> None:
    if not os.path.isdir(layout.driver_dir):
        raise StoreError("%s does not exist: not an overlay store" % layout.driver_dir)


def account_staging(result: Result, deletions: List[Any]) -> None:
    """Fold finished staging (staging.finish_staging: crashed runs, stranded runs retried) into
    ``result``: what was deleted is a change, what is still there is stranded, and each
    stranded run retried says so."""
    for deleted in deletions:
        record = deleted.as_dict()
        result.stranded.extend(deleted.stranded)
        result.staging_left.extend(deleted.left)
        if deleted.retried:
            result.retried.append("retried %s once: %d entries deleted, %d still stranded%s" % (
                deleted.run, len(deleted.entries), len(deleted.stranded),
                " (%s)" % ", ".join(sorted({s["errno"] for s in deleted.stranded})) if deleted.stranded else ""))
            if deleted.entries:
                result.changes.append("deleted %d stranded entries (%d inodes) in %s" % (
                    len(deleted.entries), deleted.inodes, deleted.run))
            continue
        result.recovered.append(record)
        if deleted.entries:
            result.changes.append("deleted %d entries (%d inodes) left in %s by a prune that died" % (
                len(deleted.entries), deleted.inodes, deleted.run))
        if deleted.stranded:
            result.changes.append("kept %d entries of a prune that died as stranded in %s" % (
                len(deleted.stranded), deleted.run))
