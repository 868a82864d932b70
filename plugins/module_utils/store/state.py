# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A snapshot of a store's metadata: layer, image and container records plus mount counts.

Records stay the dicts read from disk, so fields this code does not know survive a write.
Everything that later becomes part of a path is validated here (ids, parents, mapped-layers),
so a tampered file fails the whole operation before anything is deleted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Dict, List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import TamperedStoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.jsonfile import read_json_list
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout, checked_id

INCOMPLETE_FLAG = "incomplete"  # layers.go incompleteFlag
# Set next to "incomplete" when we start deleting a copy, so a later run knows the incomplete
# layer is ours to finish and not a layer some process is creating. c/storage keeps unknown
# flags (Flags is map[string]any) and itself deletes incomplete layers on its next write load.
PRUNING_FLAG = "idmapguard-pruning"


class StoreState:
    """What the JSON files of one store say, read under the store's locks."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        # file -> list of records as read (records are shared with the indexes below)
        self.layer_files: Dict[str, List[Dict[str, Any]]] = {}
        self.layers: Dict[str, Dict[str, Any]] = {}
        self.layer_file_of: Dict[str, str] = {}
        self.images: List[Dict[str, Any]] = []
        self.images_present = False
        self.containers: List[Dict[str, Any]] = []
        self.mount_counts: Dict[str, int] = {}

    @classmethod
    def load(cls, layout: StoreLayout) -> "StoreState":
        state = cls(layout)
        state._load_layers()
        state._load_images()
        state._load_containers()
        state._load_mounts()
        return state

    def _load_layers(self) -> None:
        for path in self.layout.layer_json_files():
            records = read_json_list(path)
            if records is None:
                continue
            self.layer_files[path] = records
            for record in records:
                layer_id = checked_id(record.get("id"), "a layer in %s" % path)
                if layer_id in self.layers:
                    raise TamperedStoreError("layer %s is listed twice (%s, %s)" % (layer_id, self.layer_file_of[layer_id], path))
                parent = record.get("parent")
                if parent not in (None, ""):
                    checked_id(parent, "the parent of layer %s" % layer_id)
                flags = record.get("flags")
                if flags is not None and not isinstance(flags, dict):
                    raise TamperedStoreError("layer %s has flags that are not an object" % layer_id)
                for key in ("uidmap", "gidmap"):
                    if record.get(key) is not None and not isinstance(record.get(key), list):
                        raise TamperedStoreError("layer %s has a %s that is not a list" % (layer_id, key))
                self.layers[layer_id] = record
                self.layer_file_of[layer_id] = path

    def _load_images(self) -> None:
        records = read_json_list(self.layout.images_json)
        self.images_present = records is not None
        self.images = records or []
        seen = set()
        for record in self.images:
            image_id = checked_id(record.get("id"), "an image in %s" % self.layout.images_json)
            if image_id in seen:
                raise TamperedStoreError("image %s is listed twice in %s" % (image_id, self.layout.images_json))
            seen.add(image_id)
            if record.get("layer") not in (None, ""):
                checked_id(record.get("layer"), "the top layer of image %s" % image_id)
            mapped = record.get("mapped-layers")
            if mapped is None:
                continue
            if not isinstance(mapped, list):
                raise TamperedStoreError("mapped-layers of image %s is not a list" % image_id)
            for layer_id in mapped:
                checked_id(layer_id, "a mapped layer of image %s" % image_id)

    def _load_containers(self) -> None:
        for path in self.layout.container_json_files():
            for record in read_json_list(path) or []:
                container_id = checked_id(record.get("id"), "a container in %s" % path)
                if record.get("layer") not in (None, ""):
                    checked_id(record.get("layer"), "the layer of container %s" % container_id)
                self.containers.append(record)

    def _load_mounts(self) -> None:
        for record in read_json_list(self.layout.mountpoints_json) or []:
            layer_id = checked_id(record.get("id"), "a mount in %s" % self.layout.mountpoints_json)
            count = record.get("count", 0)
            if not isinstance(count, int):
                raise TamperedStoreError("mount count of layer %s is not a number" % layer_id)
            if record.get("path") and count > 0:
                self.mount_counts[layer_id] = self.mount_counts.get(layer_id, 0) + count

    # --- questions the analysis asks -------------------------------------------------------
    def children_of(self) -> Dict[str, List[str]]:
        children: Dict[str, List[str]] = {}
        for layer_id, record in self.layers.items():
            parent = record.get("parent")
            if parent:
                children.setdefault(parent, []).append(layer_id)
        return children

    def image_name(self, image: Dict[str, Any]) -> str:
        names = image.get("names") or []
        return names[0] if names and isinstance(names[0], str) else str(image.get("id", ""))[:12]

    def layer_flag(self, layer_id: str, flag: str) -> bool:
        flags = self.layers.get(layer_id, {}).get("flags") or {}
        return flags.get(flag) is True

    def layer(self, layer_id: str) -> Optional[Dict[str, Any]]:
        return self.layers.get(layer_id)
