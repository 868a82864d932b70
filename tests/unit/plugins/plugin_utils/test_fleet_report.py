# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet report data: totals, ordering, chart, and the Markdown/HTML templates that render it."""

from __future__ import annotations

import pathlib
import re
import xml.etree.ElementTree as ET

import jinja2
import pytest

from ansible_collections.idmapguard.storage.plugins.plugin_utils.fleet_report import (
    guard_summary,
    build_report, inode_chart_svg, normalise_record,
)
from ansible_collections.idmapguard.storage.plugins.filter.fleet_report import fleet_report
from ansible.errors import AnsibleFilterError

TEMPLATES = pathlib.Path(__file__).resolve().parents[4] / "playbooks" / "templates"

RECORDS = [
    {"host": "sid-a", "verdict_before": "shares", "verdict": "shares", "inodes_total": 4096,
     "inodes_used_before": 1200, "inodes_used_after": 400, "mapped_copies_before": 2,
     "mapped_copies_after": 0, "copies_removed": 2, "inodes_freed": 800,
     "noncontiguous_map_cost": 0, "changes": ["removed 2 mapped copies"],
     "proof": {"passed": True, "new_mapped_layers": 0}},
    {"host": "trixie-a", "verdict_before": "needs_podman_upgrade", "verdict": "needs_podman_upgrade",
     "reasons": ["podman 5.4.2 < 5.6 <script>"], "remedy": "upgrade podman",
     "inodes_total": "4096", "inodes_used_before": "3900", "inodes_used_after": "3900",
     "changes": []},
    {"host": "sid-fuse", "verdict_before": "fixable_by_config", "verdict": "shares",
     "inodes_total": 4096, "inodes_used_before": 900, "inodes_used_after": 900,
     "changes": ["storage.conf: mount_program removed"], "proof": {"passed": True}},
    {"host": "down-1", "failed": True, "error": "unreachable"},
]


def test_totals_and_order():
    report = build_report(RECORDS, generated="now")
    s = report["summary"]
    assert s["hosts"] == 4
    assert s["by_verdict"] == {"shares": 2, "needs_podman_upgrade": 1, "failed": 1}
    assert s["copies_removed"] == 2 and s["inodes_freed"] == 800
    assert s["inodes_used_before"] == 1200 + 3900 + 900
    assert s["inodes_used_after"] == 400 + 3900 + 900
    assert s["changed_hosts"] == 2 and s["failed"] == 1
    # worst news first
    assert [h["host"] for h in report["hosts"]] == ["down-1", "trixie-a", "sid-a", "sid-fuse"]
    assert "4 host(s)" in report["summary_line"] and "2 mapped copies removed" in report["summary_line"]


def test_normalise_tolerates_missing_and_string_numbers():
    row = normalise_record({"host": "x", "inodes_used_before": "12", "inodes_used_after": True})
    assert row["inodes_used_before"] == 12 and row["inodes_used_after"] is None
    assert row["verdict"] == "unknown" and row["changes"] == [] and row["proof"] is None


def test_chart_is_valid_svg_with_two_bars_per_host():
    rows = [normalise_record(r) for r in RECORDS]
    svg = inode_chart_svg(rows)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(ns + "text")]
    for r in RECORDS:
        assert r["host"] in texts
    # before bar of sid-a: 1200/4096 of the plot width, after bar 400/4096
    widths = [int(r.get("width")) for r in root.iter(ns + "rect") if r.get("fill") in ("#ef9a9a", "#1565c0")
              and r.get("height") == "14"]
    assert len(widths) == 2 * 3  # down-1 has no numbers: no bars, an 'unknown' label
    # rows in input order: sid-a first, its bars are shares of its 4096 inodes of a 440px plot
    assert widths[:2] == [round(1200 / 4096 * 440), round(400 / 4096 * 440)]
    assert "unknown" in texts


def test_filter_rejects_bad_input():
    with pytest.raises(AnsibleFilterError):
        fleet_report({"host": "x"})
    with pytest.raises(AnsibleFilterError):
        fleet_report([{"verdict": "shares"}])


@pytest.fixture(name="env")
def fixture_env():
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True,
                              undefined=jinja2.StrictUndefined)


def test_markdown_template_lists_every_host(env):
    md = env.get_template("fleet_report.md.j2").render(fleet=fleet_report(RECORDS))
    for r in RECORDS:
        assert "| %s |" % r["host"] in md
    assert "**Remedy:** upgrade podman" in md
    assert re.search(r"\| sid-a \| shares → \*\*shares\*\* \| 1200 → 400 \| 4096 \|", md)


def test_html_template_is_self_contained_and_escaped(env):
    html = env.get_template("fleet_report.html.j2").render(fleet=fleet_report(RECORDS))
    assert "<svg" in html and "<script" not in html
    assert "&lt;script&gt;" in html
    assert not re.search(r'(src|href)="https?:', html)
    for r in RECORDS:
        assert r["host"] in html


def test_guard_state_is_shown_per_host(env):
    guard = {"pid": 77, "updated": 0, "budget": {"budget_inodes": 25036}, "cache": {"copies": 12, "inodes": 24432},
             "evictions": {"total": 189, "inodes": 384804}, "stale": False}
    numbers = ("pid 77, last pass 1970-01-01 00:00:00 UTC; 12 copies cached, 24432 of 25036 budget inodes; "
               "189 evictions (384804 inodes)")
    # records of earlier versions carry the bare guard state
    records = [dict(RECORDS[0], guard=guard), dict(RECORDS[1], guard=dict(guard, stale=True))]
    rows = {row["host"]: row for row in fleet_report(records)["hosts"]}
    assert rows[RECORDS[0]["host"]]["guard"]["evictions"] == 189
    assert rows[RECORDS[0]["host"]]["guard"]["pid"] == 77
    assert normalise_record({"host": "x"})["guard"] is None
    md = env.get_template("fleet_report.md.j2").render(fleet=fleet_report(records))
    assert "Copy-cache guard: running — " + numbers + "\n" in md
    assert "NOT RUNNING (state stale)" in md
    behind = guard_summary(dict(guard, catching_up=True))
    assert behind["catching_up"] and behind["line"].endswith("; behind Podman, catching up at full priority")
    html = env.get_template("fleet_report.html.j2").render(fleet=fleet_report(records))
    assert "<li>Copy-cache guard: running — " + numbers + "</li>" in html
    assert re.search(r'<span class="fail">[^<]*NOT RUNNING \(state stale\)', html)
    assert guard_summary(guard)["artifact"] is None


def test_guard_row_says_which_build_runs():
    artifact = {"path": "/usr/local/lib/idmapguard/idmapguard-guard-0.1.0-6011a479eb7f.pyz",
                "sha256": "6011a479eb7f" + "0" * 52, "version": "0.1.0"}
    row = guard_summary({"budget": {}, "cache": {}, "evictions": {}, "artifact": artifact})
    assert row["artifact"] == artifact
    assert row["line"].endswith("; guard 0.1.0 sha256 6011a479eb7f")


# the rollout record's guard entry (plugin_utils/rollout/guard.py) -> line, protected, summary
GUARD_ROWS = [
    ({"status": "not_installed", "why": "not guarded: no systemd on this host", "protected": False, "state": None},
     "needs_podman_upgrade", "not guarded: no systemd on this host", False),
    ({"status": "started", "why": "installed, enabled and started by this rollout", "protected": True, "state": None},
     "needs_podman_upgrade", "installed, enabled and started by this rollout", True),
    ({"status": "stopped", "why": "x", "protected": True, "state": None}, "shares",
     "stopped and disabled (the host shares, no copies left)", False),
    ({"status": "not_installed", "why": "Podman shares layers across maps here: no guard is needed", "protected": True,
      "state": None}, "shares", "Podman shares layers across maps here: no guard is needed", False),
]


@pytest.mark.parametrize("guard,verdict,line,running", GUARD_ROWS)
def test_guard_lines_say_only_what_is_true(env, guard, verdict, line, running):
    record = dict(RECORDS[1], verdict=verdict, guard=guard)
    report = build_report([record], generated="now")
    row = report["hosts"][0]["guard"]
    assert (row["line"], row["running"]) == (line, running)
    md = env.get_template("fleet_report.md.j2").render(fleet=report)
    shown = verdict != "shares" or guard["status"] != "not_installed"
    assert (line in md) == shown
    if verdict != "shares":
        assert report["summary"]["guarded" if running else "unguarded"] == 1
        assert ("%d copying host(s) guarded, %d NOT guarded" % (int(running), int(not running))) in report["summary_line"]
    assert "keeps the store bounded" not in md


def test_podman_upgrade_note_in_row_summary_and_markdown(env):
    held = "no Podman >= 5.6 in this host's repositories; not guarded: no systemd on this host"
    records = RECORDS + [
        {"host": "trixie-up", "verdict_before": "needs_podman_upgrade", "verdict": "shares",
         "podman_upgrade": {"upgrade": True, "upgraded": True, "note": "upgraded Podman 5.4.2 -> 5.8.6 (apt)"}},
        {"host": "trixie-held", "verdict": "needs_podman_upgrade",
         "podman_upgrade": {"upgrade": False, "upgraded": False, "note": held}},
    ]
    report = build_report(records, generated="now")
    assert report["summary"]["podman_upgraded"] == 1
    rows = {h["host"]: h for h in report["hosts"]}
    assert rows["sid-a"]["podman_upgrade"] is None
    text = env.get_template("fleet_report.md.j2").render(fleet=report)
    assert "- **Podman upgrade:** " + held in text
    assert "- **Podman upgrade:** upgraded Podman 5.4.2 -> 5.8.6 (apt)" in text


def test_store_integrity_is_shown_per_host(env):
    """Stranded data (remediate run and guard state, once per path), undeletable copies and an
    inconsistent store each get a line; a clean host gets none."""
    stranded = {"path": "/s/idmapguard-staging/stranded-1/ab.overlay.stranded-EPERM", "errno": "EPERM"}
    integrity = {"consistency": "consistent", "stranded": [stranded],
                 "undeletable": [{"layer_id": "f" * 64, "reason": "undeletable",
                                  "why": ["undeletable: /s/overlay/ff/diff/x: immutable"]}]}
    guard = {"stranded": [stranded, dict(stranded, path="/s/overlay/tempdirs/idmapguard-stranded-1/l.stranded-EBUSY",
                                         errno="EBUSY")]}
    records = [dict(RECORDS[0], store_integrity=integrity, guard=guard),
               dict(RECORDS[1], store_integrity={"consistency": "inconsistent",
                                                 "inconsistencies": ["layers.json lists no layers"]}),
               RECORDS[2]]
    rows = {row["host"]: row for row in fleet_report(records)["hosts"]}
    first = rows["sid-a"]["store_integrity"]
    assert first["stranded"] == 2 and first["undeletable"] == 1 and not first["inconsistent"]
    assert first["lines"][0] == "copy ffffffffffff kept: undeletable: /s/overlay/ff/diff/x: immutable"
    assert first["lines"][1].startswith("2 staged entries stranded (EBUSY 1, EPERM 1): ")
    assert rows["trixie-a"]["store_integrity"]["lines"] == [
        "store inconsistent, nothing changed: layers.json lists no layers"]
    assert rows["sid-fuse"]["store_integrity"] is None
    md = env.get_template("fleet_report.md.j2").render(fleet=fleet_report(records))
    assert "- **Store integrity:** store inconsistent, nothing changed: layers.json lists no layers" in md
    html = env.get_template("fleet_report.html.j2").render(fleet=fleet_report(records))
    assert '<li class="fail">Store integrity: 2 staged entries stranded (EBUSY 1, EPERM 1)' in html


def test_known_issue_in_rows_summary_and_both_templates(env):
    issue = {"id": "container-libs#1126", "reference": "container-libs PR #1126", "fixed_in": "Podman 6.1.2"}
    proof = {"passed": True, "outcome": "known_issue", "failed_checks": ["commit"],
             "known_issues": {"commit": [issue]},
             "checks": {"start": {"ok": True, "message": "started"},
                        "commit": {"ok": False, "message": "rootid 1065538", "reference": "#1126",
                                   "workaround": "upgrade"}}}
    records = [{"host": "sid-known", "verdict_before": "fixable_by_config", "verdict": "shares", "proof": proof,
                "known_issue": ["commit"], "changes": ["edited /etc/containers/storage.conf"]},
               {"host": "sid-strict", "verdict": "fixable_by_config", "failed": True, "rolled_back": True,
                "proof": dict(proof, passed=False, outcome="failed", strict=True)}]
    report = fleet_report(records)
    rows = {r["host"]: r for r in report["hosts"]}
    assert rows["sid-known"]["proof_line"] == "passed, known_issue: commit"
    assert [c["status"] for c in rows["sid-known"]["proof_checks"]] == ["ok", "known_issue"]
    assert "fixed in Podman 6.1.2" in rows["sid-known"]["proof_checks"][1]["known_issues"]
    assert rows["sid-strict"]["proof_line"] == "FAILED (commit), rolled back"
    assert [c["status"] for c in rows["sid-strict"]["proof_checks"]] == ["ok", "FAILED"]
    assert report["summary"]["known_issue"] == 1 and "1 with known upstream issues" in report["summary_line"]
    md = env.get_template("fleet_report.md.j2").render(fleet=report)
    assert "passed, known_issue: commit" in md and "known upstream issue: container-libs#1126" in md
    html = env.get_template("fleet_report.html.j2").render(fleet=report)
    assert "passed, known_issue: commit" in html and "FAILED (commit), rolled back" in html
