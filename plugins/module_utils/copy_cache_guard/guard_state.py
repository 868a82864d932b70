# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guard's state file: what it knows of each copy, and what it reports.

Kept outside the store (default ``/var/lib/idmapguard/guard-state.json``), written temp file then
rename so a reader never sees half a file. Two parts:

* ``copies``: per mapped copy, when the guard last saw it in use (a container's layer on top of
  it, a mount) and its inodes/bytes, measured once (an unused copy never changes). Together
  with the copy's creation time this is the "last used" of the LRU order; it survives a restart.
* ``status``: budget, cache size, counts and recent evictions, for ``idmap_support`` (fact
  ``idmapguard.guard``) and the fleet report. :func:`read_status` is the reader.
* ``status.peak``: the largest cache and store inode use any pass saw before it evicted, with
  when, kept across restarts. A reader that samples ``cache`` between passes misses the peaks
  (a soak sampled 0.87x the budget where the guard had seen 2.08x).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.metrics_textfile import eviction_reason_label

DEFAULT_STATE_FILE = "/var/lib/idmapguard/guard-state.json"
STATE_VERSION = 1
RECENT_EVICTIONS = 20
PEAK_KEYS = ("cache_inodes", "cache_at", "inodes_used", "inodes_used_at", "since")


class GuardState:
    def __init__(self, path: str) -> None:
        self.path = path
        self.copies: Dict[str, Dict[str, Any]] = {}
        self.evictions_total = 0
        self.evicted_inodes_total = 0
        # evictions per reason label (metrics_textfile.eviction_reason_label), for the counter
        self.evictions_by_reason: Dict[str, int] = {}
        self.recent: List[Dict[str, Any]] = []
        self.status: Dict[str, Any] = {}
        self.peak: Dict[str, Any] = {}

    @classmethod
    def load(cls, path: str) -> "GuardState":
        """The saved state; an unreadable or foreign file starts afresh (it is only a cache of
        observations: losing it makes last use fall back to creation time)."""
        state = cls(path)
        try:
            with open(path) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return state
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return state
        copies = data.get("copies")
        if isinstance(copies, dict):
            state.copies = {k: v for k, v in copies.items() if isinstance(v, dict)}
        status = data.get("status") if isinstance(data.get("status"), dict) else {}
        evictions = status.get("evictions") if isinstance(status.get("evictions"), dict) else {}
        state.evictions_total = int(evictions.get("total") or 0)
        state.evicted_inodes_total = int(evictions.get("inodes") or 0)
        state.recent = list(evictions.get("recent") or [])[-RECENT_EVICTIONS:]
        peak = status.get("peak")
        if isinstance(peak, dict) and all(isinstance(peak.get(k), (int, float)) for k in PEAK_KEYS):
            state.peak = dict(peak)
        by_reason = evictions.get("by_reason") if isinstance(evictions.get("by_reason"), dict) else {}
        state.evictions_by_reason = {str(k): int(v) for k, v in by_reason.items()
                                     if isinstance(v, int) and not isinstance(v, bool)}
        return state

    # --- observations ----------------------------------------------------------------------
    def seen_in_use(self, layer_id: str, now: float) -> None:
        self.copies.setdefault(layer_id, {})["last_used"] = now

    def last_used(self, layer_id: str, created: Optional[float]) -> float:
        recorded = self.copies.get(layer_id, {}).get("last_used")
        times = [t for t in (recorded, created) if isinstance(t, (int, float))]
        return max(times) if times else 0.0

    def size(self, layer_id: str) -> Optional[Dict[str, int]]:
        entry = self.copies.get(layer_id, {})
        if "inodes" in entry:
            return {"inodes": int(entry["inodes"]), "bytes": int(entry.get("bytes") or 0)}
        return None

    def set_size(self, layer_id: str, inodes: int, size: int) -> None:
        entry = self.copies.setdefault(layer_id, {})
        entry["inodes"] = inodes
        entry["bytes"] = size

    def back_off(self, layer_id: str, until: float) -> None:
        self.copies.setdefault(layer_id, {})["skip_until"] = until

    def backing_off(self, layer_id: str, now: float) -> bool:
        until = self.copies.get(layer_id, {}).get("skip_until")
        return isinstance(until, (int, float)) and until > now

    def forget_except(self, present: List[str]) -> None:
        keep = set(present)
        self.copies = {k: v for k, v in self.copies.items() if k in keep}

    def record_eviction(self, event: Dict[str, Any]) -> None:
        self.evictions_total += 1
        self.evicted_inodes_total += int(event.get("inodes") or 0)
        label = eviction_reason_label(str(event.get("reason") or ""))
        self.evictions_by_reason[label] = self.evictions_by_reason.get(label, 0) + 1
        self.recent = (self.recent + [event])[-RECENT_EVICTIONS:]
        self.copies.pop(event.get("layer_id"), None)

    def record_peak(self, cache_inodes: int, budget_inodes: int, inodes_used: int, now: float) -> None:
        """What a pass saw before it evicted: the cache (and its budget then) and the store's
        inode use, each kept when it is the highest so far."""
        peak = self.peak
        if not peak:
            peak["since"] = now
        if cache_inodes > peak.get("cache_inodes", -1):
            peak.update(cache_inodes=cache_inodes, cache_at=now, budget_inodes=budget_inodes)
        if inodes_used > peak.get("inodes_used", -1):
            peak.update(inodes_used=inodes_used, inodes_used_at=now)

    # --- persistence -----------------------------------------------------------------------
    def as_dict(self) -> Dict[str, Any]:
        status = dict(self.status)
        status["evictions"] = {"total": self.evictions_total, "inodes": self.evicted_inodes_total,
                               "by_reason": dict(self.evictions_by_reason), "recent": self.recent}
        if self.peak:
            status["peak"] = dict(self.peak)
        return {"version": STATE_VERSION, "status": status, "copies": self.copies}

    def save(self) -> None:
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".guard-state.", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(self.as_dict(), handle, sort_keys=True)
                handle.write("\n")
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def read_status(path: str, now: Optional[float] = None, stale_after: float = 300.0) -> Optional[Dict[str, Any]]:
    """The guard's reported state for facts and reports; None when there is no guard state.

    ``stale`` is true when the guard has not written for ``stale_after`` seconds (it writes at
    every pass, at least every rescan interval): it is probably not running.
    """
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"state_file": path, "error": "cannot read the guard state: %s" % exc}
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION or not isinstance(data.get("status"), dict):
        return {"state_file": path, "error": "not a guard state file of version %d" % STATE_VERSION}
    status = dict(data["status"])
    now = time.time() if now is None else now
    updated = status.get("updated")
    status["state_file"] = path
    status["stale"] = not isinstance(updated, (int, float)) or now - updated > stale_after
    return status


def process_start(pid: int, proc: str = "/proc") -> Optional[float]:
    """When process PID started (Unix time), or None when there is no such process."""
    try:
        with open("%s/%d/stat" % (proc, pid)) as handle:
            # the command name (field 2) may hold spaces and parentheses: split after its last ")"
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("%s/stat" % proc) as handle:
            boot = next(float(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + int(fields[19]) / float(os.sysconf("SC_CLK_TCK"))


def written_by_running_guard(status: Optional[Dict[str, Any]], started: Optional[float]) -> bool:
    """The state was written by the guard process that runs now: its ``pid`` is alive (STARTED,
    from :func:`process_start`) and it wrote after it started. A state left by the process a
    restart replaced names a dead pid (or was written before the new one started)."""
    if not status or status.get("error") or started is None:
        return False
    updated = status.get("updated")
    # btime and the start tick are whole seconds and clock ticks: one second of slack
    return isinstance(updated, (int, float)) and updated >= started - 1.0


def wait_for_running(path: str, timeout: float, clock=time.monotonic, sleep=time.sleep,
                     started=process_start) -> Optional[Dict[str, Any]]:
    """:func:`read_status` once the running guard wrote it (its first pass after a start),
    or as it is after TIMEOUT seconds; ``running`` says which."""
    deadline = clock() + timeout
    while True:
        status = read_status(path)
        pid = status.get("pid") if status else None
        if isinstance(pid, int) and written_by_running_guard(status, started(pid)):
            return dict(status, running=True)  # type: ignore[arg-type]
        if clock() >= deadline:
            return dict(status, running=False) if status is not None else None
        sleep(0.5)
