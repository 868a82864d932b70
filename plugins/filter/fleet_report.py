# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``idmapguard.storage.fleet_report``: per-host rollout records -> fleet report data."""

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_report
short_description: Build the idmapguard fleet report from per-host rollout records
version_added: 0.1.0
author: idmapguard developers
description:
  - Turns the list of per-host records collected by the C(idmapguard.storage.rollout)
    playbook into one report, sorted worst verdict first, with fleet totals, a one-line summary
    and an inline SVG chart of inode use per host before and after.
  - The templates C(fleet_report.md.j2) and C(fleet_report.html.j2) of the collection's
    playbooks render it; the result is also what the rollout hands to AWX with C(set_stats).
options:
  _input:
    description:
      - List of per-host records. Keys used (all optional except C(host)) are C(host),
        C(verdict_before), C(verdict), C(reasons), C(reason_codes), C(remedy), C(inodes_total),
        C(inodes_used_before), C(inodes_used_after), C(mapped_copies_before),
        C(mapped_copies_after), C(copies_removed), C(inodes_freed), C(noncontiguous_map_cost),
        C(proof), C(rolled_back), C(changes), C(failed), C(error), C(podman_version),
        C(check_mode), C(podman_upgrade) (the upgrade step's plan and outcome).
    type: list
    elements: dict
    required: true
  title:
    description: Title of the report.
    type: str
    default: idmapguard fleet report
  run:
    description:
      - Which job wrote the report (C(awx_workflow_job_id), C(awx_job_id), C(slice), C(slice_count)), kept
        as the report's C(run) so that the P(idmapguard.storage.report_merge#filter) merge can tell the
        slices of one run from older ones.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Render the fleet report data
  ansible.builtin.set_fact:
    report: "{{ records | idmapguard.storage.fleet_report(title='Production fleet') }}"
"""

RETURN = r"""
_value:
  description:
    - The report. C(summary) holds the totals (C(hosts), C(by_verdict), C(sharing), C(failed),
      C(rolled_back), C(changed_hosts), C(podman_upgraded), C(copies_removed), C(inodes_freed),
      C(inodes_used_before), C(inodes_used_after), C(check_mode)), C(summary_line) one sentence,
      C(hosts) one normalised row per host, C(chart_svg) the chart as inline SVG, C(run) the
      O(run) given.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.plugin_utils.fleet_report import build_report


def fleet_report(records, title="idmapguard fleet report", run=None):
    """Filter entry point: validate the input shape, the rest lives in plugin_utils."""
    if not isinstance(records, (list, tuple)):
        raise AnsibleFilterError("fleet_report expects a list of host records, got %s"
                                 % type(records).__name__)
    for record in records:
        if not isinstance(record, dict) or not record.get("host"):
            raise AnsibleFilterError("fleet_report: every record must be a dict with a 'host'")
    if run is not None and not isinstance(run, dict):
        raise AnsibleFilterError("fleet_report: run must be a dict, got %s" % type(run).__name__)
    return build_report(records, title=title, run=run)


class FilterModule:
    """idmapguard fleet report filters."""

    def filters(self):
        return {"fleet_report": fleet_report}
