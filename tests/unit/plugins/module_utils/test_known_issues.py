# -*- coding: utf-8 -*-
"""known_issues: the table of upstream bugs on the sharing path and what it predicts (table tests)."""

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils import known_issues
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap_support import judge_failures
from ansible_collections.idmapguard.storage.plugins.module_utils.sharing_proof import CHECKS

CAP_1126 = [{"kind": "commit_capability"}, {"kind": "commit_capability_eoverflow"}]


def test_every_entry_is_complete():
    kinds = {"commit_failed", "commit_layer_owner", "commit_capability", "commit_start", "commit_owner_inside",
             "commit_capability_eoverflow", "commit_capability_use"} | set(CHECKS)
    ids = [issue["id"] for issue in known_issues.KNOWN_ISSUES]
    assert len(ids) == len(set(ids))
    for issue in known_issues.KNOWN_ISSUES:
        assert issue["check"] in CHECKS
        assert set(issue["symptoms"]) <= kinds, issue["id"]
        first, fixed = issue["podman_affected"]
        assert fixed is None or tuple(first) < tuple(fixed)
        for key in ("title", "reference", "workaround", "lab", "storage_affected"):
            assert issue[key], (issue["id"], key)
        assert "fixed_in" in issue


@pytest.mark.parametrize("version,predicted", [
    ("5.5.2", False),          # before idmapped mounts for any map: the proof has no business failing
    ("5.6.0", True),
    ("5.8.6", True),           # sid: measured
    ("6.0.3", True),           # 6.0 backport refused (EOL)
    ("6.1.1", True),           # experimental: released before the 6.1 backport
    ("6.1.1+ds1-1+b1", True),  # a Debian version string
    ("6.1.2", False),          # carries c/storage 1.64.1: a failure there is a regression
    ("7.0.0", False),
    (None, False),             # unknown Podman: the table cannot say
    ("", False),
])
def test_1126_by_version(version, predicted):
    found = known_issues.explain("commit", [p["kind"] for p in CAP_1126], version)
    assert bool(found) is predicted
    if predicted:
        assert [i["id"] for i in found] == ["container-libs#1126"]
        assert "6.1.2" in found[0]["fixed_in"] and "#1126" in found[0]["reference"]


@pytest.mark.parametrize("kinds,expected", [
    (["commit_capability", "commit_capability_eoverflow"], ["container-libs#1126"]),
    (["commit_capability"], ["container-libs#1126"]),
    (["commit_layer_owner", "commit_owner_inside"], ["container-libs#914"]),
    (["commit_layer_owner", "commit_capability"], ["container-libs#914", "container-libs#1126"]),
    # any problem no entry explains: a real failure
    (["commit_capability", "commit_capability_use"], []),   # a use error other than EOVERFLOW
    (["commit_failed"], []),                                # podman commit itself failed
    ([], []),
])
def test_every_problem_must_be_explained(kinds, expected):
    assert [i["id"] for i in known_issues.explain("commit", kinds, "5.8.6")] == expected


def test_914_is_open_on_every_sharing_podman():
    assert known_issues.explain("commit", ["commit_layer_owner"], "9.0.0")[0]["fixed_in"] is None
    assert known_issues.explain("commit", ["commit_layer_owner"], "5.4.2") == []


def test_other_checks_are_not_predicted():
    for name in ("start", "ownership", "file_caps"):
        assert known_issues.explain(name, [name], "5.8.6") == []
        # a kind of the commit check does not make another check's failure known
        assert known_issues.explain(name, ["commit_capability"], "5.8.6") == []


def _proof(**failed):
    checks = {name: {"ok": True, "problems": [], "message": "ok", "reference": "r"} for name in CHECKS}
    for name, kinds in failed.items():
        checks[name] = {"ok": False, "problems": [{"kind": k, "text": k} for k in kinds], "message": "bad",
                        "reference": "r", "workaround": "w"}
    return {"checks": checks, "failed_checks": [n for n in CHECKS if n in failed]}


@pytest.mark.parametrize("failed,accept,strict,version,outcome,passed,known", [
    ({}, [], False, "5.8.6", "passed", True, []),
    # the default rollout on 5.8.6: #1126 on commit is known, the proof passes
    ({"commit": ["commit_capability", "commit_capability_eoverflow"]}, [], False, "5.8.6", "known_issue", True,
     ["commit"]),
    # strict: the same failure fails
    ({"commit": ["commit_capability", "commit_capability_eoverflow"]}, [], True, "5.8.6", "failed", False,
     ["commit"]),
    # fixed Podman: the same symptoms are a regression
    ({"commit": ["commit_capability", "commit_capability_eoverflow"]}, [], False, "6.1.2", "failed", False, []),
    # unpredicted failure next to a known one: fails
    ({"commit": ["commit_capability"], "ownership": ["ownership"]}, [], False, "5.8.6", "failed", False,
     ["commit"]),
    # the operator's accept list still works, also under strict
    ({"ownership": ["ownership"]}, ["ownership"], True, "5.8.6", "passed", True, []),
    ({"commit": ["commit_failed"]}, [], False, "5.8.6", "failed", False, []),
])
def test_judge_failures(failed, accept, strict, version, outcome, passed, known):
    proof = _proof(**failed)
    judge_failures(proof, accept, strict, version)
    assert (proof["outcome"], proof["passed"], sorted(proof["known_issues"])) == (outcome, passed, known)
    assert proof["strict"] is strict
    for name in known:
        assert proof["checks"][name]["known_issues"][0]["id"].startswith("container-libs#")
    assert proof["summary"].startswith({"passed": "passed", "known_issue": "passed with known", "failed": "FAILED"}[
        outcome])
