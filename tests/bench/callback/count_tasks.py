# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench callback: per host, the task results that reached the host and the calls per module.

Writes JSON to $BENCH_COUNT_FILE at the end of the run: {host: {"tasks": n, "skipped": n,
"remote": n, "modules": {action: n}}}. `tasks` counts every result that was not skipped; `skipped`
the skipped ones (each still costs the controller a worker for the host); `remote` only those
whose action runs on the host (not the controller-only actions below)."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: count_tasks
type: aggregate
short_description: Count task results and module calls per host (bench only)
description: Writes the counts to the file named by BENCH_COUNT_FILE.
"""

# actions that never reach the managed host
CONTROLLER_ONLY = {
    "set_fact", "debug", "assert", "fail", "meta", "set_stats", "include_tasks", "include_role",
    "import_tasks", "import_role", "include_vars", "fleet_report_files", "validate_argument_spec",
}
# actions on the controller that make one call of another module on the host
CALLS = {"rollout_verify": "idmap_support"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "count_tasks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.counts = {}

    def _row(self, host):
        return self.counts.setdefault(host, {"tasks": 0, "skipped": 0, "remote": 0, "modules": {}})

    def _count(self, result):
        host = result._host.get_name()
        action = result._task.action.split(".")[-1]
        action = CALLS.get(action, action)
        row = self._row(host)
        row["tasks"] += 1
        if action not in CONTROLLER_ONLY and not result._task.delegate_to:
            row["remote"] += 1
            row["modules"][action] = row["modules"].get(action, 0) + 1

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_runner_on_unreachable(self, result):
        self._count(result)

    def v2_runner_on_skipped(self, result):
        self._row(result._host.get_name())["skipped"] += 1

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("BENCH_COUNT_FILE")
        if path:
            with open(path, "w") as handle:
                json.dump(self.counts, handle, indent=1, sort_keys=True)
