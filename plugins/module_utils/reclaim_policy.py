# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When unused mapped copies are reclaimed: the one prune-now decision (inode use vs threshold).

Used by the rollout's gate (plugins/plugin_utils/rollout.py); the remediate role and the guard
are to use it too (issue 10b owns them).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Tuple

POLICIES = ("always", "threshold")


def inode_use_percent(inodes_used: int, inodes_total: int) -> float:
    """Inode use of a filesystem in percent, one decimal; 0.0 where the count is not fixed (btrfs)."""
    if not inodes_total:
        return 0.0
    return round(100.0 * inodes_used / inodes_total, 1)


def prune_due(policy: str, threshold_percent: float, inodes_used: int, inodes_total: int) -> Tuple[bool, str]:
    """(prune now?, why) for a store whose filesystem has used `inodes_used` of `inodes_total`."""
    if policy not in POLICIES:
        raise ValueError("unknown reclaim policy %r, expected one of %s" % (policy, ", ".join(POLICIES)))
    if policy == "always":
        return True, "policy always"
    use = inode_use_percent(int(inodes_used or 0), int(inodes_total or 0))
    threshold = float(threshold_percent)
    if use >= threshold:
        return True, "inode use %s%% >= %s%%" % (use, threshold)
    return False, "inode use %s%% below %s%%" % (use, threshold)
