# -*- coding: utf-8 -*-
"""plugin_utils.rollout.first_verify: the rollout's first verify, and whether anything follows it
(the action rollout_verify's decisions), as tables."""

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils import metrics_textfile as mt
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.first_verify import next_steps, verify_args
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.fold import fold
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.record import record
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import DEFAULT_HELPER, RolloutError

HELPER_SEEN = {"present": True, "version": "idmapped-mount 0.1.0"}
CURRENT = {"path": DEFAULT_HELPER, "run_path": DEFAULT_HELPER, "staged": False, "checksum": "c", "version": "v",
           "source": "controller", "src": "/b", "arch": "x86_64", "changed": False, "current": True, "problem": ""}


def verified(verdict="shares", copies=0, helper=None, metrics=None):
    facts = {"verdict": verdict, "reasons": [], "reason_codes": ["c_" + verdict], "remedy": "r",
             "graphroot": {"mapped_copies": copies, "inodes_used": 10, "inodes_total": 100, "inodes_free": 90,
                           "mapped_copy_inodes": 0},
             "podman": {"version": "5.8.6", "disable_idmap_env": {"set": False, "kept": None}},
             "systemd": True, "guard": None, "canary": None, "proof": None}
    out = {"changed": False, "ansible_facts": {"idmapguard": facts}, "helper": dict(helper or HELPER_SEEN)}
    if metrics is not None:
        out["metrics"] = metrics
    return out


# where configure and the proof may run, the first verify also proves whether _CONTAINERS_OVERLAY_DISABLE_IDMAP
# is needed (issue 19: no separate idmap_support for it), judged with the rollout's accepted checks
PROVES = {"proof_disable_idmap": True, "proof_accept": [], "proof_strict": False}


@pytest.mark.parametrize("options, helper, missing, helper_step, proves", [
    ({}, DEFAULT_HELPER, "report", True, PROVES),
    ({"helper_dest": "/opt/im", "proof_accept": ["commit"]}, "/opt/im", "report", True,
     dict(PROVES, proof_accept=["commit"])),
    ({"steps": ["verify"], "verify_helper": "/srv/im"}, "/srv/im", "fail", False, {}),
    ({"steps": ["verify", "remediate"]}, DEFAULT_HELPER, "fail", False, {}),
])
def test_verify_args(options, helper, missing, helper_step, proves):
    assert verify_args(options, "h", False) == {"module": dict({"helper": helper, "helper_missing": missing}, **proves),
                                                "helper_step": helper_step}
    # never in check mode (the proof creates containers)
    assert "proof_disable_idmap" not in verify_args(options, "h", True)["module"]


def test_verify_args_refuses_bad_options():
    with pytest.raises(RolloutError, match="idmapguard_rollout_proof"):
        verify_args({"proof": "sometimes"}, "h", False)


def steady_metrics(tmp_path, options, helper, **seen):
    """The host's metrics file as the metrics module would write it for this state."""
    dest = str(tmp_path / "tf")
    state = fold(options, "h", False, {"verify": verified(**seen), "helper": helper})
    mt.write_host_metrics({"dest": dest, "record": record(state), "helper_version": HELPER_SEEN["version"]})
    return mt.observe_host_file(dest)


# (name, options, verdict, copies, helper known current, metrics file steady, expected why)
CASES = [
    ("converged: nothing follows", {}, "shares", 0, True, True, []),
    ("helper not known current: the helper step runs", {}, "shares", 0, False, True, ["helper"]),
    ("no helper step: a helper record is not needed", {"steps": ["verify"]}, "shares", 0, False, True, []),
    ("fixable by config: the steps run", {}, "fixable_by_config", 0, True, True, ["steps"]),
    ("copies to reclaim: remediate runs", {"remediate_policy": "always"}, "shares", 2, True, True, ["steps"]),
    ("a copying host: the guard goes on", {}, "needs_podman_upgrade", 0, True, True, ["steps"]),
    ("a copying host, guard off", {"guard": False}, "needs_podman_upgrade", 0, True, True, []),
    ("metrics file differs", {}, "shares", 0, True, False, ["metrics"]),
]


@pytest.mark.parametrize("name, options, verdict, copies, current, steady, why", CASES, ids=[c[0] for c in CASES])
def test_next_steps(tmp_path, name, options, verdict, copies, current, steady, why):
    del name
    helper = CURRENT if current and "helper" in options.get("steps", ["helper"]) else None
    metrics = steady_metrics(tmp_path, options, helper, verdict=verdict, copies=copies)
    if not steady:
        metrics = dict(metrics, sha256="0" * 64)
    out = next_steps(options, "h", False, verified(verdict, copies, metrics=metrics), helper, "auto")
    assert {key: out[key] for key in ("act", "why")} == {"act": bool(why), "why": why}
    # the record only where nothing follows (else the record task folds the steps' results)
    assert (out["record"] is None) == bool(why)


def test_no_metrics_dir_no_metrics_step():
    assert next_steps({}, "h", False, verified(), CURRENT, "")["why"] == []
    # not looked at: the module decides, so the step runs
    assert next_steps({}, "h", False, verified(), CURRENT, "auto")["why"] == ["metrics"]


# converged hosts of several kinds: the record the first verify makes is the one the record task
# (`_igr | rollout_record` in rollout_host.yml: the filters rollout_state and rollout_record over the
# registered result of the action, which carries `rollout` beside idmap_support's result) would make
RECORD_CASES = [
    ("shares", {}, "shares", 0),
    ("shares, check mode", {}, "shares", 0),
    ("copying, guard off", {"guard": False}, "needs_podman_upgrade", 0),
    ("verify only, a copy left", {"steps": ["verify"]}, "shares", 3),
    ("a copying host, verify only, proof always", {"steps": ["verify"], "proof": "always"}, "copies", 0),
]


@pytest.mark.parametrize("name, options, verdict, copies", RECORD_CASES, ids=[c[0] for c in RECORD_CASES])
def test_the_first_verify_makes_the_record_the_record_task_would(name, options, verdict, copies):
    from ansible_collections.idmapguard.storage.plugins.filter.rollout import rollout_record, rollout_state
    check_mode = "check mode" in name
    helper = CURRENT if "helper" in options.get("steps", ["helper"]) else None
    result = verified(verdict, copies)
    out = next_steps(options, "h", check_mode, result, helper, "")
    assert out["act"] is False and out["record"] is not None
    registered = dict(result, rollout=dict(out, options=options, helper=helper))
    folded = rollout_state(registered["rollout"]["options"], host="h", check_mode=check_mode, verify=registered,
                           helper=helper)
    assert out["record"] == rollout_record(folded)
    assert out["record"]["verdict"] == verdict and out["record"]["host"] == "h"
