# -*- coding: utf-8 -*-
"""The prune-now decision and the copy-cache rules (budget, LRU order, low free inodes)."""

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import (
    CacheBudget, CacheEntry, PolicyError, cache_budget, choose_evictions, inode_use_percent, lru_order,
    must_catch_up, prune_due,
)


@pytest.mark.parametrize("policy, threshold, used, total, due, reason", [
    ("always", 80, 0, 1000, True, "policy always"),
    ("always", 80, 0, 0, True, "policy always"),
    ("threshold", 80, 800, 1000, True, "inode use 80.0% >= 80.0%"),
    ("threshold", 80, 799, 1000, False, "inode use 79.9% below 80.0%"),
    ("threshold", 80, 7999, 10000, True, "inode use 80.0% >= 80.0%"),   # rounded as reported
    ("threshold", 0, 0, 1000, True, "inode use 0.0% >= 0.0%"),
    ("threshold", 100, 999, 1000, False, "inode use 99.9% below 100.0%"),
    ("threshold", 80, 80, 100, True, "inode use 80.0% >= 80.0%"),
    ("threshold", 80, 79, 100, False, "inode use 79.0% below 80.0%"),
    ("threshold", 80.0, 100, 100, True, "inode use 100.0% >= 80.0%"),
    # rounded to one decimal first, as reported: 79.96% counts as 80.0%
    ("threshold", 80, 7996, 10000, True, "inode use 80.0% >= 80.0%"),
    ("threshold", 80, 7994, 10000, False, "inode use 79.9% below 80.0%"),
    # no fixed inode count (btrfs): never due by use, except at threshold 0
    ("threshold", 80, 5, 0, False, "inode use 0.0% below 80.0%"),
    ("threshold", 0, 0, 0, True, "inode use 0.0% >= 0.0%"),
])
def test_prune_due(policy, threshold, used, total, due, reason):
    assert prune_due(policy, threshold, used, total) == (due, reason)


@pytest.mark.parametrize("args", [
    ("sometimes", 80, 1, 10), ("threshold", -1, 1, 10), ("threshold", 101, 1, 10),
    ("threshold", 80, -1, 10),
])
def test_prune_due_rejects_nonsense(args):
    with pytest.raises(PolicyError):
        prune_due(*args)


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="unknown reclaim policy 'sometimes'"):
        prune_due("sometimes", 80, 1, 2)


def test_inode_use_percent():
    assert inode_use_percent(1, 3) == 33.3 and inode_use_percent(0, 0) == 0.0


def test_budget_is_a_share_of_the_filesystem():
    budget = cache_budget(100000, budget_percent=10, low_free_percent=5)
    assert budget == CacheBudget(budget_inodes=10000, low_free_inodes=5000, inodes_total=100000)
    # no fixed inode count (btrfs): no limit, never low
    assert cache_budget(0).budget_inodes == -1 and cache_budget(0).low_free_inodes == 0
    with pytest.raises(PolicyError):
        cache_budget(1000, budget_percent=150)


def _entries():
    return [CacheEntry("c", 100, 30.0), CacheEntry("a", 100, 10.0), CacheEntry("b", 100, 20.0),
            CacheEntry("d", 100, 20.0)]


def test_lru_order_oldest_use_first_ties_by_id():
    assert [e.layer_id for e in lru_order(_entries())] == ["a", "b", "d", "c"]


def test_within_budget_and_enough_free_evicts_nothing():
    budget = CacheBudget(budget_inodes=400, low_free_inodes=50, inodes_total=1000)
    assert choose_evictions(_entries(), cached_inodes=400, inodes_free=500, budget=budget) == []


def test_over_budget_evicts_least_recently_used_until_within():
    budget = CacheBudget(budget_inodes=250, low_free_inodes=0, inodes_total=1000)
    chosen = choose_evictions(_entries(), cached_inodes=400, inodes_free=500, budget=budget)
    assert [e.layer_id for e in chosen] == ["a", "b"]
    assert chosen[0].reason == "over budget: cache 400 > 250 inodes"
    assert chosen[1].reason == "over budget: cache 300 > 250 inodes"


def test_copies_in_grace_count_against_the_budget_but_are_not_candidates():
    budget = CacheBudget(budget_inodes=250, low_free_inodes=0, inodes_total=1000)
    # 600 cached, of which 200 in grace (not candidates): all four candidates go, still over.
    chosen = choose_evictions(_entries(), cached_inodes=600, inodes_free=500, budget=budget)
    assert [e.layer_id for e in chosen] == ["a", "b", "d", "c"]


def test_low_free_inodes_evicts_at_once_within_budget():
    budget = CacheBudget(budget_inodes=10000, low_free_inodes=250, inodes_total=1000)
    chosen = choose_evictions(_entries(), cached_inodes=400, inodes_free=20, budget=budget)
    assert [e.layer_id for e in chosen] == ["a", "b", "d"]
    assert chosen[0].reason == "low free inodes: 20 < 250" and chosen[2].reason == "low free inodes: 220 < 250"


def test_unlimited_budget_only_low_free_counts():
    budget = cache_budget(0)
    assert choose_evictions(_entries(), cached_inodes=10 ** 9, inodes_free=0, budget=budget) == []


def test_no_candidates_nothing_chosen():
    budget = CacheBudget(budget_inodes=0, low_free_inodes=10 ** 6, inodes_total=1000)
    assert choose_evictions([], cached_inodes=500, inodes_free=0, budget=budget) == []


def test_catch_up_beyond_twice_the_budget_or_below_the_low_mark():
    budget = CacheBudget(budget_inodes=1000, low_free_inodes=500, inodes_total=10000)
    assert must_catch_up(2000, 5000, budget) == (False, "keeping up")  # over budget: the normal case
    behind, why = must_catch_up(2001, 5000, budget)
    assert behind and "2001" in why and "1000" in why
    behind, why = must_catch_up(0, 499, budget)
    assert behind and "499 < 500" in why
    assert must_catch_up(10 ** 9, 0, cache_budget(0)) == (False, "keeping up")  # no fixed inode count
