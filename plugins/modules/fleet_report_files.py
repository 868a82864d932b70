#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The code is the action plugin of the same name (plugins/action/fleet_report_files.py): it runs
# on the controller only. This file holds its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: fleet_report_files
short_description: Write the idmapguard fleet report (Markdown, HTML, JSON) on the controller
version_added: 0.1.0
description:
  - Writes C(fleet-report.md), C(fleet-report.html) and C(fleet-report.json) into O(dest) on the
    controller, in-process (no module run). The C(idmapguard.storage.rollout) playbook uses it after
    building the report with the P(idmapguard.storage.fleet_report#filter) filter and rendering its
    Markdown and HTML templates.
  - Each file is written to a temporary file and renamed into place, and only when its content
    changed; O(dest) is created (mode 0755) when missing.
  - The report is an artefact of the run, so the files are written in check mode as well (the
    report then says it shows planned changes), and the task never reports a change.
  - Hands the report to AWX as C(ansible.builtin.set_stats) would (not per host, not aggregated) - the
    job's artifact C(idmapguard_fleet_report) with C(summary), C(summary_line), C(hosts) and
    C(report_dir) - and prints the summary line with where the HTML report is.
author:
  - idmapguard contributors (@idmapguard)
attributes:
  action:
    description: Runs as an action plugin on the controller.
    support: full
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Writes only the report files on the controller, in check mode too; no managed host is touched.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
options:
  dest:
    description: Directory on the controller for the report files.
    type: path
    required: true
  report:
    description:
      - The report data from the P(idmapguard.storage.fleet_report#filter) filter. Written as
        C(fleet-report.json), without its C(chart_svg).
    type: dict
    required: true
  markdown:
    description: Content of C(fleet-report.md).
    type: str
    required: true
  html:
    description: Content of C(fleet-report.html).
    type: str
    required: true
seealso:
  - plugin: idmapguard.storage.fleet_report
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Write the fleet report
  idmapguard.storage.fleet_report_files:
    dest: /srv/reports/idmapguard
    report: "{{ fleet }}"
    markdown: "{{ lookup('ansible.builtin.template', 'fleet_report.md.j2') }}"
    html: "{{ lookup('ansible.builtin.template', 'fleet_report.html.j2') }}"
  vars:
    fleet: "{{ records | idmapguard.storage.fleet_report }}"
  run_once: true
"""

RETURN = r"""
dest:
  description: The report directory.
  returned: always
  type: str
files:
  description: Paths of the three report files.
  returned: always
  type: list
  elements: str
written:
  description: Names of the files whose content changed and were written.
  returned: always
  type: list
  elements: str
msg:
  description: The report's summary line and where the HTML report is (also printed).
  returned: success
  type: str
"""
