# -*- coding: utf-8 -*-
"""Prometheus' own tool judges what the collection ships: every metrics file the collection
writes (`promtool check metrics`, which also lints names, types and help) and the alerting
rules (`promtool check rules`, and `promtool test rules` with sample series for every alert).
promtool is Debian's `prometheus` package (requirements/debian-metrics.txt); `make test-metrics`."""

import os
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.idmapguard.storage.plugins.module_utils import metrics_textfile as mt
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.guard_state import GuardState

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RULES = os.path.join(REPO, "extensions", "prometheus", "idmapguard.rules.yml")
RULE_TESTS = os.path.join(HERE, "idmapguard.rules.test.yml")


def promtool(*args, stdin=None):
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (make deps does)")
    return subprocess.run([tool, *args], input=stdin, capture_output=True, text=True, check=False)


def guard_file(tmp_path):
    """The guard's file as a pass writes it: GuardState's status, evictions of both reasons."""
    state = GuardState(str(tmp_path / "guard-state.json"))
    state.status = {"updated": 1764700000.25, "passes": 12, "catching_up": False, "staging_left": 0,
                    "stranded": [{"path": "/s/stranded-1/x.stranded-EPERM", "errno": "EPERM"}],
                    "store": {"graphroot": "/var/lib/containers/storage"},
                    "budget": {"budget_inodes": 395, "low_free_inodes": 395, "inodes_total": 3952},
                    "cache": {"copies": 3, "inodes": 360, "in_use_copies": 2, "all_copies": 5},
                    "filesystem": {"inodes_total": 3952, "inodes_used": 1200, "inodes_free": 2752}}
    state.record_eviction({"layer_id": "a", "inodes": 120, "reason": "over budget: cache 480 > 395 inodes"})
    state.record_eviction({"layer_id": "b", "inodes": 120, "reason": "low free inodes: 300 < 395"})
    return mt.render(mt.guard_metrics(state.as_dict()["status"]))


HOST_RECORDS = [
    {"host": "a", "verdict": "needs_podman_upgrade", "podman_version": "4.3.1", "mapped_copies_after": 4,
     "noncontiguous_map_cost": 812, "inodes_total": 3952, "inodes_used_after": 1500,
     "podman_upgrade": {"package_manager": "apt", "target": None}},
    {"host": "b", "verdict": "shares", "podman_version": "5.8.6", "mapped_copies_before": 0,
     "noncontiguous_map_cost": 0, "inodes_total": 3952, "inodes_used_before": 300},
    {"host": "c", "failed": True},
]


@pytest.mark.parametrize("name", ["guard"] + ["host-%s" % r["host"] for r in HOST_RECORDS])
def test_promtool_check_metrics_on_every_file_the_collection_writes(tmp_path, name):
    if name == "guard":
        text = guard_file(tmp_path)
    else:
        record = next(r for r in HOST_RECORDS if "host-" + r["host"] == name)
        text = mt.render(mt.host_metrics(record, helper_version="0.3.0"))
    out = promtool("check", "metrics", stdin=text)
    print(text)
    # promtool prints lint findings (naming, units, _total, help) and exits 1 on any of them
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), out.stdout + out.stderr


def test_promtool_check_metrics_does_fail_on_a_convention_breach():
    # the check above can fail: a gauge named like a counter is a lint finding
    out = promtool("check", "metrics", stdin="# HELP x_total h\n# TYPE x_total gauge\nx_total 1\n")
    assert out.returncode != 0


def test_promtool_check_rules():
    out = promtool("check", "rules", RULES)
    print(out.stdout, out.stderr)
    assert out.returncode == 0 and "SUCCESS: 5 rules found" in out.stdout


def test_promtool_test_rules_every_alert_has_sample_series():
    with open(RULES) as handle:
        alerts = {rule["alert"] for group in yaml.safe_load(handle)["groups"] for rule in group["rules"]}
    with open(RULE_TESTS) as handle:
        tests = yaml.safe_load(handle)["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests for case in test["alert_rule_test"] if not case["exp_alerts"]}
    assert alerts == firing == quiet            # each alert seen firing and seen quiet
    out = promtool("test", "rules", RULE_TESTS)
    print(out.stdout, out.stderr)
    assert out.returncode == 0 and "SUCCESS" in out.stdout
