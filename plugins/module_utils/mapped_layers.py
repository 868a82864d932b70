# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``mapped_layers`` module's backend, without Ansible: its argument spec, :func:`run`, and
its one error type. The report and the prune themselves are the store library's
(store/operations.py), which ``idmapguard-prune`` calls too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import dataclasses
from typing import Any, Dict, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import Runner
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    PodmanError, StorageConfError, storage_settings,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import DEFAULT_MIN_AGE
from ansible_collections.idmapguard.storage.plugins.module_utils.store import operations
from ansible_collections.idmapguard.storage.plugins.module_utils.store.consistency import InconsistentStoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import NoFreeInodeError, StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.location import (
    LOCATION_SPEC, LocationError, StoreLocation,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.prune import PruneError, StepHook
from ansible_collections.idmapguard.storage.plugins.module_utils.store.store import Store

# The single options that name a store Podman does not know about; ``location`` names it whole.
SINGLE_LOCATION_OPTIONS = ("graphroot", "runroot", "imagestore", "transient_store")


def argument_spec() -> Dict[str, Any]:
    """The module's argument spec, defined once (the module file passes it to AnsibleModule)."""
    spec = dict(
        state=dict(type="str", choices=["report", "pruned"], default="report"),
        location=dict(type="dict", options=LOCATION_SPEC),
        graphroot=dict(type="path"),
        runroot=dict(type="path"),
        imagestore=dict(type="path"),
        transient_store=dict(type="bool"),
        storage_conf=dict(type="path"),
        podman=dict(type="str", default="podman"),
        min_age=dict(type="int", default=DEFAULT_MIN_AGE),
        sizes=dict(type="str", choices=["measured", "estimate"], default="measured"),
    )
    spec.update(operations.SELECTION_SPEC)
    return spec


class MappedLayersError(Exception):
    """The module's one failure: the message says what was wrong and what was changed."""


def locate(params: Dict[str, Any], run: Runner) -> Tuple[StoreLocation, str]:
    """The store's location and where it came from: ``location`` whole, else graphroot and
    runroot (with imagestore/transient_store) given, else Podman's (storage.conf when Podman
    fails), with any single option given taking precedence."""
    given = params.get("location")
    singles = {key: params[key] for key in SINGLE_LOCATION_OPTIONS if params.get(key) is not None}
    if given:
        if singles:
            raise MappedLayersError("give the store as location or as %s, not both (got location and %s)"
                                    % ("/".join(SINGLE_LOCATION_OPTIONS), ", ".join(sorted(singles))))
        return StoreLocation.from_dict({k: v for k, v in given.items() if v is not None}), "parameters"
    if singles.get("graphroot") and singles.get("runroot"):
        return StoreLocation.from_dict(singles), "parameters"
    try:
        settings = storage_settings(run, params.get("storage_conf"), params.get("podman") or "podman")
    except (PodmanError, StorageConfError) as exc:
        raise MappedLayersError("cannot find the store (give location): %s" % exc)
    return dataclasses.replace(settings.location(), **singles), settings.source


def run(params: Dict[str, Any], runner: Runner, check_mode: bool, hook: Optional[StepHook] = None) -> Dict[str, Any]:
    """The whole module: the result dict (``changed`` and ``diff`` included); raises
    MappedLayersError, whose message says whether anything was changed."""
    try:
        return _run(params, runner, check_mode, hook)
    except (LocationError, operations.SelectionError) as exc:
        raise MappedLayersError(str(exc))
    except StoreError as exc:
        # These say themselves what was changed before they failed (the consistency gate: nothing).
        told = isinstance(exc, (PruneError, NoFreeInodeError, InconsistentStoreError))
        raise MappedLayersError("%s: %s%s" % (type(exc).__name__, exc, "" if told else " (nothing was changed)"))


def _run(params: Dict[str, Any], runner: Runner, check_mode: bool, hook: Optional[StepHook]) -> Dict[str, Any]:
    min_age = params.get("min_age")
    min_age = DEFAULT_MIN_AGE if min_age is None else min_age
    if min_age < 0:
        raise MappedLayersError("min_age must be 0 or more seconds, got %r" % (min_age,))
    state = params.get("state") or "report"
    if state not in ("report", "pruned"):
        raise MappedLayersError("state must be report or pruned, got %r" % (state,))
    keep = operations.parse_keep_maps(params.get("keep_maps"))
    sizes = params.get("sizes") or "measured"
    if sizes not in ("measured", "estimate"):
        raise MappedLayersError("sizes must be measured or estimate, got %r" % (sizes,))
    measure = "estimate" if sizes == "estimate" else True
    location, source = locate(params, runner)
    store = Store(location)
    if state == "report":
        result = operations.report(store, min_age, measure)
    else:
        result = operations.prune(store, min_age, params.get("images"), keep, check_mode, measure, hook)
    # The location acted on, whole (what the remediate role passes on to the prune and the guard),
    # and, for the reader, where it came from.
    result["location"] = location.as_dict()
    result["store"] = dict(location.as_dict(), source=source)
    return result
