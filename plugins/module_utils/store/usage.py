# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inode and byte usage: of a filesystem (statvfs) and of one tree (a dir-fd walk)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import stat
from typing import Any, Callable, Dict, Optional, Set, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def fs_usage(path: str) -> Dict[str, int]:
    """Inodes and bytes of the filesystem holding ``path`` (what ``df -i``/``df`` show)."""
    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise StoreError("cannot statvfs %s: %s" % (path, exc))
    return {
        "inodes_total": st.f_files,
        "inodes_free": st.f_ffree,
        "inodes_used": st.f_files - st.f_ffree,
        "bytes_total": st.f_blocks * st.f_frsize,
        "bytes_free": st.f_bavail * st.f_frsize,
        "bytes_used": (st.f_blocks - st.f_bfree) * st.f_frsize,
    }


def count_inode(st: Any, seen: Set[Tuple[int, int]]) -> Tuple[int, int]:
    """(inodes, bytes) an entry adds to a walk's count (0 for a name of an inode seen)."""
    # A hard-linked file holds one inode however many names it has.
    if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return 0, 0
        seen.add(key)
    return 1, st.st_blocks * 512


# Called for every entry a walk counts: (fd of its directory, its name, its path relative to
# the walk's parent, its lstat, and for a directory an fd of it (else None)). preflight.py
# reads inode flags through it, so the walk that measures a copy is also its pre-flight.
Visit = Optional[Callable[[int, str, str, Any, Optional[int]], None]]
# The lstat a walk takes of each entry: (dir fd, name) -> an object with st_mode, st_nlink,
# st_dev, st_ino and st_blocks (os.stat_result by default; preflight.py's also has the flags).
LstatAt = Optional[Callable[[int, str], Any]]


def tree_usage(parent: str, name: str, visit: Visit = None, lstat_at: LstatAt = None) -> Tuple[int, int]:
    """(inodes, bytes) held by ``parent/name`` and everything below it; (0, 0) if absent.

    Never follows a symlink and never crosses into another filesystem (a mounted ``merged``).
    ``lstat_at`` replaces the lstat of each entry (one syscall that also brings what ``visit``
    needs, instead of a second one per entry).
    """
    try:
        parent_fd = os.open(parent, _DIR_FLAGS)
    except FileNotFoundError:
        return 0, 0
    except OSError as exc:
        raise StoreError("cannot open %s: %s" % (parent, exc))
    try:
        return tree_usage_at(parent_fd, name, visit, lstat_at)
    finally:
        os.close(parent_fd)


def tree_usage_at(parent_fd: int, name: str, visit: Visit = None, lstat_at: LstatAt = None) -> Tuple[int, int]:
    try:
        if lstat_at is not None:
            st = lstat_at(parent_fd, name)
        else:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 0, 0
    seen: Set[Tuple[int, int]] = set()
    inodes, size = count_inode(st, seen)
    if not stat.S_ISDIR(st.st_mode):
        if visit is not None:
            visit(parent_fd, name, name, st, None)
        return inodes, size
    root_dev = st.st_dev
    root_fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    if visit is not None:
        visit(parent_fd, name, name, st, root_fd)
    stack = [(root_fd, name)]
    try:
        while stack:
            fd, where = stack.pop()
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        est = lstat_at(fd, entry.name) if lstat_at is not None else entry.stat(follow_symlinks=False)
                        if est.st_dev != root_dev:
                            continue  # a mount point: not ours to count
                        add_inodes, add_bytes = count_inode(est, seen)
                        inodes += add_inodes
                        size += add_bytes
                        path = where + "/" + entry.name
                        if stat.S_ISDIR(est.st_mode):
                            child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                            stack.append((child, path))
                            if visit is not None:
                                visit(fd, entry.name, path, est, child)
                        elif visit is not None:
                            visit(fd, entry.name, path, est, None)
            finally:
                os.close(fd)
    finally:
        for fd, _where in stack:
            os.close(fd)
    return inodes, size


def optional_lstat(path: str) -> Optional[os.stat_result]:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
