# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters ``idmapguard.storage.configure_plan`` and ``configure_outcome``: the configure role's decisions."""

from __future__ import annotations

DOCUMENTATION = r"""
name: configure_plan
short_description: Decide what the idmapguard.storage.configure role does on a host
version_added: 0.2.0
author: idmapguard developers
description:
  - Computes, from the verify facts (C(ansible_facts.idmapguard)) and the role's variables, whether
    the host is configured, skipped or undecided, and for each step of the role whether it runs and why.
  - The result has C(action), C(reason), C(verdict), and one entry per step, each with C(run) and
    C(reason) - C(storage_conf) (C(settings), C(absent), C(placement) - C(dropin), C(main) or C(env) -, C(path), C(dropin),
    C(refused) when a drop-in Podman reads later would override the change), C(unit_storage_conf) (C(targets),
    the files units name in C(CONTAINERS_STORAGE_CONF) that make their Podman copy, edited in place), C(disable_idmap_env) (C(units), C(not_fixed)) and
    C(probe_cache) (C(runroot), C(features), C(files), the stale cached probe answers of containers/storage).
  - The same plugin file provides C(configure_outcome), which turns the plan and the registered
    results of the role's tasks into the C(idmapguard_configure) fact.
options:
  _input:
    description: The verify facts (may be empty).
    type: dict
    required: true
  verdict:
    description: A verdict that overrides the one in the facts; empty takes the facts'.
    type: str
    default: ""
  settings:
    description: The operator's extra dotted keys to set.
    type: dict
    default: {}
  absent:
    description: The operator's extra dotted keys to remove.
    type: list
    elements: str
    default: []
  unset_disable_idmap_env:
    description: Whether units that set C(_CONTAINERS_OVERLAY_DISABLE_IDMAP) get a drop-in that unsets it.
    type: bool
    default: true
  path:
    description: The main storage.conf, edited in place where Podman reads no drop-ins.
    type: str
    default: /etc/containers/storage.conf
"""

EXAMPLES = r"""
- name: Decide what this host needs
  ansible.builtin.set_fact:
    plan: "{{ ansible_facts.idmapguard | idmapguard.storage.configure_plan(settings={'storage.options.overlay.mountopt': 'nodev'}) }}"
"""

RETURN = r"""
_value:
  description: The plan (see the description).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.idmapguard.storage.plugins.plugin_utils.configure_plan import (
    ConfigureInputs,
    configure_outcome,
    configure_plan,
)


def configure_plan_filter(facts, verdict="", settings=None, absent=None, unset_disable_idmap_env=True,
                          path="/etc/containers/storage.conf"):
    """Filter entry point: check the input types, the decision lives in plugin_utils."""
    facts = facts or {}
    settings = settings or {}
    absent = absent or []
    if not isinstance(facts, dict):
        raise AnsibleFilterError("configure_plan expects the verify facts as a dict, got %s" % type(facts).__name__)
    if not isinstance(settings, dict):
        raise AnsibleFilterError("configure_plan: settings must be a dict, got %s" % type(settings).__name__)
    if not isinstance(absent, (list, tuple)) or not all(isinstance(key, str) for key in absent):
        raise AnsibleFilterError("configure_plan: absent must be a list of dotted keys")
    return configure_plan(ConfigureInputs(facts=facts, verdict=str(verdict or ""), settings=settings,
                                          absent=list(absent),
                                          unset_disable_idmap_env=boolean(unset_disable_idmap_env),
                                          path=str(path or "/etc/containers/storage.conf")))


def configure_outcome_filter(plan, storage_conf=None, dropins=None, restart_units=None, probe_cache=None,
                             unit_conf=None):
    """``plan | configure_outcome(conf_result, dropins_result, restart_units, probe_cache_result, unit_conf_result)``."""
    if not isinstance(plan, dict) or "action" not in plan:
        raise AnsibleFilterError("configure_outcome expects a plan made by configure_plan")
    return configure_outcome(plan, storage_conf, dropins, list(restart_units or []), probe_cache, unit_conf)


class FilterModule:
    """idmapguard configure role decisions."""

    def filters(self):
        return {"configure_plan": configure_plan_filter, "configure_outcome": configure_outcome_filter}
