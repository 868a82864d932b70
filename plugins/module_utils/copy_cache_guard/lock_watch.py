# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notice store changes without asking Podman: c/storage's last-write tokens.

Every c/storage writer (pkg/lockfile Touch/RecordWrite, 1.24 to 1.62) writes a new 64-byte
token at offset 0 of the lock file it holds before releasing it, so that other processes know
to reload. Reading it (store/locks.py ``read_last_write_token``, no lock taken) tells us within
one poll that a container, layer, image or mount changed. A torn read only costs a spurious pass.

The files are opened once and kept open. This matters: POSIX record locks belong to the
process, and closing *any* fd of a file drops every lock the process holds on it, so an fd
closed while our own prune holds the store's locks would release them under Podman. Files
are (re)opened only between passes, never while a lock is held.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.locks import read_last_write_token


class LockTokenWatcher:
    """The last-write tokens of a set of lock files; :meth:`changed` says whether any moved."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self._fds: Dict[str, Tuple[int, Tuple[int, int]]] = {}
        self._tokens: Dict[str, Optional[bytes]] = {}
        for path in self.paths:
            self._tokens[path] = self._read(path)

    def _open(self, path: str) -> Optional[int]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None
        st = os.fstat(fd)
        self._fds[path] = (fd, (st.st_dev, st.st_ino))
        return fd

    def _read(self, path: str) -> Optional[bytes]:
        held = self._fds.get(path)
        if held is not None:
            fd, ident = held
            try:
                st = os.stat(path)
                replaced = (st.st_dev, st.st_ino) != ident
            except OSError:
                replaced = True
            if replaced:
                # The store was re-created (or the file removed): follow the new file.
                os.close(fd)
                del self._fds[path]
                held = None
        fd = held[0] if held is not None else self._open(path)
        if fd is None:
            return None
        try:
            return read_last_write_token(fd)
        except OSError:
            return None

    def changed(self) -> List[str]:
        """The lock files whose token differs from the last call (empty: nothing changed)."""
        moved = []
        for path in self.paths:
            token = self._read(path)
            if token != self._tokens.get(path):
                moved.append(path)
                self._tokens[path] = token
        return moved

    def close(self) -> None:
        for fd, _ident in self._fds.values():
            os.close(fd)
        self._fds.clear()
