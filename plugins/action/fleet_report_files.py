# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin idmapguard.storage.fleet_report_files: write the fleet report on the controller.

In-process, so the report costs the rollout no module run (a local module run costs about as
much as a round trip to a host). The writing itself lives in plugin_utils/report_files.py.
It also hands the report to AWX (the same `ansible_stats` a set_stats task with per_host and
aggregate false returns) and prints its summary line, which were two tasks of their own.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.idmapguard.storage.plugins.plugin_utils.report_files import (
    ReportFilesError,
    report_json,
    write_report_files,
)

display = Display()

# what AWX gets of the report (set_stats: the job's artifact idmapguard_fleet_report)
STATS_KEYS = ("summary", "summary_line", "hosts")


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("dest", "report", "markdown", "html"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _spec, args = self.validate_argument_spec(argument_spec={
            "dest": {"type": "path", "required": True},
            "report": {"type": "dict", "required": True},
            "markdown": {"type": "str", "required": True},
            "html": {"type": "str", "required": True},
        })
        files = {
            "fleet-report.md": args["markdown"],
            "fleet-report.html": args["html"],
            "fleet-report.json": report_json(args["report"]),
        }
        try:
            written = write_report_files(args["dest"], files)
        except ReportFilesError as exc:
            raise AnsibleActionFail(str(exc))
        # a run artefact on the controller, never a change to a managed host
        result.update(changed=False, dest=args["dest"], written=written,
                      files=["%s/%s" % (args["dest"].rstrip("/"), name) for name in sorted(files)])
        report = args["report"]
        stats = {key: report.get(key) for key in STATS_KEYS}
        stats["report_dir"] = args["dest"]
        result["ansible_stats"] = {"data": {"idmapguard_fleet_report": stats}, "per_host": False,
                                   "aggregate": False}
        result["msg"] = "%s -- report: %s/fleet-report.html" % (report.get("summary_line"), args["dest"])
        display.display(result["msg"])
        return result
