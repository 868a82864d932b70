# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a Podman process is at work on the store right now, from its lock files.

Deleting staged data needs no lock of the store, but it loads the filesystem's journal; a
``podman create`` that is writing (and fsyncing) the store's JSON meanwhile waits for that
journal. So the deletion looks, every few hundred entries, whether any process holds one of the
store's lock files (locks.held_by_another_process: F_GETLK, which takes no lock itself), and
pauses until Podman is done: at most ``MAX_PAUSE`` per look, and never more in all than the
time the work itself has taken plus ``PAUSE_CREDIT`` (a Podman that holds a lock nearly all
the time, as 4.3 does while it chowns a copy per create, still leaves a long deletion half of
its pace; a short one may wait for Podman from its start). No fd of a lock file is closed
while this process holds a lock on it: the deletion runs after the prune released all of them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import struct
import time
from typing import List

from ansible_collections.idmapguard.storage.plugins.module_utils.store.locks import held_by_another_process

MAX_PAUSE = 2.0
PAUSE_CREDIT = 1.0
_POLL = 0.005


class PodmanActivity:
    """Look at the store's lock files; ``pause()`` waits while another process holds one."""

    def __init__(self, lock_paths: List[str]) -> None:
        self._fds: List[int] = []
        for path in lock_paths:
            try:
                self._fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW))
            except OSError:
                continue
        self.paused_seconds = 0.0
        self.pauses = 0
        self._started = time.monotonic()

    def busy(self) -> bool:
        for fd in self._fds:
            try:
                if held_by_another_process(fd):
                    return True
            except (OSError, struct.error):
                continue
        return False

    def pause(self) -> None:
        worked = time.monotonic() - self._started - self.paused_seconds
        allowed = min(MAX_PAUSE, worked + PAUSE_CREDIT - self.paused_seconds)
        if allowed <= 0 or not self.busy():
            return
        self.pauses += 1
        started = time.monotonic()
        while time.monotonic() - started < allowed:
            time.sleep(_POLL)
            if not self.busy():
                break
        self.paused_seconds += time.monotonic() - started

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
