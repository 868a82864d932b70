# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What idmap_support needs from the store library, in one place.

The store library (plugins/module_utils/store/, the remediation area) is the only reader of
a store's files; this adapter only picks from its answers the few numbers the facts report
and the canary compares.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
from typing import Any, Dict, List

from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import StorageSettings
from ansible_collections.idmapguard.storage.plugins.module_utils.store.store import Store

# Fields that change on every rewrite without meaning a different store.
_VOLATILE_KEYS = frozenset(("created", "metadata-time", "last-write", "modified", "updated"))


def _store(settings: StorageSettings) -> Store:
    return Store(settings.location())


def store_exists(settings: StorageSettings) -> bool:
    return os.path.isdir(settings.graphroot)


def mapped_copies(settings: StorageSettings) -> Dict[str, Any]:
    """{"count", "inodes", "layers": [layer ids]} of the ID-mapped copies in the store."""
    if not store_exists(settings):
        return {"count": 0, "inodes": 0, "layers": []}
    inventory = _store(settings).inventory()
    copies = list(getattr(inventory, "copies", []))
    return {"count": len(copies), "inodes": sum(int(c.inodes) for c in copies),
            "layers": sorted(c.layer_id for c in copies)}


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def json_snapshot(settings: StorageSettings) -> str:
    """The store's layers, images and containers, minus timestamps, as canonical JSON."""
    stored = _store(settings).records()
    records = {kind: sorted((_strip(r) for r in stored[kind]), key=lambda r: r.get("id", ""))
               for kind in ("layers", "images", "containers")}  # type: Dict[str, List[Any]]
    return json.dumps(records, sort_keys=True)
