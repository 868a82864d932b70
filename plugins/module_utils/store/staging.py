# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our staging area for deletions: doomed data is renamed here under the store's locks and
deleted after they are released.

``<graphroot>/idmapguard-staging/run-<random>/`` holds what one prune staged; the run holds
an exclusive flock(2) on its directory for as long as it lives (a kill -9 drops it). A run
directory nobody holds is a leftover of a crash: the next prune deletes it and reports it.
Creating a run and judging another one stale both happen under a flock of the staging root,
so a run is never judged stale between its mkdir and its lock.

Why the graphroot and not ``overlay/``: overlay.go ListLayers takes every directory in the
driver home except a few names it knows for a layer, so ``podman system check`` would call our
staging a layer without a record; c/storage never lists the graphroot itself. It is on the
same mount as ``overlay/`` and ``overlay-layers/`` (checked before anything is staged), so a
rename moves any amount of data in constant time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import binascii
import errno
import fcntl
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import MountedError, StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.jsonfile import fsync_dir
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout
from ansible_collections.idmapguard.storage.plugins.module_utils.store.mountinfo import mount_id
from ansible_collections.idmapguard.storage.plugins.module_utils.store.priority import idle_priority
from ansible_collections.idmapguard.storage.plugins.module_utils.store.safe_delete import (
    open_dir, remove_file_at, remove_tree_at,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import tree_usage_at

STAGING_DIR = "idmapguard-staging"
Hook = Optional[Callable[[str], None]]
RUN_PREFIX = "run-"


def staging_root(layout: StoreLayout) -> str:
    return os.path.join(layout.graphroot, STAGING_DIR)


@dataclass
class Deletion:
    """What deleting one run directory did."""

    run: str
    stale: bool                      # left by a run that died (found by a later run)
    entries: List[str] = field(default_factory=list)   # staged names removed
    left: List[Dict[str, str]] = field(default_factory=list)  # {"path", "why"} not removed
    inodes: int = 0
    bytes: int = 0
    idle_io: bool = False

    def as_dict(self) -> Dict[str, Any]:
        return {"run": self.run, "stale": self.stale, "entries": self.entries, "left": self.left,
                "inodes": self.inodes, "bytes": self.bytes, "idle_io": self.idle_io}


def _flock(fd: int, exclusive: bool = True, wait: bool = True) -> bool:
    flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    if not wait:
        flags |= fcntl.LOCK_NB
    try:
        fcntl.flock(fd, flags)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


class _RootLock:
    """flock of the staging root, created if missing; brief holds only."""

    def __init__(self, layout: StoreLayout, create: bool) -> None:
        self.path = staging_root(layout)
        self.create = create
        self.fd: Optional[int] = None

    def __enter__(self) -> Optional[int]:
        for _attempt in range(5):
            if self.create:
                try:
                    os.mkdir(self.path, 0o700)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise StoreError("cannot create %s: %s" % (self.path, exc))
            try:
                fd = open_dir(self.path)
            except FileNotFoundError:
                if not self.create:
                    return None
                continue  # another run removed the empty root meanwhile
            _flock(fd)
            if os.fstat(fd).st_nlink == 0:  # removed while we waited
                os.close(fd)
                continue
            self.fd = fd
            return fd
        raise StoreError("cannot hold %s: it keeps disappearing" % self.path)

    def __exit__(self, *exc_info: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class StagingRun:
    """One prune's staging directory, locked by this process until :meth:`delete`."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self.name = RUN_PREFIX + binascii.hexlify(os.urandom(8)).decode("ascii")
        self.path = os.path.join(staging_root(layout), self.name)
        self.fd: Optional[int] = None
        self.staged: List[str] = []

    def open(self) -> "StagingRun":
        with _RootLock(self.layout, create=True) as root_fd:
            try:
                os.mkdir(self.name, 0o700, dir_fd=root_fd)
            except OSError as exc:
                raise StoreError("cannot create %s: %s" % (self.path, exc))
            self.fd = open_dir(self.path)
            _flock(self.fd)
        return self

    def check_same_mount(self, paths: List[str]) -> None:
        """Refuse (before anything changed) when a rename from ``paths`` would cross a mount."""
        assert self.fd is not None
        own_dev, own_mnt = os.fstat(self.fd).st_dev, mount_id(self.fd)
        for path in paths:
            try:
                fd = open_dir(path)
            except FileNotFoundError:
                continue
            try:
                if os.fstat(fd).st_dev != own_dev or mount_id(fd) != own_mnt:
                    raise MountedError("%s and %s are on different mounts: data cannot be staged by rename "
                                       "(nothing was changed)" % (path, self.path))
            finally:
                os.close(fd)

    def stage(self, parent: str, name: str, staged_name: str) -> bool:
        """rename(parent/name, run/staged_name); False when ``name`` does not exist."""
        assert self.fd is not None
        try:
            parent_fd = open_dir(parent)
        except FileNotFoundError:
            return False
        try:
            os.rename(name, staged_name, src_dir_fd=parent_fd, dst_dir_fd=self.fd)
        except FileNotFoundError:
            return False
        finally:
            os.close(parent_fd)
        self.staged.append(staged_name)
        return True

    def unstage(self, parent: str, name: str, staged_name: str) -> None:
        """Put a staged entry back (a copy that cannot be staged whole stays whole)."""
        assert self.fd is not None
        parent_fd = open_dir(parent)
        try:
            os.rename(staged_name, name, src_dir_fd=self.fd, dst_dir_fd=parent_fd)
        finally:
            os.close(parent_fd)
        self.staged.remove(staged_name)

    def sync(self) -> None:
        """Make the renames durable before the metadata that relies on them is written."""
        if self.staged:
            fsync_dir(self.path)
            for parent in (self.layout.driver_dir, self.layout.link_dir, self.layout.layer_dir):
                fsync_dir(parent)

    def delete(self, measure: bool = False, hook: Hook = None) -> Deletion:
        """Delete everything staged at idle priority, then the run directory. Never raises for
        what it cannot delete: it is reported in ``left`` and stays in staging."""
        assert self.fd is not None
        try:
            return _delete_run_dir(self.layout, self.name, self.fd, stale=False, measure=measure, hook=hook)
        finally:
            os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _delete_run_dir(layout: StoreLayout, name: str, fd: int, stale: bool, measure: bool,
                    hook: Hook = None) -> Deletion:
    done = Deletion(run=os.path.join(staging_root(layout), name), stale=stale)
    with idle_priority() as is_idle:
        done.idle_io = is_idle
        for entry in sorted(os.listdir(fd)):
            if hook is not None:
                hook("delete:%s" % entry)
            if measure:
                inodes, size = tree_usage_at(fd, entry)
                done.inodes += inodes
                done.bytes += size
            try:
                st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
                if (st.st_mode & 0o170000) == 0o040000:
                    remove_tree_at(fd, entry)
                else:
                    remove_file_at(fd, entry)
                done.entries.append(entry)
            except FileNotFoundError:
                done.entries.append(entry)
            except StoreError as exc:
                done.left.append({"path": os.path.join(done.run, entry), "why": str(exc)})
    if not done.left:
        with _RootLock(layout, create=False) as root_fd:
            if root_fd is not None:
                try:
                    os.rmdir(name, dir_fd=root_fd)
                except OSError as exc:
                    done.left.append({"path": done.run, "why": "cannot remove: %s" % exc})
                try:
                    os.rmdir(staging_root(layout))  # only when empty; recreated by the next run
                except OSError:
                    pass
    return done


def stale_runs(layout: StoreLayout) -> List[str]:
    """Names of run directories no live process holds (read only; for reports)."""
    names: List[str] = []
    root = staging_root(layout)
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return names
    for entry in entries:
        if not entry.startswith(RUN_PREFIX):
            continue
        try:
            fd = open_dir(os.path.join(root, entry))
        except (FileNotFoundError, StoreError):
            continue
        try:
            if _flock(fd, wait=False):
                names.append(entry)
        finally:
            os.close(fd)  # closing drops a lock we took
    return names


def finish_stale_runs(layout: StoreLayout, measure: bool = True, hook: Hook = None) -> List[Deletion]:
    """Delete what crashed runs staged (after our store locks are released)."""
    done: List[Deletion] = []
    root = staging_root(layout)
    while True:
        claimed = None
        with _RootLock(layout, create=False) as root_fd:
            if root_fd is None:
                return done
            for entry in sorted(os.listdir(root_fd)):
                if not entry.startswith(RUN_PREFIX) or any(d.run.endswith("/" + entry) for d in done):
                    continue
                fd = open_dir(os.path.join(root, entry))
                if _flock(fd, wait=False):
                    claimed = (entry, fd)  # held: nobody else judges it stale meanwhile
                    break
                os.close(fd)
        if claimed is None:
            return done
        entry, fd = claimed
        try:
            done.append(_delete_run_dir(layout, entry, fd, stale=True, measure=measure, hook=hook))
        finally:
            os.close(fd)
