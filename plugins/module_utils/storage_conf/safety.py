# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""storage_conf backend: is an edit safe, and does Podman accept the file.

The controller (action plugin) has already edited the TOML text; it sends the new text and the
store-relevant settings before and after the edit. Here, on the host, with the standard
library only, we decide whether the edit would orphan or break the container store.

What containers/storage does with `overlay/.has-mount-program` (drivers/overlay/overlay.go,
Init and SupportsNativeOverlay, read for this module):
  * whenever a mount program is used, Init writes "true" to `<graphroot>/overlay/.has-mount-program`;
  * when no mount_program is configured, Init asks SupportsNativeOverlay, which answers "no"
    as soon as that file says "true"; Init then looks `fuse-overlayfs` up in PATH and uses it.
    So removing mount_program from storage.conf alone changes nothing while the marker says
    "true" and fuse-overlayfs is installed: Podman keeps mounting with fuse-overlayfs and keeps
    copying a layer per ID map;
  * the marker exists because layers written through a mount program use the AUFS whiteout
    format (`.wh.<name>` files, getWhiteoutFormat) and fuse-overlayfs may keep ownership and
    opaque flags in `user.fuseoverlayfs.*` / `user.containers.*` xattrs; the kernel's overlay
    ignores all of them, so files deleted in an upper layer would reappear;
  * when the marker is missing (or holds anything but "true"/"false"), SupportsNativeOverlay
    scans the store for exactly those indicators and records the answer.
So the marker may be removed when the same scan finds no indicator: containers/storage then
re-derives it, and picks native overlay only if the store holds nothing native overlay would
misread. When the scan finds indicators the store needs its mount program: we refuse.

Measured on the sid lab host (Podman 5.8.6, tests/integration/test_configure.py): after the
switch, images and containers created without an ID map or with a contiguous one start, but a
container created through fuse-overlayfs with a non-contiguous map does not ("creating overlay
mount ... permission denied"). So such containers are a refusal too: remove them, switch,
create them again (which then costs no copy).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import Runner
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap import (
    IDMapError,
    from_storage_json,
    is_contiguous,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    DEFAULT_GRAPHROOT,
    DEFAULT_RUNROOT,
    SETTING_KEYS,
    PodmanError,
    settings_from_podman,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf.errors import (
    StorageConfInvalid,
    StorageConfRefused,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.census import (
    count_layers,
    drivers_in_use,
    find_mount_program_indicator,
    read_marker,
    remove_marker,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.location import StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store.store import Store

STORE_KEYS = ("driver", "graphroot", "runroot", "imagestore")
# Dotted keys of the store settings (podman_host.SETTING_KEYS, whose file the facts report, each
# spelling: mount_program also in the older driver-less [storage.options]) by setting name.
SETTING_DOTTED = {".".join(table + (key,)): name for name, places in SETTING_KEYS.items() for table, key in places}


@dataclass
class MarkerPlan:
    """What to do with `<graphroot>/overlay/.has-mount-program` after the write."""

    path: str
    content: Optional[str]
    clear: bool = False
    reason: str = ""


@dataclass
class SafetyReport:
    """Result of the refusal checks: the store-key changes seen and the marker plan."""

    store_changes: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    layers: int = 0
    marker: Optional[MarkerPlan] = None
    warnings: List[str] = field(default_factory=list)


def effective(view: Dict[str, Any]) -> Dict[str, Any]:
    """Store settings with containers/storage's built-in defaults filled in."""
    return {
        "driver": view.get("driver") or "",
        "graphroot": view.get("graphroot") or DEFAULT_GRAPHROOT,
        "runroot": view.get("runroot") or DEFAULT_RUNROOT,
        "imagestore": view.get("imagestore") or "",
        "mount_program": view.get("mount_program") or "",
    }


def check_safety(before: Dict[str, Any], after: Dict[str, Any], allow_store_change: bool) -> SafetyReport:
    """Refuse (StorageConfRefused) edits that would orphan or break the current store."""
    old, new = effective(before), effective(after)
    report = SafetyReport()
    for key in STORE_KEYS:
        if key == "driver" and not old[key] and new[key] in drivers_in_use(old["graphroot"]):
            # An empty driver means "detect"; naming the driver the store already uses moves nothing.
            continue
        if old[key] != new[key]:
            report.store_changes[key] = {"before": old[key] or None, "after": new[key] or None}
    if report.store_changes:
        report.layers = count_layers(old["graphroot"])
        if old["imagestore"]:
            image_layers = count_layers(old["imagestore"])
            report.layers = -1 if -1 in (report.layers, image_layers) else report.layers + image_layers
        if report.layers != 0 and not allow_store_change:
            held = "an unreadable layer index" if report.layers < 0 else "%d layer(s)" % report.layers
            raise StorageConfRefused(
                "refusing to change %s: the current store at %s holds %s that containers/storage "
                "would no longer find (or would read with the wrong driver). Move or reset the store "
                "first, or set allow_store_change: true if you have."
                % (", ".join("%s %r -> %r" % (k, v["before"], v["after"])
                             for k, v in sorted(report.store_changes.items())),
                   old["graphroot"], held))
    if old["mount_program"] and not new["mount_program"]:
        location = StoreLocation(old["graphroot"], old["runroot"], old["imagestore"] or None,
                                 bool(before.get("transient_store")))
        report.marker = _plan_marker(location, old["mount_program"], allow_store_change)
    return report


def containers_with_noncontiguous_maps(location: StoreLocation) -> List[str]:
    """Names (or ids) of the store's containers whose UID or GID map has more than one extent."""
    try:
        containers = Store(location).records()["containers"]
    except (StoreError, ValueError, OSError) as exc:
        return ["(cannot read the container list: %s)" % exc]
    found = []
    for record in containers:
        try:
            # No map at all (an empty list) is fine, like a single extent.
            shifted = any(len(record.get(key) or []) > 1 and not is_contiguous(from_storage_json(record[key]))
                          for key in ("uidmap", "gidmap"))
        except IDMapError:
            shifted = True
        if shifted:
            names = record.get("names") or [record.get("id", "?")[:12]]
            found.append(str(names[0]))
    return found


def _plan_marker(location: StoreLocation, mount_program: str, allow_store_change: bool) -> MarkerPlan:
    graphroot = location.graphroot
    path, content = read_marker(graphroot)
    plan = MarkerPlan(path=path, content=content)
    if content != "true":
        plan.reason = "no mount-program marker says true; containers/storage decides by itself"
        return plan
    if not allow_store_change:
        raise StorageConfRefused(
            "refusing to remove mount_program %s: %s says \"true\". With that marker "
            "containers/storage keeps using fuse-overlayfs from PATH even without mount_program, "
            "so the edit alone would change nothing, and the marker exists because layers written "
            "through a mount program may hold AUFS-style .wh. whiteouts that native overlay does "
            "not understand. Set allow_store_change: true to let this module scan the store as "
            "containers/storage does and clear the marker only if nothing native overlay would "
            "misread is found." % (mount_program, path))
    indicator = find_mount_program_indicator(os.path.dirname(path))
    if indicator:
        raise StorageConfRefused(
            "refusing to remove mount_program %s: the store at %s needs it: %s is written in a "
            "mount program's format (AUFS whiteout or fuse-overlayfs xattr) that native overlay "
            "would misread. Reset or re-create the store (podman system reset, then pull again) "
            "before switching to native overlay." % (mount_program, graphroot, indicator))
    stranded = containers_with_noncontiguous_maps(location)
    if stranded:
        raise StorageConfRefused(
            "refusing to remove mount_program %s: container(s) %s were created through it with a "
            "non-contiguous ID map, and such a container fails to start on native overlay "
            "(\"creating overlay mount ... permission denied\", measured with Podman 5.8). Remove "
            "them (podman rm), run this again, then create them again."
            % (mount_program, ", ".join(stranded)))
    plan.clear = True
    plan.reason = "scanned the store like containers/storage: no .wh. file, no fuse-overlayfs xattr"
    return plan


def clear_marker(plan: MarkerPlan) -> bool:
    """Remove the marker so containers/storage re-derives it; True when a file was removed."""
    if not plan.clear:
        return False
    return remove_marker(plan.path)


def scratch_engine_conf(scratch: str) -> str:
    """A containers.conf override that gives Podman a throw-away database for a validation run.

    libpod records driver, graphroot and runroot in its database on first use and afterwards
    prefers the recorded values over storage.conf ("overwritten by graph driver ... from
    database"). Judged against the real database, a candidate's bad driver goes unnoticed; and on
    a host whose database does not exist yet, `podman info` with a candidate would create it with
    the candidate's values even when we then reject the candidate. A scratch static_dir/tmp_dir
    avoids both (Podman >= 4.4 reads CONTAINERS_CONF_OVERRIDE; older ones ignore it).
    """
    path = os.path.join(scratch, "containers.conf")
    with open(path, "w") as handle:
        handle.write('[engine]\nstatic_dir = "%s"\ntmp_dir = "%s"\n'
                     % (os.path.join(scratch, "static"), os.path.join(scratch, "tmp")))
    return path


def validation_env(conf_path: Optional[str], scratch: Optional[str] = None,
                   dropin: Optional[str] = None) -> Dict[str, str]:
    """The environment under which Podman reads `conf_path` (None: its own default); with
    `scratch` (an empty directory) with a throw-away libpod database, so the file alone is judged.

    With `dropin`, Podman reads its own files and then that candidate drop-in, last
    (CONTAINERS_STORAGE_CONF_OVERRIDE: read by the Podman versions that read drop-ins, 5.8.6 and
    6.1.1 on the lab): the candidate is judged with the files it goes with."""
    env = {"CONTAINERS_STORAGE_CONF": conf_path} if conf_path else {}
    if dropin:
        env["CONTAINERS_STORAGE_CONF_OVERRIDE"] = dropin
    if scratch:
        env["CONTAINERS_CONF_OVERRIDE"] = scratch_engine_conf(scratch)
    return env


def podman_store(run: Runner, podman: str, conf_path: Optional[str]) -> Dict[str, Any]:
    """What Podman reports for the store, `run` having the environment of validation_env(conf_path).

    StorageConfInvalid when Podman fails: for a candidate file this means Podman rejects it.
    """
    try:
        settings = settings_from_podman(run, podman, conf_path)
    except PodmanError as exc:
        raise StorageConfInvalid(str(exc))
    view = settings.store_view()
    view["graph_options"] = list(settings.graph_options)
    return view
