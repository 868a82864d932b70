# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge the fleet reports of the slices of one sliced run into one fleet report.

Controller-side (the filter ``idmapguard.storage.report_merge`` of the playbook
``idmapguard.storage.report_merge``). Each slice wrote ``fleet-report.json`` (report_files.py):
its ``hosts`` are normalised rows (fleet_report.normalise_record), so the merged report is
``fleet_report.report_from_rows`` over the rows of every slice: the same rows, order, totals and
summary line as one unsliced run of the same hosts.

Nothing is lost or counted twice:

* a host in two slice reports of the same run is an error (the slices overlap);
* reports of several runs in the directories given (a report root that keeps older runs): the
  newest run's reports are merged and the others are listed as ``ignored`` (a run is the AWX
  workflow job that the slices share, else the slice reports as given);
* hosts the caller expects (the inventory of the merge job) that no slice reports are rows
  ``not_reached``, as an unsliced run reports a host it never got to.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.idmapguard.storage.plugins.plugin_utils.fleet_report import (
    normalise_record, report_from_rows,
)

REPORT_JSON = "fleet-report.json"
NOT_REACHED = "not reached: no slice report has this host (its slice failed before its report, or was not run)"


class MergeError(ValueError):
    """Slice reports that cannot be merged into one truthful report."""


def find_reports(dirs: Sequence[str]) -> List[str]:
    """The fleet-report.json of each directory (shell patterns allowed), sorted; a directory
    without one, or a pattern matching nothing, is an error that names it."""
    if isinstance(dirs, str) or not dirs:
        raise MergeError("idmapguard_report_merge_dirs must be a non-empty list of directories, got %r" % (dirs,))
    found: List[str] = []
    for entry in dirs:
        entry = str(entry)
        matches = sorted(glob.glob(entry)) if glob.has_magic(entry) else [entry]
        if not matches:
            raise MergeError("no directory matches %s" % entry)
        for directory in matches:
            path = os.path.join(directory, REPORT_JSON)
            if not os.path.isfile(path):
                if glob.has_magic(entry) and not os.path.isdir(directory):
                    continue
                raise MergeError("%s has no %s (not a slice's report directory?)" % (directory, REPORT_JSON))
            if path not in found:
                found.append(path)
    if not found:
        raise MergeError("no %s in %s" % (REPORT_JSON, ", ".join(map(str, dirs))))
    return found


def load_report(path: str) -> Dict[str, Any]:
    try:
        with open(path) as handle:
            report = json.load(handle)
    except (OSError, ValueError) as exc:
        raise MergeError("cannot read %s: %s" % (path, exc))
    if not isinstance(report, dict) or not isinstance(report.get("hosts"), list):
        raise MergeError("%s is not a fleet report (no hosts list)" % path)
    report["path"] = path
    return report


def _run_key(report: Mapping[str, Any]) -> Optional[str]:
    run = report.get("run") if isinstance(report.get("run"), Mapping) else {}
    workflow = run.get("awx_workflow_job_id")
    return None if workflow in (None, "") else str(workflow)


def newest_run(reports: Sequence[Dict[str, Any]]) -> (List[Dict[str, Any]], List[Dict[str, Any]]):
    """(the reports of the newest run, the others). Reports without a run id form one run."""
    runs: Dict[Optional[str], List[Dict[str, Any]]] = {}
    for report in reports:
        runs.setdefault(_run_key(report), []).append(report)
    if len(runs) == 1:
        return list(reports), []
    newest = max(runs, key=lambda key: max(str(r.get("generated") or "") for r in runs[key]))
    return runs[newest], [r for key, group in runs.items() if key != newest for r in group]


def merge_reports(reports: Sequence[Dict[str, Any]], expected_hosts: Sequence[str] = (),
                  title: str = "idmapguard fleet report", generated: Optional[str] = None) -> Dict[str, Any]:
    """One fleet report from the slice reports of one run (see the module docstring)."""
    merged, ignored = newest_run(reports)
    rows: List[Dict[str, Any]] = []
    where: Dict[str, str] = {}
    for report in merged:
        for row in report["hosts"]:
            host = str(row.get("host") or "?")
            if host in where:
                raise MergeError("host %s is in two slice reports: %s and %s (do the slices overlap?)"
                                 % (host, where[host], report["path"]))
            where[host] = report["path"]
            rows.append(dict(row))
    for host in expected_hosts:
        if host not in where:
            rows.append(normalise_record({"host": host, "verdict": "not_reached", "error": NOT_REACHED}))
    result = report_from_rows(rows, title=title, generated=generated)
    result["slices"] = [{"path": r["path"], "hosts": len(r["hosts"]), "generated": r.get("generated"),
                         "run": r.get("run") or {}, "summary_line": r.get("summary_line")} for r in merged]
    result["ignored"] = [{"path": r["path"], "generated": r.get("generated"), "run": r.get("run") or {}}
                         for r in ignored]
    return result


def merge_dirs(dirs: Sequence[str], expected_hosts: Sequence[str] = (), title: str = "idmapguard fleet report",
               generated: Optional[str] = None) -> Dict[str, Any]:
    """merge_reports over the fleet-report.json of each directory."""
    return merge_reports([load_report(path) for path in find_reports(dirs)], expected_hosts=expected_hosts,
                         title=title, generated=generated)
