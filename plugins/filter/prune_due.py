# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``idmapguard.storage.prune_due``: the remediate role's prune-now decision."""

from __future__ import annotations

DOCUMENTATION = r"""
name: prune_due
short_description: Whether a host's store is pruned now, and why
version_added: 0.1.0
author: idmapguard developers
description:
  - Applies the prune-now decision of the collection (C(reclaim_policy.prune_due), the one place
    it is made) to the C(filesystem) that M(idmapguard.storage.mapped_layers) reports.
options:
  _input:
    description: The C(filesystem) result of M(idmapguard.storage.mapped_layers) (C(inodes_used), C(inodes_total)).
    type: dict
    required: true
  policy:
    description: V(always) or V(threshold); null is the default, V(threshold).
    type: str
  threshold_percent:
    description: Inode use in percent from which V(threshold) prunes; null is the default, 80.
    type: float
  decided:
    description:
      - A decision the caller already made (C(due), C(reason)), for example the rollout's plan. It is
        returned as it is (with C(inode_use_percent)), so the decision is taken once.
    type: dict
"""

EXAMPLES = r"""
- name: Decide
  ansible.builtin.set_fact:
    decision: "{{ report.filesystem | idmapguard.storage.prune_due('threshold', 80) }}"
"""

RETURN = r"""
_value:
  description: C(due) (bool), C(reason) (words) and C(inode_use_percent) (rounded to 0.1).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import (
    DEFAULT_POLICY, DEFAULT_THRESHOLD_PERCENT, PolicyError, inode_use_percent, prune_due as decide,
)


def prune_due(filesystem, policy=None, threshold_percent=None, decided=None):
    """Filter entry point: check the input's shape; the decision lives in reclaim_policy."""
    if not isinstance(filesystem, dict):
        raise AnsibleFilterError("prune_due expects the filesystem dict of mapped_layers, got %s"
                                 % type(filesystem).__name__)
    if decided is not None and not isinstance(decided, dict):
        raise AnsibleFilterError("prune_due: decided must be a dict (due, reason), got %s" % type(decided).__name__)
    try:
        used, total = int(filesystem["inodes_used"]), int(filesystem["inodes_total"])
        if decided is not None:
            due, reason = bool(decided.get("due")), "%s (the caller's decision)" % (decided.get("reason") or "")
        else:
            due, reason = decide(str(policy or DEFAULT_POLICY),
                                 float(DEFAULT_THRESHOLD_PERCENT if threshold_percent in (None, "") else threshold_percent),
                                 used, total)
    except (KeyError, TypeError, ValueError, PolicyError) as exc:
        raise AnsibleFilterError("prune_due: %s" % exc)
    return {"due": due, "reason": reason, "inode_use_percent": round(inode_use_percent(used, total), 1)}


class FilterModule:
    """idmapguard reclaim filters."""

    def filters(self):
        return {"prune_due": prune_due}
