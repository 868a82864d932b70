# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Slices as AWX makes them, and the canary gate under slicing (plugin_utils/slicing.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.filter.rollout_slice import rollout_slice
from ansible_collections.idmapguard.storage.plugins.plugin_utils.slicing import (
    SlicingError, canary_host, rollout_batches, slice_hosts,
)

# inventory order is not name order: AWX slices by name
INVENTORY = ["web-b", "web-a", "db-1", "db-2", "app-3", "app-1", "app-10"]


def awx_slice(hosts, number, count):
    """What AWX's Inventory.get_script_data does: enabled hosts by name, [number-1::count]."""
    return sorted(hosts)[number - 1::count]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 9])
def test_slices_are_awx_slices_and_partition_the_hosts(count):
    slices = [slice_hosts(INVENTORY, INVENTORY, number, count) for number in range(1, count + 1)]
    for number, hosts in enumerate(slices, 1):
        assert sorted(hosts) == awx_slice(INVENTORY, number, count)
        assert hosts == [h for h in INVENTORY if h in hosts]          # the pattern's order kept
    assert sorted(h for hosts in slices for h in hosts) == sorted(INVENTORY)


@pytest.mark.parametrize("number,count,expected", [
    (None, None, INVENTORY),          # no slicing
    (None, 3, INVENTORY),             # an AWX slice: split already, the count only gates the canary
    (2, 3, ["app-10", "db-2"]),       # sorted: app-1 app-10 app-3 db-1 db-2 web-a web-b -> [1::3]
])
def test_slice_hosts_table(number, count, expected):
    assert slice_hosts(INVENTORY, INVENTORY, number, count) == [h for h in INVENTORY if h in expected]


def test_slicing_is_over_the_inventory_then_the_pattern():
    # AWX slices the inventory and applies the limit after: a pattern narrows a slice, it does
    # not re-split
    assert slice_hosts(["db-1", "db-2"], INVENTORY, 1, 3) == ["db-1"]
    assert slice_hosts(["db-1", "db-2"], INVENTORY, 2, 3) == ["db-2"]
    assert slice_hosts(["db-1", "db-2"], INVENTORY, 3, 3) == []


@pytest.mark.parametrize("number,count", [(0, 3), (4, 3), ("x", 3), (1, 0), (1, None)])
def test_bad_slice_numbers(number, count):
    with pytest.raises(SlicingError):
        slice_hosts(INVENTORY, INVENTORY, number, count)


def test_canary_host_is_the_first_by_name_and_in_slice_one():
    assert canary_host(INVENTORY) == ["app-1"]
    assert canary_host(INVENTORY)[0] in slice_hosts(INVENTORY, INVENTORY, 1, 3)
    assert canary_host([]) == []


@pytest.mark.parametrize("batches,canary_done,count,expected", [
    (None, False, None, [1, "10%", "50%", "100%"]),
    (None, False, 3, [1, "10%", "50%", "100%"]),      # each slice keeps its canary unless told
    (None, True, 3, ["10%", "50%", "100%"]),          # the canary job passed: no second canary
    ([1], True, 3, ["100%"]),
    (["25%", "100%"], True, 3, ["25%", "100%"]),
    (["100%"], False, None, ["100%"]),                # unsliced: the operator's batches
    (["1", "100%"], True, None, ["100%"]),
])
def test_rollout_batches(batches, canary_done, count, expected):
    assert rollout_batches(batches, canary_done=canary_done, slice_count=count) == expected


@pytest.mark.parametrize("batches", [["100%"], [2, "100%"], ["10%"]])
def test_a_sliced_run_without_a_canary_is_refused_unless_the_canary_is_done(batches):
    with pytest.raises(SlicingError, match="canary_done"):
        rollout_batches(batches, canary_done=False, slice_count=3)
    assert rollout_batches(batches, canary_done=True, slice_count=3) == batches


def test_filter():
    assert rollout_slice(INVENTORY, INVENTORY, slice=1, slice_count=3) == {
        "hosts": ["web-b", "db-1", "app-1"], "batches": [1, "10%", "50%", "100%"]}
    assert rollout_slice(INVENTORY, INVENTORY, canary_only=True) == {"hosts": ["app-1"], "batches": [1]}
    with pytest.raises(AnsibleFilterError, match="canary_only and canary_done"):
        rollout_slice(INVENTORY, INVENTORY, canary_only=True, canary_done=True)
    with pytest.raises(AnsibleFilterError, match="canary batch"):
        rollout_slice(INVENTORY, INVENTORY, slice_count=3, batches=["100%"])


def test_filter_without_a_canary_batch_verify_and_remediate():
    # remediate's ["100%"] in a slice: no canary gate, the batches as given
    assert rollout_slice(INVENTORY, INVENTORY, slice=3, slice_count=3, batches=["100%"], canary=False) == {
        "hosts": ["web-a", "app-3"], "batches": ["100%"]}
