# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our staging area for deletions: doomed data is renamed here under the store's locks and
deleted after they are released.

``<graphroot>/idmapguard-staging/run-<random>/`` holds what one prune staged; the run holds
an exclusive flock(2) on that directory for as long as it lives (a kill -9 drops it). A run
directory nobody holds is a leftover of a crash: the next prune deletes it and reports it.
Creating a run and judging another one stale both happen under a flock of the staging root,
so a run is never judged stale between its mkdir and its lock.

Why the graphroot: c/storage never lists it, while overlay.go ListLayers (``podman system
check``, GarbageCollect) takes nearly every directory in the driver home for a layer. But a
rename cannot cross a mount, and c/storage bind-mounts the driver home onto itself
(MakePrivate) while layers are mounted, i.e. whenever a container runs. Then the driver-side
parts (``overlay/<id>``, ``overlay/l/<link>``) go to ``overlay/tempdirs/idmapguard-run-<same
random>/``: ``tempdirs`` is where c/storage >= 1.59 stages its own deletions, so it skips that
name in ListLayers and recreateSymlinks, and its stale-dir recovery only touches its own
``temp-dir-*``/``lock-*`` names. (c/storage < 1.59 lists ``tempdirs`` as an unaccounted layer
while it exists: only between our staging and our deletion, or until the next run after a
crash.) That directory belongs to the graphroot run of the same name: it is stale when that
run is gone or unlocked, is created after it and deleted before it.

A Podman may start, and bind-mount the driver home, at any moment of a prune (c/storage does
it at driver init, before taking any store lock). So a run opens the directories it stages
from (``overlay/``, ``overlay/l``, ``overlay-layers/``) once, together with its own, and every
rename of the run, and every put-back, goes between those fds: the mounts a run renames across
are the ones it checked when it opened, whatever is mounted later (a bind mount of a directory
onto itself shares its dentries: what the run renames through the fd it opened before the
mount is what Podman sees through the mount).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import binascii
import contextlib
import errno
import fcntl
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.activity import PodmanActivity
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import DeleteError, MountedError, StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.jsonfile import fsync_dir
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout
from ansible_collections.idmapguard.storage.plugins.module_utils.store.locks import store_lock_paths
from ansible_collections.idmapguard.storage.plugins.module_utils.store.mountinfo import mount_id
from ansible_collections.idmapguard.storage.plugins.module_utils.store.priority import idle_priority
from ansible_collections.idmapguard.storage.plugins.module_utils.store.safe_delete import (
    open_dir, remove_file_at, remove_tree_at,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import tree_usage_at

STAGING_DIR = "idmapguard-staging"
DRIVER_TEMP_DIR = "tempdirs"        # overlay.go tempDirName (c/storage >= 1.59)
DRIVER_RUN_PREFIX = "idmapguard-"   # + run name, inside overlay/tempdirs
Hook = Optional[Callable[[str], None]]
RUN_PREFIX = "run-"
# In a graphroot run: we created overlay/tempdirs (c/storage >= 1.59 has its own), so we remove
# it again once empty.
CREATED_DRIVER_ROOT = "created-driver-tempdirs"
GRAPH_AREA = "graph"
DRIVER_AREA = "driver"
# Staged data that could not be deleted: its run is renamed ``stranded-<random>`` (driver side
# ``idmapguard-stranded-<random>``), so no later run takes it for the leftover of a crash, and
# each entry gets ``.stranded-<ERRNO>`` appended: the name says why it is still there. Every
# later run (module) or guard start-up retries it once (finish_staging) and says so.
STRANDED_PREFIX = "stranded-"
STRANDED_SUFFIX = ".stranded-"

# What an operator does about a stranded entry, per errno name.
WHAT_TO_DO = {
    "EPERM": "an inode flag forbids deleting it: lsattr -d PATH; chattr -i -a PATH (and its directory), "
             "then run again",
    "EBUSY": "it is or holds a mount point: find it in /proc/self/mountinfo and unmount it, then run again",
    "EROFS": "the filesystem is read-only: remount it read-write, then run again",
    "EACCES": "permissions forbid deleting it: run as root or the store's owner, then run again",
}


def staging_root(layout: StoreLayout) -> str:
    return os.path.join(layout.graphroot, STAGING_DIR)


def driver_staging_root(layout: StoreLayout) -> str:
    return os.path.join(layout.driver_dir, DRIVER_TEMP_DIR)


def _same_mount(fd_a: int, fd_b: int) -> bool:
    return os.fstat(fd_a).st_dev == os.fstat(fd_b).st_dev and mount_id(fd_a) == mount_id(fd_b)


def driver_home_shares_mount(layout: StoreLayout) -> bool:
    """Whether ``overlay/`` is on the graphroot's mount (not bind-mounted onto itself)."""
    graph_fd = open_dir(layout.graphroot)
    try:
        driver_fd = open_dir(layout.driver_dir)
        try:
            return _same_mount(graph_fd, driver_fd)
        finally:
            os.close(driver_fd)
    finally:
        os.close(graph_fd)


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
    seconds: float = 0.0
    paused_seconds: float = 0.0  # waited for Podman (a store lock held by another process)
    removed_per_layer: Dict[str, int] = field(default_factory=dict)  # inodes freed per staged layer id
    # False: removed_per_layer counts names, without an lstat per file for its link count (a
    # caller whose copies were all measured by their walk already does not read it).
    count_links: bool = True
    retried: bool = False            # a stranded run, tried again (once per run of ours)
    stranded: List[Dict[str, str]] = field(default_factory=list)  # left entries, renamed to say why

    def as_dict(self) -> Dict[str, Any]:
        return {"run": self.run, "stale": self.stale, "retried": self.retried, "entries": self.entries,
                "left": self.left, "stranded": self.stranded,
                "inodes": self.inodes, "bytes": self.bytes, "idle_io": self.idle_io,
                "seconds": round(self.seconds, 3), "paused_seconds": round(self.paused_seconds, 3)}


def what_to_do(errno_name: str, path: str) -> str:
    text = WHAT_TO_DO.get(errno_name, "remove the cause (%s), then run again; the data is no longer part of "
                                      "the store and may also be deleted by hand" % errno_name)
    return text.replace("PATH", path)


def stranded_name(entry: str, errno_name: str) -> str:
    """``<staged name>.stranded-<ERRNO>`` (an older reason replaced)."""
    base = entry.split(STRANDED_SUFFIX, 1)[0]
    return base + STRANDED_SUFFIX + errno_name


def _stranded_entry(path: str, errno_name: str, blocked_by: str, why: str) -> Dict[str, str]:
    return {"path": path, "errno": errno_name, "blocked_by": blocked_by, "why": why,
            "what_to_do": what_to_do(errno_name, blocked_by)}


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
    """One prune's staging directories, locked by this process until :meth:`delete`."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self.name = RUN_PREFIX + binascii.hexlify(os.urandom(8)).decode("ascii")
        self.path = os.path.join(staging_root(layout), self.name)
        self.driver_path = self.path   # overlay/tempdirs/idmapguard-<name> when the driver home is its own mount
        self.fd: Optional[int] = None
        self.driver_fd: Optional[int] = None
        self.staged: List[str] = []
        # The directories parts are staged from, opened with the run (path -> fd; None: absent).
        self.parent_fds: Dict[str, Optional[int]] = {}

    def open(self) -> "StagingRun":
        with _RootLock(self.layout, create=True) as root_fd:
            try:
                os.mkdir(self.name, 0o700, dir_fd=root_fd)
            except OSError as exc:
                raise StoreError("cannot create %s: %s" % (self.path, exc))
            self.fd = open_dir(self.path)
            _flock(self.fd)
        driver_fd = open_dir(self.layout.driver_dir)
        self.parent_fds[self.layout.driver_dir] = driver_fd
        # l/ through the driver home's fd: on the same mount as it, whatever is mounted later.
        try:
            self.parent_fds[self.layout.link_dir] = os.open(
                os.path.basename(self.layout.link_dir), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=driver_fd)
        except FileNotFoundError:
            self.parent_fds[self.layout.link_dir] = None
        try:
            self.parent_fds[self.layout.layer_dir] = open_dir(self.layout.layer_dir)
        except FileNotFoundError:
            self.parent_fds[self.layout.layer_dir] = None
        if _same_mount(driver_fd, self.fd):
            self.driver_fd = self.fd
        else:
            self._open_driver_side(driver_fd)
        return self

    def _parent_fd(self, parent: str) -> Optional[int]:
        if parent not in self.parent_fds:
            raise StoreError("%s is not a directory this staging run stages from" % parent)
        return self.parent_fds[parent]

    def _open_driver_side(self, driver_fd: int) -> None:
        try:
            os.mkdir(DRIVER_TEMP_DIR, 0o700, dir_fd=driver_fd)
            os.close(os.open(CREATED_DRIVER_ROOT, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=self.fd))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError("cannot create %s: %s" % (driver_staging_root(self.layout), exc))
        name = DRIVER_RUN_PREFIX + self.name
        self.driver_path = os.path.join(driver_staging_root(self.layout), name)
        temp_fd = open_dir(driver_staging_root(self.layout))
        try:
            os.mkdir(name, 0o700, dir_fd=temp_fd)
        except OSError as exc:
            raise StoreError("cannot create %s: %s" % (self.driver_path, exc))
        finally:
            os.close(temp_fd)
        self.driver_fd = open_dir(self.driver_path)

    def _area_fd(self, area: str) -> int:
        fd = self.driver_fd if area == DRIVER_AREA else self.fd
        if fd is None:
            raise StoreError("staging run %s is not open" % self.path)
        return fd

    def check_same_mount(self, paths_by_area: Dict[str, List[str]]) -> None:
        """Refuse (before anything changed) when a rename from a path would cross a mount."""
        for area, paths in paths_by_area.items():
            own = self._area_fd(area)
            for path in paths:
                fd = self._parent_fd(path)
                if fd is not None and not _same_mount(fd, own):
                    raise MountedError("%s and %s are on different mounts: data cannot be staged by rename"
                                       % (path, self.driver_path if area == DRIVER_AREA else self.path))

    def stage(self, parent: str, name: str, staged_name: str, area: str = GRAPH_AREA) -> bool:
        """rename(parent/name, area/staged_name) between the fds opened with the run; False
        when ``name`` (or ``parent``) does not exist."""
        area_fd = self._area_fd(area)
        parent_fd = self._parent_fd(parent)
        if parent_fd is None:
            return False
        try:
            os.rename(name, staged_name, src_dir_fd=parent_fd, dst_dir_fd=area_fd)
        except FileNotFoundError:
            return False
        self.staged.append(staged_name)
        return True

    def unstage(self, parent: str, name: str, staged_name: str, area: str = GRAPH_AREA) -> None:
        """Put a staged entry back (a copy that cannot be staged whole stays whole): the
        reverse rename between the same two fds, so it crosses no mount the stage did not."""
        parent_fd = self._parent_fd(parent)
        if parent_fd is None:
            raise StoreError("%s is gone: cannot put %s back" % (parent, staged_name))
        os.rename(staged_name, name, src_dir_fd=self._area_fd(area), dst_dir_fd=parent_fd)
        self.staged.remove(staged_name)

    def sync(self) -> None:
        """Make the renames durable before the metadata that relies on them is written."""
        if self.staged:
            for directory in sorted({self.path, self.driver_path, self.layout.driver_dir, self.layout.link_dir,
                                     self.layout.layer_dir}):
                fsync_dir(directory)

    def delete(self, measure: bool = False, hook: Hook = None, catch_up: bool = False,
               count_links: bool = True) -> Deletion:
        """Delete everything staged at idle priority, pausing while Podman holds a store lock,
        then the run directories; with ``catch_up`` (a guard that has fallen behind) at the
        caller's priority and without pauses. Never raises for what it cannot delete: it is
        reported in ``left`` and stays in staging. ``count_links=False``: ``removed_per_layer``
        counts names, not inodes (no lstat per file, which ``rm -rf`` does not take either)."""
        if self.fd is None:
            raise StoreError("staging run %s is not open" % self.path)
        try:
            return _delete_run(self.layout, self.name, self.fd, stale=False, measure=measure, hook=hook,
                               catch_up=catch_up, count_links=count_links)
        finally:
            self.close()

    def close(self) -> None:
        for fd in self.parent_fds.values():
            if fd is not None:
                os.close(fd)
        self.parent_fds = {}
        if self.driver_fd is not None and self.driver_fd != self.fd:
            os.close(self.driver_fd)
        self.driver_fd = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _delete_entries(fd: int, path: str, done: "Deletion", measure: bool, hook: Hook,
                    activity: Optional[PodmanActivity] = None) -> None:
    for entry in sorted(os.listdir(fd)):
        if entry == CREATED_DRIVER_ROOT:
            remove_file_at(fd, entry)  # read already; not staged data
            continue
        if hook is not None:
            hook("delete:%s" % entry)
        if measure:
            try:
                inodes, size = tree_usage_at(fd, entry)
            except (OSError, StoreError):
                inodes, size = 0, 0
            done.inodes += inodes
            done.bytes += size
        try:
            st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            removed = [0]
            if (st.st_mode & 0o170000) == 0o040000:
                remove_tree_at(fd, entry, pause=activity.pause if activity is not None else None, removed=removed,
                               count_links=done.count_links)
            elif remove_file_at(fd, entry):
                removed[0] = 1
            done.entries.append(entry)
            layer_id = entry.split(".", 1)[0]
            done.removed_per_layer[layer_id] = done.removed_per_layer.get(layer_id, 0) + removed[0]
        except FileNotFoundError:
            done.entries.append(entry)  # someone (c/storage GarbageCollect) deleted it already
        except StoreError as exc:
            if isinstance(exc, DeleteError):
                errno_name, blocked = exc.errno_name, os.path.join(path, exc.relpath)
            else:
                errno_name, blocked = ("EBUSY" if isinstance(exc, MountedError) else "EIO"), os.path.join(path, entry)
            done.left.append({"path": os.path.join(path, entry), "why": str(exc), "errno": errno_name,
                              "blocked_by": blocked, "entry": entry, "dir_fd_key": path})


def _delete_driver_side(layout: StoreLayout, run_name: str, done: "Deletion", measure: bool, hook: Hook,
                        remove_root: bool = False, activity: Optional[PodmanActivity] = None) -> None:
    root = driver_staging_root(layout)
    name = DRIVER_RUN_PREFIX + run_name
    path = os.path.join(root, name)
    try:
        fd = open_dir(path)
    except FileNotFoundError:
        return
    try:
        _delete_entries(fd, path, done, measure, hook, activity)
    finally:
        os.close(fd)
    if not done.left:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            done.left.append({"path": path, "why": "cannot remove: %s" % exc})
        if remove_root:
            try:
                os.rmdir(root)  # ours, and only when empty
            except OSError:
                pass


def _delete_run(layout: StoreLayout, name: str, fd: int, stale: bool, measure: bool,
                hook: Hook = None, catch_up: bool = False, count_links: bool = True) -> "Deletion":
    done = Deletion(run=os.path.join(staging_root(layout), name), stale=stale, count_links=count_links)
    started = time.monotonic()
    activity = PodmanActivity(store_lock_paths(layout)) if not catch_up else None
    try:
        with (idle_priority() if not catch_up else contextlib.nullcontext(False)) as is_idle:
            done.idle_io = is_idle
            created_root = os.path.lexists(os.path.join(done.run, CREATED_DRIVER_ROOT))
            _delete_driver_side(layout, name, done, measure, hook, remove_root=created_root, activity=activity)
            _delete_entries(fd, done.run, done, measure, hook, activity)
    finally:
        if activity is not None:
            activity.close()
            done.paused_seconds = activity.paused_seconds
        done.seconds = time.monotonic() - started
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
    else:
        _strand(layout, name, fd, done)
    return done


def _rename_entry(dir_fd: int, entry: str, new: str) -> bool:
    if entry == new:
        return True
    try:
        os.rename(entry, new, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return True
    except OSError:
        return False  # e.g. the entry itself is immutable: it keeps its name, and is still reported


def _strand(layout: StoreLayout, name: str, fd: int, done: "Deletion") -> None:
    """Keep what could not be deleted under names that say why (while we still hold the run's
    flock, so no other run takes it for a crash's leftover), and report each entry."""
    new_run = STRANDED_PREFIX + name[len(RUN_PREFIX):] if name.startswith(RUN_PREFIX) else name
    graph_old = os.path.join(staging_root(layout), name)
    driver_old = os.path.join(driver_staging_root(layout), DRIVER_RUN_PREFIX + name)
    renamed: List[Tuple[Dict[str, Any], str]] = []
    driver_fd = None
    try:
        for item in done.left:
            entry, where = item.pop("entry", None), item.pop("dir_fd_key", None)
            if entry is None:
                continue
            new = stranded_name(entry, item["errno"])
            if where == graph_old:
                ok = _rename_entry(fd, entry, new)
            else:
                if driver_fd is None:
                    driver_fd = open_dir(driver_old)
                ok = _rename_entry(driver_fd, entry, new)
            renamed.append((item, new if ok else entry))
    finally:
        if driver_fd is not None:
            os.close(driver_fd)
    if new_run != name:
        with _RootLock(layout, create=False) as root_fd:
            if root_fd is not None:
                os.rename(name, new_run, src_dir_fd=root_fd, dst_dir_fd=root_fd)
        if os.path.isdir(driver_old):
            os.rename(driver_old, os.path.join(driver_staging_root(layout), DRIVER_RUN_PREFIX + new_run))
    graph_new = os.path.join(staging_root(layout), new_run)
    driver_new = os.path.join(driver_staging_root(layout), DRIVER_RUN_PREFIX + new_run)
    for item, entry in renamed:
        old_dir = os.path.dirname(item["path"])
        new_dir = graph_new if old_dir == graph_old else driver_new
        old_entry = os.path.join(old_dir, os.path.basename(item["path"]))
        blocked = item.get("blocked_by") or old_entry
        new_path = os.path.join(new_dir, entry)
        blocked = new_path + blocked[len(old_entry):] if blocked.startswith(old_entry) else blocked
        item["path"] = new_path
        item["blocked_by"] = blocked
        done.stranded.append(_stranded_entry(new_path, item["errno"], blocked, item["why"]))
    done.run = graph_new


def _orphan_driver_runs(layout: StoreLayout, live: List[str]) -> List[str]:
    """Run names of driver-side dirs whose graphroot run no longer exists (or is not ``live``)."""
    try:
        entries = os.listdir(driver_staging_root(layout))
    except FileNotFoundError:
        return []
    names = []
    for entry in sorted(entries):
        if entry.startswith(DRIVER_RUN_PREFIX + RUN_PREFIX) or entry.startswith(DRIVER_RUN_PREFIX + STRANDED_PREFIX):
            run = entry[len(DRIVER_RUN_PREFIX):]
            if run not in live and not os.path.lexists(os.path.join(staging_root(layout), run)):
                names.append(run)
    return names


def stale_runs(layout: StoreLayout) -> List[str]:
    """Paths of staging directories no live process holds (read only; for reports)."""
    found: List[str] = []
    root = staging_root(layout)
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        if not entry.startswith(RUN_PREFIX):
            continue
        try:
            fd = open_dir(os.path.join(root, entry))
        except (FileNotFoundError, StoreError):
            continue
        try:
            if _flock(fd, wait=False):
                found.append(os.path.join(root, entry))
                driver_side = os.path.join(driver_staging_root(layout), DRIVER_RUN_PREFIX + entry)
                if os.path.isdir(driver_side):
                    found.append(driver_side)
        finally:
            os.close(fd)  # closing drops a lock we took
    for run in _orphan_driver_runs(layout, []):
        found.append(os.path.join(driver_staging_root(layout), DRIVER_RUN_PREFIX + run))
    return found


def stranded_entries(layout: StoreLayout) -> List[Dict[str, str]]:
    """Every stranded entry (read only; for reports, the guard's state and metrics): path,
    errno (from its name) and what to do."""
    found: List[Dict[str, str]] = []
    for root, prefix in ((staging_root(layout), STRANDED_PREFIX),
                         (driver_staging_root(layout), DRIVER_RUN_PREFIX + STRANDED_PREFIX)):
        try:
            runs = sorted(os.listdir(root))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for run in runs:
            if not run.startswith(prefix):
                continue
            try:
                entries = sorted(os.listdir(os.path.join(root, run)))
            except OSError:
                continue
            for entry in entries:
                if entry == CREATED_DRIVER_ROOT:
                    continue
                path = os.path.join(root, run, entry)
                errno_name = entry.split(STRANDED_SUFFIX, 1)[1] if STRANDED_SUFFIX in entry else "unknown"
                found.append({"path": path, "errno": errno_name, "what_to_do": what_to_do(errno_name, path)})
    return found


def finish_staging(layout: StoreLayout, retry_stranded: bool = True, measure: bool = True,
                   hook: Hook = None) -> List[Deletion]:
    """Finish whatever this library staged before: the runs of crashed prunes, and (with
    ``retry_stranded``) one more try at each stranded run. The one place both the module (at
    the start of a run, before it plans) and the guard (at start-up) call."""
    done = finish_stale_runs(layout, measure=measure, hook=hook)
    if retry_stranded:
        done.extend(finish_stale_runs(layout, measure=measure, hook=hook, prefix=STRANDED_PREFIX))
    return done


def finish_stale_runs(layout: StoreLayout, measure: bool = True, hook: Hook = None,
                      prefix: str = RUN_PREFIX) -> List[Deletion]:
    """Delete what crashed runs staged (after our store locks are released); with
    ``prefix=STRANDED_PREFIX`` try stranded runs again, once each."""
    done: List[Deletion] = []
    root = staging_root(layout)
    tried: List[str] = []
    while True:
        claimed = None
        with _RootLock(layout, create=False) as root_fd:
            entries = sorted(os.listdir(root_fd)) if root_fd is not None else []
            for entry in entries:
                if not entry.startswith(prefix) or entry in tried:
                    continue
                fd = open_dir(os.path.join(root, entry))
                if _flock(fd, wait=False):
                    claimed = (entry, fd)  # held: nobody else judges it stale meanwhile
                    break
                os.close(fd)
        if claimed is None:
            break
        entry, fd = claimed
        tried.append(entry)
        retry = prefix == STRANDED_PREFIX
        try:
            deletion = _delete_run(layout, entry, fd, stale=not retry, measure=measure, hook=hook)
            deletion.retried = retry
            done.append(deletion)
        finally:
            os.close(fd)
    if prefix != RUN_PREFIX:
        return done
    # A driver-side dir is created after its graphroot run and deleted before it, so one
    # without its graphroot run is left only when that was removed by other hands.
    if not os.path.isdir(driver_staging_root(layout)):
        return done
    with _RootLock(layout, create=True) as _root_fd:
        for run in _orphan_driver_runs(layout, tried):
            deletion = Deletion(run=os.path.join(driver_staging_root(layout), DRIVER_RUN_PREFIX + run), stale=True)
            activity = PodmanActivity(store_lock_paths(layout))
            try:
                with idle_priority() as is_idle:
                    deletion.idle_io = is_idle
                    _delete_driver_side(layout, run, deletion, measure, hook, activity=activity)
            finally:
                activity.close()
            done.append(deletion)
        try:
            os.rmdir(root)  # only when empty
        except OSError:
            pass
    return done
