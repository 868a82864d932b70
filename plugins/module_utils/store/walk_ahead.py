# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A prune in batches, with the pre-flight walk of the next batch overlapping the deletion of
the one before (store.Store.prune).

The pre-flight walk (preflight.py) stats every entry of a copy; so does the deletion of the
copy after it is staged. Done one after the other for a whole plan, the walk made a prune of 50
seed-size copies take 1.36x to 1.45x the time of ``rm -rf`` of the same data
(``make bench-prune``). Here the plan is cut into batches (:func:`batches`); a child process,
at the walk's low CPU and idle I/O priority (priority.lower_this_thread), walks batch k + 1
while the caller stages batch k under the store's locks and deletes it after releasing them,
and sends back what it found (sizes, the pre-flight's reasons, the top entries' flags). Not a
thread: both loops are Python, and a nice-19 thread that holds the interpreter lock when the
scheduler preempts it stalls the deletion with it (a thread made the deletion take twice as
long on a loaded machine). A child is forked only between batches, when this process holds no
store lock and no staging run open, and only reads.

The first batch is the copies walked already (the plan walks one per image) or the first copy
alone, and each batch is at most twice the one before (:func:`batches`): the first walk, the
only one the prune waits for, stays short, and the lock holds stay few.

It walks at most one batch ahead: the child for batch k + 2 is started only once the caller
took batch k + 1, so the flags a walk saw are never older than one batch's deletion, and a
prune stopped early has walked at most one batch for nothing (the child is killed).

Everything that changes the store is still done by the caller, one batch after the other,
each batch a whole prune of its own (its own short lock hold and staging run, prune.py steps
1-7). So the crash-safety order of a single prune holds for every batch, and at any moment at
most one staging run of this prune exists (docs/remediate.md).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
import signal
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import MappedCopy
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.priority import (
    lower_this_thread, run_in_background,
)

# A batch closes at this many copies or this many (estimated) inodes, whichever comes first:
# 8 seed-size copies (6,900 entries each). Every batch costs one more lock hold (constant
# cost: JSON writes and renames, with their fsyncs; 20-60 ms each on a busy lab host), so a
# prune of 50 seed-size copies takes 9 holds (1, 2, 4, 8, ... copies), where a cap of 25,000
# inodes made 14. A kill still leaves at most one batch in flight, whatever its size.
BATCH_COPIES = 8
BATCH_INODES = 56000
# A batch holds at most this many times the copies of the one before (see batches()).
BATCH_GROWTH = 2
# The walk's CPU priority in its child (SCHED_BATCH: it never preempts a waking task; idle
# I/O). The walk costs about an eighth of the deletion's CPU per copy (a seed-size copy: 26 ms
# of CPU, most of it statx in the kernel, against about 0.2 s for its deletion), so it keeps
# ahead of the deletion with a small share. At nice 19 that share is 1.5 % of a core against
# each busy task at nice 0: on a host where other work keeps every core busy the walk can still
# fall behind the deletion, and the prune waits for it (walk_seconds, walk_waited_seconds).
WALK_NICE = 19
# What a walk finds out about a copy (analysis.measure_copies), sent back from the child.
WALKED_FIELDS = ("inodes", "bytes", "measured", "undeletable", "flags_seen")

Walk = Callable[[List[MappedCopy]], None]


def needs_walk(copy: MappedCopy) -> bool:
    """Whether the pre-flight has still to walk ``copy`` (a copy without a record has no data)."""
    return bool(copy.record) and copy.undeletable is None


def batches(copies: Sequence[MappedCopy], max_copies: int = BATCH_COPIES,
            max_inodes: int = BATCH_INODES, growth: int = BATCH_GROWTH,
            start_full: bool = False) -> List[List[MappedCopy]]:
    """The plan's copies in order, cut into batches of at most ``max_copies`` copies that stop
    at the first copy taking them to ``max_inodes`` (a copy with no estimate counts 0).

    The walk of the first batch is the only one the prune waits for (each later batch is walked
    while the one before is deleted). So the first batch is the leading copies walked already
    (the plan walks one copy per image for its estimate) or else the first copy alone, and each
    later batch holds at most ``growth`` times the copies of the one before: its walk then ends
    before that batch's deletion as long as a copy's walk takes less than 1/``growth`` of a
    copy's deletion, and the lock holds stay few (1, 2, 4, 8, 8, ... copies of the seed's size).

    ``start_full``: the first batch is a full one as well. For a store out of inodes: the
    first batch's copies are the only place the prune may free the few inodes its staging and
    JSON writes need (prune.free_an_inode), and one copy may not hold enough of them."""
    out: List[List[MappedCopy]] = []
    current: List[MappedCopy] = []
    inodes = 0
    limit = max(1, max_copies)
    if copies and needs_walk(copies[0]) and not start_full:
        limit = 1
    for copy in copies:
        if current and not out and needs_walk(copy) and not start_full:
            out.append(current)  # the walked lead ends the first batch (nothing in it to wait for)
            limit = max(1, min(max_copies, len(current) * max(1, growth)))
            current, inodes = [], 0
        current.append(copy)
        inodes += copy.inodes or 0
        if len(current) >= limit or inodes >= max_inodes:
            out.append(current)
            limit = max(1, min(max_copies, len(current) * max(1, growth)))
            current, inodes = [], 0
    if current:
        out.append(current)
    return out


class _Child:
    """One walk of one batch in a forked child; its answer is read from a pipe."""

    def __init__(self, batch: List[MappedCopy], walk: Walk) -> None:
        self.batch = batch
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:  # the child: walk, answer, and never return into the caller's code
            code = 0
            try:
                os.close(read_fd)
                code = _walk_and_answer(batch, walk, write_fd)
            finally:
                os._exit(code)  # pylint: disable=protected-access
        os.close(write_fd)
        self.pid: Optional[int] = pid
        self.read_fd: Optional[int] = read_fd

    def answer(self) -> Dict[str, Any]:
        """Wait for the child's answer (its pipe's EOF) and for the child."""
        chunks = []
        try:
            while True:
                chunk = os.read(self.read_fd, 65536)  # type: ignore[arg-type]
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            self._close()
        try:
            return json.loads(b"".join(chunks).decode("utf-8"))
        except ValueError:
            return {"error": "the pre-flight walk ended without an answer", "store_error": True}

    def _close(self) -> None:
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None
        if self.pid is not None:
            os.waitpid(self.pid, 0)
            self.pid = None

    def kill(self) -> None:
        """A walk only reads: stopping it leaves nothing to undo."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._close()


class _Inline:
    """The walk of one batch where no child can be forked (EAGAIN, ENOMEM, a seccomp filter):
    done when its answer is asked for, in a thread at low priority as the plan's walks are."""

    def __init__(self, batch: List[MappedCopy], walk: Walk) -> None:
        self.batch = batch
        self.walk = walk

    def answer(self) -> Dict[str, Any]:
        started = time.monotonic()
        try:
            _value, taken = run_in_background(lambda: self.walk(self.batch))
        except Exception as exc:  # pylint: disable=broad-except
            return {"error": str(exc), "store_error": isinstance(exc, StoreError)}
        return {"seconds": time.monotonic() - started, "priority": taken,
                "copies": {copy.layer_id: {name: getattr(copy, name) for name in WALKED_FIELDS}
                           for copy in self.batch}}

    def kill(self) -> None:
        """Nothing runs before answer() is called."""


def _start(batch: List[MappedCopy], walk: Walk) -> "Any":
    try:
        return _Child(batch, walk)
    except OSError:
        return _Inline(batch, walk)


def _walk_and_answer(batch: List[MappedCopy], walk: Walk, write_fd: int) -> int:
    answer: Dict[str, Any] = {}
    try:
        answer["priority"] = lower_this_thread(WALK_NICE)
        started = time.monotonic()
        walk(batch)
        answer["seconds"] = time.monotonic() - started
        answer["copies"] = {copy.layer_id: {name: getattr(copy, name) for name in WALKED_FIELDS} for copy in batch}
    except BaseException as exc:  # pylint: disable=broad-except
        answer = {"error": str(exc), "store_error": isinstance(exc, StoreError)}
    data = json.dumps(answer).encode("utf-8")
    try:
        while data:
            data = data[os.write(write_fd, data):]
    except OSError:
        return 1  # the caller is gone (killed): nobody waits for the answer
    return 0


class WalkAhead:
    """Iterate over ``batch_list`` with each batch walked by ``walk(batch)`` (it fills in the
    copies' WALKED_FIELDS) in a child process, one batch ahead of the caller. An error of a
    walk is raised where the caller takes that batch (a StoreError as such). Use as a context
    manager, or call :meth:`close` (it kills a walk still running)."""

    def __init__(self, batch_list: Sequence[List[MappedCopy]], walk: Walk) -> None:
        self._batches = list(batch_list)
        self._walk = walk
        self._child: Any = None  # a _Child, or an _Inline where no child could be forked
        self.walk_seconds = 0.0     # the children's time walking (overlapped with the caller's work)
        self.waited_seconds = 0.0   # the caller's time waiting for a walk to finish
        self.priority: Dict[str, bool] = {}

    def __iter__(self) -> Iterator[List[MappedCopy]]:
        if not self._batches:
            return
        self._child = _start(self._batches[0], self._walk)
        for index, batch in enumerate(self._batches):
            started = time.monotonic()
            answer = self._child.answer()
            self._child = None
            self.waited_seconds += time.monotonic() - started
            if "error" in answer:
                if answer.get("store_error"):
                    raise StoreError(answer["error"])
                raise StoreError("the pre-flight walk failed: %s" % answer["error"])
            self.walk_seconds += answer.get("seconds", 0.0)
            self.priority = answer.get("priority") or {}
            found = answer.get("copies") or {}
            for copy in batch:
                for name, value in (found.get(copy.layer_id) or {}).items():
                    setattr(copy, name, value)
            if index + 1 < len(self._batches):
                # Forked here: between batches this process holds no store lock and no
                # staging run (the one before was deleted and closed).
                self._child = _start(self._batches[index + 1], self._walk)
            yield batch

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None

    def __enter__(self) -> "WalkAhead":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
