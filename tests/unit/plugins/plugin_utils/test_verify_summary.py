# -*- coding: utf-8 -*-
"""plugin_utils.verify_summary: the one summary line of the verify role and the rollout."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.filter.verify_summary import verify_summary
from ansible_collections.idmapguard.storage.plugins.plugin_utils.verify_summary import summary

FACTS = {"verdict": "shares", "reasons": [], "kernel": {"release": "6.1"}, "podman": {"version": "5.8.6"},
         "graphroot": {"inodes_used": 26, "inodes_total": 3952, "inodes_free": 3926, "fs_type": "ext4",
                       "path": "/var/lib/containers/storage", "mapped_copies": 0, "mapped_copy_inodes": 0},
         "canary": None, "proof": None}
BASE = ("idmapguard h: shares; inodes 26/3952 used (3926 free) on ext4 /var/lib/containers/storage; "
        "0 mapped copies holding 0 inodes; podman 5.8.6, kernel 6.1")


@pytest.mark.parametrize("change, helper, tail", [
    ({}, None, ""),
    ({}, {"present": True}, ""),
    ({}, {"present": False}, "; helper not installed yet"),
    ({"podman": {"version": None}}, None, None),
    ({"canary": {"new_mapped_layers": 1}}, None, "; canary added 1 copies"),
    ({"proof": {"ran": True, "summary": "passed"}}, None, "; proof passed"),
    ({"proof": {"ran": False, "summary": "x"}}, None, ""),
    ({"reasons": ["a", "b"]}, None, "; reasons: a | b"),
])
def test_summary(change, helper, tail):
    line = summary("h", dict(FACTS, **change), helper)
    if tail is None:
        assert line == BASE.replace("podman 5.8.6", "podman ?")
    else:
        assert line == BASE + tail


def test_filter():
    assert verify_summary(FACTS, host="h") == BASE
    with pytest.raises(AnsibleFilterError):
        verify_summary(FACTS)
