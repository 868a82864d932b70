# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The consistency gate: is this a store Podman could load, and does it agree with itself?

Checked under the same short lock hold as every other metadata read, before anything is
changed; a store that fails is refused whole (prune) or reported ``inconsistent`` (report).
The rules are pure functions of what the JSON files hold, so they are table-tested.

Why a gate at all: c/storage takes an empty or missing layers.json at its word (layers.go
load(): ``len(data) == 0`` is zero layers, and before 1.44 even a JSON error is dropped for a
read-write store; docs/remediate.md has the per-version detail). That is what a crash of some
other tool, or a full disk, leaves. Acting on it (dropping "dangling" mapped copies, staging
their data) would throw away data a repaired store still needs, and count moves that never
happened. The rules, in the order the first finding is reported:

1. every layer file parses as c/storage writes it: a JSON list of objects (Go writes ``[]`` or
   ``null`` for none, never 0 bytes, never a truncated document);
2. a store whose images.json lists images has layers (layers.json missing or ``[]`` then);
3. every image's top layer is a layer of the store (layers.json, volatile-layers.json, the
   split image store) or of an additional image store;
4. every layer an image lists in ``mapped-layers`` is a layer of the store;
5. every layer's parent is a layer of the store or of an additional image store.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError, TamperedStoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout
from ansible_collections.idmapguard.storage.plugins.module_utils.store.jsonfile import read_json_list

CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"


class InconsistentStoreError(TamperedStoreError):
    """The store fails the consistency gate; nothing was changed."""

    def __init__(self, findings: List[str]) -> None:
        more = " (and %d more)" % (len(findings) - 1) if len(findings) > 1 else ""
        super().__init__("store is inconsistent, refusing to change it: %s%s; nothing was changed"
                         % (findings[0], more))
        self.findings = list(findings)


@dataclass
class LayerFile:
    """What one layer JSON file holds, as raw facts (no judgement)."""

    path: str
    exists: bool
    size: int = 0
    error: Optional[str] = None       # why it does not parse as a list of objects
    ids: List[str] = field(default_factory=list)
    main: bool = False                # layers.json of the graph root (the file every version has)


def read_layer_file(path: str, main: bool = False) -> LayerFile:
    """The facts of one layer file; never raises for its content (that is the gate's call)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return LayerFile(path=path, exists=False, main=main)
    except OSError as exc:
        raise StoreError("cannot read %s: %s" % (path, exc))
    facts = LayerFile(path=path, exists=True, size=len(data), main=main)
    if not data:
        return facts
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        facts.error = "not valid JSON (%s)" % exc
        return facts
    if value is None:
        return facts
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        facts.error = "not a JSON list of objects"
        return facts
    facts.ids = [str(item.get("id")) for item in value]
    return facts


def read_layer_files(layout: StoreLayout) -> List[LayerFile]:
    files = layout.layer_json_files()
    return [read_layer_file(path, main=index == 0) for index, path in enumerate(files)]


def read_additional_layer_ids(additional: Iterable[str]) -> Set[str]:
    """Layer ids of read-only additional image stores (a container layer's parent may be there)."""
    found: Set[str] = set()
    for root in additional:
        facts = read_layer_file(os.path.join(root, "overlay-layers", "layers.json"))
        found.update(facts.ids)
    return found


def _image_label(image: Dict[str, Any]) -> str:
    names = image.get("names") or []
    name = names[0] if names and isinstance(names[0], str) else ""
    image_id = str(image.get("id", ""))
    return "%s (%s)" % (image_id[:12], name) if name else image_id[:12]


def gate_findings(layer_files: List[LayerFile], images: Optional[List[Dict[str, Any]]],
                  layers: Optional[Dict[str, Dict[str, Any]]], additional_ids: Iterable[str] = ()) -> List[str]:
    """Every inconsistency, first one first (see the module docstring for the rules).

    ``images``: the records of images.json (None when it does not parse: the loader names it);
    ``layers``: id -> record of every layer file (None when a layer file does not parse)."""
    findings: List[str] = []
    for facts in layer_files:
        if facts.exists and facts.size == 0:
            findings.append("%s is 0 bytes (c/storage writes [] for no layers, never an empty file)" % facts.path)
        elif facts.error:
            findings.append("%s is %s" % (facts.path, facts.error))
    images = images or []
    known: Set[str] = set(layers or {})
    outside = set(additional_ids)
    main = [facts for facts in layer_files if facts.main]
    if images and layers is not None and not known:
        where = main[0] if main else None
        if where is not None and not where.exists:
            state = "does not exist"
        elif where is not None and where.size == 0:
            state = "is 0 bytes"
        else:
            state = "lists no layers"
        findings.append("%s %s while images.json lists %d image(s)" % (
            where.path if where is not None else "layers.json", state, len(images)))
    if layers is None:
        return findings
    for image in images:
        top = image.get("layer")
        if top and top not in known and top not in outside:
            findings.append("image %s: its top layer %s is not in any layer file" % (_image_label(image), top[:12]))
    for image in images:
        for layer_id in image.get("mapped-layers") or []:
            if layer_id not in known:
                findings.append("image %s: mapped layer %s is not in any layer file" % (
                    _image_label(image), str(layer_id)[:12]))
    for layer_id, record in (layers or {}).items():
        parent = record.get("parent")
        if parent and parent not in known and parent not in outside:
            findings.append("layer %s: its parent %s is not in any layer file" % (layer_id[:12], parent[:12]))
    return findings


def read_images_for_gate(path: str) -> Optional[List[Dict[str, Any]]]:
    """images.json as a list ([] if absent; None if it is not a JSON list of objects:
    StoreState.load names that)."""
    try:
        return read_json_list(path) or []
    except TamperedStoreError:
        return None


def check_store(layout: StoreLayout, additional: Iterable[str], load: Callable[[], Any]) -> Tuple[Any, List[str]]:
    """(state, findings) under the caller's locks: the layer files are read raw first, so a
    file c/storage could not load is a finding, not a crash; ``load`` (StoreState.load) runs
    only when they parse. ``state`` is None when it could not be loaded."""
    files = read_layer_files(layout)
    if any(facts.error for facts in files):
        return None, gate_findings(files, read_images_for_gate(layout.images_json), None)
    state = load()
    return state, gate_findings(files, state.images, state.layers, read_additional_layer_ids(additional))
