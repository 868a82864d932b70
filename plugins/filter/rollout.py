# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters ``rollout_start``, ``rollout_advance`` and ``rollout_record``: the rollout of one host
as a state machine (plugins/plugin_utils/rollout/)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_start
short_description: Start the rollout state of one host (the idmapguard rollout's state machine)
version_added: 0.3.0
author: idmapguard developers
description:
  - C(options | rollout_start(host=..., check_mode=...)) returns the rollout state of a host before
    its first step - the operator's options, where verify finds the helper, and C(plan), what runs next.
  - P(idmapguard.storage.rollout_advance#filter) returns the state after a step's result, with the plan
    made again; P(idmapguard.storage.rollout_record#filter) turns the state into the host's report row.
  - Every decision is Python (C(plugins/plugin_utils/rollout/)); the C(idmapguard.storage.rollout) playbook
    only runs the steps the plan says, in a fixed order.
options:
  _input:
    description:
      - The operator's options - C(steps), C(proof), C(proof_strict), C(upgrade_podman), C(upgrade_backports),
        C(upgrade_update_cache), C(guard), C(guard_enable), C(remediate_guard), C(remediate_policy),
        C(remediate_threshold), C(remediate_graphroot) (the graphroot of an operator-given
        idmapguard_remediate_store_location), C(podman_backport), C(helper_dest), C(verify_helper).
        Null means not set.
    type: dict
    required: true
  host:
    description: The host's inventory name.
    type: str
    required: true
  check_mode:
    description: Whether the play runs in check mode.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Start this host's rollout
  ansible.builtin.set_fact:
    _igr: "{{ {'steps': ['verify', 'remediate']} | idmapguard.storage.rollout_start(host=inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The rollout state (C(plan) holds, per step, C(run) and C(reason)).
  type: dict
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import PolicyError
from ansible_collections.idmapguard.storage.plugins.plugin_utils.plain_data import plain
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.advance import advance, fail
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.fold import fold
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.metrics import write_due
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.plan import plan
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.record import record
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import RolloutError, State, start


def _mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError("%s must be a dict, got %s" % (what, type(value).__name__))
    return plain(value)


def rollout_start(options, host=None, check_mode=False):
    if not host:
        raise AnsibleFilterError("rollout_start: host is required")
    try:
        state = start(str(host), _mapping(options, "rollout_start: the options"), boolean(check_mode))
        state.plan = plan(state)
    except (RolloutError, PolicyError, TypeError) as exc:
        raise AnsibleFilterError("rollout_start: %s" % exc)
    return state.as_dict()


def rollout_state(options, host=None, check_mode=False, failure=None, **results):
    if not host:
        raise AnsibleFilterError("rollout_state: host is required")
    try:
        state = fold(_mapping(options, "rollout_state: the options"), str(host), boolean(check_mode),
                     {name: plain(value) for name, value in results.items()},
                     None if failure is None else _mapping(failure, "rollout_state: failure"))
    except (RolloutError, PolicyError, TypeError) as exc:
        raise AnsibleFilterError("rollout_state: %s" % exc)
    return state.as_dict()


def rollout_advance(state, step, **result):
    try:
        current = State.from_dict(_mapping(state, "rollout_advance: the state"))
        if step == "failed":
            new = fail(current, str(result.get("task") or "?"), _mapping(result.get("result"), "result"),
                       _mapping(result.get("storage_conf"), "storage_conf"))
        else:
            new = advance(current, str(step), plain(result))
    except (RolloutError, PolicyError, TypeError) as exc:
        raise AnsibleFilterError("rollout_advance(%s): %s" % (step, exc))
    return new.as_dict()


def rollout_metrics_due(record, helper_version="", observed=None):
    if not isinstance(record, Mapping):
        raise AnsibleFilterError("rollout_metrics_due: the input must be the host's record (rollout_record)")
    return write_due(plain(record), str(helper_version or ""), plain(observed))


def rollout_record(state):
    try:
        return record(State.from_dict(_mapping(state, "rollout_record: the state")))
    except (RolloutError, TypeError) as exc:
        raise AnsibleFilterError("rollout_record: %s" % exc)


class FilterModule:
    """idmapguard rollout state machine."""

    def filters(self):
        return {"rollout_start": rollout_start, "rollout_advance": rollout_advance, "rollout_state": rollout_state,
                "rollout_record": rollout_record, "rollout_metrics_due": rollout_metrics_due}
