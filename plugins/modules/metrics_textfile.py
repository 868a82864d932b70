#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: metrics_textfile
short_description: Write a host's idmapguard metrics for node_exporter's textfile collector
version_added: 0.1.0
description:
  - Renders the host's rollout record (verdict, mapped copies, what a new non-contiguous map costs,
    Podman and helper versions, whether its repositories offer a Podman that shares) as Prometheus
    metrics and writes them as C(idmapguard_host.prom) into node_exporter's textfile directory.
  - The file is written to a temporary file in the same directory and renamed into place, and only
    when its content changed. The metrics and the alerting rules that use them are listed in
    docs/metrics.md of the collection.
  - The C(idmapguard.storage.rollout) and C(idmapguard.storage.verify) playbooks run it for every host.
author:
  - idmapguard contributors (@idmapguard)
requirements:
  - Python 3.8 or later on the host (standard library only).
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
options:
  dest:
    description:
      - The textfile directory. C(auto) is the first of C(/var/lib/prometheus/node-exporter) (Debian's
        prometheus-node-exporter) and C(/var/lib/node_exporter/textfile_collector) (RHEL's) that exists;
        without either nothing is written.
      - Another absolute path is created when missing; an empty string writes nothing.
    type: str
    default: auto
  record:
    description: The host's rollout record (the C(idmapguard_rollout_record) fact of the playbooks).
    type: dict
    required: true
  helper_version:
    description: Version of the installed idmapped-mount helper, for the C(idmapguard_host_info) metric.
    type: str
    default: ""
seealso:
  - module: idmapguard.storage.idmap_support
"""

EXAMPLES = r"""
- name: Write this host's metrics for node_exporter
  idmapguard.storage.metrics_textfile:
    record: "{{ idmapguard_rollout_record }}"
    helper_version: "{{ idmapguard_verify_result.helper.version | default('') }}"
"""

RETURN = r"""
path:
  description: The metrics file, or null when nothing was written (see RV(skipped_reason)).
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/idmapguard_host.prom
metrics:
  description: The file's content.
  returned: when written
  type: str
skipped_reason:
  description: Why no file was written.
  returned: when nothing was written
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idmapguard.storage.plugins.module_utils.metrics_textfile import (
    MetricsError, argument_spec, write_host_metrics,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = write_host_metrics(module.params, check_mode=module.check_mode)
    except MetricsError as exc:
        module.fail_json(msg="%s (the metrics file was not changed)" % exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
