# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guard's parameter file: JSON, checked against one spec per concern.

The ``remediate`` role writes it (``/etc/idmapguard/guard.json``). Which store: ``location``,
the store's location whole (store/location.py, the same value the ``mapped_layers`` module takes
and the verify facts carry), or, without it, ``storage_conf``/``podman`` to find it as the module
does. Which copies: ``images`` and ``keep_maps`` (store/operations.py). The cache's own options
are in :data:`GUARD_SPEC`. ``state`` and ``min_age`` do not apply (the guard always evicts; the
grace replaces min_age) and are refused, as is any unknown name, with a message that names it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils import metrics_textfile, reclaim_policy
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.guard_state import DEFAULT_STATE_FILE
from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import KeepMap
from ansible_collections.idmapguard.storage.plugins.module_utils.store.location import (
    LOCATION_SPEC, LocationError, StoreLocation,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.operations import (
    SELECTION_SPEC, SelectionError, parse_keep_maps,
)

DEFAULT_CONFIG = "/etc/idmapguard/guard.json"

# Module options that make no sense for a service that always evicts.
NOT_FOR_THE_GUARD = ("state", "min_age")
# The store's paths one by one, as guard.json of versions before ``location`` wrote them.
SINGLE_LOCATION_KEYS = ("graphroot", "runroot", "imagestore", "transient_store")

STORE_SPEC: Dict[str, Dict[str, Any]] = dict(
    location=dict(type="dict", options=LOCATION_SPEC),
    storage_conf=dict(type="path"),
    podman=dict(type="str", default="podman"),
)

GUARD_SPEC: Dict[str, Dict[str, Any]] = dict(
    budget_percent=dict(type="float", default=reclaim_policy.DEFAULT_BUDGET_PERCENT),
    low_free_percent=dict(type="float", default=reclaim_policy.DEFAULT_LOW_FREE_PERCENT),
    grace=dict(type="float", default=reclaim_policy.DEFAULT_GRACE_SECONDS),
    poll_interval=dict(type="float", default=0.5),
    rescan_interval=dict(type="float", default=30.0),
    evict_batch=dict(type="int", default=8),
    state_file=dict(type="path", default=DEFAULT_STATE_FILE),
    # node_exporter's textfile directory: "auto" (the Debian or RHEL one that exists), a path,
    # or "" (no metrics)
    metrics_dir=dict(type="str", default=metrics_textfile.AUTO),
)


class ParameterError(ValueError):
    """A parameter file the guard cannot act on; the message names the option."""


@dataclass
class GuardSettings:
    """Everything the guard acts on, validated."""

    location: Optional[StoreLocation] = None   # None: find it (storage_conf, podman)
    storage_conf: Optional[str] = None
    podman: str = "podman"
    images: Optional[List[str]] = None
    keep_maps: List[KeepMap] = field(default_factory=list)
    budget_percent: float = reclaim_policy.DEFAULT_BUDGET_PERCENT
    low_free_percent: float = reclaim_policy.DEFAULT_LOW_FREE_PERCENT
    grace: float = reclaim_policy.DEFAULT_GRACE_SECONDS
    poll_interval: float = 0.5
    rescan_interval: float = 30.0
    evict_batch: int = 8
    state_file: str = DEFAULT_STATE_FILE
    metrics_dir: str = metrics_textfile.AUTO
    source: str = "defaults"

    def as_dict(self) -> Dict[str, Any]:
        return {"location": self.location.as_dict() if self.location else None,
                "storage_conf": self.storage_conf, "podman": self.podman, "images": self.images,
                "keep_maps": [{"uidmap": k.uidmap, "gidmap": k.gidmap} for k in self.keep_maps],
                "budget_percent": self.budget_percent, "low_free_percent": self.low_free_percent,
                "grace": self.grace, "poll_interval": self.poll_interval,
                "rescan_interval": self.rescan_interval, "evict_batch": self.evict_batch,
                "state_file": self.state_file, "metrics_dir": self.metrics_dir, "source": self.source}


def _check_value(name: str, spec: Dict[str, Any], value: Any) -> Any:
    kind = spec.get("type", "str")
    if value is None:
        return None
    if kind in ("str", "path"):
        if not isinstance(value, str):
            raise ParameterError("%s must be a string, got %r" % (name, value))
        return os.path.expanduser(value) if kind == "path" else value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ParameterError("%s must be true or false, got %r" % (name, value))
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError("%s must be an integer, got %r" % (name, value))
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError("%s must be a number, got %r" % (name, value))
        return float(value)
    if kind == "dict":
        return _check_dict(name, spec.get("options") or {}, value)
    if kind == "list":
        if not isinstance(value, list):
            raise ParameterError("%s must be a list, got %r" % (name, value))
        element = {"type": spec.get("elements", "str")}
        if spec.get("options"):
            return [_check_dict("%s[%d]" % (name, i), spec["options"], item) for i, item in enumerate(value)]
        return [_check_value("%s[%d]" % (name, i), element, item) for i, item in enumerate(value)]
    raise ParameterError("%s: unsupported type %r in the spec" % (name, kind))


def _check_dict(name: str, options: Dict[str, Dict[str, Any]], value: Any) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ParameterError("%s must be a mapping, got %r" % (name, value))
    unknown = sorted(set(value) - set(options))
    if unknown:
        raise ParameterError("%s: unknown option(s) %s" % (name, ", ".join(unknown)))
    checked = {}
    for key, spec in options.items():
        if spec.get("required") and value.get(key) is None:
            raise ParameterError("%s: %s is required" % (name, key))
        checked[key] = _check_value("%s.%s" % (name, key), spec, value.get(key))
        if checked[key] is None:
            checked[key] = spec.get("default")
    return checked


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ParameterError("%s must be more than 0, got %r" % (name, value))


def settings_from_params(params: Dict[str, Any], source: str = "parameters") -> GuardSettings:
    """Validate a parameter mapping (the parsed file); raises ParameterError naming the option."""
    if not isinstance(params, dict):
        raise ParameterError("%s: the parameters must be a JSON object, got %r" % (source, params))
    params = dict(params)
    refused = sorted(set(params) & set(NOT_FOR_THE_GUARD))
    if refused:
        raise ParameterError("%s: %s do(es) not apply to the guard (it always evicts; 'grace' replaces min_age)"
                             % (source, ", ".join(refused)))
    singles = {key: params.pop(key) for key in SINGLE_LOCATION_KEYS if key in params}
    if singles and params.get("location") is not None:
        raise ParameterError("%s: give the store as location, not also as %s" % (source, ", ".join(sorted(singles))))
    if singles:
        params["location"] = singles
    known = dict(STORE_SPEC, **SELECTION_SPEC)
    known.update(GUARD_SPEC)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParameterError("%s: unknown parameter(s) %s; known: %s"
                             % (source, ", ".join(unknown), ", ".join(sorted(known))))
    values = {}
    for key, spec in known.items():
        value = _check_value(key, spec, params.get(key))
        values[key] = spec.get("default") if value is None else value
    for key in ("budget_percent", "low_free_percent"):
        if not 0.0 <= values[key] <= 100.0:
            raise ParameterError("%s must be 0 to 100, got %r" % (key, values[key]))
    if values["grace"] < 0:
        raise ParameterError("grace must be 0 or more seconds, got %r" % (values["grace"],))
    for key in ("poll_interval", "rescan_interval", "evict_batch"):
        _positive(key, values[key])
    if values["metrics_dir"] not in ("", metrics_textfile.AUTO) and not os.path.isabs(values["metrics_dir"]):
        raise ParameterError("metrics_dir must be %r, an absolute path or \"\" (off), got %r"
                             % (metrics_textfile.AUTO, values["metrics_dir"]))
    try:
        keep = parse_keep_maps(values.pop("keep_maps"))
        location = values.pop("location")
        location = StoreLocation.from_dict(location) if location else None
    except (SelectionError, LocationError) as exc:
        raise ParameterError("%s: %s" % (source, exc))
    images = values.pop("images") or None
    return GuardSettings(location=location, images=images, keep_maps=keep, source=source, **values)


def load_settings(path: str) -> GuardSettings:
    """Read and validate the parameter file; a missing file means every default."""
    try:
        with open(path) as handle:
            text = handle.read()
    except FileNotFoundError:
        return settings_from_params({}, source="defaults (no %s)" % path)
    except OSError as exc:
        raise ParameterError("cannot read %s: %s" % (path, exc))
    try:
        params = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ParameterError("%s is not valid JSON: %s" % (path, exc))
    return settings_from_params(params, source=path)
