# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mount table (the one /proc/self/mountinfo parser), mount points under the store, the
filesystem a path is on, and the mount a directory fd lives on.

Why not ``st_dev``: a bind mount from the same filesystem has the same device number as the
directory it covers, so a walk comparing ``st_dev`` deletes straight through it. The kernel's
own answer is the mount id: ``/proc/self/mountinfo`` lists every mount point of our mount
namespace (bind mounts included), and statx(STATX_MNT_ID) or name_to_handle_at() give the
mount id of an open directory, which is what the deletion walk compares at every level.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import ctypes
import os
import re
from typing import Iterable, List, NamedTuple, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.store.libc import (
    AT_EMPTY_PATH, LIBC as _LIBC, STATX_MNT_ID, statx,
)

MOUNTINFO = "/proc/self/mountinfo"
_ESCAPE_RE = re.compile(r"\\([0-7]{3})")

_EOVERFLOW = 75


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 8)), field)


class Mount(NamedTuple):
    """One line of mountinfo: the mount point (field 5, unescaped) and the filesystem type
    (the first field after the " - " separator)."""

    point: str
    fs_type: Optional[str]


def mounts(mountinfo: str = MOUNTINFO) -> List[Mount]:
    """Every mount of this mount namespace, in mountinfo's order (OSError when it cannot be read)."""
    found = []
    with open(mountinfo, "r", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            # Fields never hold a space (the kernel escapes it), so " - " is only the separator.
            left, _sep, right = line.rstrip("\n").partition(" - ")
            fields = left.split(" ")
            if len(fields) < 5:
                continue
            fs_type = right.split(" ")[0] if right else None
            found.append(Mount(os.path.normpath(_unescape(fields[4])), fs_type or None))
    return found


def mount_points(mountinfo: str = MOUNTINFO) -> List[str]:
    """Every mount point of this mount namespace (field 5 of mountinfo), in order."""
    return [mount.point for mount in mounts(mountinfo)]


def filesystem_type(path: str, mountinfo: str = MOUNTINFO) -> Optional[str]:
    """The type of the filesystem holding ``path``: that of the last-mounted, longest mount point
    containing it; None when mountinfo cannot be read."""
    real = os.path.realpath(path)
    best, best_type = "", None  # type: tuple[str, Optional[str]]
    try:
        table = mounts(mountinfo)
    except (OSError, UnicodeError):
        return None
    for mount in table:
        inside = real == mount.point or real.startswith(mount.point.rstrip("/") + "/")
        if inside and len(mount.point) >= len(best):
            best, best_type = mount.point, mount.fs_type
    return best_type


def mounts_at_or_under(points: Iterable[str], path: str) -> List[str]:
    """The mount points that are ``path`` itself or lie below it."""
    path = os.path.normpath(path)
    prefix = path.rstrip("/") + "/"
    return [point for point in points if point == path or point.startswith(prefix)]


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int)]


def mount_id(fd: int) -> Optional[int]:
    """The id of the mount ``fd`` lives on, or None when the kernel/libc cannot tell.

    statx(STATX_MNT_ID) needs Linux 5.8 and glibc 2.28; name_to_handle_at() with a zero-sized
    handle fails with EOVERFLOW but still fills in the mount id, on any Linux since 2.6.39.
    """
    if _LIBC is None:
        return None
    try:
        buf = statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID)
    except OSError:
        buf = None
    if buf is not None and buf.stx_mask & STATX_MNT_ID:
        return int(buf.stx_mnt_id)
    name_to_handle_at = getattr(_LIBC, "name_to_handle_at", None)
    if name_to_handle_at is not None:
        handle = _FileHandle(0, 0)
        mnt = ctypes.c_int(0)
        ret = name_to_handle_at(fd, b"", ctypes.byref(handle), ctypes.byref(mnt), AT_EMPTY_PATH)
        if ret == 0 or ctypes.get_errno() == _EOVERFLOW:
            return int(mnt.value)
    return None
