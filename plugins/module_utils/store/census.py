# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a graphroot holds, for decisions about changing its configuration.

Which drivers have a layer index and how many layers it records, and the overlay driver's
mount-program marker (`overlay/.has-mount-program`) with the scan containers/storage makes
when that marker is missing (drivers/overlay/overlay.go, SupportsNativeOverlay and
scanForMountProgramIndicators). Read-only, except the removal of the marker itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
from typing import List, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.jsonfile import read_json_list

MARKER_NAME = ".has-mount-program"
WHITEOUT_PREFIX = ".wh."
FUSE_XATTR_PREFIXES = ("user.fuseoverlayfs.", "user.containers.")


def count_layers(root: str) -> int:
    """Number of layers recorded in `<root>/*-layers/layers.json` (0 for no store).

    A read-only look at the layer index: enough to know whether moving or reinterpreting the
    store would leave data behind. An unreadable index counts as "holds layers" (-1): when we
    cannot tell, we must not assume the store is empty.
    """
    total = 0
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    for name in sorted(names):
        if not name.endswith("-layers"):
            continue
        try:
            layers = read_json_list(os.path.join(root, name, "layers.json"))
        except StoreError:
            return -1
        total += len(layers or [])
    return total


def drivers_in_use(root: str) -> List[str]:
    """Drivers whose layer index exists under `root` (`overlay` for `overlay-layers/layers.json`)."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    return sorted(n[: -len("-layers")] for n in names
                  if n.endswith("-layers") and os.path.exists(os.path.join(root, n, "layers.json")))


def read_marker(graphroot: str) -> Tuple[str, Optional[str]]:
    """Path and stripped content of the overlay mount-program marker (None when absent)."""
    path = os.path.join(graphroot, "overlay", MARKER_NAME)
    try:
        with open(path, "rb") as handle:
            return path, handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return path, None


def find_mount_program_indicator(overlay_home: str) -> Optional[str]:
    """The first file or directory native overlay would misread, as containers/storage scans.

    Names starting with ".wh." (AUFS-style whiteouts) and directories carrying
    user.fuseoverlayfs.* or user.containers.* xattrs. None when the store holds neither.
    """
    listxattr = getattr(os, "listxattr", None)
    for dirpath, dirnames, filenames in os.walk(overlay_home):
        for name in dirnames + filenames:
            if name.startswith(WHITEOUT_PREFIX):
                return os.path.join(dirpath, name)
        if listxattr is None:
            continue
        try:
            attrs = listxattr(dirpath, follow_symlinks=False)
        except OSError:
            attrs = []
        for attr in attrs:
            if attr.startswith(FUSE_XATTR_PREFIXES):
                return "%s (xattr %s)" % (dirpath, attr)
    return None


def remove_marker(path: str) -> bool:
    """Remove the marker so containers/storage re-derives it; True when a file was removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
