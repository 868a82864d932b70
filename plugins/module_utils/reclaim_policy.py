# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When to reclaim mapped copies, and which: the one place these decisions are made.

* :func:`prune_due` is the prune-now decision of the ``remediate`` role (and the rollout).
* :func:`cache_budget` and :func:`choose_evictions` are the copy-cache rules of the guard:
  unused copies are a cache with an inode budget; the least recently used go first when the
  cache is over its budget, and more go at once when the filesystem runs low on free inodes;
  :func:`must_catch_up` says when the guard has fallen behind and works at full priority.
  Copies of ``keep_maps`` and copies younger than the grace never reach these functions as
  candidates (the caller leaves them out), so they are never chosen.

Pure functions of numbers: no I/O, unit-tested in tests/unit/plugins/module_utils/test_reclaim_policy.py.
The rollout's plan (plugins/plugin_utils/rollout/plan.py) calls :func:`prune_due` and passes its decision to the role.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from dataclasses import dataclass
from typing import List, Sequence, Tuple

POLICIES = ("always", "threshold")
# The prune-now defaults, for the remediate role and the rollout alike (the role's defaults file
# leaves them unset so that this is the one place): prune when the graphroot filesystem is 80 %
# used, far enough from full that Podman still creates containers, close enough that a store
# with room is left alone.
DEFAULT_POLICY = "threshold"
DEFAULT_THRESHOLD_PERCENT = 80.0

# Defaults of the guard's copy cache (docs/guard.md explains each number).
# Unused copies may hold up to this share of the filesystem's inodes ...
DEFAULT_BUDGET_PERCENT = 10.0
# ... and whatever the budget, eviction starts at once when fewer than this share are free.
DEFAULT_LOW_FREE_PERCENT = 10.0
# Seconds a new copy is left alone. containers/storage 1.24 to 1.62 create the copy and the
# container layer on top of it in one hold of the layer store's lock (docs/guard.md), so a
# prune that re-checks under that lock cannot race a create; the grace only covers versions
# not read and clocks that step.
DEFAULT_GRACE_SECONDS = 5.0
# Seconds a copy must exist before a one-shot prune (the mapped_layers module, the remediate
# role, idmapguard-prune) removes it: the same margin as the grace, for the same reason.
DEFAULT_MIN_AGE = int(DEFAULT_GRACE_SECONDS)


class PolicyError(ValueError):
    """A policy parameter that makes no sense (unknown policy, negative percent)."""


def inode_use_percent(inodes_used: int, inodes_total: int) -> float:
    """Percent of the filesystem's inodes in use, one decimal (as reported and compared);
    0.0 where it has no fixed count (btrfs)."""
    if inodes_total <= 0:
        return 0.0
    return round(100.0 * inodes_used / inodes_total, 1)


def prune_due(policy: str, threshold_percent: float, inodes_used: int, inodes_total: int) -> Tuple[bool, str]:
    """Whether a host is pruned now, and the reason in words.

    ``always`` prunes on every run; ``threshold`` when the graphroot filesystem's inode use,
    rounded to one decimal as it is reported, is at least ``threshold_percent``. A filesystem
    without a fixed inode count (``inodes_total`` 0) counts as 0.0 % used.
    """
    if policy not in POLICIES:
        raise PolicyError("unknown reclaim policy %r, expected one of %s" % (policy, ", ".join(POLICIES)))
    threshold = float(threshold_percent)
    if not 0.0 <= threshold <= 100.0:
        raise PolicyError("threshold_percent must be 0 to 100, got %r" % (threshold_percent,))
    if inodes_used < 0 or inodes_total < 0:
        raise PolicyError("inode counts cannot be negative (%r used of %r)" % (inodes_used, inodes_total))
    if policy == "always":
        return True, "policy always"
    use = inode_use_percent(inodes_used, inodes_total)
    if use >= threshold:
        return True, "inode use %.1f%% >= %.1f%%" % (use, threshold)
    return False, "inode use %.1f%% below %.1f%%" % (use, threshold)


@dataclass(frozen=True)
class CacheBudget:
    """The guard's limits, in inodes of the graphroot filesystem."""

    budget_inodes: int       # unused copies may hold this many inodes in all
    low_free_inodes: int     # below this many free inodes, evict at once, budget or not
    inodes_total: int

    def as_dict(self) -> dict:
        return {"budget_inodes": self.budget_inodes, "low_free_inodes": self.low_free_inodes,
                "inodes_total": self.inodes_total}


def cache_budget(inodes_total: int, budget_percent: float = DEFAULT_BUDGET_PERCENT,
                 low_free_percent: float = DEFAULT_LOW_FREE_PERCENT) -> CacheBudget:
    """The budget for a filesystem of ``inodes_total`` inodes (0: no fixed count, no limit)."""
    for name, value in (("budget_percent", budget_percent), ("low_free_percent", low_free_percent)):
        if not 0.0 <= float(value) <= 100.0:
            raise PolicyError("%s must be 0 to 100, got %r" % (name, value))
    if inodes_total <= 0:
        # btrfs and friends allocate inodes on demand: there is nothing to run out of.
        return CacheBudget(budget_inodes=-1, low_free_inodes=0, inodes_total=0)
    return CacheBudget(budget_inodes=int(inodes_total * float(budget_percent) / 100.0),
                       low_free_inodes=int(inodes_total * float(low_free_percent) / 100.0),
                       inodes_total=inodes_total)


@dataclass(frozen=True)
class CacheEntry:
    """An unused copy that may be evicted: past its grace, not kept, not in use."""

    layer_id: str
    inodes: int
    last_used: float   # when it was last seen in use, else when it was created


@dataclass(frozen=True)
class Eviction:
    layer_id: str
    inodes: int
    reason: str


# The guard has fallen behind when unused copies hold more than this many times its budget.
BEHIND_FACTOR = 2.0


def must_catch_up(cached_inodes: int, inodes_free: int, budget: CacheBudget) -> Tuple[bool, str]:
    """Whether the guard has fallen behind Podman, and why in words.

    While it keeps up the guard works at low priority and its deletions pause for Podman; once
    the cache holds more than BEHIND_FACTOR times its budget, or free inodes are below the low
    mark, it works at normal priority and without pauses until it has caught up: Podman waiting
    a little is better than Podman failing with ENOSPC.
    """
    if budget.budget_inodes >= 0 and cached_inodes > BEHIND_FACTOR * budget.budget_inodes:
        return True, "cache %d > %g x budget %d inodes" % (cached_inodes, BEHIND_FACTOR, budget.budget_inodes)
    if inodes_free < budget.low_free_inodes:
        return True, "free inodes %d < %d" % (inodes_free, budget.low_free_inodes)
    return False, "keeping up"


def lru_order(entries: Sequence[CacheEntry]) -> List[CacheEntry]:
    """Least recently used first; ties by layer id so the order is stable."""
    return sorted(entries, key=lambda entry: (entry.last_used, entry.layer_id))


def choose_evictions(candidates: Sequence[CacheEntry], cached_inodes: int, inodes_free: int,
                     budget: CacheBudget) -> List[Eviction]:
    """The copies to evict now, least recently used first, each with its reason.

    ``cached_inodes`` is what every unused copy holds (candidates and copies still in their
    grace); ``inodes_free`` is the filesystem's free inodes now.
    """
    chosen: List[Eviction] = []
    cached = cached_inodes
    free = inodes_free
    for entry in lru_order(candidates):
        if budget.budget_inodes >= 0 and cached > budget.budget_inodes:
            reason = "over budget: cache %d > %d inodes" % (cached, budget.budget_inodes)
        elif free < budget.low_free_inodes:
            reason = "low free inodes: %d < %d" % (free, budget.low_free_inodes)
        else:
            break
        chosen.append(Eviction(entry.layer_id, entry.inodes, reason))
        cached -= entry.inodes
        free += entry.inodes
    return chosen
