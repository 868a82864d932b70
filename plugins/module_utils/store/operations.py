# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A report and a prune of one store, as the result the ``mapped_layers`` module returns and
``idmapguard-prune`` prints: one implementation of both, on the store library alone.

Which copies a prune may take is given by ``images`` and ``keep_maps`` (:data:`SELECTION_SPEC`,
the one definition the module's argument spec and the guard's parameter file both use).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.idmapguard.storage.plugins.module_utils.idmap import IDMapError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import KeepMap
from ansible_collections.idmapguard.storage.plugins.module_utils.store.prune import StepHook
from ansible_collections.idmapguard.storage.plugins.module_utils.store.store import Measure, Store
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage

SELECTION_SPEC: Dict[str, Dict[str, Any]] = dict(
    images=dict(type="list", elements="str"),
    keep_maps=dict(type="list", elements="dict", options=dict(
        uidmap=dict(type="str", required=True),
        gidmap=dict(type="str"),
    )),
)


class SelectionError(ValueError):
    """A keep_maps entry that names no map."""


def parse_keep_maps(entries: Optional[List[Any]]) -> List[KeepMap]:
    """keep_maps entries ({"uidmap", "gidmap"} or a bare uidmap string) as KeepMaps."""
    keep = []
    for entry in entries or []:
        if isinstance(entry, str):
            entry = {"uidmap": entry}
        if not isinstance(entry, dict) or not entry.get("uidmap"):
            raise SelectionError("keep_maps entries need a uidmap, got %r" % (entry,))
        try:
            keep.append(KeepMap.parse(str(entry["uidmap"]), entry.get("gidmap")))
        except IDMapError as exc:
            raise SelectionError("keep_maps: %s" % exc)
    return keep


def report(store: Store, min_age: float, measure: Measure = True) -> Dict[str, Any]:
    """Images, mapped copies and the graphroot filesystem's use (``changed`` is False)."""
    result: Dict[str, Any] = {"changed": False}
    result.update(store.inventory(min_age=min_age, measure=measure).as_dict())
    result["filesystem"] = fs_usage(store.location.graphroot)
    return result


def prune(store: Store, min_age: float, images: Optional[Sequence[str]], keep: Sequence[KeepMap],
          check_mode: bool, measure: Measure = True, hook: Optional[StepHook] = None,
          batch_copies: Optional[int] = None) -> Dict[str, Any]:
    """Remove the unused copies (in ``check_mode``, say which would go); the result has
    ``changed`` and a ``diff`` of the copies before and after. Raises StoreError (a PruneError
    names what was changed before it failed). ``batch_copies``: copies per batch (tests; the
    default is walk_ahead.BATCH_COPIES)."""
    graphroot = store.location.graphroot
    finished = None
    if not check_mode:
        # What earlier runs staged is finished before anything new is planned (crashed runs;
        # stranded entries get one more try, and the result says so) -- after the consistency
        # gate, so a refused store is refused with truly nothing changed.
        store.check_consistency()
        if hook is not None:
            hook("stale")
        finished = store.finish_staging()
    if hook is not None:
        hook("plan")
    # Check mode reports the exact plan (every copy walked). A real prune measures one copy per
    # image for the plan and walks the others (their pre-flight) batch by batch inside
    # Store.prune, overlapped with the deletion of the batch before; each removed copy's inodes
    # are counted while it is deleted (its "measured" says "counted"; bytes stay the estimate).
    plan = store.prune_plan(min_age, images, keep, measure=measure if check_mode else "estimate",
                            preflight=check_mode)
    result: Dict[str, Any] = {"changed": False, "plan": plan.as_dict()}
    result["diff"] = {"before": {"mapped_copies": sorted(plan.layer_ids)}, "after": {"mapped_copies": []},
                      "before_header": "%s mapped copies to remove" % graphroot,
                      "after_header": "%s after prune" % graphroot}
    if check_mode:
        staging = store.stale_staging()
        result.update(changed=bool(plan.copies or staging), removed=[c.as_dict() for c in plan.copies],
                      not_removed=list(plan.undeletable), inodes_freed=plan.inodes, bytes_freed=plan.bytes,
                      staging=staging, stranded=store.stranded(), filesystem=fs_usage(graphroot))
        return result
    batch = {"batch_copies": batch_copies} if batch_copies else {}
    outcome = store.prune(plan, min_age, hook, finish_staged=False, **batch)
    if finished is not None:
        outcome.changes[:0] = finished.changes
        outcome.recovered[:0] = finished.recovered
        outcome.stranded[:0] = finished.stranded
        outcome.retried[:0] = finished.retried
        outcome.staging_left[:0] = finished.staging_left
    result.update(outcome.as_dict())
    result["changed"] = outcome.changed
    result["diff"]["after"] = {"mapped_copies": sorted(c["layer_id"] for c in outcome.not_removed)}
    result["filesystem"] = outcome.fs_after
    return result
