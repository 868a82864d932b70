# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which ID-mapped copies a store holds, who uses each, and which ones a prune may remove.

A mapped copy is a layer listed in an image's ``mapped-layers`` (store.go
imageTopLayerForMapping creates it as a sibling of the top layer, with the same parent, and
records it there), or a layer we flagged while deleting it (an interrupted prune).

A copy is in use, and is never removed, when any of these holds (the checks of store.go
DeleteLayer, plus what a concurrent Podman may be doing):
* a layer has it as parent (every container made from it: the container layer is its child);
* it is an image's top layer; it is a container's layer;
* mountpoints.json counts a mount of it, or /proc/self/mountinfo has a mount point anywhere
  in its paths (a bind mount from the same filesystem included: reason ``mounted``);
* it is flagged incomplete by someone else (a process is creating it);
* it is younger than ``min_age`` (it may have been made a moment ago for a create in flight).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import calendar
import stat
import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.idmap import (
    IDMapError, format_idmap, from_storage_json, parse_idmap,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import TamperedStoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import (
    StoreLayout, checked_id, is_valid_link,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.state import (
    INCOMPLETE_FLAG, PRUNING_FLAG, StoreState,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.mountinfo import mounts_at_or_under
from ansible_collections.idmapguard.storage.plugins.module_utils.store.preflight import preflight_copy
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import tree_usage

# How a copy's inodes and bytes were found (MappedCopy.measured).
MEASURED = "measured"        # walked, after the store's locks were released
ESTIMATED = "estimate"       # taken from the measured copy of the same image
VANISHED = "vanished"        # gone between reading the metadata and measuring
NOT_MEASURED = "not measured"
COUNTED = "counted"          # inodes counted while deleting it (a prune planned without a walk)

_TIME_RE = re.compile(r"\A(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)\Z")


def parse_go_time(value: Any) -> Optional[float]:
    """Seconds since the epoch of a Go ``time.Time`` in JSON (RFC 3339, nanoseconds)."""
    if not isinstance(value, str):
        return None
    match = _TIME_RE.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        seconds = float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None
    if match.group(7):
        seconds += float("0." + match.group(7))
    zone = match.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


@dataclass
class KeepMap:
    """A map whose copies are kept: uidmap must match; gidmap too when given."""

    uidmap: str
    gidmap: Optional[str] = None

    @classmethod
    def parse(cls, uidmap: str, gidmap: Optional[str] = None) -> "KeepMap":
        # Raises IDMapError for a map the kernel would refuse.
        return cls(normal_map(uidmap), normal_map(gidmap) if gidmap else None)

    def matches(self, uidmap: str, gidmap: str) -> bool:
        return self.uidmap == normal_map(uidmap) and (self.gidmap is None or self.gidmap == normal_map(gidmap))


def normal_map(text: str) -> str:
    """A map's extents sorted: c/storage stores them in its own order (layers.json of 1.43 has
    ``531571:531571:1`` before ``0:1065537:65536``), the same map typed by a user may differ."""
    return format_idmap(sorted(parse_idmap(text))) if text else ""


@dataclass
class MappedCopy:
    """One ID-mapped copy of an image's top layer."""

    layer_id: str
    image_id: str
    image_name: str
    top_layer: str
    uidmap: str
    gidmap: str
    created: Optional[str]
    age_seconds: Optional[float]
    in_use: bool
    why: List[str]
    inodes: int
    bytes: int
    record: bool = True          # False: mapped-layers names a layer that no longer exists
    interrupted: bool = False    # a prune of ours started deleting it (flagged or unlisted)
    link: Optional[str] = None   # its short name in overlay/l (validated)
    measured: str = NOT_MEASURED  # how inodes/bytes were found: measured, estimate, vanished
    # Other images whose mapped-layers list the same copy: one copy, counted once, taken out
    # of every list that names it.
    also_listed_by: List[str] = field(default_factory=list)
    # What would stop its deletion (preflight.py), found while measuring it; None: not looked.
    undeletable: Optional[List[str]] = None
    flags_seen: Dict[str, int] = field(default_factory=dict)  # top-level path -> inode flags

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Inventory:
    graphroot: str
    images: List[Dict[str, Any]] = field(default_factory=list)
    copies: List[MappedCopy] = field(default_factory=list)
    sizes: str = NOT_MEASURED    # measured | estimate | not measured (per copy: MappedCopy.measured)
    staging: List[str] = field(default_factory=list)  # staged data of crashed prunes, not yet deleted
    stranded: List[Dict[str, str]] = field(default_factory=list)  # staged data that could not be deleted
    consistency: str = "consistent"   # or "inconsistent" (consistency.py): then no copies are listed
    inconsistencies: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {"graphroot": self.graphroot, "images": self.images,
                "consistency": self.consistency, "inconsistencies": self.inconsistencies,
                "copies": [copy.as_dict() for copy in self.copies],
                "mapped_copies": len(self.copies),
                "mapped_copy_inodes": sum(copy.inodes for copy in self.copies),
                "mapped_copy_bytes": sum(copy.bytes for copy in self.copies),
                "sizes": self.sizes, "staging": self.staging, "stranded": self.stranded}


def _map_text(record: Dict[str, Any], key: str, layer_id: str) -> str:
    entries = record.get(key) or []
    if not entries:
        return ""  # no map: the layer uses host ids (an image's own top layer)
    try:
        return format_idmap(from_storage_json(entries))
    except IDMapError as exc:
        raise TamperedStoreError("layer %s has an invalid %s: %s" % (layer_id, key, exc))


def read_link_name(layout: StoreLayout, layer_id: str) -> Optional[str]:
    """The layer's short link name, checked against its ``l/`` symlink; None if it has none.

    Raises TamperedStoreError when anything is not as overlay.go creates it.
    """
    layer_dir = os.path.join(layout.driver_dir, checked_id(layer_id, "layer"))
    try:
        st = os.lstat(layer_dir)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        raise TamperedStoreError("%s is not a directory" % layer_dir)
    try:
        fd = os.open(os.path.join(layer_dir, "link"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TamperedStoreError("%s/link cannot be read safely: %s" % (layer_dir, exc))
    try:
        raw = os.read(fd, 256)
    finally:
        os.close(fd)
    link = raw.decode("ascii", "replace").strip()
    if not is_valid_link(link):
        raise TamperedStoreError("%s/link holds %r, not a short link name" % (layer_dir, link))
    link_path = os.path.join(layout.link_dir, link)
    try:
        target = os.readlink(link_path)
    except FileNotFoundError:
        return link
    except OSError:
        raise TamperedStoreError("%s is not a symlink" % link_path)
    if os.path.normpath(target) != os.path.join("..", layer_id, "diff"):
        raise TamperedStoreError("%s points to %r, not to ../%s/diff" % (link_path, target, layer_id))
    return link


def copy_paths(layout: StoreLayout, layer_id: str, link: Optional[str]) -> List[str]:
    """Every path that holds part of a copy (what a prune stages)."""
    paths = [os.path.join(layout.driver_dir, layer_id), os.path.join(layout.layer_dir, layer_id),
             os.path.join(layout.layer_dir, layout.tar_split_name(layer_id))]
    if link:
        paths.append(os.path.join(layout.link_dir, link))
    return paths


def mounts_in_copy(layout: StoreLayout, layer_id: str, link: Optional[str], points: Sequence[str]) -> List[str]:
    found: List[str] = []
    for path in copy_paths(layout, layer_id, link):
        found.extend(mounts_at_or_under(points, path))
    return found


def measure_copies(layout: StoreLayout, copies: List[MappedCopy], estimate: bool = False,
                   pause: Optional[Callable[[], None]] = None) -> None:
    """Fill in inodes/bytes, outside the store's locks. With ``estimate`` only the first copy
    of each image is walked and the others get its figures (labelled ``estimate``). ``pause``
    is called before each walk (the caller's way of waiting while Podman is at work)."""
    per_image: Dict[str, Tuple[int, int]] = {}
    for copy in copies:
        if not copy.record:
            continue
        if estimate and copy.image_id in per_image:
            copy.inodes, copy.bytes = per_image[copy.image_id]
            copy.measured = ESTIMATED
            continue
        if pause is not None:
            pause()
        if not os.path.lexists(os.path.join(layout.driver_dir, copy.layer_id)):
            copy.inodes, copy.bytes, copy.measured = 0, 0, VANISHED
            continue
        # The measuring walk is also the copy's pre-flight (inode flags, writable dirs).
        copy.inodes, copy.bytes, reasons, copy.flags_seen = preflight_copy(layout, copy.layer_id, copy.link)
        copy.undeletable = ["undeletable: %s" % reason for reason in reasons]
        copy.measured = MEASURED
        if estimate and copy.image_id:
            per_image[copy.image_id] = (copy.inodes, copy.bytes)


def copy_usage(layout: StoreLayout, layer_id: str, link: Optional[str]) -> Tuple[int, int]:
    """Inodes and bytes the copy holds: its driver dir, l/ link, tar-split and big-data dir."""
    inodes, size = tree_usage(layout.driver_dir, layer_id)
    for parent, name in ((layout.layer_dir, layout.tar_split_name(layer_id)), (layout.layer_dir, layer_id)):
        add_inodes, add_bytes = tree_usage(parent, name)
        inodes += add_inodes
        size += add_bytes
    if link and os.path.islink(os.path.join(layout.link_dir, link)):
        inodes += 1
    return inodes, size


def _layer_age(layout: StoreLayout, record: Dict[str, Any], now: float) -> Tuple[Optional[float], Optional[str]]:
    created = record.get("created")
    stamp = parse_go_time(created)
    if stamp is None:
        # No usable timestamp: the driver directory's change time is the next best thing.
        try:
            stamp = os.lstat(os.path.join(layout.driver_dir, record["id"])).st_ctime
        except OSError:
            return None, created if isinstance(created, str) else None
    return max(0.0, now - stamp), created if isinstance(created, str) else None


def orphan_copy_owner(state: StoreState, layer_id: str, children: Dict[str, List[str]],
                      top_of: Dict[str, List[str]], container_of: Dict[str, List[str]]) -> Optional[Dict[str, Any]]:
    """The image whose top layer ``layer_id`` is an unlisted copy of, or None.

    layers.go create() with a TemplateLayer gives the copy the template's diff digest and
    store.go imageTopLayerForMapping gives it the template's parent; the copy has a map, no
    names, and nothing refers to it. Only such a layer counts: anything else is not ours.
    """
    record = state.layers[layer_id]
    if children.get(layer_id) or top_of.get(layer_id) or container_of.get(layer_id):
        return None
    if record.get("names") or not (record.get("uidmap") or record.get("gidmap")):
        return None
    digest = record.get("diff-digest")
    if not digest:
        return None
    for image in state.images:
        top = state.layers.get(image.get("layer") or "")
        if top is not None and top.get("diff-digest") == digest and \
                (top.get("parent") or "") == (record.get("parent") or ""):
            return image
    return None


def build_inventory(state: StoreState, min_age: float = 0.0, now: Optional[float] = None,
                    measure: bool = True, mount_points: Sequence[str] = ()) -> Inventory:
    """Every mapped copy with its use; ``min_age`` only decides the 'too young' reason.

    ``measure`` walks each copy here; the Store never does that under its locks (it calls
    :func:`measure_copies` after releasing them). ``mount_points``: from mountinfo."""
    now = time.time() if now is None else now
    layout = state.layout
    children = state.children_of()
    top_of = {}
    for image in state.images:
        if image.get("layer"):
            top_of.setdefault(image["layer"], []).append(image["id"])
    container_of = {}
    for container in state.containers:
        if container.get("layer"):
            container_of.setdefault(container["layer"], []).append(container["id"])

    inventory = Inventory(graphroot=layout.graphroot)
    listed = set()
    owners: List[Tuple[str, Dict[str, Any]]] = []
    for image in state.images:
        mapped = image.get("mapped-layers") or []
        inventory.images.append({"id": image["id"], "names": list(image.get("names") or []),
                                 "top_layer": image.get("layer"), "mapped_layers": list(mapped)})
        for layer_id in mapped:
            owners.append((layer_id, image))
            listed.add(layer_id)
    # Interrupted prunes of ours: flagged layers that no image lists any more, and copies
    # orphaned by a stop between the images.json and layers.json steps (see prune.py).
    for layer_id in state.layers:
        if layer_id in listed:
            continue
        if state.layer_flag(layer_id, PRUNING_FLAG):
            owners.append((layer_id, {}))
            continue
        image = orphan_copy_owner(state, layer_id, children, top_of, container_of)
        if image is not None:
            owners.append((layer_id, image))

    first_owner: Dict[str, MappedCopy] = {}
    for layer_id, image in owners:
        if layer_id in first_owner:
            if image.get("id"):
                first_owner[layer_id].also_listed_by.append(image["id"])
            continue
        record = state.layer(layer_id)
        image_id = image.get("id", "")
        image_name = state.image_name(image) if image else ""
        if record is None:
            inventory.copies.append(MappedCopy(
                layer_id=layer_id, image_id=image_id, image_name=image_name, top_layer=image.get("layer") or "",
                uidmap="", gidmap="", created=None, age_seconds=None, in_use=False,
                why=[], inodes=0, bytes=0, record=False))
            first_owner[layer_id] = inventory.copies[-1]
            continue
        why: List[str] = []
        for child in children.get(layer_id, []):
            users = container_of.get(child)
            why.append("parent of layer %s%s" % (child[:12], " (container %s)" % users[0][:12] if users else ""))
        for other in top_of.get(layer_id, []):
            why.append("top layer of image %s" % other[:12])
        for container in container_of.get(layer_id, []):
            why.append("layer of container %s" % container[:12])
        if state.mount_counts.get(layer_id):
            why.append("mounted (%d)" % state.mount_counts[layer_id])
        link = read_link_name(layout, layer_id)
        for point in mounts_in_copy(layout, layer_id, link, mount_points):
            why.append("mounted: %s is a mount point" % point)
        interrupted = state.layer_flag(layer_id, PRUNING_FLAG)
        if state.layer_flag(layer_id, INCOMPLETE_FLAG) and not interrupted:
            why.append("incomplete: a process is creating or deleting it")
        age, created = _layer_age(layout, record, now)
        if not interrupted:
            if age is None:
                why.append("age unknown")
            elif age < min_age:
                why.append("younger than min_age (%ds)" % int(age))
        inodes, size = copy_usage(layout, layer_id, link) if measure else (0, 0)
        inventory.copies.append(MappedCopy(
            layer_id=layer_id, image_id=image_id, image_name=image_name, top_layer=image.get("layer") or "",
            uidmap=_map_text(record, "uidmap", layer_id), gidmap=_map_text(record, "gidmap", layer_id),
            created=created, age_seconds=age, in_use=bool(why), why=why, inodes=inodes, bytes=size,
            interrupted=interrupted, link=link, measured=MEASURED if measure else NOT_MEASURED))
        first_owner[layer_id] = inventory.copies[-1]
    if measure:
        inventory.sizes = MEASURED
    return inventory


def image_matches(copy: MappedCopy, selectors: Sequence[str]) -> bool:
    """An image selector is a full id, an id prefix of 12+ hex digits, or one of its names."""
    for selector in selectors:
        if copy.image_id and (copy.image_id == selector or (len(selector) >= 12 and copy.image_id.startswith(selector))):
            return True
        if copy.image_name == selector:
            return True
    return False


def select_prunable(inventory: Inventory, images: Optional[Sequence[str]], keep_maps: Iterable[KeepMap],
                    image_names: Optional[Dict[str, List[str]]] = None) -> List[MappedCopy]:
    """The copies a prune removes, in inventory order."""
    keep = list(keep_maps)
    chosen = []
    names = image_names or {}
    for copy in inventory.copies:
        if copy.in_use:
            continue
        if images:
            all_names = names.get(copy.image_id, [])
            if not (image_matches(copy, images) or any(name in images for name in all_names)):
                continue
        if copy.record and any(k.matches(copy.uidmap, copy.gidmap) for k in keep):
            continue
        chosen.append(copy)
    return chosen
