# -*- coding: utf-8 -*-
"""plugin_utils.rollout.metrics: the metrics module runs only where it would change the file."""

from ansible_collections.idmapguard.storage.plugins.filter.rollout import rollout_metrics_due
from ansible_collections.idmapguard.storage.plugins.module_utils import metrics_textfile as mt
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.metrics import write_due

RECORD = {"host": "h", "verdict": "shares", "podman_version": "5.8.6", "mapped_copies_before": 2,
          "mapped_copies_after": 0, "noncontiguous_map_cost": 0, "inodes_total": 4000,
          "inodes_used_before": 3900, "inodes_used_after": 2000, "podman_upgrade": {}, "failed": False}


def test_due_exactly_where_the_module_would_change_the_file(tmp_path):
    dest = str(tmp_path / "tf")
    # no file yet: due; the module writes it
    assert write_due(RECORD, "0.3.0", mt.observe_host_file(dest))
    assert mt.write_host_metrics({"dest": dest, "record": RECORD, "helper_version": "0.3.0"})["changed"]
    seen = mt.observe_host_file(dest)
    # the same record and helper: the module would change nothing, so it is not run
    assert not write_due(RECORD, "0.3.0", seen)
    assert not mt.write_host_metrics({"dest": dest, "record": RECORD, "helper_version": "0.3.0"})["changed"]
    # anything the file shows that differs: due, and the module does change the file
    for record, helper in ((dict(RECORD, mapped_copies_after=1), "0.3.0"), (dict(RECORD, verdict="fixable_by_config"), "0.3.0"),
                           (RECORD, "0.4.0")):
        assert write_due(record, helper, seen)
        assert mt.write_host_metrics({"dest": dest, "record": record, "helper_version": helper}, check_mode=True)["changed"]


def test_not_looked_at_or_nowhere_to_write():
    assert write_due(RECORD, "", None)
    assert write_due(RECORD, "", {})
    assert not write_due(RECORD, "", {"dir": None, "sha256": None})


def test_filter(tmp_path):
    dest = str(tmp_path / "tf")
    mt.write_host_metrics({"dest": dest, "record": RECORD, "helper_version": ""})
    assert rollout_metrics_due(RECORD, "", mt.observe_host_file(dest)) is False
    assert rollout_metrics_due(RECORD, "", None) is True
