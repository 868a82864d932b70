# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merging slice reports (plugin_utils/report_merge.py): the merged report is the unsliced one."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.filter.report_merge import report_merge
from ansible_collections.idmapguard.storage.plugins.plugin_utils.fleet_report import build_report
from ansible_collections.idmapguard.storage.plugins.plugin_utils.report_files import report_json
from ansible_collections.idmapguard.storage.plugins.plugin_utils.report_merge import (
    MergeError, merge_dirs, merge_reports,
)
from ansible_collections.idmapguard.storage.plugins.plugin_utils.slicing import slice_hosts

RECORDS = [
    {"host": "h1", "verdict_before": "needs_podman_upgrade", "verdict": "needs_podman_upgrade",
     "inodes_total": 4096, "inodes_used_before": 3000, "inodes_used_after": 1000, "copies_removed": 5,
     "inodes_freed": 2000, "changes": ["removed 5 mapped copies"],
     "guard": {"budget": {"budget_inodes": 400}, "cache": {"copies": 1, "inodes": 90}, "evictions": {"total": 2}}},
    {"host": "h2", "verdict": "shares", "inodes_total": 4096, "inodes_used_before": 500, "inodes_used_after": 500,
     "proof": {"ran": True, "passed": True, "checks": {"start": {"ok": True, "message": "started"}}}},
    {"host": "h3", "verdict_before": "fixable_by_config", "verdict": "shares", "changes": ["storage.conf edited"]},
    {"host": "h4", "failed": True, "error": "boom"},
    {"host": "h5", "verdict": "not_reached", "error": "not reached"},
    {"host": "h6", "verdict": "needs_podman_upgrade", "podman_upgrade": {"package_manager": "apt", "target": None}},
]
HOSTS = [r["host"] for r in RECORDS]


def write_slices(tmp_path, count, run=None, records=None, generated="2026-12-03 10:00:00 UTC"):
    records = RECORDS if records is None else records
    dirs = []
    for number in range(1, count + 1):
        mine = slice_hosts(HOSTS, HOSTS, number, count)
        report = build_report([r for r in records if r["host"] in mine], generated=generated,
                              run=dict(run or {}, slice=number, slice_count=count))
        directory = tmp_path / ("run-%s" % (run or {}).get("awx_workflow_job_id")) / ("slice-%d" % number)
        directory.mkdir(parents=True)
        (directory / "fleet-report.json").write_text(report_json(report))
        dirs.append(str(directory))
    return dirs


def comparable(report):
    return {k: v for k, v in report.items() if k not in ("generated", "chart_svg", "run", "slices", "ignored")}


@pytest.mark.parametrize("count", [1, 2, 3, 6])
def test_merged_report_equals_the_unsliced_report_host_for_host(tmp_path, count):
    unsliced = json.loads(report_json(build_report(RECORDS, generated="x")))
    merged = merge_dirs(write_slices(tmp_path, count), expected_hosts=HOSTS, generated="x")
    assert merged["hosts"] == unsliced["hosts"]
    assert merged["summary_line"] == unsliced["summary_line"]
    assert comparable(json.loads(report_json(merged))) == comparable(unsliced)
    assert merged["chart_svg"] == build_report(RECORDS)["chart_svg"]
    assert [s["hosts"] for s in merged["slices"]] == [len(slice_hosts(HOSTS, HOSTS, n, count))
                                                      for n in range(1, count + 1)]


def test_a_missing_slice_shows_as_not_reached(tmp_path):
    dirs = write_slices(tmp_path, 3)
    merged = merge_dirs(dirs[:2], expected_hosts=HOSTS)
    lost = sorted(h["host"] for h in merged["hosts"] if h["error"].startswith("not reached: no slice report"))
    assert lost == slice_hosts(HOSTS, HOSTS, 3, 3) == ["h3", "h6"]
    assert merged["summary"]["hosts"] == 6
    # without expected hosts, only what the slices report
    assert merge_dirs(dirs[:2])["summary"]["hosts"] == 4


def test_overlapping_slices_are_an_error(tmp_path):
    dirs = write_slices(tmp_path, 2)
    with pytest.raises(MergeError, match="host h[0-9] is in two slice reports"):
        merge_dirs(dirs + [dirs[0] + "/../slice-1"])


def test_only_the_newest_run_is_merged(tmp_path):
    old = write_slices(tmp_path, 2, run={"awx_workflow_job_id": 41}, generated="2026-12-02 10:00:00 UTC",
                       records=[dict(r, verdict="needs_podman_upgrade") for r in RECORDS])
    new = write_slices(tmp_path, 3, run={"awx_workflow_job_id": 42})
    merged = merge_dirs([str(tmp_path / "run-*" / "slice-*")], expected_hosts=HOSTS, generated="x")
    assert merged["hosts"] == json.loads(report_json(build_report(RECORDS)))["hosts"]
    assert sorted(i["path"].rsplit("/", 3)[1] for i in merged["ignored"]) == ["run-41", "run-41"]
    assert len(merged["slices"]) == len(new) == 3 and len(old) == 2


@pytest.mark.parametrize("dirs,why", [
    ([], "non-empty list"),
    ("/x", "non-empty list"),
    (["/nonexistent-dir-of-reports"], "has no fleet-report.json"),
    (["/nonexistent-*-reports"], "no directory matches"),
])
def test_bad_inputs_name_what_is_wrong(dirs, why):
    with pytest.raises(MergeError, match=why):
        merge_dirs(dirs)


def test_a_file_that_is_not_a_report(tmp_path):
    (tmp_path / "fleet-report.json").write_text('{"title": "x"}')
    with pytest.raises(MergeError, match="not a fleet report"):
        merge_dirs([str(tmp_path)])


def test_filter_wraps_errors(tmp_path):
    with pytest.raises(AnsibleFilterError, match="report_merge: "):
        report_merge([str(tmp_path)])
    merged = report_merge(write_slices(tmp_path, 2), expected_hosts=HOSTS, title="t")
    assert merged["title"] == "t" and merged["summary"]["hosts"] == 6


def test_merge_reports_keeps_rows_verbatim():
    report = json.loads(report_json(build_report(RECORDS[:1])))
    report["path"] = "p"
    merged = merge_reports([report])
    assert merged["hosts"] == report["hosts"]      # the guard row is not normalised twice
    assert merged["hosts"][0]["guard"]["cache_copies"] == 1
