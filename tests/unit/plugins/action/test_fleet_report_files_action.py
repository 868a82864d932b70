# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet_report_files action: the files, and in the same task what a set_stats task handed AWX
(the job's artifact idmapguard_fleet_report, not per host, not aggregated) and the summary line."""

import json
from unittest.mock import MagicMock

import pytest

from ansible.playbook.task import Task

from ansible_collections.idmapguard.storage.plugins.action import fleet_report_files
from ansible_collections.idmapguard.storage.plugins.action.fleet_report_files import ActionModule

REPORT = {"summary": {"hosts": 2, "failed": 0}, "summary_line": "2 host(s): shares 2",
          "hosts": [{"host": "a", "verdict": "shares"}, {"host": "b", "verdict": "shares"}],
          "chart_svg": "<svg/>", "run": {}}


@pytest.fixture(autouse=True)
def no_base_run(monkeypatch):
    monkeypatch.setattr("ansible.plugins.action.ActionBase.run", lambda self, tmp=None, task_vars=None: {})


def test_writes_hands_the_report_to_awx_and_prints_the_summary(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(fleet_report_files, "display", MagicMock(display=shown.append))
    task = Task()
    task.args = {"dest": str(tmp_path), "report": REPORT, "markdown": "# r\n", "html": "<p>r</p>"}
    action = ActionModule(task, MagicMock(), MagicMock(check_mode=False), loader=None, templar=MagicMock(),
                          shared_loader_obj=None)
    result = action.run(task_vars={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet-report.html", "fleet-report.json", "fleet-report.md"]
    assert json.loads((tmp_path / "fleet-report.json").read_text())["summary"] == REPORT["summary"]
    # what the set_stats task of fleet_report_write.yml handed AWX before
    assert result["ansible_stats"] == {
        "data": {"idmapguard_fleet_report": {"summary": REPORT["summary"], "summary_line": REPORT["summary_line"],
                                             "hosts": REPORT["hosts"], "report_dir": str(tmp_path)}},
        "per_host": False, "aggregate": False}
    assert shown == ["2 host(s): shares 2 -- report: %s/fleet-report.html" % tmp_path]
    assert result["changed"] is False
