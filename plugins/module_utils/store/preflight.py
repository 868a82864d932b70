# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pre-flight: what would stop the deletion of a copy, found before anything changes.

Two places, so it is never a walk under a lock:

* :func:`preflight_copy` runs in the walk that measures a copy, after the store's locks are
  released (it is that walk: usage.tree_usage's ``visit``; each entry is visited once). Every
  entry gets its inode flags, from statx's ``stx_attributes`` where the filesystem reports
  them, else ``FS_IOC_GETFLAGS`` on regular files and directories (:func:`flags_at`): an
  immutable entry cannot be unlinked, and
  nothing inside an immutable or append-only directory can (``may_delete`` in fs/namei.c;
  root is not exempt). A directory with entries that this process cannot write to is
  reported too (for a non-root run: DAC permissions, which root overrides). The parents the
  copy's parts are renamed out of (``overlay/``, ``overlay/l``, ``overlay-layers/``) are
  checked the same way. The flags of each part's top entry are remembered.
* :func:`flags_changed` runs in the staging step, under the locks, at constant cost: it
  reads those top entries' flags again and holds the copy back when they differ from what the
  walk saw (someone ran chattr in between).

A flag set deeper in the tree after the walk is only met by the deletion, after release: the
entry is then kept in staging under a name that says why (staging.py, "stranded").
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import ctypes
import errno
import fcntl
import os
import stat
import sys
from typing import Any, Dict, List, Optional, Set, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout, checked_id
from ansible_collections.idmapguard.storage.plugins.module_utils.store.libc import (
    AT_SYMLINK_NOFOLLOW, STATX_ATTR_APPEND, STATX_ATTR_IMMUTABLE, STATX_BASIC_STATS, statx, statx_buffer,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import count_inode, tree_usage_at

# linux/fs.h: FS_IOC_GETFLAGS is _IOR('f', 1, long); the kernel reads and writes an int.
FS_IOC_GETFLAGS = (2 << 30) | (ctypes.sizeof(ctypes.c_long) << 16) | (ord("f") << 8) | 1
FS_IMMUTABLE_FL = 0x00000010
FS_APPEND_FL = 0x00000020
UNDELETABLE_FLAGS = FS_IMMUTABLE_FL | FS_APPEND_FL
_STATX_UNDELETABLE = STATX_ATTR_IMMUTABLE | STATX_ATTR_APPEND
# linux/stat.h STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_INO | STATX_BLOCKS: what the walk reads.
_STATX_WALK_FIELDS = 0x0001 | 0x0002 | 0x0004 | 0x0100 | 0x0400
# Enough reasons to act on; a copy with thousands of immutable files needs one chattr -R.
MAX_REASONS = 5

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def flags_of_fd(fd: int) -> int:
    """The inode flags of an open file; 0 where the filesystem has none (ENOTTY etc.)."""
    buf = bytearray(8)
    try:
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return 0
        raise
    return int.from_bytes(bytes(buf[:4]), sys.byteorder)


def _flags_by_ioctl(dir_fd: int, name: str, mode: int) -> int:
    """FS_IOC_GETFLAGS through an fd: only regular files and directories are opened (opening
    a device or a FIFO could have effects; symlinks carry no flags chattr can set)."""
    if stat.S_ISDIR(mode):
        flags = _DIR_FLAGS
    elif stat.S_ISREG(mode):
        flags = _FILE_FLAGS
    else:
        return 0
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return 0
    try:
        return flags_of_fd(fd)
    finally:
        os.close(fd)


def flags_by_statx(dir_fd: int, name: str) -> Optional[int]:
    """The immutable/append-only flags of ``name`` from statx's ``stx_attributes`` (one
    syscall, no open): None where statx is missing or the filesystem does not say whether it
    reports them (``stx_attributes_mask`` lacks a bit), or the
    entry vanished. The attribute bits have the values of the inode flags (linux/stat.h)."""
    try:
        buf = statx(dir_fd, name, AT_SYMLINK_NOFOLLOW, 0)
    except OSError:
        return None  # the ioctl path raises what matters (or finds the entry gone)
    if buf is None or buf.stx_attributes_mask & _STATX_UNDELETABLE != _STATX_UNDELETABLE:
        return None
    flags = 0
    if buf.stx_attributes & STATX_ATTR_IMMUTABLE:
        flags |= FS_IMMUTABLE_FL
    if buf.stx_attributes & STATX_ATTR_APPEND:
        flags |= FS_APPEND_FL
    return flags


class FlaggedStat:
    """What the walk needs of an entry (the os.stat_result fields usage.py reads) and its
    undeletable flags, or None for flags where statx could not tell (read by the ioctl then)."""

    __slots__ = ("st_mode", "st_nlink", "st_dev", "st_ino", "st_blocks", "flags")

    def __init__(self, st_mode: int, st_nlink: int, st_dev: int, st_ino: int, st_blocks: int,
                 flags: Optional[int]) -> None:
        self.st_mode, self.st_nlink, self.st_dev, self.st_ino, self.st_blocks = st_mode, st_nlink, st_dev, st_ino, st_blocks
        self.flags = flags


def flagged_lstat(dir_fd: int, name: str) -> FlaggedStat:
    """One statx per entry for the measuring walk: its lstat fields and its flags together
    (the walk's lstat and a second call for the flags cost twice the CPU). Falls back to
    os.stat where statx is missing or leaves a basic field out. Raises what lstat raises."""
    buf = statx(dir_fd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS)
    if buf is None or buf.stx_mask & _STATX_WALK_FIELDS != _STATX_WALK_FIELDS:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return FlaggedStat(st.st_mode, st.st_nlink, st.st_dev, st.st_ino, st.st_blocks, None)
    flags: Optional[int] = None
    if buf.stx_attributes_mask & _STATX_UNDELETABLE == _STATX_UNDELETABLE:
        flags = int(buf.stx_attributes & _STATX_UNDELETABLE)  # the same bit values as FS_*_FL
    return FlaggedStat(buf.stx_mode, buf.stx_nlink, os.makedev(buf.stx_dev_major, buf.stx_dev_minor),
                       buf.stx_ino, buf.stx_blocks, flags)


def flags_at(dir_fd: int, name: str, mode: int) -> int:
    """Immutable/append-only flags of ``name`` in ``dir_fd`` (another entry's flags are not
    read): statx where the filesystem reports them, else FS_IOC_GETFLAGS through an fd.

    statx costs one syscall per entry where the ioctl costs an open, the ioctl and a close (the
    walk of 50 seed-size copies, 345,000 entries, is a prune's whole pre-flight: make
    bench-latency); it also sees flags on an entry the ioctl path cannot open (a symlink, a
    device, a FIFO), which stop an unlink just the same."""
    flags = flags_by_statx(dir_fd, name)
    if flags is not None:
        return flags
    return _flags_by_ioctl(dir_fd, name, mode) & UNDELETABLE_FLAGS


def flag_words(flags: int) -> str:
    words = []
    if flags & FS_IMMUTABLE_FL:
        words.append("immutable")
    if flags & FS_APPEND_FL:
        words.append("append-only")
    return "+".join(words)


def _can_write_dir(dir_fd: Optional[int], name: str) -> bool:
    """Whether this process may remove entries of the directory ``name`` (in ``dir_fd``, or
    an absolute path): always for root (CAP_DAC_OVERRIDE; only flags stop it)."""
    if os.geteuid() == 0:
        return True
    try:
        return os.access(name, os.W_OK | os.X_OK, dir_fd=dir_fd, effective_ids=True, follow_symlinks=False)
    except (NotImplementedError, OSError):
        return True


def _top_parts(layout: StoreLayout, layer_id: str, link: Optional[str]) -> List[Tuple[str, str]]:
    """(parent, name) of each part of a copy, as prune.staged_parts stages them."""
    parts = []
    if link:
        parts.append((layout.link_dir, link))
    parts.extend([(layout.driver_dir, layer_id), (layout.layer_dir, layout.tar_split_name(layer_id)),
                  (layout.layer_dir, layer_id)])
    return parts


def top_flags(layout: StoreLayout, layer_id: str, link: Optional[str]) -> Dict[str, int]:
    """Flags of each part's top entry and of the directories they are renamed out of, plus
    ``overlay/<id>/diff`` (constant cost: what the staging step compares)."""
    found: Dict[str, int] = {}
    layer_id = checked_id(layer_id, "layer")
    entries = list(_top_parts(layout, layer_id, link))
    entries.append((os.path.join(layout.driver_dir, layer_id), "diff"))
    for parent in sorted({layout.driver_dir, layout.link_dir, layout.layer_dir}):
        entries.append((os.path.dirname(parent), os.path.basename(parent)))
    for parent, name in entries:
        path = os.path.join(parent, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        try:
            parent_fd = os.open(parent, _DIR_FLAGS)
        except OSError:
            continue
        try:
            found[path] = flags_at(parent_fd, name, st.st_mode)
        finally:
            os.close(parent_fd)
    return found


class _Walker:
    """The ``visit`` of the measuring walk: collects what would stop the deletion."""

    def __init__(self, parent: str) -> None:
        self.parent = parent
        self.reasons: List[str] = []
        self.more = 0

    def _add(self, reason: str) -> None:
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)
        else:
            self.more += 1

    def __call__(self, dir_fd: int, name: str, rel: str, st: FlaggedStat, own_fd: Optional[int]) -> None:
        flags = getattr(st, "flags", None)
        if flags is None:  # statx could not tell: the ioctl (a directory the walk holds open: no second open)
            flags = flags_of_fd(own_fd) & UNDELETABLE_FLAGS if own_fd is not None else \
                _flags_by_ioctl(dir_fd, name, st.st_mode) & UNDELETABLE_FLAGS
        if flags:
            self.flagged(rel, flags)
        elif own_fd is not None and not _can_write_dir(dir_fd, name):
            self.unwritable(rel)

    def flagged(self, rel: str, flags: int) -> None:
        self._add("%s: %s" % (os.path.join(self.parent, rel), flag_words(flags)))

    def unwritable(self, rel: str) -> None:
        self._add("%s: directory not writable (its entries cannot be removed)" % os.path.join(self.parent, rel))


def walk_part(parent: str, name: str, walker: _Walker) -> Tuple[int, int]:
    """(inodes, bytes) of ``parent/name`` and below, each entry visited by ``walker``: what
    usage.tree_usage(parent, name, walker, flagged_lstat) finds, at less CPU.

    This walk is Python-bound where the deletion it runs beside is kernel-bound (a seed-size
    copy: 6,900 entries, one statx each). So the common entry takes the shortest path: one
    statx into a reused buffer (libc.statx_buffer), its fields read straight from it, no
    object per entry, the walker called only for a directory of a non-root run or an entry
    with a flag. An entry statx cannot answer whole (an error, a field or the flags' attribute
    bits missing) goes the general way (flagged_lstat: the os.stat fallback, raising what lstat
    raises; flags by the ioctl). Without statx in libc the whole part does."""
    raw = statx_buffer()
    try:
        parent_fd = os.open(parent, _DIR_FLAGS)
    except FileNotFoundError:
        return 0, 0
    except OSError as exc:
        raise StoreError("cannot open %s: %s" % (parent, exc))
    try:
        if raw is None:
            return tree_usage_at(parent_fd, name, walker, flagged_lstat)
        try:
            st = flagged_lstat(parent_fd, name)
        except FileNotFoundError:
            return 0, 0
        seen: Set[Tuple[int, int]] = set()
        inodes, size = count_inode(st, seen)
        if not stat.S_ISDIR(st.st_mode):
            walker(parent_fd, name, name, st, None)
            return inodes, size
        root_fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        stack = [(root_fd, name)]
        try:
            walker(parent_fd, name, name, st, root_fd)
            add_inodes, add_bytes = _walk_below(raw, stack, st.st_dev, seen, walker)
        finally:
            for fd, _where in stack:
                os.close(fd)
        return inodes + add_inodes, size + add_bytes
    finally:
        os.close(parent_fd)


def _walk_below(raw: Tuple[Any, Any, Any], stack: List[Tuple[int, str]], root_dev: int,
                seen: Set[Tuple[int, int]], walker: _Walker) -> Tuple[int, int]:
    """The loop of :func:`walk_part` over the directories on ``stack`` (it closes each one
    it is done with; what is left on the stack after an error is the caller's to close)."""
    call, buf, ref = raw
    major, minor = os.major(root_dev), os.minor(root_dev)
    check_dirs = os.geteuid() != 0  # root may remove entries of any directory (flags aside)
    fsencode, listdir, open_at, isdir = os.fsencode, os.listdir, os.open, stat.S_ISDIR
    inodes = blocks = 0
    while stack:
        fd, where = stack.pop()
        try:
            for entry in listdir(fd):
                if call(fd, fsencode(entry), AT_SYMLINK_NOFOLLOW, _STATX_WALK_FIELDS, ref) != 0 or \
                        buf.stx_mask & _STATX_WALK_FIELDS != _STATX_WALK_FIELDS or \
                        buf.stx_attributes_mask & _STATX_UNDELETABLE != _STATX_UNDELETABLE:
                    est = flagged_lstat(fd, entry)  # the general way, as tree_usage_at takes it
                    if est.st_dev != root_dev:
                        continue
                    add_inodes, add_bytes = count_inode(est, seen)
                    inodes += add_inodes
                    blocks += add_bytes // 512
                    child = open_at(entry, _DIR_FLAGS, dir_fd=fd) if isdir(est.st_mode) else None
                    if child is not None:
                        stack.append((child, where + "/" + entry))
                    walker(fd, entry, where + "/" + entry, est, child)
                    continue
                if buf.stx_dev_major != major or buf.stx_dev_minor != minor:
                    continue  # a mount point: not ours to count
                attributes = buf.stx_attributes & _STATX_UNDELETABLE  # the same bit values as FS_*_FL
                if isdir(buf.stx_mode):
                    child = open_at(entry, _DIR_FLAGS, dir_fd=fd)
                    stack.append((child, where + "/" + entry))
                    if attributes:
                        walker.flagged(where + "/" + entry, int(attributes))
                    elif check_dirs and not _can_write_dir(fd, entry):
                        walker.unwritable(where + "/" + entry)
                else:
                    if buf.stx_nlink > 1:
                        key = (root_dev, buf.stx_ino)  # a hard-linked file holds one inode
                        if key in seen:
                            if attributes:
                                walker.flagged(where + "/" + entry, int(attributes))
                            continue
                        seen.add(key)
                    if attributes:
                        walker.flagged(where + "/" + entry, int(attributes))
                inodes += 1
                blocks += buf.stx_blocks
        finally:
            os.close(fd)
    return inodes, blocks * 512


def preflight_copy(layout: StoreLayout, layer_id: str, link: Optional[str]) -> Tuple[int, int, List[str], Dict[str, int]]:
    """Walk a copy once: (inodes, bytes, reasons it cannot be deleted, top entries' flags).

    Outside the store's locks (an unused copy does not change; a copy that vanished measures 0)."""
    layer_id = checked_id(layer_id, "layer")
    reasons: List[str] = []
    seen = top_flags(layout, layer_id, link)
    for parent in sorted({layout.driver_dir, layout.layer_dir} | ({layout.link_dir} if link else set())):
        flags = seen.get(parent, 0)
        if flags & UNDELETABLE_FLAGS:
            reasons.append("%s: %s (nothing can be renamed out of it)" % (parent, flag_words(flags)))
        elif os.path.isdir(parent) and not _can_write_dir(None, parent):
            reasons.append("%s: directory not writable (nothing can be renamed out of it)" % parent)
    inodes = size = 0
    for parent, name in _top_parts(layout, layer_id, link):
        walker = _Walker(parent)
        add_inodes, add_bytes = walk_part(parent, name, walker)
        inodes += add_inodes
        size += add_bytes
        reasons.extend(walker.reasons)
        if walker.more:
            reasons.append("%s: %d more" % (os.path.join(parent, name), walker.more))
    return inodes, size, reasons, seen


def flags_changed(layout: StoreLayout, layer_id: str, link: Optional[str], seen: Dict[str, int]) -> Optional[str]:
    """Under the locks: why the copy is held back (a top entry's flags differ from the walk's),
    or None. Constant cost: a handful of entries per copy."""
    now = top_flags(layout, layer_id, link)
    for path in sorted(set(now) | set(seen)):
        before, after = seen.get(path, 0), now.get(path, 0)
        if (before ^ after) & UNDELETABLE_FLAGS:
            return "%s: flags changed since the pre-flight walk (%s -> %s)" % (
                path, flag_words(before) or "none", flag_words(after) or "none")
    return None
