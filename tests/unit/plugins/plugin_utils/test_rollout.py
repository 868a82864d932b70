# -*- coding: utf-8 -*-
"""plugin_utils.rollout: which steps act on a host, and its record, as tables."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.filter.rollout import (
    FilterModule,
    rollout_record_filter,
    rollout_steps_filter,
)
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout import (
    RecordInputs,
    StepInputs,
    host_record,
    proof_result,
    rollout_steps,
)


def facts(verdict="shares", copies=0, used=10, total=100, copy_inodes=0, reasons=(), version="5.8.6"):
    return {"verdict": verdict, "reasons": list(reasons), "reason_codes": ["c_" + verdict], "remedy": "r_" + verdict,
            "graphroot": {"mapped_copies": copies, "inodes_used": used, "inodes_total": total,
                          "mapped_copy_inodes": copy_inodes},
            "podman": {"version": version}}


CONVERGED = facts()
# (inputs, act, reverify, configure, proof, remediate run, remediate due)
STEP_CASES = [
    ("converged host", StepInputs(facts=CONVERGED), False, False, False, False, False, False),
    ("new helper", StepInputs(facts=CONVERGED, helper_changed=True), True, True, False, False, False, False),
    ("new helper, helper step off", StepInputs(facts=CONVERGED, helper_changed=True, steps=["verify"]),
     False, False, False, False, False, False),
    ("fixable", StepInputs(facts=facts("fixable_by_config")), True, False, True, False, False, False),
    ("fixable, configure off", StepInputs(facts=facts("fixable_by_config"), steps=["helper", "verify"]),
     False, False, False, False, False, False),
    ("proof always", StepInputs(facts=CONVERGED, proof="always"), True, False, False, True, False, False),
    ("proof always, check mode", StepInputs(facts=CONVERGED, proof="always", check_mode=True),
     False, False, False, False, False, False),
    # a changed storage.conf makes the proof due, but only configure changes it
    ("proof changed, conf changed", StepInputs(facts=CONVERGED, conf_changed=True), False, False, False, True, False, False),
    ("proof never", StepInputs(facts=CONVERGED, conf_changed=True, proof="never"), False, False, False, False, False, False),
    ("copies below threshold", StepInputs(facts=facts("needs_podman_upgrade", copies=3, used=50)),
     False, False, False, False, True, False),
    ("copies at threshold", StepInputs(facts=facts("needs_podman_upgrade", copies=3, used=80)),
     True, False, False, False, True, True),
    ("copies, threshold 40", StepInputs(facts=facts("needs_podman_upgrade", copies=3, used=50), remediate_threshold=40),
     True, False, False, False, True, True),
    ("copies, policy always", StepInputs(facts=facts("needs_podman_upgrade", copies=3, used=1), remediate_policy="always"),
     True, False, False, False, True, True),
    ("copies, guard", StepInputs(facts=facts("needs_podman_upgrade", copies=3, used=1), remediate_guard=True),
     True, False, False, False, True, True),
    ("copies, other store", StepInputs(facts=facts("needs_podman_upgrade", copies=3, used=1), remediate_graphroot="/srv/s"),
     True, False, False, False, True, True),
    ("no copies, policy always", StepInputs(facts=facts(copies=0), remediate_policy="always"),
     False, False, False, False, False, False),
    ("copies unknown", StepInputs(facts={"verdict": "shares", "graphroot": {"inodes_used": 90, "inodes_total": 100}}),
     True, False, False, False, True, True),
    ("copies, remediate off", StepInputs(facts=facts(copies=3, used=90), steps=["verify"]),
     False, False, False, False, False, False),
]


@pytest.mark.parametrize("name,inputs,act,reverify,configure,proof,remediate,due", STEP_CASES,
                         ids=[c[0] for c in STEP_CASES])
def test_rollout_steps(name, inputs, act, reverify, configure, proof, remediate, due):
    plan = rollout_steps(inputs)
    assert (plan["act"], plan["reverify"]["run"], plan["configure"]["run"], plan["proof"]["run"],
            plan["remediate"]["run"], plan["remediate"]["due"]) == (act, reverify, configure, proof, remediate, due)
    for step in ("reverify", "configure", "proof", "remediate"):
        assert plan[step]["reason"]


def test_remediate_reason_comes_from_the_reclaim_policy():
    plan = rollout_steps(StepInputs(facts=facts(copies=2, used=85)))
    assert plan["remediate"]["due_reason"] == "inode use 85.0% >= 80.0%"


UPGRADE_CASES = [
    # name, inputs, act, upgrade, configure, proof, remediate
    ("upgrade off", StepInputs(facts=facts("needs_podman_upgrade", copies=3, used=10)),
     False, False, False, False, True),
    ("upgrade on, not yet run", StepInputs(facts=facts("needs_podman_upgrade", copies=3, used=10), upgrade_podman=True),
     True, True, False, False, True),
    ("upgrade on, host already shares", StepInputs(facts=facts("shares", copies=0), upgrade_podman=True),
     False, False, False, False, False),
    ("upgraded, now shares: proof runs", StepInputs(facts=facts("needs_podman_upgrade", copies=3), upgrade_podman=True,
                                                    upgrade={"upgraded": True}, after=facts("shares", copies=3)),
     True, True, False, True, True),
    ("upgraded, now fixable_by_config: configure", StepInputs(
        facts=facts("needs_podman_upgrade", copies=3), upgrade_podman=True, upgrade={"upgraded": True},
        after=facts("fixable_by_config", copies=3)),
     True, True, True, True, True),
    ("upgraded, proof never", StepInputs(facts=facts("needs_podman_upgrade", copies=3), upgrade_podman=True,
                                         upgrade={"upgraded": True}, proof="never", after=facts("shares")),
     True, True, False, False, True),
    ("proof failed after upgrade: nothing pruned", StepInputs(
        facts=facts("needs_podman_upgrade", copies=3, used=95), upgrade_podman=True,
        upgrade={"upgraded": True, "proof_failed": True}, after=facts("shares", copies=3)),
     True, True, False, True, False),
    ("check mode: upgrade planned, no proof", StepInputs(
        facts=facts("needs_podman_upgrade", copies=3), upgrade_podman=True, check_mode=True),
     True, True, False, False, True),
]


@pytest.mark.parametrize("name,inputs,act,upgrade,configure,proof,remediate", UPGRADE_CASES,
                         ids=[c[0] for c in UPGRADE_CASES])
def test_rollout_steps_with_the_upgrade(name, inputs, act, upgrade, configure, proof, remediate):
    plan = rollout_steps(inputs)
    assert (plan["act"], plan["upgrade"]["run"], plan["configure"]["run"], plan["proof"]["run"],
            plan["remediate"]["run"]) == (act, upgrade, configure, proof, remediate)
    assert plan["upgrade"]["reason"]


def test_record_of_a_failed_proof_after_an_upgrade():
    upgrade = {"upgraded": True, "proof_failed": True, "rolled_back": True,
               "error": "proof failed after upgrading Podman 5.4.2 -> 5.8.6; Podman 5.4.2 installed again"}
    record = host_record(RecordInputs(host="h", before=facts("needs_podman_upgrade"), after=facts("shares"),
                                      podman_upgrade=upgrade))
    assert (record["failed"], record["rolled_back"], record["error"]) == (True, True, upgrade["error"])
    assert record["podman_upgrade"] == upgrade
    plain = host_record(RecordInputs(host="h", before=facts("needs_podman_upgrade")))
    assert (plain["failed"], plain["rolled_back"], plain["podman_upgrade"]) == (False, False, {})


BEFORE = facts("fixable_by_config", copies=4, used=90, copy_inodes=400, reasons=["uses fuse-overlayfs"], version="5.8.5")
AFTER = facts("shares", copies=1, used=60, copy_inodes=100, reasons=[], version="5.8.6")


def test_record_of_a_fixed_host():
    record = host_record(RecordInputs(host="h1", before=BEFORE, after=AFTER, changes=["edited /etc/x"],
                                      helper={"changed": True, "path": "/usr/local/libexec/h"}))
    assert record == {
        "host": "h1", "check_mode": False, "verdict_before": "fixable_by_config", "verdict": "shares",
        "reasons": ["fixed: uses fuse-overlayfs"], "reason_codes": ["c_shares"], "remedy": "r_shares",
        "podman_version": "5.8.6", "inodes_total": 100, "inodes_used_before": 90, "inodes_used_after": 60,
        "mapped_copies_before": 4, "mapped_copies_after": 1, "copies_removed": 3, "inodes_freed": 300,
        "noncontiguous_map_cost": None, "proof": None, "known_issue": [], "rolled_back": False,
        "changes": ["installed helper at /usr/local/libexec/h", "edited /etc/x"], "failed": False, "error": "",
        "podman_upgrade": {}, "guard": None, "store_integrity": {}}


# (inputs, expected subset of the record)
RECORD_CASES = [
    ("nothing known yet", RecordInputs(host="h"),
     {"verdict_before": None, "verdict": None, "reasons": [], "reason_codes": [], "remedy": "", "podman_version": "",
      "inodes_total": None, "mapped_copies_after": None, "copies_removed": 0, "inodes_freed": 0}),
    ("verdict unchanged: no 'fixed:'", RecordInputs(host="h", before=BEFORE, after=BEFORE),
     {"reasons": ["uses fuse-overlayfs"], "copies_removed": 0}),
    ("remediation's own numbers win", RecordInputs(host="h", before=BEFORE, after=BEFORE,
                                                   remediated={"copies_removed": 4, "inodes_freed": 410}),
     {"copies_removed": 4, "inodes_freed": 410}),
    ("more copies after: none removed", RecordInputs(host="h", before=AFTER, after=BEFORE), {"copies_removed": 0}),
    ("check mode helper", RecordInputs(host="h", check_mode=True, helper={"changed": True, "path": "/p"}),
     {"changes": ["would install helper at /p"], "check_mode": True}),
    ("helper step off", RecordInputs(host="h", steps=["verify"], helper={"changed": True, "path": "/p"}), {"changes": []}),
    ("proof ran", RecordInputs(host="h", proof={"ran": True, "inodes_delta": 0}), {"noncontiguous_map_cost": 0}),
    ("proof did not run", RecordInputs(host="h", proof={"ran": False, "inodes_delta": 7}), {"noncontiguous_map_cost": None}),
    ("rolled back", RecordInputs(host="h", rolled_back=True),
     {"failed": True, "rolled_back": True,
      "error": "proof failed (a new non-contiguous map still added a copy); storage.conf was restored"}),
    ("rolled back, checks failed", RecordInputs(host="h", rolled_back=True,
                                                proof={"ran": True, "failed_checks": ["start", "file_caps"]}),
     {"failed": True, "error": "proof failed (start, file_caps); storage.conf was restored"}),
    ("failed task", RecordInputs(host="h", failed_task="Edit", failed_result={"msg": "refused"}),
     {"failed": True, "error": "Edit: refused"}),
    ("failed task, stderr only", RecordInputs(host="h", failed_task="Run", failed_result={"stderr": "boom"}),
     {"failed": True, "error": "Run: boom"}),
    ("failed task, nothing said", RecordInputs(host="h", failed_task="Run", failed_result={}),
     {"failed": True, "error": "Run: failed"}),
]


@pytest.mark.parametrize("name,inputs,expected", RECORD_CASES, ids=[c[0] for c in RECORD_CASES])
def test_host_record(name, inputs, expected):
    record = host_record(inputs)
    assert {key: record[key] for key in expected} == expected


def test_filters():
    assert set(FilterModule().filters()) == {"rollout_steps", "rollout_record", "rollout_proof"}
    # role defaults not visible to the play arrive as None
    plan = rollout_steps_filter(facts(copies=2, used=80), steps=["remediate"], remediate_policy=None,
                                remediate_threshold=None, check_mode="false")
    assert plan["act"] is True and plan["remediate"]["due_reason"] == "inode use 80.0% >= 80.0%"
    with pytest.raises(AnsibleFilterError, match="unknown reclaim policy"):
        rollout_steps_filter(facts(copies=2), remediate_policy="sometimes")
    with pytest.raises(AnsibleFilterError):
        rollout_steps_filter(["not", "facts"])
    record = rollout_record_filter({"host": "h", "before": BEFORE, "after": AFTER, "proof": None},
                                   failed_task="Edit", failed_result={"msg": "x"})
    assert record["error"] == "Edit: x" and record["verdict"] == "shares"
    assert rollout_record_filter({"host": "h"})["failed"] is False
    with pytest.raises(AnsibleFilterError, match="need a host"):
        rollout_record_filter({"before": {}})


ISSUE_1126 = {"id": "container-libs#1126", "reference": "container-libs PR #1126", "fixed_in": "Podman 6.1.2"}


def _after_proof(outcome, passed, known=None, new_copies=0, strict=False):
    failed = sorted(known or {}) if outcome != "passed" else []
    return {"verdict": "shares",
            "canary": {"ran": True, "new_mapped_layers": new_copies, "inodes_delta": 0},
            "proof": {"ran": True, "passed": passed, "outcome": outcome, "failed_checks": failed or ["commit"]
                      if outcome != "passed" else [], "known_issues": known or {}, "strict": strict,
                      "checks": {"commit": {"ok": outcome == "passed"}}, "summary": outcome}}


# (facts after the proof step, passed, outcome, the record's known_issue, rolled back by the playbook)
PROOF_CASES = [
    ("every check held", _after_proof("passed", True), True, "passed", []),
    # the default rollout of a 5.8.6 host: #1126 on commit is known, the host keeps its change
    ("known upstream bug", _after_proof("known_issue", True, {"commit": [ISSUE_1126]}), True, "known_issue",
     ["commit"]),
    # strict: the same failure fails the proof; the record does not call it a kept known issue
    ("strict", _after_proof("failed", False, {"commit": [ISSUE_1126]}, strict=True), False, "failed", []),
    # a failure the table does not predict
    ("unpredicted", _after_proof("failed", False), False, "failed", []),
    # the canary saw a copy: fails whatever the proof says
    ("canary copied", _after_proof("known_issue", True, {"commit": [ISSUE_1126]}, new_copies=1), False, "failed",
     []),
    ("nothing ran", {"verdict": "shares"}, False, "failed", []),
]


@pytest.mark.parametrize("name,after,passed,outcome,known", PROOF_CASES, ids=[c[0] for c in PROOF_CASES])
def test_proof_result_and_record(name, after, passed, outcome, known):
    proof = proof_result(after)
    assert (proof["passed"], proof["outcome"]) == (passed, outcome)
    record = host_record(RecordInputs(host="h", before=BEFORE, after=after, proof=proof, rolled_back=not passed))
    assert record["known_issue"] == known
    assert record["failed"] is (not passed)
    if known:
        assert record["verdict"] == "shares" and record["proof"]["known_issues"]["commit"][0]["fixed_in"]
