# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guard's work: a pass (observe, account, evict) and the loop that decides when to pass.

A pass reads the store once under its shared locks, without measuring (``inventory(measure=
False)``), records which copies are in use now (their "last used" is now), measures each new
unused copy once after the locks are released, and asks :mod:`reclaim_policy` which unused
copies to evict. Evictions go through ``Store.prune`` in batches of ``evict_batch``, so each
hold of the store's write locks stays short; prune re-checks every copy under those locks (in
use, or younger than the grace, means skipped), so the guard never races a ``podman create``.

The loop polls the last-write tokens of the store's lock files (``lock_watch``) and the
filesystem's free inodes every ``poll_interval`` seconds: a store change or low free inodes
starts a pass at once; otherwise a pass runs every ``rescan_interval`` seconds as a fallback.

SIGTERM (``systemctl stop``) ends the guard between two staged entries of a deletion or two
batches: what is staged then is left for the next start, which finishes it first. So a stop
never waits for a deletion whose length grows with the data, and never leaves a store Podman
cannot load (staging is outside every layer Podman knows).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import contextlib
import json
import os
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional, TextIO

from ansible_collections.idmapguard.storage.plugins.module_utils import metrics_textfile, reclaim_policy
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.artifact import running_artifact
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.guard_state import GuardState
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.lock_watch import LockTokenWatcher
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.settings import GuardSettings
from ansible_collections.idmapguard.storage.plugins.module_utils.store.analysis import (
    MappedCopy, copy_usage, select_prunable,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.locks import watched_lock_paths
from ansible_collections.idmapguard.storage.plugins.module_utils.store.priority import normal_priority
from ansible_collections.idmapguard.storage.plugins.module_utils.store.prune import Plan
from ansible_collections.idmapguard.storage.plugins.module_utils.store.store import Store
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage

Clock = Callable[[], float]

# With free inodes low and nothing to evict, look again at most this often (seconds): a pass
# reads the store under its shared locks.
LOW_FREE_RECHECK = 2.0
# Seconds a copy that prune skipped or failed on is left out of the choice.
BACKOFF = 60.0


class GuardStopped(Exception):
    """SIGTERM arrived while deleting staged data: stop now, the next start finishes it."""


def emit(stream: TextIO, event: Dict[str, Any]) -> None:
    """One JSON line per event: journald keeps stdout lines, and they stay machine-readable."""
    stream.write(json.dumps(event, sort_keys=True) + "\n")
    stream.flush()


class CopyCacheGuard:
    """The copy cache of one store."""

    def __init__(self, settings: GuardSettings, store: Store,
                 log: TextIO = sys.stdout, clock: Clock = time.time) -> None:
        self.settings = settings
        self.store = store
        self.log = log
        self.clock = clock
        self.state = GuardState.load(settings.state_file)
        self.started = clock()
        self.passes = 0
        # Fallen behind at the end of the last pass (reclaim_policy.must_catch_up): the next
        # one runs at normal priority from its start.
        self.catching_up = False
        self.image_sizes: Dict[str, Dict[str, int]] = {}
        # Which build runs (the installed zipapp: path, sha256, version), read once at start:
        # the role restarts the service whenever it installs another one.
        self.artifact = running_artifact()
        self.stopping = False  # set by SIGTERM/SIGINT in watch()

    def lock_paths(self) -> List[str]:
        return watched_lock_paths(self.store.layout)

    def budget(self, inodes_total: int) -> reclaim_policy.CacheBudget:
        return reclaim_policy.cache_budget(inodes_total, self.settings.budget_percent,
                                           self.settings.low_free_percent)

    def low_on_inodes(self) -> bool:
        fs = fs_usage(self.store.layout.graphroot)
        return fs["inodes_free"] < self.budget(fs["inodes_total"]).low_free_inodes

    # --- one pass --------------------------------------------------------------------------
    def _measure(self, copy: MappedCopy) -> Dict[str, int]:
        known = self.state.size(copy.layer_id)
        if known is None and copy.image_id in self.image_sizes:
            # Every copy of an image is a chowned copy of the same top layer: one walk per
            # image, not one per copy (a host that makes a copy a second would otherwise keep
            # the guard walking). The deletion counts the real figure.
            known = dict(self.image_sizes[copy.image_id])
            self.state.set_size(copy.layer_id, known["inodes"], known["bytes"])
        if known is None:
            # Outside every lock: an unused copy does not change, and one that vanished
            # meanwhile measures 0 and is gone from the next pass.
            inodes, size = copy_usage(self.store.layout, copy.layer_id, copy.link) if copy.record else (0, 0)
            self.state.set_size(copy.layer_id, inodes, size)
            known = {"inodes": inodes, "bytes": size}
            if inodes and copy.image_id:
                self.image_sizes[copy.image_id] = dict(known)
        return known

    def run_pass(self, trigger: str) -> Dict[str, Any]:
        """Observe, account, evict; returns the pass summary (also written to the state file).
        Runs at normal priority when the guard has fallen behind (from the start of the pass
        when it had at the end of the last one, or when free inodes are low)."""
        with contextlib.ExitStack() as priority:
            if self.catching_up or self.low_on_inodes():
                priority.enter_context(normal_priority())
                return self._pass(trigger, lambda: None)
            return self._pass(trigger, lambda: priority.enter_context(normal_priority()))

    def _stop_point(self, step: str) -> None:
        """Store.prune's step hook: a deletion of staged entries ends at the next entry once
        the guard is told to stop (the store is consistent at every step; docs/guard.md), and
        so does a prune before its next batch (nothing of that batch is changed yet)."""
        if self.stopping and (step.startswith("delete:") or step.startswith("batch:")):
            raise GuardStopped(step)

    def _pass(self, trigger: str, raise_priority: Callable[[], Any]) -> Dict[str, Any]:
        settings = self.settings
        now = self.clock()
        inventory = self.store.inventory(min_age=0.0, measure=False)
        if inventory.inconsistencies and inventory.inconsistencies != self.state.status.get("inconsistencies"):
            # An inconsistent store lists no copies, so nothing is evicted; said once per change.
            emit(self.log, {"event": "inconsistent", "time": round(self.clock(), 3),
                            "store": self.store.location.graphroot, "first": inventory.inconsistencies[0],
                            "count": len(inventory.inconsistencies)})
        in_use = [copy for copy in inventory.copies if copy.in_use]
        for copy in in_use:
            self.state.seen_in_use(copy.layer_id, now)
        self.state.forget_except([copy.layer_id for copy in inventory.copies])
        # Unused copies of the selected images whose map is not kept: the cache.
        cached = select_prunable(inventory, settings.images, settings.keep_maps)
        entries = []
        cached_inodes = 0
        by_id = {}
        for copy in cached:
            size = self._measure(copy)
            copy.inodes, copy.bytes = size["inodes"], size["bytes"]
            cached_inodes += copy.inodes
            by_id[copy.layer_id] = copy
            created = now - copy.age_seconds if copy.age_seconds is not None else None
            if copy.interrupted or not copy.record or (copy.age_seconds or 0.0) >= settings.grace:
                entries.append(reclaim_policy.CacheEntry(copy.layer_id, copy.inodes,
                                                         self.state.last_used(copy.layer_id, created)))
        fs = fs_usage(self.store.layout.graphroot)
        budget = self.budget(fs["inodes_total"])
        self.state.record_peak(cached_inodes, budget.budget_inodes, fs["inodes_used"], now)
        last_used = {entry.layer_id: entry.last_used for entry in entries}
        evicted: List[Dict[str, Any]] = []
        skipped: List[Dict[str, Any]] = []
        # stale staging runs the read found; a prune finishes them, and then says what is left
        staging_left = len(inventory.staging)
        # A copy prune cannot remove (mounted, cannot be staged) or fails on is set aside for
        # BACKOFF seconds and the choice is made again without it, so one copy that cannot go
        # does not stop every other eviction while the cache is over budget.
        free = fs["inodes_free"]
        catch_up, why = reclaim_policy.must_catch_up(cached_inodes, free, budget)
        if catch_up:
            raise_priority()
        if catch_up and not self.catching_up:
            emit(self.log, {"event": "catching up", "time": round(self.clock(), 3), "why": why,
                            "cache_inodes": cached_inodes, "inodes_free": free})
        while not self.stopping:
            candidates = [e for e in entries if not self.state.backing_off(e.layer_id, now)]
            chosen = reclaim_policy.choose_evictions(candidates, cached_inodes, free, budget)[:settings.evict_batch]
            if not chosen:
                break
            plan = Plan([by_id[e.layer_id] for e in chosen], min_age=settings.grace)
            reasons = {e.layer_id: e.reason for e in chosen}
            try:
                result = self.store.prune(plan, catch_up=catch_up, hook=self._stop_point)
            except StoreError as exc:
                for entry in chosen:
                    self.state.back_off(entry.layer_id, now + BACKOFF)
                emit(self.log, {"event": "error", "time": round(self.clock(), 3),
                                "error": "%s: %s" % (type(exc).__name__, exc),
                                "layer_ids": [e.layer_id for e in chosen], "retry_in": BACKOFF})
                continue
            staging_left = len(result.staging_left)
            self._log_stranded(result.stranded)
            for copy in result.removed:
                event = {"event": "evicted", "time": round(self.clock(), 3), "layer_id": copy.layer_id,
                         "image": copy.image_name or copy.image_id[:12], "uidmap": copy.uidmap,
                         "gidmap": copy.gidmap, "reason": reasons[copy.layer_id], "inodes": copy.inodes,
                         "bytes": copy.bytes,
                         "last_used": round(last_used[copy.layer_id], 3)}
                emit(self.log, event)
                self.state.record_eviction(event)
                cached_inodes -= copy.inodes
                free += copy.inodes
                evicted.append(event)
            for item in result.not_removed:
                # A copy a container took since we looked (or that is gone) is judged again at
                # the next read; only one that cannot go (mounted, cannot be staged) is set
                # aside across passes, so it does not block the other evictions.
                retry = 0 if item.get("reason") in ("in use", "gone") else BACKOFF
                if retry:
                    self.state.back_off(item["layer_id"], now + retry)
                skip = {"event": "kept", "time": round(self.clock(), 3), "layer_id": item["layer_id"],
                        "reason": item.get("reason"), "why": item["why"], "retry_in": retry}
                emit(self.log, skip)
                skipped.append(skip)
            # neither a removed nor a skipped copy is chosen again in this pass
            done = {c.layer_id for c in result.removed} | {item["layer_id"] for item in result.not_removed}
            entries = [e for e in entries if e.layer_id not in done]
        fs_after = fs_usage(self.store.layout.graphroot)
        still, why = reclaim_policy.must_catch_up(cached_inodes, fs_after["inodes_free"], budget)
        if (catch_up or self.catching_up) and not still:
            emit(self.log, {"event": "caught up", "time": round(self.clock(), 3), "why": why,
                            "cache_inodes": cached_inodes, "inodes_free": fs_after["inodes_free"]})
        self.catching_up = still
        self.passes += 1
        status = {
            "pid": os.getpid(), "started": round(self.started, 3), "updated": round(self.clock(), 3),
            "trigger": trigger, "passes": self.passes, "artifact": self.artifact,
            "store": self.store.location.as_dict(),
            "budget": budget.as_dict(), "catching_up": self.catching_up,
            "consistency": inventory.consistency, "inconsistencies": inventory.inconsistencies,
            # Staged data that could not be deleted (path, errno, what_to_do): for the fleet
            # report and the metrics (count: len, per errno: the "errno" field).
            "stranded": self.store.stranded(),
            "settings": {"budget_percent": settings.budget_percent, "low_free_percent": settings.low_free_percent,
                         "grace": settings.grace, "keep_maps": len(settings.keep_maps),
                         "images": settings.images},
            "cache": {"copies": len(cached) - len(evicted), "inodes": cached_inodes,
                      "in_use_copies": len(in_use), "all_copies": len(inventory.copies) - len(evicted)},
            "filesystem": {"inodes_total": fs_after["inodes_total"], "inodes_used": fs_after["inodes_used"],
                           "inodes_free": fs_after["inodes_free"]},
            "staging_left": staging_left,
        }
        self.state.status = status
        self.state.save()
        self.write_metrics()
        return {"status": status, "evicted": evicted, "skipped": skipped}

    def write_metrics(self) -> None:
        """The pass's figures for node_exporter (metrics_textfile); a failure to write them is
        logged, never a reason to stop guarding."""
        try:
            directory = metrics_textfile.resolve_directory(self.settings.metrics_dir)
            if directory is None:
                return
            text = metrics_textfile.render(metrics_textfile.guard_metrics(self.state.as_dict()["status"]))
            metrics_textfile.write_textfile(directory, metrics_textfile.GUARD_FILE, text)
        except metrics_textfile.MetricsError as exc:
            emit(self.log, {"event": "error", "time": round(self.clock(), 3), "error": "metrics: %s" % exc})

    def finish_staging(self) -> None:
        """At start-up: finish what earlier runs staged (crashed prunes; stranded entries get
        one more try) through the library's one function (staging.finish_staging), and log it."""
        try:
            done = self.store.finish_staging()
        except StoreError as exc:
            emit(self.log, {"event": "error", "time": round(self.clock(), 3),
                            "error": "finishing staging: %s: %s" % (type(exc).__name__, exc)})
            return
        for line in done.changes + done.retried:
            emit(self.log, {"event": "staging", "time": round(self.clock(), 3), "what": line})
        self._log_stranded(done.stranded)

    def _log_stranded(self, stranded: List[Dict[str, str]]) -> None:
        for item in stranded:
            emit(self.log, {"event": "stranded", "time": round(self.clock(), 3), "path": item["path"],
                            "errno": item["errno"], "blocked_by": item.get("blocked_by", item["path"]),
                            "what_to_do": item["what_to_do"]})

    # --- the loop --------------------------------------------------------------------------
    def watch(self, seconds: Optional[float] = None) -> int:
        """Run until SIGTERM/SIGINT (or ``seconds``); returns the exit status."""
        self.stopping = False

        def _stop(signum: int, _frame: Any) -> None:
            self.stopping = True

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        settings = self.settings
        watcher = LockTokenWatcher(self.lock_paths())
        emit(self.log, {"event": "started", "time": round(self.clock(), 3), "pid": os.getpid(),
                        "store": self.store.location.as_dict(), "settings": settings.as_dict(),
                        "artifact": self.artifact})
        self.finish_staging()
        deadline = None if seconds is None else self.clock() + seconds
        trigger: Optional[str] = "start"
        last_pass = 0.0
        retry_at = 0.0
        interrupted = None
        try:
            while not self.stopping and (deadline is None or self.clock() < deadline):
                try:
                    if self.clock() < retry_at:
                        trigger = None
                    elif trigger is None:
                        moved = watcher.changed()
                        if moved:
                            trigger = "changed: " + ", ".join(os.path.basename(p) for p in moved)
                        elif self.clock() - last_pass >= LOW_FREE_RECHECK and self.low_on_inodes():
                            trigger = "low free inodes"
                        elif self.clock() - last_pass >= settings.rescan_interval:
                            trigger = "rescan"
                    if trigger is not None:
                        last_trigger, last_pass = trigger, self.clock()
                        trigger = None
                        # Our own prune moves the tokens too: that costs one more (cheap) pass,
                        # and a change Podman made meanwhile is not missed.
                        self.run_pass(last_trigger)
                except GuardStopped as exc:
                    interrupted = "deleting staged data (%s); the next start finishes it" % exc
                    break
                except StoreError as exc:
                    # Logged, retried after rescan_interval; the service stays up (a tampered
                    # store is for a human to look at, not for a restart loop).
                    retry_at = self.clock() + settings.rescan_interval
                    emit(self.log, {"event": "error", "time": round(self.clock(), 3),
                                    "error": "%s: %s" % (type(exc).__name__, exc),
                                    "retry_in": settings.rescan_interval})
                if not self.stopping:
                    time.sleep(settings.poll_interval)
        finally:
            watcher.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        stopped = {"event": "stopped", "time": round(self.clock(), 3), "passes": self.passes,
                   "evictions": self.state.evictions_total}
        if interrupted:
            stopped["interrupted"] = interrupted
        emit(self.log, stopped)
        return 0
