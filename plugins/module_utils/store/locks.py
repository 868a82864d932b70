# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The containers/storage lock protocol, as pkg/lockfile and internal/rawfilelock do it.

* POSIX record locks over the whole file (fcntl F_SETLKW, here ``fcntl.lockf``), never
  ``flock``: Podman would not see a flock.
* One fd per lock file per process: POSIX locks belong to the process and closing *any* fd of
  the file drops them, so a lock file is opened exactly once here and only that fd is used.
* Opened without O_CREAT: we only ever lock stores that Podman created; a missing lock file
  means a wrong path, not a new store.
* A writer records a new 64-byte "last write" token at offset 0 (lockfile.RecordWrite:
  8 bytes time, 8 bytes counter, 4 bytes pid, 44 random bytes), so other processes reload.
* Writers take layers -> images -> containers (store.go writeToAllStores); the mountpoints
  lock is taken inside the layers lock (layers.go Save/load). :func:`store_lock_paths` is that
  order, listed here only.
* Whether another process holds a lock is asked with F_GETLK, which takes none
  (:func:`held_by_another_process`); whether a store changed, by reading the 64-byte token
  without a lock (:func:`read_last_write_token`; a torn read costs one spurious look).

This file is the lock protocol: every other file asks it for paths, order, tokens and holders.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import fcntl
import itertools
import os
import struct
import time
from typing import List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import StoreLayout

TOKEN_SIZE = 64
_counter = itertools.count(1)
# struct flock on 64-bit Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
_FLOCK = "hhqqi4x"


def store_lock_paths(layout: StoreLayout) -> List[str]:
    """The store's lock files in the order c/storage's writers take them (store.go
    writeToAllStores): layers, images, containers. Each sits where the layout puts it (the
    containers' in the runroot with a transient store, the images' in a split image store)."""
    return [layout.layers_lock, layout.images_lock, layout.containers_lock]


def watched_lock_paths(layout: StoreLayout) -> List[str]:
    """Every lock file whose last-write token moves when the store changes: the store's, and
    the mountpoints lock (a mount or an unmount of a layer)."""
    return store_lock_paths(layout) + [layout.mountpoints_lock]


def read_last_write_token(fd: int) -> bytes:
    """The last writer's token at offset 0, read without a lock."""
    return os.pread(fd, TOKEN_SIZE, 0)


def held_by_another_process(fd: int) -> bool:
    """Whether another process holds (or is granted) a lock on the file of ``fd``: F_GETLK,
    which takes no lock itself (a lock of our own process is never reported)."""
    query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK


def new_last_write_token() -> bytes:
    """A token that differs from every other writer's (same layout as lockfile.newLastWrite)."""
    head = struct.pack("<QQI", time.time_ns() & 0xFFFFFFFFFFFFFFFF, next(_counter), os.getpid() & 0xFFFFFFFF)
    return head + os.urandom(TOKEN_SIZE - len(head))


class LockFile:
    """One c/storage lock file, held by this process through a single fd."""

    def __init__(self, path: str, writable: bool = True) -> None:
        self.path = path
        self.writable = writable
        self._fd: Optional[int] = None
        self._exclusive = False

    def acquire(self, exclusive: bool) -> None:
        if self._fd is not None:
            raise StoreError("lock %s is already held" % self.path)
        flags = (os.O_RDWR if self.writable else os.O_RDONLY) | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags)
        except OSError as exc:
            raise StoreError("cannot open lock file %s: %s" % (self.path, exc))
        try:
            # Blocks like F_SETLKW until Podman releases it.
            fcntl.lockf(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as exc:
            os.close(fd)
            raise StoreError("cannot lock %s: %s" % (self.path, exc))
        self._fd = fd
        self._exclusive = exclusive

    def record_write(self) -> None:
        """Write a new last-write token so every c/storage reader reloads our change."""
        if self._fd is None or not self._exclusive:
            raise StoreError("recording a write on %s without its write lock" % self.path)
        token = new_last_write_token()
        try:
            written = os.pwrite(self._fd, token, 0)
        except OSError as exc:
            raise StoreError("cannot record a write in %s: %s" % (self.path, exc))
        if written != TOKEN_SIZE:
            raise StoreError("short write of the last-write token in %s" % self.path)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class StoreLocks:
    """Hold the locks of a store in c/storage's order; release in reverse order."""

    def __init__(self, paths: List[str], exclusive: bool) -> None:
        self._locks = [LockFile(path) for path in paths]
        self._exclusive = exclusive
        self._held: List[LockFile] = []

    def __enter__(self) -> "StoreLocks":
        try:
            for lock in self._locks:
                lock.acquire(self._exclusive)
                self._held.append(lock)
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def lock_for(self, path: str) -> LockFile:
        for lock in self._held:
            if lock.path == path:
                return lock
        raise StoreError("lock %s is not held" % path)

    def release(self) -> None:
        while self._held:
            self._held.pop().release()
