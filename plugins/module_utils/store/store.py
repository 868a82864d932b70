# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one entry point to a containers/storage overlay store: inventory, plan, prune."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import (
    Inventory, KeepMap, MappedCopy, build_inventory, select_prunable,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout
from ansible_collections.idmapguard.storage.plugins.module_utils.store.locks import LockFile, StoreLocks
from ansible_collections.idmapguard.storage.plugins.module_utils.store.prune import (
    Plan, Result, StepHook, check_writable, execute,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.state import StoreState
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage


class Store:
    """An overlay store of containers/storage at ``graphroot``/``runroot``.

    Read-only additional image stores (``additional``) are never changed: c/storage does not
    make mapped copies in them (imageTopLayerForMapping sets createMappedLayer = false), so
    they hold nothing to prune.
    """

    def __init__(self, graphroot: str, runroot: str, imagestore: Optional[str] = None,
                 transient: bool = False, additional: Sequence[str] = ()) -> None:
        self.layout = StoreLayout(graphroot, runroot, imagestore, transient)
        self.additional = list(additional)

    # --- locking ---------------------------------------------------------------------------
    def _lock_paths(self) -> List[str]:
        layout = self.layout
        return [layout.layers_lock, layout.images_lock, layout.containers_lock]

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

    # --- the API of contracts.md -----------------------------------------------------------
    def inventory(self, min_age: float = 0.0, measure: bool = True) -> Inventory:
        """Images, top layers and mapped copies, read under shared locks."""
        if not self.is_initialized():
            return Inventory(graphroot=self.layout.graphroot)
        paths = [p for p in self._lock_paths() if os.path.exists(p)]
        with StoreLocks(paths, exclusive=False):
            state = self._load_with_mounts()
            return build_inventory(state, min_age=min_age, measure=measure)

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
                   keep_maps: Iterable[KeepMap] = ()) -> Plan:
        keep = list(keep_maps)
        if not self.is_initialized():
            return Plan()
        paths = [p for p in self._lock_paths() if os.path.exists(p)]
        with StoreLocks(paths, exclusive=False):
            state = self._load_with_mounts()
            inventory = build_inventory(state, min_age=min_age)
            names = {image["id"]: list(image.get("names") or []) for image in state.images}
            plan = Plan(select_prunable(inventory, images, keep, names), min_age=min_age)
        return plan

    def prune(self, plan: Plan, min_age: Optional[float] = None, hook: Optional[StepHook] = None) -> Result:
        """Remove the copies of ``plan`` that are still unused when we hold the write locks
        (``min_age`` defaults to the plan's)."""
        min_age = plan.min_age if min_age is None else min_age
        result = Result(fs_before=fs_usage(self.layout.graphroot))
        if not plan.copies:
            result.fs_after = result.fs_before
            return result
        check_writable(self.layout)
        missing = [p for p in self._lock_paths() if not os.path.exists(p)]
        if missing:
            raise StoreError("lock file(s) missing: %s; is this a store Podman created?" % ", ".join(missing))
        with StoreLocks(self._lock_paths(), exclusive=True) as locks:
            state = self._load_with_mounts()
            # Same rules as the plan, now that nobody can change the store under us.
            now = time.time()
            # Sizes were measured for the plan; an unused copy does not change, so skip a second walk.
            current = {copy.layer_id: copy
                       for copy in build_inventory(state, min_age=min_age, now=now, measure=False).copies}
            todo: List[MappedCopy] = []
            for planned in plan.copies:
                fresh = current.get(planned.layer_id)
                if fresh is None:
                    result.skipped.append({"layer_id": planned.layer_id, "why": ["gone since planning"]})
                elif fresh.in_use:
                    result.skipped.append({"layer_id": planned.layer_id, "why": fresh.why})
                else:
                    fresh.inodes, fresh.bytes = planned.inodes, planned.bytes
                    todo.append(fresh)
            result.freed_first = execute(self.layout, locks, state, todo, hook)
            result.removed = todo
        result.inodes_freed = sum(copy.inodes for copy in result.removed)
        result.bytes_freed = sum(copy.bytes for copy in result.removed)
        result.fs_after = fs_usage(self.layout.graphroot)
        return result
