# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ``mapped_layers`` module and the on-host guard do, without Ansible.

Both call :func:`run_mapped_layers`, so there is one implementation of pruning.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Dict, List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.idmap import IDMapError
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    PodmanError, Runner, StorageConfError, storage_settings,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import KeepMap
from ansible_collections.idmapguard.storage.plugins.module_utils.store.consistency import InconsistentStoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import NoFreeInodeError, StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.prune import PruneError, StepHook
from ansible_collections.idmapguard.storage.plugins.module_utils.store.store import Store
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage

DEFAULT_MIN_AGE = 300


def argument_spec() -> Dict[str, Any]:
    """The module's argument spec, defined once: the module and the guard's parameter file use it."""
    return dict(
        state=dict(type="str", choices=["report", "pruned"], default="report"),
        graphroot=dict(type="path"),
        runroot=dict(type="path"),
        imagestore=dict(type="path"),
        transient_store=dict(type="bool"),
        storage_conf=dict(type="path"),
        podman=dict(type="str", default="podman"),
        min_age=dict(type="int", default=DEFAULT_MIN_AGE),
        sizes=dict(type="str", choices=["measured", "estimate"], default="measured"),
        images=dict(type="list", elements="str"),
        keep_maps=dict(type="list", elements="dict", options=dict(
            uidmap=dict(type="str", required=True),
            gidmap=dict(type="str"),
        )),
    )


class ParameterError(ValueError):
    """A parameter the backend cannot act on (bad map, negative age, missing path)."""


def parse_keep_maps(entries: Optional[List[Any]]) -> List[KeepMap]:
    keep = []
    for entry in entries or []:
        if isinstance(entry, str):
            entry = {"uidmap": entry}
        if not isinstance(entry, dict) or not entry.get("uidmap"):
            raise ParameterError("keep_maps entries need a uidmap, got %r" % (entry,))
        try:
            keep.append(KeepMap.parse(str(entry["uidmap"]), entry.get("gidmap")))
        except IDMapError as exc:
            raise ParameterError("keep_maps: %s" % exc)
    return keep


def resolve_store(params: Dict[str, Any], run: Runner) -> Dict[str, Any]:
    """graphroot/runroot/imagestore/transient: given, else from Podman, else storage.conf."""
    graphroot = params.get("graphroot")
    runroot = params.get("runroot")
    source = "parameters"
    imagestore = params.get("imagestore")
    transient = params.get("transient_store")
    additional: List[str] = []
    if not graphroot or not runroot:
        try:
            settings = storage_settings(run, params.get("storage_conf"), params.get("podman") or "podman")
        except (PodmanError, StorageConfError) as exc:
            raise ParameterError("cannot find the store (give graphroot and runroot): %s" % exc)
        graphroot = graphroot or settings.graphroot
        runroot = runroot or settings.runroot
        imagestore = imagestore if imagestore is not None else settings.imagestore
        transient = transient if transient is not None else settings.transient_store
        additional = list(settings.additional_image_stores)
        source = settings.source
        if settings.driver and settings.driver != "overlay":
            raise ParameterError("storage driver %r: only overlay stores hold mapped copies to prune" % settings.driver)
    return {"graphroot": graphroot, "runroot": runroot, "imagestore": imagestore or None,
            "transient_store": bool(transient), "additional_image_stores": additional, "source": source}


def run_mapped_layers(params: Dict[str, Any], run: Runner, check_mode: bool,
                      hook: Optional[StepHook] = None) -> Dict[str, Any]:
    """The whole module: returns the result dict (``changed`` included); raises
    ParameterError or StoreError (TamperedStoreError, NoFreeInodeError) on failure."""
    min_age = params.get("min_age")
    min_age = DEFAULT_MIN_AGE if min_age is None else min_age
    if min_age < 0:
        raise ParameterError("min_age must be 0 or more seconds, got %r" % (min_age,))
    state = params.get("state") or "report"
    if state not in ("report", "pruned"):
        raise ParameterError("state must be report or pruned, got %r" % (state,))
    keep = parse_keep_maps(params.get("keep_maps"))
    sizes = params.get("sizes") or "measured"
    if sizes not in ("measured", "estimate"):
        raise ParameterError("sizes must be measured or estimate, got %r" % (sizes,))
    measure = "estimate" if sizes == "estimate" else True
    where = resolve_store(params, run)
    try:
        store = Store(where["graphroot"], where["runroot"], where["imagestore"], where["transient_store"],
                      where["additional_image_stores"])
    except ValueError as exc:
        raise ParameterError(str(exc))
    result: Dict[str, Any] = {"changed": False, "store": where}
    if state == "report":
        inventory = store.inventory(min_age=min_age, measure=measure)
        result.update(inventory.as_dict())
        result["filesystem"] = fs_usage(where["graphroot"])
        return result

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
    # Check mode reports the exact plan; a real prune needs no walk before it deletes: one copy
    # per image is measured for the plan, and each removed copy's inodes are counted while it
    # is deleted (its "measured" says "counted"; bytes stay the estimate).
    plan = store.prune_plan(min_age, params.get("images"), keep, measure=measure if check_mode else "estimate")
    before = sorted(plan.layer_ids)
    result["plan"] = plan.as_dict()
    result["diff"] = {"before": {"mapped_copies": before}, "after": {"mapped_copies": []},
                      "before_header": "%s mapped copies to remove" % where["graphroot"],
                      "after_header": "%s after prune" % where["graphroot"]}
    if check_mode:
        staging = store.stale_staging()
        result.update(changed=bool(plan.copies or staging), removed=[c.as_dict() for c in plan.copies],
                      skipped=list(plan.undeletable), inodes_freed=plan.inodes, bytes_freed=plan.bytes,
                      staging=staging, stranded=store.stranded(), filesystem=fs_usage(where["graphroot"]))
        return result
    outcome = store.prune(plan, min_age, hook, finish_staged=False)
    outcome.changes[:0] = finished.changes
    outcome.recovered[:0] = finished.recovered
    outcome.stranded[:0] = finished.stranded
    outcome.retried[:0] = finished.retried
    outcome.staging_left[:0] = finished.staging_left
    result.update(outcome.as_dict())
    result["changed"] = outcome.changed
    result["diff"]["after"] = {"mapped_copies": sorted(c["layer_id"] for c in outcome.skipped)}
    result["filesystem"] = outcome.fs_after
    return result


__all__ = ["ParameterError", "StoreError", "PruneError", "NoFreeInodeError", "InconsistentStoreError",
           "argument_spec", "run_mapped_layers",
           "DEFAULT_MIN_AGE"]
