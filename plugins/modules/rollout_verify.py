#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The code is the action plugin of the same name (plugins/action/rollout_verify.py): it runs
# on the controller and makes one idmap_support call on the host. This file holds its documentation.

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: rollout_verify
short_description: The idmapguard rollout's first look at a host, and whether anything follows it
version_added: 0.4.0
description:
  - The first task of the C(idmapguard.storage.rollout) playbook (and of the verify and remediate
    playbooks) on each host. Runs M(idmapguard.storage.idmap_support) once, with where the helper is
    and whether a missing one is reported, as the rollout's state before verify says, and prints the
    summary line the C(idmapguard.storage.verify) role prints.
  - Returns what idmap_support returns (its C(ansible_facts) too), and C(rollout) - the operator's
    options as read once, the helper's record where the installed helper is already the one the
    C(idmapguard.storage.helper) role would install (read with that role's defaults and the
    operator's variables), and C(act) - whether the helper step, a step of the plan or the metrics
    file is due on this host. A converged host needs nothing more.
  - The decisions are the rollout state machine's (C(plugins/plugin_utils/rollout/)).
author:
  - idmapguard contributors (@idmapguard)
attributes:
  action:
    description: Runs as an action plugin on the controller.
    support: full
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: idmap_support runs in check mode (no canary, no proof); nothing else reaches the host.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
options:
  options:
    description:
      - The operator's rollout options (the keys of P(idmapguard.storage.rollout_state#filter)'s input); null values are not set.
      - Not given (as in the rollout) - read from the operator's variables that are set, by name (C(idmapguard_rollout_steps),
        C(idmapguard_rollout_proof), ..., C(idmapguard_remediate_store_location.graphroot)), only those templated.
    type: dict
  verify:
    description:
      - Options of M(idmapguard.storage.idmap_support) the operator set (C(uidmap), C(gidmap), C(canary), C(proof),
        C(proof_accept), C(proof_strict), C(disable_idmap_reason), C(podman_backport), C(podman_args), C(units));
        null or empty values take the module's defaults.
      - Not given - read from the variables C(idmapguard_verify_<option>) that are set.
    type: dict
  metrics_dest:
    description:
      - The metrics_textfile destination whose host file idmap_support also looks at; empty - none (no metrics step).
      - Not given - C(idmapguard_metrics_dir), else C(auto).
    type: str
seealso:
  - module: idmapguard.storage.idmap_support
  - plugin: idmapguard.storage.rollout_state
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Verify support (facts, verdict, and the installed helper), the operator's variables as they are set
  idmapguard.storage.rollout_verify:
  register: idmapguard_verify_result

- name: Verify support with these options instead
  idmapguard.storage.rollout_verify:
    options:
      steps: [helper, verify]
    verify:
      podman_args: [--cgroup-manager=cgroupfs]
  register: idmapguard_verify_result
"""

RETURN = r"""
rollout:
  description:
    - C(options), the operator's options; C(helper), the helper's record where it is current without
      the helper step (else null); C(act), whether any task follows on this host; C(why), which of
      C(helper), C(steps) and C(metrics) is due; C(record), where nothing follows, the host's line in the
      fleet report (P(idmapguard.storage.rollout_record#filter) of the same state), else null.
  returned: always
  type: dict
verdict:
  description: The verdict (and every other return value of M(idmapguard.storage.idmap_support)).
  returned: success
  type: str
"""
