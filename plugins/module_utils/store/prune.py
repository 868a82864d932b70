# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remove unused ID-mapped copies, in an order that survives a crash at any point.

All of it runs under the store's write locks, taken as store.go writeToAllStores does
(layers -> images -> containers), so no Podman process can create, mount or delete a layer
meanwhile; the plan is checked again under those locks, so a copy that came into use since
planning is skipped. Steps, each one leaving a store every Podman (4.3 to 5.8) uses:

1. At 0 free inodes: free one inside a doomed copy without touching metadata: its ``merged``
   directory (empty while unmounted; overlay.go get() recreates it before every mount), else
   its tar-split file (only read to export the layer's diff).
2. images.json without the copies in ``mapped-layers``. From here no Podman picks the copy
   for a new container (imageTopLayerForMapping only walks mapped-layers).
3. layers.json with the copies flagged ``incomplete`` (+ our own flag). This is what
   layers.go internalDelete does before deleting: if we die after this, any c/storage that
   loads the store for writing deletes the layer itself, and our next run finishes it too.
4. Per copy: its ``l/<link>`` symlink, then ``overlay/<id>``, its tar-split, its big-data dir.
5. layers.json without the records.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import MappedCopy
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import NoFreeInodeError, StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.jsonfile import write_json_list
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout, checked_id
from ansible_collections.idmapguard.storage.plugins.module_utils.store.locks import StoreLocks
from ansible_collections.idmapguard.storage.plugins.module_utils.store.safe_delete import (
    open_dir, remove_file_at, remove_tree_at,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.state import (
    INCOMPLETE_FLAG, PRUNING_FLAG, StoreState,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage

# Each JSON write needs one inode for its temp file (freed again by the rename).
MIN_FREE_INODES = 2

# Test hook: called with a step name before each step; the kill -9 tests use it through the
# IDMAPGUARD_PRUNE_PAUSE environment variable of the entry point, never in production.
StepHook = Callable[[str], None]


@dataclass
class Plan:
    """What a prune removes: exactly what check mode reports."""

    copies: List[MappedCopy] = field(default_factory=list)
    min_age: float = 0.0  # the age rule the plan was made with; prune() re-applies it

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
                "inodes": self.inodes, "bytes": self.bytes}


@dataclass
class Result:
    removed: List[MappedCopy] = field(default_factory=list)
    skipped: List[Dict[str, Any]] = field(default_factory=list)
    inodes_freed: int = 0
    bytes_freed: int = 0
    freed_first: List[str] = field(default_factory=list)
    fs_before: Dict[str, int] = field(default_factory=dict)
    fs_after: Dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.removed)

    def as_dict(self) -> Dict[str, Any]:
        return {"removed": [copy.as_dict() for copy in self.removed], "skipped": self.skipped,
                "inodes_freed": self.inodes_freed, "bytes_freed": self.bytes_freed,
                "freed_first": self.freed_first, "fs_before": self.fs_before, "fs_after": self.fs_after}


def _free_inodes(path: str) -> int:
    return fs_usage(path)["inodes_free"]


def free_an_inode(layout: StoreLayout, copies: List[MappedCopy]) -> List[str]:
    """Step 1: free inodes inside doomed copies until a JSON write can succeed."""
    freed: List[str] = []
    for copy in copies:
        if _free_inodes(layout.graphroot) >= MIN_FREE_INODES:
            return freed
        layer_dir = os.path.join(layout.driver_dir, checked_id(copy.layer_id, "layer"))
        try:
            fd = open_dir(layer_dir)
        except FileNotFoundError:
            continue
        try:
            try:
                os.rmdir("merged", dir_fd=fd)  # EBUSY if mounted, ENOTEMPTY if in use: skip then
                freed.append(os.path.join(layer_dir, "merged"))
            except OSError:
                pass
        finally:
            os.close(fd)
    for copy in copies:
        if _free_inodes(layout.graphroot) >= MIN_FREE_INODES:
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
        if _free_inodes(layout.graphroot) >= MIN_FREE_INODES:
            return freed
        layer_dir = os.path.join(layout.driver_dir, checked_id(copy.layer_id, "layer"))
        try:
            fd = open_dir(layer_dir)
        except FileNotFoundError:
            continue
        try:
            for name in ("work/work", "work"):
                try:
                    os.rmdir(name, dir_fd=fd)  # only when empty (ENOTEMPTY otherwise)
                    freed.append(os.path.join(layer_dir, name))
                except OSError:
                    pass
        finally:
            os.close(fd)
    if _free_inodes(layout.graphroot) < 1:
        raise NoFreeInodeError("%s has no free inode and none could be freed inside the copies to remove "
                               "(nothing was changed)" % layout.graphroot)
    return freed


def _write_layer_files(state: StoreState, files: List[str]) -> None:
    for path in files:
        write_json_list(path, state.layer_files[path])


def remove_copy_data(layout: StoreLayout, copy: MappedCopy) -> None:
    """Step 4 for one copy: link, driver dir, tar-split, big-data dir; nothing else."""
    layer_id = checked_id(copy.layer_id, "layer")
    if copy.link:
        link_fd = open_dir(layout.link_dir)
        try:
            remove_file_at(link_fd, copy.link)
        finally:
            os.close(link_fd)
    driver_fd = open_dir(layout.driver_dir)
    try:
        remove_tree_at(driver_fd, layer_id)
    finally:
        os.close(driver_fd)
    try:
        layer_fd = open_dir(layout.layer_dir)
    except FileNotFoundError:
        return
    try:
        remove_file_at(layer_fd, layout.tar_split_name(layer_id))
        remove_tree_at(layer_fd, layer_id)
    finally:
        os.close(layer_fd)


def execute(layout: StoreLayout, locks: StoreLocks, state: StoreState, copies: List[MappedCopy],
            hook: Optional[StepHook] = None) -> List[str]:
    """Steps 1-5 for ``copies`` (already re-checked under ``locks``). Returns freed-first paths."""
    step = hook or (lambda name: None)
    if not copies:
        return []
    doomed = set(copy.layer_id for copy in copies)
    step("free-inode")
    freed_first = free_an_inode(layout, copies)

    step("images")
    images_changed = False
    for image in state.images:
        mapped = image.get("mapped-layers")
        if mapped and any(layer_id in doomed for layer_id in mapped):
            kept = [layer_id for layer_id in mapped if layer_id not in doomed]
            if kept:
                image["mapped-layers"] = kept
            else:
                del image["mapped-layers"]  # Go writes it with omitempty
            images_changed = True
    if images_changed:
        write_json_list(layout.images_json, state.images)
        locks.lock_for(layout.images_lock).record_write()

    step("mark")
    marked_files = []
    for copy in copies:
        record = state.layer(copy.layer_id)
        if record is None:
            continue
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

    for copy in copies:
        if not copy.record:
            continue
        step("data:%s" % copy.layer_id)
        remove_copy_data(layout, copy)

    step("records")
    record_files = set()
    for copy in copies:
        if copy.record and copy.layer_id in state.layers:
            record_files.add(state.layer_file_of[copy.layer_id])
            del state.layers[copy.layer_id]
    for path in record_files:
        state.layer_files[path] = [r for r in state.layer_files[path] if r.get("id") not in doomed]
    if record_files:
        _write_layer_files(state, sorted(record_files))
        locks.lock_for(layout.layers_lock).record_write()
    step("done")
    return freed_first


def check_writable(layout: StoreLayout) -> None:
    if not os.path.isdir(layout.driver_dir):
        raise StoreError("%s does not exist: not an overlay store" % layout.driver_dir)
