# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``idmapguard.storage.rollout_slice``: a run's hosts and batches under slicing."""

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_slice
short_description: The hosts and batches of one slice of a sliced rollout, and its canary gate
version_added: 0.1.0
author: idmapguard developers
description:
  - Splits hosts as AWX job slicing does (the inventory's hosts by name, every O(slice_count)-th from
    number O(slice)), keeps the order of the play's host pattern, and decides the play's batches
    (C(serial)) under slicing. The decisions live in C(plugins/plugin_utils/slicing.py).
  - A sliced run keeps its canary batch unless told the canary ran as its own job (O(canary_done)); a
    sliced run whose batches do not start with a canary batch of one host is refused unless its canary is
    done. See docs/awx.md for the workflow.
options:
  _input:
    description: The hosts of the play's pattern, in order (C(query('ansible.builtin.inventory_hostnames', pattern))).
    type: list
    elements: str
    required: true
  all_hosts:
    description: Every host of the inventory (C(groups['all'])), which the slices split.
    type: list
    elements: str
    required: true
  slice:
    description: This run's slice number, 1 to O(slice_count); unset, the hosts are not split (an AWX slice is split already).
    type: int
  slice_count:
    description: How many slices the run is split into; set alone, the run is one slice of an AWX sliced job.
    type: int
  batches:
    description: The rollout's batches (C(idmapguard_rollout_batches)); unset, C([1, '10%', '50%', '100%']).
    type: list
    elements: raw
  canary_only:
    description: The canary job of a workflow; the first host of the pattern by name, alone.
    type: bool
    default: false
  canary_done:
    description: The canary ran as its own job and passed; the leading canary batch is dropped.
    type: bool
    default: false
  canary:
    description:
      - Whether the run has a canary batch (the rollout). V(false) for verify and remediate, which
        only take their slice's hosts; O(batches) is then returned as given.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Roll out one slice
  hosts: >-
    {{ (query('ansible.builtin.inventory_hostnames', 'all')
        | idmapguard.storage.rollout_slice(groups['all'], slice=1, slice_count=3)).hosts }}
  serial: "{{ ([] | idmapguard.storage.rollout_slice([], slice_count=3, canary_done=true)).batches }}"
  tasks: []
"""

RETURN = r"""
_value:
  description: C(hosts) (the slice's hosts, in the pattern's order) and C(batches) (the play's C(serial)).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.plugin_utils.slicing import (
    SlicingError, canary_host, rollout_batches, slice_hosts,
)


def rollout_slice(pattern_hosts, all_hosts, slice=None, slice_count=None, batches=None,  # pylint: disable=redefined-builtin
                  canary_only=False, canary_done=False, canary=True):
    """Filter entry point: check the shapes; the decisions live in plugin_utils/slicing.py."""
    if not isinstance(pattern_hosts, (list, tuple)) or not isinstance(all_hosts, (list, tuple)):
        raise AnsibleFilterError("rollout_slice expects two lists of host names")
    try:
        hosts = slice_hosts([str(h) for h in pattern_hosts], [str(h) for h in all_hosts], slice, slice_count)
        if canary_only:
            if canary_done:
                raise SlicingError("canary_only and canary_done together: the canary job runs the canary, "
                                   "the slices after it are told it is done")
            return {"hosts": canary_host(hosts), "batches": [1]}
        if not canary:
            return {"hosts": hosts, "batches": list(batches) if batches is not None else None}
        return {"hosts": hosts,
                "batches": rollout_batches(batches, canary_done=bool(canary_done), slice_count=slice_count)}
    except (SlicingError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("rollout_slice: %s" % exc)


class FilterModule:
    """idmapguard slicing filters."""

    def filters(self):
        return {"rollout_slice": rollout_slice}
