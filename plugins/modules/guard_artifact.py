#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The code is the action plugin of the same name (plugins/action/guard_artifact.py): the archive
# is built on the controller and copied with ansible.builtin.copy. This file holds its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: guard_artifact
short_description: Install the idmapguard copy-cache guard on a host as one zip application
version_added: 0.1.0
description:
  - Builds the guard (C(idmapguard-guard), C(idmapguard-prune)) as one Python zip application
    from the host-side library of the collection the controller runs, and copies it to
    O(dest)C(/idmapguard-guard-<version>-<sha256 prefix>.pyz) on the host.
  - The archive holds the guard's entry module and exactly the collection modules its imports
    reach, found by reading them; an import outside the standard library and the collection
    fails the task. Its bytes depend only on those files (fixed timestamps and modes, sorted,
    uncompressed), so every controller and execution environment builds the same sha256.
  - The file is written to a temporary file and renamed into place (as M(ansible.builtin.copy)
    does), under a name that changes with its content, so a guard that is still running keeps
    importing from the archive it started with. The C(remediate) role restarts the service and
    then removes archives of earlier builds.
  - "Run it on the host with C(python3 ARCHIVE guard --config FILE watch|once|status) or
    C(python3 ARCHIVE prune ...); the running guard reports the archive's path, sha256 and
    version in its state (fact C(idmapguard.guard.artifact) of M(idmapguard.storage.idmap_support))."
author:
  - idmapguard contributors (@idmapguard)
attributes:
  action:
    description: Runs as an action plugin on the controller.
    support: full
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: partial
    details: The archive is binary; the diff says only that it changes.
options:
  dest:
    description: Directory on the host for the archive (it must exist).
    type: path
    required: true
notes:
  - The host needs Python 3.8 or later, nothing else.
seealso:
  - module: ansible.builtin.copy
"""

EXAMPLES = r"""
- name: Install the guard's archive
  idmapguard.storage.guard_artifact:
    dest: /usr/local/lib/idmapguard
  register: guard_artifact

- name: Run one pass of the guard with it
  ansible.builtin.command:
    argv: [/usr/bin/python3, "{{ guard_artifact.path }}", guard, --config, /etc/idmapguard/guard.json, once]
  changed_when: true
"""

RETURN = r"""
path:
  description: The archive's path on the host.
  returned: success
  type: str
  sample: /usr/local/lib/idmapguard/idmapguard-guard-0.1.0-3f1c2a9b7d4e.pyz
sha256:
  description: SHA-256 of the archive.
  returned: success
  type: str
version:
  description: The collection's version the archive was built from.
  returned: success
  type: str
size:
  description: Size of the archive in bytes.
  returned: success
  type: int
modules:
  description: The collection's module_utils files in the archive, relative to C(plugins/module_utils).
  returned: success
  type: list
  elements: str
"""
