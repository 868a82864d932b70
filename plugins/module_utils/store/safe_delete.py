# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming removal of a directory tree through directory fds.

Why not shutil.rmtree: we need (1) every step relative to an fd opened with O_NOFOLLOW, so a
symlink planted in the store can never redirect deletion outside the layer's own paths,
(2) a refusal to cross into another mount, checked at every directory by mount id and not
only by ``st_dev`` (a bind mount from the same filesystem keeps the device number; a
still-mounted ``merged`` would let us delete through the overlay into a live upper dir), and (3) memory independent of the
number of files: only one open fd per directory level is kept, entries are streamed from
getdents and unlinked as they come (unlinkat, as ``rm -rf`` does).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import errno
import os
import stat
from typing import Callable, List, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import (
    DeleteError, MountedError, StoreError, TamperedStoreError,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.mountinfo import mount_id

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 4096
# remove_tree_at calls its ``pause`` callback after this many entries (see activity.py).
PAUSE_EVERY = 256


def open_dir(path: str) -> int:
    """An fd of ``path`` that is a real directory, not a symlink to one."""
    try:
        return os.open(path, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise TamperedStoreError("%s is not a directory (symlink or file where c/storage keeps a directory)" % path)
        raise


def remove_tree_at(parent_fd: int, name: str, pause: Optional[Callable[[], None]] = None,
                   removed: Optional[List[int]] = None, count_links: bool = True) -> bool:
    """Remove ``name`` (a directory) under ``parent_fd`` with all its content.

    Returns False when it did not exist. Raises TamperedStoreError when ``name`` is a symlink
    and MountedError when the tree is or holds a mount point (what was already removed stays
    removed; the rest, mount point included, is left). ``removed[0]`` is increased by every
    inode freed (directories, and files at their last name), so a caller learns the inodes
    freed without a walk; with ``count_links=False`` by every name removed instead (no lstat
    per file: for a caller that knows the inodes from its own walk already).
    """
    try:
        root_fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise TamperedStoreError("%r is not a real directory; refusing to delete through it" % name)
        raise StoreError("cannot open %r: %s" % (name, exc))
    root_dev = os.fstat(root_fd).st_dev
    root_mnt = mount_id(root_fd)
    parent_mnt = mount_id(parent_fd)
    if os.fstat(parent_fd).st_dev != root_dev or (root_mnt is not None and root_mnt != parent_mnt):
        os.close(root_fd)
        raise MountedError("%r is a mount point; refusing to delete it" % name)
    # (fd, name in parent) per level; the parent of level 0 is parent_fd.
    stack: List[Tuple[int, str]] = [(root_fd, name)]
    counter = removed if removed is not None else [0]
    try:
        while stack:
            fd = stack[-1][0]
            child = _empty_files_find_subdir(fd, counter, pause, count_links)
            if child is not None:
                if len(stack) >= MAX_DEPTH:
                    raise StoreError("directory tree under %r is deeper than %d levels" % (name, MAX_DEPTH))
                child_fd = os.open(child, _DIR_FLAGS, dir_fd=fd)
                if os.fstat(child_fd).st_dev != root_dev or mount_id(child_fd) != root_mnt:
                    os.close(child_fd)
                    raise MountedError("%r holds a mount point (%s); refusing to delete through it" % (name, child))
                stack.append((child_fd, child))
                continue
            done_fd, done_name = stack.pop()
            os.close(done_fd)
            os.rmdir(done_name, dir_fd=stack[-1][0] if stack else parent_fd)
            counter[0] += 1
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise MountedError("cannot remove %r: %s (a mount point)" % (name, exc))
        # The entry that failed (not only the tree): what an operator has to look at.
        where = "/".join(level for _fd, level in stack) or name
        failed = exc.filename if isinstance(exc.filename, str) else None
        relpath = where + "/" + failed if failed and failed != where.rsplit("/", 1)[-1] else where
        raise DeleteError("cannot remove %r: %s" % (relpath, exc.strerror or exc), exc.errno or 0, relpath)
    finally:
        for fd, _name in stack:
            os.close(fd)
    return True


def _empty_files_find_subdir(fd: int, counter: Optional[List[int]] = None,
                             pause: Optional[Callable[[], None]] = None, count_links: bool = True) -> Optional[str]:
    """Unlink every non-directory in the directory ``fd``; return the first subdirectory met."""
    with os.scandir(fd) as entries:  # CPython rewinds the dir fd when the iterator closes
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            # A hard-linked file frees its inode with its last name only (a real userland has
            # hard links; counting names over-reported the inodes a prune freed).
            last_name = counter is None or not count_links or entry.stat(follow_symlinks=False).st_nlink <= 1
            os.unlink(entry.name, dir_fd=fd)
            if counter is not None and last_name:
                counter[0] += 1
                if pause is not None and counter[0] % PAUSE_EVERY == 0:
                    pause()
    return None


def remove_file_at(parent_fd: int, name: str) -> bool:
    """Unlink a non-directory ``name`` under ``parent_fd``; False if it did not exist."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        raise TamperedStoreError("%r is a directory where c/storage keeps a file" % name)
    try:
        os.unlink(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise DeleteError("cannot remove %r: %s" % (name, exc.strerror or exc), exc.errno or 0, name)
    return True
