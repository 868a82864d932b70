# -*- coding: utf-8 -*-
"""reclaim_policy.prune_due: the prune-now decision, as a table."""

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import inode_use_percent, prune_due


@pytest.mark.parametrize("policy,threshold,used,total,due,reason", [
    ("always", 80, 0, 100, True, "policy always"),
    ("always", 80, 0, 0, True, "policy always"),
    ("threshold", 80, 80, 100, True, "inode use 80.0% >= 80.0%"),
    ("threshold", 80, 79, 100, False, "inode use 79.0% below 80.0%"),
    ("threshold", 80.0, 100, 100, True, "inode use 100.0% >= 80.0%"),
    # rounded to one decimal first, as reported: 79.96% counts as 80.0%
    ("threshold", 80, 7996, 10000, True, "inode use 80.0% >= 80.0%"),
    ("threshold", 80, 7994, 10000, False, "inode use 79.9% below 80.0%"),
    # no fixed inode count (btrfs): never due by use
    ("threshold", 80, 5, 0, False, "inode use 0.0% below 80.0%"),
    ("threshold", 0, 0, 0, True, "inode use 0.0% >= 0.0%"),
])
def test_prune_due(policy, threshold, used, total, due, reason):
    assert prune_due(policy, threshold, used, total) == (due, reason)


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="unknown reclaim policy 'sometimes'"):
        prune_due("sometimes", 80, 1, 2)


def test_inode_use_percent():
    assert inode_use_percent(1, 3) == 33.3 and inode_use_percent(0, 0) == 0.0
