# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``idmapguard.storage.report_merge``: one fleet report from the reports of N slices."""

from __future__ import annotations

DOCUMENTATION = r"""
name: report_merge
short_description: Merge the fleet reports of the slices of a sliced run into one
version_added: 0.1.0
author: idmapguard developers
description:
  - Reads C(fleet-report.json) from each directory (shell patterns allowed) and returns one fleet
    report, the same data as the P(idmapguard.storage.fleet_report#filter) filter makes for one unsliced
    run of the same hosts. The playbook C(idmapguard.storage.report_merge) renders and writes it.
  - A host in two slice reports is an error. Of reports of several runs (AWX workflow jobs), the
    newest run's are merged and the others listed in C(ignored). Expected hosts that no slice reports are
    C(not_reached). The logic lives in C(plugins/plugin_utils/report_merge.py).
options:
  _input:
    description: The slices' report directories (C(idmapguard_report_merge_dirs)).
    type: list
    elements: str
    required: true
  expected_hosts:
    description: Hosts the merged report must list (those no slice reports become C(not_reached)).
    type: list
    elements: str
    default: []
  title:
    description: Title of the merged report.
    type: str
    default: idmapguard fleet report
"""

EXAMPLES = r"""
- name: Merge the slices' reports
  ansible.builtin.set_fact:
    fleet: "{{ ['/srv/reports/1', '/srv/reports/2'] | idmapguard.storage.report_merge(expected_hosts=groups['all']) }}"
"""

RETURN = r"""
_value:
  description:
    - The fleet report (as P(idmapguard.storage.fleet_report#filter) returns it), with C(slices) (path,
      hosts, generated, run and summary line of each slice report merged) and C(ignored) (reports of
      older runs).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.plugin_utils.report_merge import MergeError, merge_dirs


def report_merge(dirs, expected_hosts=None, title="idmapguard fleet report"):
    """Filter entry point: the merge lives in plugin_utils/report_merge.py."""
    if not isinstance(dirs, (list, tuple)):
        raise AnsibleFilterError("report_merge expects a list of report directories, got %s" % type(dirs).__name__)
    try:
        return merge_dirs([str(d) for d in dirs], expected_hosts=[str(h) for h in expected_hosts or []], title=title)
    except MergeError as exc:
        raise AnsibleFilterError("report_merge: %s" % exc)


class FilterModule:
    """idmapguard report merge filter."""

    def filters(self):
        return {"report_merge": report_merge}
