# -*- coding: utf-8 -*-
"""The remediate role's prune-now filter: mapped_layers' filesystem in, reclaim_policy's decision out."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.filter.prune_due import prune_due


def test_decision_and_use_from_the_report():
    fs = {"inodes_used": 850, "inodes_total": 1000, "inodes_free": 150}
    assert prune_due(fs, "threshold", 80) == {"due": True, "reason": "inode use 85.0% >= 80.0%",
                                              "inode_use_percent": 85.0}
    assert prune_due(fs, "threshold", "90")["due"] is False   # numbers arrive as strings from Jinja
    assert prune_due({"inodes_used": "3", "inodes_total": "0"}, "always", 80)["due"] is True


@pytest.mark.parametrize("fs, policy, threshold", [
    ([], "threshold", 80), ({"inodes_used": 1}, "threshold", 80), ({"inodes_used": 1, "inodes_total": 2}, "never", 80),
    ({"inodes_used": 1, "inodes_total": 2}, "threshold", "lots"),
])
def test_bad_input_is_a_filter_error(fs, policy, threshold):
    with pytest.raises(AnsibleFilterError):
        prune_due(fs, policy, threshold)
