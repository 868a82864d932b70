# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet report: turns the per-host records the rollout collects into one report.

Controller-side and pure (no Ansible, no I/O), so it is unit-tested directly. The rollout
playbook builds one record per host (see ``HOST_RECORD_KEYS``), the filter plugin
``idmapguard.storage.fleet_report`` calls ``build_report`` and the templates in
``playbooks/templates/`` render Markdown and HTML from the result. The chart is an inline
SVG built here, so the HTML page needs no external script or stylesheet.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence
from xml.sax.saxutils import escape

# What the rollout records per host. Missing keys are tolerated: a host that failed early
# (unreachable, helper failed) has only ``host`` and ``failed``/``error``.
HOST_RECORD_KEYS = (
    "host", "verdict_before", "verdict", "reasons", "reason_codes", "remedy",
    "inodes_total", "inodes_used_before", "inodes_used_after",
    "mapped_copies_before", "mapped_copies_after", "copies_removed", "inodes_freed",
    "noncontiguous_map_cost", "proof", "rolled_back", "changes", "failed", "error",
    "podman_version", "check_mode", "guard", "podman_upgrade", "store_integrity", "known_issue",
)

# Verdicts in the order an operator cares about them (worst news last).
VERDICT_ORDER = (
    "shares", "fixable_by_config", "needs_podman_upgrade",
    "unsupported_kernel", "unsupported_filesystem", "copies_unexplained", "not_reached", "unknown", "failed",
)

VERDICT_COLOURS = {
    "shares": "#2e7d32",
    "fixable_by_config": "#f9a825",
    "needs_podman_upgrade": "#c62828",
    "unsupported_kernel": "#6a1b9a",
    "unsupported_filesystem": "#6a1b9a",
    "copies_unexplained": "#e65100",
    "not_reached": "#9e9e9e",
    "unknown": "#757575",
    "failed": "#212121",
}

BEFORE_COLOUR = "#ef9a9a"
AFTER_COLOUR = "#1565c0"


def _int_or_none(value: Any) -> Optional[int]:
    """Integers from facts may arrive as strings through Jinja; anything else is 'unknown'."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _guard_state_line(state: Mapping[str, Any]) -> Dict[str, Any]:
    """The numbers of the guard's own state file (fact ``idmapguard.guard``) and one line."""
    budget = state.get("budget") if isinstance(state.get("budget"), Mapping) else {}
    cache = state.get("cache") if isinstance(state.get("cache"), Mapping) else {}
    evictions = state.get("evictions") if isinstance(state.get("evictions"), Mapping) else {}
    row = {"pid": _int_or_none(state.get("pid")),
           "cache_copies": _int_or_none(cache.get("copies")), "cache_inodes": _int_or_none(cache.get("inodes")),
           "budget_inodes": _int_or_none(budget.get("budget_inodes")),
           "evictions": _int_or_none(evictions.get("total")), "evicted_inodes": _int_or_none(evictions.get("inodes")),
           "last_pass": _epoch_text(state.get("updated")),
           "stale": bool(state.get("stale")), "catching_up": bool(state.get("catching_up"))}
    # the archive the guard runs from (path, sha256, version); None for a guard run from a checkout
    artifact = state.get("artifact")
    row["artifact"] = {key: artifact.get(key) for key in ("path", "sha256", "version")} \
        if isinstance(artifact, Mapping) else None
    row["line"] = "pid %s, last pass %s; %s copies cached, %s of %s budget inodes; %s evictions (%s inodes)%s%s%s" % (
        row["pid"], row["last_pass"] or "?", row["cache_copies"], row["cache_inodes"], row["budget_inodes"],
        row["evictions"], row["evicted_inodes"],
        "; behind Podman, catching up at full priority" if row["catching_up"] else "",
        "; NOT RUNNING (state stale)" if row["stale"] else "",
        "; guard %s sha256 %s" % (row["artifact"]["version"], str(row["artifact"]["sha256"])[:12])
        if row["artifact"] else "")
    return row


def integrity_summary(integrity: Any, guard: Any) -> Optional[Dict[str, Any]]:
    """What keeps a host's store from being cleaned up (issue 22), as numbers and lines, or
    None when nothing does: the store failed the consistency gate, copies were skipped as
    undeletable, staged data is stranded (from the remediate run and from the guard's state,
    counted once per path)."""
    integrity = integrity if isinstance(integrity, Mapping) else {}
    guard = guard if isinstance(guard, Mapping) else {}
    stranded: Dict[str, str] = {}
    for source in (integrity.get("stranded"), guard.get("stranded")):
        for item in source or []:
            if isinstance(item, Mapping) and item.get("path"):
                stranded[str(item["path"])] = str(item.get("errno") or "?")
    undeletable = [u for u in integrity.get("undeletable") or [] if isinstance(u, Mapping)]
    findings = list(integrity.get("inconsistencies") or guard.get("inconsistencies") or [])
    inconsistent = "inconsistent" in (integrity.get("consistency"), guard.get("consistency"))
    lines = []
    if inconsistent:
        lines.append("store inconsistent, nothing changed: %s" % (findings[0] if findings else "see the host's log"))
    for entry in undeletable:
        why = entry.get("why") or []
        lines.append("copy %s kept: %s" % (str(entry.get("layer_id", ""))[:12], why[0] if why else "undeletable"))
    if stranded:
        per_errno: Dict[str, int] = {}
        for errno_name in stranded.values():
            per_errno[errno_name] = per_errno.get(errno_name, 0) + 1
        lines.append("%d staged entries stranded (%s): %s" % (
            len(stranded), ", ".join("%s %d" % kv for kv in sorted(per_errno.items())), sorted(stranded)[0]))
    if not lines:
        return None
    return {"inconsistent": inconsistent, "undeletable": len(undeletable), "stranded": len(stranded),
            "stranded_paths": sorted(stranded), "lines": lines}


def _epoch_text(value: Any) -> Optional[str]:
    if not isinstance(value, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


GUARD_WORDS = {
    "running": "running",
    "started": "installed, enabled and started by this rollout",
    "starting": "started by this rollout, first pass not ended",
    "not_running": "installed and enabled, NOT running",
    "installed": "installed, NOT running (not enabled)",
    "stale": "NOT RUNNING (stale)",
    "stopped": "stopped and disabled (the host shares, no copies left)",
    "not_installed": "not installed",
}


def guard_summary(guard: Any) -> Optional[Dict[str, Any]]:
    """The copy-cache guard of a host as a row: `status`, `protected`, the guard's numbers
    (pid, budget, cached copies and inodes, evictions, last pass) and one line that says only
    what is true: a store is called bounded only where a guard runs.

    Takes the rollout record's guard entry ({status, why, protected, state}) or, from records of
    earlier versions, the bare state (fact ``idmapguard.guard``)."""
    if not isinstance(guard, Mapping):
        return None
    if "status" not in guard:  # a bare guard state
        state = guard
        status = "stale" if (state.get("error") or state.get("stale")) else "running"
        guard = {"status": status, "why": str(state.get("error") or ""), "protected": status == "running",
                 "state": state}
    state = guard.get("state") if isinstance(guard.get("state"), Mapping) else None
    status = str(guard.get("status") or "not_installed")
    row: Dict[str, Any] = {"status": status, "why": str(guard.get("why") or ""),
                           "protected": bool(guard.get("protected")),
                           # a guard process whose own state is shown (records of earlier versions: by status)
                           "running": bool(guard["running"]) if "running" in guard else status in ("running", "started"),
                           "stale": status == "stale"}
    numbers = _guard_state_line(state) if state and not state.get("error") else {}
    row.update({k: v for k, v in numbers.items() if k not in ("line", "stale")})
    if not row.get("artifact") and isinstance(guard.get("artifact"), Mapping):
        # the archive this rollout installed (the record's), where no state of the guard shows one yet
        row["artifact"] = {key: guard["artifact"].get(key) for key in ("path", "sha256", "version")}
    words = GUARD_WORDS.get(status, status)
    if status == "not_installed":
        line = row["why"] or "not installed"
    elif status in ("starting", "not_running"):
        line = row["why"] or words
    elif status == "stale":
        line = "%s: %s" % (words, row["why"] or "the guard's state is old")
    else:
        line = words
    if numbers:
        line += " — " + numbers["line"]
    row["line"] = line
    return row


def normalise_record(record: Mapping[str, Any]) -> Dict[str, Any]:
    """One host's row with every key present and numbers as int or None."""
    row: Dict[str, Any] = {key: record.get(key) for key in HOST_RECORD_KEYS}
    row["host"] = str(record.get("host") or "?")
    row["failed"] = bool(record.get("failed"))
    row["rolled_back"] = bool(record.get("rolled_back"))
    row["check_mode"] = bool(record.get("check_mode"))
    row["verdict"] = str(record.get("verdict") or ("failed" if row["failed"] else "unknown"))
    row["verdict_before"] = str(record.get("verdict_before") or row["verdict"])
    for key in ("inodes_total", "inodes_used_before", "inodes_used_after", "mapped_copies_before",
                "mapped_copies_after", "copies_removed", "inodes_freed", "noncontiguous_map_cost"):
        row[key] = _int_or_none(record.get(key))
    row["reasons"] = [str(r) for r in (record.get("reasons") or [])]
    row["reason_codes"] = [str(r) for r in (record.get("reason_codes") or [])]
    row["changes"] = [str(c) for c in (record.get("changes") or [])]
    row["remedy"] = str(record.get("remedy") or "")
    row["error"] = str(record.get("error") or "")
    row["podman_version"] = str(record.get("podman_version") or "")
    proof = record.get("proof")
    row["proof"] = dict(proof) if isinstance(proof, Mapping) else None
    row["proof_checks"] = proof_checks(row["proof"])
    # checks that failed only as known upstream bugs while the host kept its change
    row["known_issue"] = [str(n) for n in (record.get("known_issue") or [])]
    row["proof_line"] = proof_line(row["proof"], row["rolled_back"])
    row["guard"] = guard_summary(record.get("guard"))
    guard = record.get("guard")
    # the rollout record wraps the guard's state ({status, why, protected, state})
    state = guard.get("state") if isinstance(guard, Mapping) and "status" in guard else guard
    row["store_integrity"] = integrity_summary(record.get("store_integrity"), state)
    # the opt-in upgrade step's plan and outcome (empty when the step did not run on the host)
    upgrade = record.get("podman_upgrade")
    row["podman_upgrade"] = dict(upgrade) if isinstance(upgrade, Mapping) and upgrade else None
    return row


# The correctness proof's checks, in the order they build on each other (sharing_proof.CHECKS).
PROOF_CHECKS = ("start", "ownership", "file_caps", "commit")


def _known_issues_text(issues: Any) -> str:
    """"container-libs#1126, fixed in Podman 6.1.2 ..." for a check's known issues."""
    parts = []
    for issue in issues if isinstance(issues, list) else []:
        if isinstance(issue, Mapping):
            parts.append("%s (%s), fixed in %s" % (issue.get("id"), issue.get("reference"),
                                                   issue.get("fixed_in") or "no release yet"))
    return "; ".join(parts)


def proof_checks(proof: Optional[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The proof's named checks as rows: name, ok, status (ok, known_issue, FAILED, not run), message,
    reference, workaround, and for a known upstream bug its issues (reference, fixed-in version)."""
    checks = (proof or {}).get("checks") or {}
    if not isinstance(checks, Mapping):
        return []
    known = (proof or {}).get("known_issues") or {}
    strict = bool((proof or {}).get("strict"))
    names = [n for n in PROOF_CHECKS if n in checks] + sorted(n for n in checks if n not in PROOF_CHECKS)
    rows = []
    for name in names:
        check = checks[name] if isinstance(checks[name], Mapping) else {}
        ok = check.get("ok")
        if ok:
            status = "ok"
        elif ok is None:
            status = "not run"
        else:
            status = "known_issue" if name in known and not strict else "FAILED"
        rows.append({"name": name, "ok": ok, "status": status, "message": str(check.get("message") or ""),
                     "reference": str(check.get("reference") or ""), "workaround": str(check.get("workaround") or ""),
                     "known_issues": _known_issues_text(known.get(name) if isinstance(known, Mapping) else None)})
    return rows


def proof_line(proof: Optional[Mapping[str, Any]], rolled_back: bool) -> str:
    """The proof column: passed / passed, known_issue: commit / FAILED (commit), and rolled back."""
    if not proof:
        return ""
    known = sorted((proof.get("known_issues") or {}).keys()) if not proof.get("strict") else []
    if proof.get("passed"):
        line = "passed, known_issue: %s" % ", ".join(known) if known else "passed"
    else:
        line = "FAILED"
        if proof.get("failed_checks"):
            line += " (%s)" % ", ".join(str(n) for n in proof["failed_checks"])
    return line + (", rolled back" if rolled_back else "")


def _sum(rows: Sequence[Mapping[str, Any]], key: str) -> int:
    return sum(row[key] for row in rows if row[key] is not None)


def summarise(rows: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Fleet totals: how many hosts per verdict, what changed, what was reclaimed."""
    by_verdict: Dict[str, int] = {}
    for row in rows:
        by_verdict[row["verdict"]] = by_verdict.get(row["verdict"], 0) + 1
    ordered = {v: by_verdict[v] for v in VERDICT_ORDER if v in by_verdict}
    ordered.update({v: n for v, n in sorted(by_verdict.items()) if v not in ordered})
    return {
        "hosts": len(rows),
        "by_verdict": ordered,
        "sharing": by_verdict.get("shares", 0),
        "failed": sum(1 for row in rows if row["failed"]),
        "rolled_back": sum(1 for row in rows if row["rolled_back"]),
        "known_issue": sum(1 for row in rows if row["known_issue"]),
        "changed_hosts": sum(1 for row in rows if row["changes"]),
        "podman_upgraded": sum(1 for row in rows if (row["podman_upgrade"] or {}).get("upgraded")),
        # hosts that still copy: which a guard bounds, and which nothing bounds
        "guarded": sum(1 for row in rows if row["verdict"] != "shares" and (row["guard"] or {}).get("protected")),
        "unguarded": sum(1 for row in rows if row["verdict"] not in ("shares", "not_reached")
                         and not (row["guard"] or {}).get("protected")),
        "copies_removed": _sum(rows, "copies_removed"),
        "inodes_freed": _sum(rows, "inodes_freed"),
        "inodes_used_before": _sum(rows, "inodes_used_before"),
        "inodes_used_after": _sum(rows, "inodes_used_after"),
        "check_mode": any(row["check_mode"] for row in rows),
    }


def summary_line(summary: Mapping[str, Any]) -> str:
    """One sentence for a terminal or an AWX job summary."""
    verdicts = ", ".join("%s %d" % (v, n) for v, n in summary["by_verdict"].items()) or "none"
    return ("%d host(s): %s; %d changed, %d rolled back, %d failed%s; %d mapped copies removed, "
            "%d inodes freed (%d -> %d used); %d copying host(s) guarded, %d NOT guarded%s" % (
                summary["hosts"], verdicts, summary["changed_hosts"], summary["rolled_back"],
                summary["failed"],
                ", %d with known upstream issues" % summary["known_issue"] if summary.get("known_issue") else "",
                summary["copies_removed"], summary["inodes_freed"],
                summary["inodes_used_before"], summary["inodes_used_after"],
                summary.get("guarded", 0), summary.get("unguarded", 0),
                " [check mode: planned, nothing changed]" if summary["check_mode"] else ""))


def inode_chart_svg(rows: Sequence[Mapping[str, Any]], width: int = 760) -> str:
    """Horizontal paired bars per host: inodes used before (light) and after (dark).

    Bars are drawn as a share of the host's store filesystem (``inodes_total``) when it is
    known, so a host near exhaustion reads as a nearly full bar whatever its size.
    """
    label_w, right_pad, bar_h, gap, top = 170, 150, 14, 14, 40
    plot_w = width - label_w - right_pad
    height = top + len(rows) * (2 * bar_h + gap) + 30
    parts: List[str] = [
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" '
        'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (width, height, width, height),
        "<title>Inode use of the container store per host, before and after the rollout</title>",
        '<rect x="%d" y="8" width="12" height="12" fill="%s"/><text x="%d" y="18">before</text>'
        % (label_w, BEFORE_COLOUR, label_w + 16),
        '<rect x="%d" y="8" width="12" height="12" fill="%s"/><text x="%d" y="18">after</text>'
        % (label_w + 80, AFTER_COLOUR, label_w + 96),
        '<text x="%d" y="18" fill="#555">(share of the store filesystem\'s inodes)</text>'
        % (label_w + 150),
    ]
    scale_max = max([row["inodes_total"] or 0 for row in rows]
                    + [row["inodes_used_before"] or 0 for row in rows]
                    + [row["inodes_used_after"] or 0 for row in rows] + [1])
    y = top
    for row in rows:
        total = row["inodes_total"] or scale_max
        colour = VERDICT_COLOURS.get(row["verdict"], VERDICT_COLOURS["unknown"])
        parts.append('<text x="%d" y="%d" text-anchor="end" font-weight="bold">%s</text>'
                     % (label_w - 8, y + bar_h, escape(row["host"])))
        parts.append('<text x="%d" y="%d" text-anchor="end" fill="%s">%s</text>'
                     % (label_w - 8, y + 2 * bar_h + 2, colour, escape(row["verdict"])))
        parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="#eeeeee"/>'
                     % (label_w, y, plot_w, 2 * bar_h))
        for offset, key, fill in ((0, "inodes_used_before", BEFORE_COLOUR),
                                  (bar_h, "inodes_used_after", AFTER_COLOUR)):
            used = row[key]
            if used is None:
                parts.append('<text x="%d" y="%d" fill="#555">unknown</text>'
                             % (label_w + 4, y + offset + bar_h - 3))
                continue
            share = min(1.0, used / float(total)) if total else 0.0
            parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>'
                         % (label_w, y + offset, max(1, int(round(share * plot_w))), bar_h, fill))
            parts.append('<text x="%d" y="%d">%d (%d%%)</text>'
                         % (label_w + plot_w + 6, y + offset + bar_h - 3, used,
                            int(round(share * 100))))
        y += 2 * bar_h + gap
    parts.append("</svg>")
    return "\n".join(parts)


def build_report(records: Sequence[Mapping[str, Any]], title: str = "idmapguard fleet report",
                 generated: Optional[str] = None, run: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The whole report as data: rows sorted worst verdict first, totals, chart, summary line."""
    return report_from_rows([normalise_record(r) for r in records], title=title, generated=generated, run=run)


def report_from_rows(rows: Sequence[Dict[str, Any]], title: str = "idmapguard fleet report",
                     generated: Optional[str] = None, run: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The report from rows already normalised (build_report's, or a slice report's ``hosts``:
    report_merge.py). ``run`` says which job made it (AWX ids, slice), for the merge."""
    rows = list(rows)
    rank = {v: i for i, v in enumerate(VERDICT_ORDER)}
    rows.sort(key=lambda r: (-rank.get(r["verdict"], len(rank)), r["host"]))
    summary = summarise(rows)
    return {
        "title": title,
        "generated": generated or datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"),
        "summary": summary,
        "summary_line": summary_line(summary),
        "hosts": rows,
        "chart_svg": inode_chart_svg(rows),
        "verdict_colours": dict(VERDICT_COLOURS),
        "run": dict(run or {}),
    }
