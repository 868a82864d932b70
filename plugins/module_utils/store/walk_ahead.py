# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A prune in batches, with the pre-flight walk of the next batch overlapping the deletion of
the one before (store.Store.prune).

The pre-flight walk (preflight.py) stats every entry of a copy; so does the deletion of the
copy after it is staged. Done one after the other for a whole plan, the walk made a prune of 50
seed-size copies take 1.36x to 1.45x the time of ``rm -rf`` of the same data
(``make bench-prune``). Here the plan is cut into batches (:func:`batches`); a thread of its
own, at the walk's low CPU and idle I/O priority (priority.lower_this_thread), walks batch
k + 1 while the caller stages batch k under the store's locks and deletes it after releasing
them. It walks at most one batch ahead: batch k + 2 is walked only once the caller took batch
k + 1, so the flags a walk saw are never older than one batch's deletion, and a prune stopped
early has walked at most one batch for nothing.

The walk only reads; everything that changes the store is still done by the caller's thread,
one batch after the other, each batch a whole prune of its own (its own short lock hold and
staging run, prune.py steps 1-7). So the crash-safety order of a single prune holds for every
batch, and at any moment at most one staging run of this prune exists (docs/remediate.md).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import queue
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import MappedCopy
from ansible_collections.idmapguard.storage.plugins.module_utils.store.priority import lower_this_thread

# A batch closes at this many copies or this many (estimated) inodes, whichever comes first:
# about 4 seed-size copies (6,900 entries each). The first batch's walk is the only one not
# overlapped, and every batch costs one more lock hold (constant cost: JSON writes and renames).
BATCH_COPIES = 8
BATCH_INODES = 25000


def batches(copies: Sequence[MappedCopy], max_copies: int = BATCH_COPIES,
            max_inodes: int = BATCH_INODES) -> List[List[MappedCopy]]:
    """The plan's copies in order, cut into batches of at most ``max_copies`` copies that stop
    at the first copy taking them to ``max_inodes`` (a copy with no estimate counts 0)."""
    out: List[List[MappedCopy]] = []
    current: List[MappedCopy] = []
    inodes = 0
    for copy in copies:
        current.append(copy)
        inodes += copy.inodes or 0
        if len(current) >= max(1, max_copies) or inodes >= max_inodes:
            out.append(current)
            current, inodes = [], 0
    if current:
        out.append(current)
    return out


class WalkStopped(Exception):
    """Raised inside the walk thread when the caller stopped taking batches."""


class WalkAhead:
    """Iterate over ``batch_list`` with each batch walked by ``walk(batch, pause)`` in a thread
    of its own, one batch ahead of the caller. ``pause`` is to be called between copies: it
    raises WalkStopped once :meth:`close` was called. An exception of a walk is raised where
    the caller takes that batch. Use as a context manager (close joins the thread)."""

    def __init__(self, batch_list: Sequence[List[MappedCopy]],
                 walk: Callable[[List[MappedCopy], Callable[[], None]], None]) -> None:
        self._batches = list(batch_list)
        self._walk = walk
        self._done: "queue.Queue[Tuple[List[MappedCopy], Optional[BaseException]]]" = queue.Queue()
        # One permit per batch the thread may walk: the first at once, then one per batch taken.
        self._permits = threading.Semaphore(1)
        self._stop = threading.Event()
        self.walk_seconds = 0.0     # the thread's time walking (overlapped with the caller's work)
        self.waited_seconds = 0.0   # the caller's time waiting for a walk to finish
        self.priority: Any = {}
        self._thread: Optional[threading.Thread] = None
        if self._batches:
            self._thread = threading.Thread(target=self._run, name="idmapguard-preflight", daemon=True)
            self._thread.start()

    def _check(self) -> None:
        if self._stop.is_set():
            raise WalkStopped()

    def _run(self) -> None:
        self.priority = lower_this_thread()
        for batch in self._batches:
            self._permits.acquire()
            if self._stop.is_set():
                return
            started = time.monotonic()
            error: Optional[BaseException] = None
            try:
                self._walk(batch, self._check)
            except WalkStopped:
                return
            except BaseException as exc:  # pylint: disable=broad-except
                error = exc  # raised in the caller's thread, where it takes this batch
            self.walk_seconds += time.monotonic() - started
            self._done.put((batch, error))
            if error is not None:
                return

    def __iter__(self) -> Iterator[List[MappedCopy]]:
        for _index in range(len(self._batches)):
            started = time.monotonic()
            batch, error = self._done.get()
            self.waited_seconds += time.monotonic() - started
            if error is not None:
                raise error
            self._permits.release()  # the thread walks the next batch while we work on this one
            yield batch

    def close(self) -> None:
        """Stop the thread at its next copy and wait for it (a walk only reads: nothing to undo)."""
        self._stop.set()
        self._permits.release()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "WalkAhead":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
