#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: probe_cache
short_description: Clear a stale negative answer that containers/storage cached in its runroot
version_added: 0.1.0
description:
  - The overlay driver of containers/storage probes the kernel once and caches each answer in
    C(<runroot>/overlay/<feature>-true) or C(<feature>-false) until the runroot is cleared (normally at
    boot). A negative answer about C(overlay) or C(idmapped-lower-dir) makes it copy image layers for
    every ID-mapped container.
  - This module removes the C(<feature>-false) file of each feature listed, and nothing else (never a
    directory, a symbolic link or a positive answer). The next Podman command probes again and records a
    fresh answer.
  - It does not judge whether the answer is stale; the C(idmapguard.storage.configure) role calls it only
    for the files that C(idmapguard.storage.idmap_support) reports in C(podman.probe_cache.stale), that is
    where the helper's probe on graphroot's filesystem proved support.
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
  runroot:
    description: The store's run root (C(podman.runroot) of the facts).
    type: path
    required: true
  clear:
    description: Features whose cached negative answer to remove.
    type: list
    elements: str
    choices: [overlay, idmapped-lower-dir]
    required: true
"""

EXAMPLES = r"""
- name: Clear the stale negative answers verify found
  idmapguard.storage.probe_cache:
    runroot: "{{ ansible_facts.idmapguard.podman.runroot }}"
    clear: [idmapped-lower-dir]
"""

RETURN = r"""
removed:
  description: Files removed (in check mode, that would be removed).
  returned: always
  type: list
  elements: str
  sample: [/run/containers/storage/overlay/idmapped-lower-dir-false]
absent:
  description: Files that were already absent.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idmapguard.storage.plugins.module_utils.probe_cache import (
    ProbeCacheError,
    argument_spec,
    run,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run(module.params, module.check_mode)
    except ProbeCacheError as exc:
        module.fail_json(msg=str(exc), removed=exc.removed, absent=exc.absent)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
