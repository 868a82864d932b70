# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters ``idmapguard.storage.rollout_steps`` and ``rollout_record``: the rollout's per-host decisions."""

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_steps
short_description: Decide which rollout steps act on a host, and build its fleet-report record
version_added: 0.2.0
author: idmapguard developers
description:
  - C(facts | rollout_steps(...)) returns, for C(reverify), C(configure), C(proof) and C(remediate),
    C(run) and C(reason) (C(remediate) also C(due) and C(due_reason), whether the remediate role
    would prune now, from M(idmapguard.storage.idmap_support)'s inode use and the remediate
    policy), and C(act), whether the host needs any step at all.
  - The same plugin file provides C(rollout_record) - C(inputs | rollout_record) turns what the
    rollout knows about a host (C(host), C(before), C(after), C(check_mode), C(steps), C(helper),
    C(changes), C(remediated), C(proof), C(rolled_back), in the rescue C(failed_task) and
    C(failed_result)) into its record for P(idmapguard.storage.fleet_report#filter).
  - The same plugin file provides C(rollout_proof) - C(facts | rollout_proof) keeps what the rollout needs of
    the canary and the correctness proof (C(passed), C(outcome) C(passed)/C(known_issue)/C(failed),
    C(known_issues), C(checks), C(failed_checks)) from the facts after the proof step.
  - Used by the C(idmapguard.storage.rollout) playbook.
options:
  _input:
    description: The verify facts from before any change (C(ansible_facts.idmapguard)).
    type: dict
    required: true
  steps:
    description: The rollout steps selected (C(idmapguard_rollout_steps)).
    type: list
    elements: str
  check_mode:
    description: Whether the play runs in check mode.
    type: bool
    default: false
  helper_changed:
    description: Whether the helper step installed (or would install) a helper.
    type: bool
    default: false
  proof:
    description: C(idmapguard_rollout_proof) (C(changed), C(always) or C(never)).
    type: str
    default: changed
  conf_changed:
    description: Whether configure changed storage.conf.
    type: bool
    default: false
  remediate_policy:
    description: C(idmapguard_remediate_policy); null is the role's default C(threshold).
    type: str
  remediate_threshold:
    description: C(idmapguard_remediate_inode_threshold); null is the role's default 80.
    type: float
  remediate_guard:
    description: C(idmapguard_remediate_guard).
    type: bool
    default: false
  remediate_graphroot:
    description: C(idmapguard_remediate_graphroot).
    type: str
    default: ""
  upgrade_podman:
    description: C(idmapguard_rollout_upgrade_podman) - the opt-in Podman upgrade step.
    type: bool
    default: false
  upgrade:
    description: What the upgrade step did so far (C(upgraded), C(proof_failed), ...); empty before it ran.
    type: dict
  after:
    description: The facts after the steps so far (after an upgrade, the new Podman's); empty means as before.
    type: dict
"""

EXAMPLES = r"""
- name: Act on this host's facts
  ansible.builtin.include_tasks: rollout_act.yml
  when: (ansible_facts.idmapguard | idmapguard.storage.rollout_steps(steps=['remediate'])).act
"""

RETURN = r"""
_value:
  description: The steps (see the description).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout import (
    ALL_STEPS,
    REMEDIATE_POLICY,
    REMEDIATE_THRESHOLD,
    RecordInputs,
    StepInputs,
    host_record,
    proof_result,
    rollout_steps,
)


def _mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AnsibleFilterError("%s must be a dict, got %s" % (what, type(value).__name__))
    return value


def rollout_steps_filter(facts, steps=None, check_mode=False, helper_changed=False, proof="changed",
                         conf_changed=False, remediate_policy=None, remediate_threshold=None,
                         remediate_guard=False, remediate_graphroot="", upgrade_podman=False, upgrade=None,
                         after=None):
    try:
        inputs = StepInputs(
            facts=_mapping(facts, "rollout_steps: the facts"),
            steps=list(ALL_STEPS if steps is None else steps),
            check_mode=boolean(check_mode), helper_changed=boolean(helper_changed),
            proof=str(proof or "changed"), conf_changed=boolean(conf_changed),
            remediate_policy=str(remediate_policy or REMEDIATE_POLICY),
            remediate_threshold=float(REMEDIATE_THRESHOLD if remediate_threshold in (None, "") else remediate_threshold),
            remediate_guard=boolean(remediate_guard), remediate_graphroot=str(remediate_graphroot or ""),
            upgrade_podman=boolean(upgrade_podman), upgrade=_mapping(upgrade, "upgrade"),
            after=_mapping(after, "after"))
        return rollout_steps(inputs)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("rollout_steps: %s" % exc)


def rollout_record_filter(inputs, failed_task=None, failed_result=None):
    data = dict(_mapping(inputs, "rollout_record: the inputs"))
    if not data.get("host"):
        raise AnsibleFilterError("rollout_record: the inputs need a host")
    try:
        record = RecordInputs(
            host=str(data["host"]),
            before=_mapping(data.get("before"), "before"), after=_mapping(data.get("after"), "after"),
            check_mode=boolean(data.get("check_mode", False)),
            steps=list(ALL_STEPS if data.get("steps") is None else data["steps"]),
            helper=_mapping(data.get("helper"), "helper"), changes=list(data.get("changes") or []),
            remediated=_mapping(data.get("remediated"), "remediated"),
            proof=data.get("proof"), rolled_back=boolean(data.get("rolled_back", False)),
            podman_upgrade=_mapping(data.get("podman_upgrade"), "podman_upgrade"),
            failed_task=None if failed_task is None else str(failed_task),
            failed_result=_mapping(failed_result, "failed_result") if failed_task is not None else None)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("rollout_record: %s" % exc)
    return host_record(record)


def rollout_proof_filter(facts):
    return proof_result(_mapping(facts, "rollout_proof: the facts"))


class FilterModule:
    """idmapguard rollout decisions."""

    def filters(self):
        return {"rollout_steps": rollout_steps_filter, "rollout_record": rollout_record_filter,
                "rollout_proof": rollout_proof_filter}
