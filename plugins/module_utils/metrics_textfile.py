# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""idmapguard's Prometheus metrics, in node_exporter's textfile format: the one place that
names them, renders them and writes them.

Host-side, stdlib only. Two files per host, each written whole (temp file in the same
directory, then rename: node_exporter reads ``*.prom`` only, so it never sees a half file):

* ``idmapguard_guard.prom``: the copy-cache guard, at every pass (:func:`guard_metrics` from
  the status the guard saves in its state file);
* ``idmapguard_host.prom``: verify/rollout, per run (:func:`host_metrics` from the host's
  rollout record).

Names follow Prometheus conventions: the ``idmapguard_`` prefix, units in names (``_inodes``,
``_seconds``), ``_total`` only on counters, state as a label of a 0/1 gauge (a state set, so a
verdict that is no longer true reads 0 instead of lingering). The alerting rules that use them
are in ``extensions/prometheus/idmapguard.rules.yml``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import math
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.file_io import replace_file

# Where node_exporter's textfile collector reads, as the distributions package it:
# Debian/Ubuntu prometheus-node-exporter (its default --collector.textfile.directory), and the
# directory the RHEL/EPEL/Fedora node_exporter packages and most RHEL guides use.
DEBIAN_TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
RHEL_TEXTFILE_DIR = "/var/lib/node_exporter/textfile_collector"
KNOWN_TEXTFILE_DIRS = (DEBIAN_TEXTFILE_DIR, RHEL_TEXTFILE_DIR)
# "auto": the first known directory that exists (no node_exporter there: nothing is written)
AUTO = "auto"

GUARD_FILE = "idmapguard_guard.prom"
HOST_FILE = "idmapguard_host.prom"

VERDICTS = ("shares", "fixable_by_config", "needs_podman_upgrade", "unsupported_kernel",
            "unsupported_filesystem", "copies_unexplained", "failed", "unknown")

# Eviction reasons as the guard's policy words them (reclaim_policy.choose_evictions), as labels.
EVICTION_REASONS = ("over_budget", "low_free_inodes")

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class MetricsError(ValueError):
    """A metric that cannot be written: a bad name, label or value, or an unwritable directory."""


class Metric:
    """One metric family: name, type, help, and its samples (labels, value)."""

    def __init__(self, name: str, kind: str, help_text: str,
                 samples: Iterable[Tuple[Mapping[str, str], Any]] = ()) -> None:
        if not _NAME.match(name):
            raise MetricsError("not a metric name: %r" % name)
        if kind not in ("gauge", "counter"):
            raise MetricsError("%s: type must be gauge or counter, got %r" % (name, kind))
        if (kind == "counter") != name.endswith("_total"):
            raise MetricsError("%s: counters, and only counters, end in _total" % name)
        self.name, self.kind, self.help = name, kind, help_text
        self.samples: List[Tuple[Dict[str, str], float]] = []
        for labels, value in samples:
            self.add(value, **labels)

    def add(self, value: Any, **labels: str) -> "Metric":
        for key in labels:
            if not _LABEL.match(key) or key.startswith("__"):
                raise MetricsError("%s: not a label name: %r" % (self.name, key))
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
            raise MetricsError("%s: not a number: %r" % (self.name, value))
        self.samples.append(({k: str(v) for k, v in labels.items()}, value))
        return self


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(metrics: Sequence[Metric]) -> str:
    """The exposition text: HELP, TYPE, then the samples of each family (families without a
    sample are left out; a name twice is refused)."""
    seen = set()
    lines: List[str] = []
    for metric in metrics:
        if metric.name in seen:
            raise MetricsError("metric %s given twice" % metric.name)
        seen.add(metric.name)
        if not metric.samples:
            continue
        lines.append("# HELP %s %s" % (metric.name, _escape_help(metric.help)))
        lines.append("# TYPE %s %s" % (metric.name, metric.kind))
        for labels, value in metric.samples:
            label_text = ",".join('%s="%s"' % (k, _escape_label(v)) for k, v in sorted(labels.items()))
            lines.append("%s%s %s" % (metric.name, "{%s}" % label_text if label_text else "", _value(value)))
    return "\n".join(lines) + "\n" if lines else ""


# ---- where -----------------------------------------------------------------------------------
def resolve_directory(setting: Optional[str], isdir: Callable[[str], bool] = os.path.isdir) -> Optional[str]:
    """The directory to write into: an explicit path as given; ``auto`` (or None) the first
    node_exporter textfile directory that exists, else None; ``""`` (off) None."""
    if setting is None or setting == AUTO:
        for candidate in KNOWN_TEXTFILE_DIRS:
            if isdir(candidate):
                return candidate
        return None
    if not setting:
        return None
    if not os.path.isabs(setting):
        raise MetricsError("the metrics directory must be an absolute path, got %r" % setting)
    return setting


def observe_host_file(setting: Optional[str]) -> Dict[str, Optional[str]]:
    """What a caller needs to tell, without another round trip, whether ``HOST_FILE`` would
    change (idmap_support reads it in the call it makes anyway): ``dir``, the directory SETTING
    resolves to (None: nothing would be written there), and ``sha256``, the checksum of the file
    in it (None: no file, or one that cannot be read: the write will tell)."""
    try:
        directory = resolve_directory(setting)
    except MetricsError:
        return {"dir": setting, "sha256": None}  # the write fails with the reason
    if directory is None:
        return {"dir": None, "sha256": None}
    try:
        with open(os.path.join(directory, HOST_FILE), "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()  # type: Optional[str]
    except OSError:
        digest = None
    return {"dir": directory, "sha256": digest}


def write_textfile(directory: str, name: str, text: str, check_mode: bool = False) -> Tuple[bool, Optional[str]]:
    """Write ``text`` as ``directory/name`` (a ``.prom`` name), temp file then rename in that
    directory, only when the content differs. Returns (changed, the old content or None)."""
    if os.path.basename(name) != name or not name.endswith(".prom"):
        raise MetricsError("not a textfile collector file name (NAME.prom): %r" % name)
    path = os.path.join(directory, name)
    try:
        with open(path) as handle:
            old: Optional[str] = handle.read()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise MetricsError("cannot read %s: %s" % (path, exc))
    if old == text:
        return False, old
    if check_mode:
        return True, old
    try:
        os.makedirs(directory, 0o755, exist_ok=True)
    except OSError as exc:
        raise MetricsError("cannot write in %s: %s" % (directory, exc))
    try:
        # the temp file is .NAME.prom.*.tmp, not *.prom: node_exporter skips it until the rename
        replace_file(path, text.encode("utf-8"), 0o644)
    except OSError as exc:
        raise MetricsError("cannot write %s: %s" % (path, exc))
    return True, old


# ---- what: the guard -------------------------------------------------------------------------
def eviction_reason_label(reason: str) -> str:
    """The label of an eviction reason ("over budget: cache 9 > 8 inodes" -> over_budget)."""
    head = str(reason or "").split(":", 1)[0].strip().lower().replace(" ", "_")
    return head if head in EVICTION_REASONS else "other"


def _num(mapping: Any, key: str) -> Optional[float]:
    value = mapping.get(key) if isinstance(mapping, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _gauge(name: str, help_text: str, value: Optional[float], **labels: str) -> Metric:
    metric = Metric(name, "gauge", help_text)
    if value is not None:
        metric.add(value, **labels)
    return metric


def guard_metrics(status: Mapping[str, Any]) -> List[Metric]:
    """The guard's metrics from its saved status (guard_state: budget, cache, evictions, ...)."""
    budget = status.get("budget") or {}
    cache = status.get("cache") or {}
    fs = status.get("filesystem") or {}
    evictions = status.get("evictions") or {}
    store = {"graphroot": str((status.get("store") or {}).get("graphroot") or "")}
    by_reason = evictions.get("by_reason") if isinstance(evictions.get("by_reason"), Mapping) else {}
    evicted = Metric("idmapguard_guard_evictions_total", "counter",
                     "Mapped copies the guard evicted, by reason (over_budget, low_free_inodes).")
    for reason in sorted(set(EVICTION_REASONS) | set(by_reason)):
        evicted.add(int(by_reason.get(reason) or 0), reason=reason, **store)
    return [
        _gauge("idmapguard_guard_budget_inodes", "Inodes the cache of unused mapped copies may hold.",
               _num(budget, "budget_inodes"), **store),
        _gauge("idmapguard_guard_low_free_inodes", "Free inodes below which the guard evicts whatever the budget.",
               _num(budget, "low_free_inodes"), **store),
        _gauge("idmapguard_guard_cached_copies", "Unused mapped copies kept as cache.",
               _num(cache, "copies"), **store),
        _gauge("idmapguard_guard_cached_inodes", "Inodes the unused mapped copies hold.",
               _num(cache, "inodes"), **store),
        _gauge("idmapguard_guard_copies_in_use", "Mapped copies a container uses.",
               _num(cache, "in_use_copies"), **store),
        _gauge("idmapguard_guard_mapped_copies", "All mapped copies in the store (in use or not).",
               _num(cache, "all_copies"), **store),
        evicted,
        Metric("idmapguard_guard_evicted_inodes_total", "counter",
               "Inodes freed by the guard's evictions.").add(int(_num(evictions, "inodes") or 0), **store),
        Metric("idmapguard_guard_passes_total", "counter",
               "Passes since the guard started.").add(int(_num(status, "passes") or 0), **store),
        _gauge("idmapguard_guard_last_pass_timestamp_seconds", "When the guard finished its last pass (Unix time).",
               _num(status, "updated"), **store),
        _gauge("idmapguard_guard_catching_up", "1 while the guard has fallen behind and works at full priority.",
               int(bool(status.get("catching_up"))), **store),
        _gauge("idmapguard_guard_staging_left", "Staged deletions not yet finished (crashed or interrupted runs).",
               _num(status, "staging_left"), **store),
        _gauge("idmapguard_guard_stranded_entries",
               "Staged entries that could not be deleted (stranded-*; path and errno in the guard's state and log).",
               len(status["stranded"]) if isinstance(status.get("stranded"), list) else None, **store),
        _gauge("idmapguard_guard_store_inconsistent", "1 while the store fails the consistency gate (nothing is "
               "evicted; docs/remediate.md).", int(status.get("consistency") == "inconsistent"), **store),
        _gauge("idmapguard_store_inodes", "Inodes of the store's filesystem.",
               _num(fs, "inodes_total"), **store),
        _gauge("idmapguard_store_inodes_free", "Free inodes of the store's filesystem.",
               _num(fs, "inodes_free"), **store),
    ]


# ---- what: verify / rollout --------------------------------------------------------------------
def host_metrics(record: Mapping[str, Any], helper_version: str = "") -> List[Metric]:
    """A host's metrics from its rollout record (plugin_utils/rollout.py host_record): the
    verdict as a state set, mapped copies, what a new non-contiguous map costs, versions, and
    whether its repositories offer a Podman that shares."""
    verdict = str(record.get("verdict") or ("failed" if record.get("failed") else "unknown"))
    states = Metric("idmapguard_host_verdict", "gauge",
                    "1 for this host's verdict (shares, needs_podman_upgrade, ...), 0 for the others.")
    for name in sorted(set(VERDICTS) | {verdict}):
        states.add(int(name == verdict), verdict=name)
    upgrade = record.get("podman_upgrade") if isinstance(record.get("podman_upgrade"), Mapping) else {}
    offered = None
    if upgrade.get("package_manager"):
        # the upgrade step listed the host's repositories (a plan exists, check mode too)
        offered = int(bool(upgrade.get("target")))
    after = record.get("mapped_copies_after")
    copies = after if after is not None else record.get("mapped_copies_before")
    info = Metric("idmapguard_host_info", "gauge", "Versions on this host (always 1).")
    info.add(1, podman_version=str(record.get("podman_version") or ""), helper_version=str(helper_version or ""))
    return [
        states,
        _gauge("idmapguard_host_mapped_copies", "Mapped copies in the store when verify/rollout last ran.",
               copies if isinstance(copies, int) and not isinstance(copies, bool) else None),
        _gauge("idmapguard_host_noncontiguous_map_cost_inodes",
               "Inodes a container with a new non-contiguous ID map added to the store (the proof's measure).",
               _num(record, "noncontiguous_map_cost")),
        _gauge("idmapguard_host_podman_upgrade_available",
               "1 when this host's repositories offer a Podman that shares layers across ID maps, 0 when they do not.",
               offered),
        _gauge("idmapguard_host_store_inodes", "Inodes of the store's filesystem when verify/rollout last ran.",
               _num(record, "inodes_total")),
        _gauge("idmapguard_host_store_inodes_used", "Inodes used on the store's filesystem when verify/rollout last ran.",
               _num(record, "inodes_used_after") if _num(record, "inodes_used_after") is not None
               else _num(record, "inodes_used_before")),
        info,
    ]


# ---- the module idmapguard.storage.metrics_textfile ------------------------------------------
def argument_spec() -> Dict[str, Dict[str, Any]]:
    """The module's options (defined here once; the module file passes it to AnsibleModule)."""
    return dict(
        dest=dict(type="str", default=AUTO),
        record=dict(type="dict", required=True),
        helper_version=dict(type="str", default=""),
    )


def write_host_metrics(params: Mapping[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    """The module's work: render the host's metrics and write ``HOST_FILE``; the result with a
    diff of the file. Raises MetricsError."""
    directory = resolve_directory(params.get("dest"))
    if directory is None:
        return {"changed": False, "path": None, "skipped_reason": (
            "no node_exporter textfile directory (%s) on this host" % " or ".join(KNOWN_TEXTFILE_DIRS)
            if params.get("dest") in (None, AUTO) else "metrics are off (dest is empty)")}
    text = render(host_metrics(params.get("record") or {}, helper_version=params.get("helper_version") or ""))
    changed, old = write_textfile(directory, HOST_FILE, text, check_mode=check_mode)
    path = os.path.join(directory, HOST_FILE)
    return {"changed": changed, "path": path, "metrics": text,
            "diff": {"before_header": path, "after_header": path, "before": old or "", "after": text}}
