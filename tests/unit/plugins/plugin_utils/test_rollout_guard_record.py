# -*- coding: utf-8 -*-
"""The rollout record's guard entry comes from what the remediate role's guard tasks did
(`idmapguard_remediate.guard`, published after them), never from the plan; a guard is
protected only where systemd shows its unit active with a MainPID (docs/guard.md, "What the
rollout's report says about the guard").

Each row runs the fold the way playbooks/tasks/rollout_host.yml does (rollout/fold.py): the
verify facts, then the remediate role's fact as the role left it."""

import copy

import pytest

from ansible_collections.idmapguard.storage.plugins.plugin_utils.fleet_report import build_report
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.fold import fold
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.record import record

HOST = "h"
COPYING = {"verdict": "needs_podman_upgrade", "reasons": ["r"], "reason_codes": ["podman_too_old"], "remedy": "",
           "graphroot": {"mapped_copies": 0, "inodes_used": 10, "inodes_total": 100, "inodes_free": 90,
                         "mapped_copy_inodes": 0},
           "podman": {"version": "4.3.1"}, "systemd": True, "guard": None, "canary": None, "proof": None}
STALE = {"pid": 42, "updated": 1.0e9, "stale": True, "budget": {"budget_inodes": 1000},
         "cache": {"copies": 2, "inodes": 300}, "evictions": {"total": 5, "inodes": 700}}
ARTIFACT = {"path": "/usr/local/lib/idmapguard/idmapguard-guard-1.0.0-abcdef012345.pyz",
            "sha256": "abcdef0123456789" * 4, "version": "1.0.0"}
ACTIVE = {"UnitFileState": "enabled", "ActiveState": "active", "SubState": "running", "MainPID": "77",
          "NRestarts": "0"}
FAILED = dict(ACTIVE, ActiveState="failed", SubState="failed", MainPID="0", NRestarts="3")
RESTARTING = dict(ACTIVE, ActiveState="activating", SubState="auto-restart", MainPID="0")
OWN_STATE = dict(STALE, pid=77, updated=2.0e9, stale=False, running=True)
# the role's fact before its guard tasks ran (main.yml's "Record what was done")
PRUNED = {"pruned": False, "copies_found": 0, "copies_removed": 0, "inodes_freed": 0}


def outcome(unit=None, state=None, enable=True):
    """What guard.yml's last task adds to idmapguard_remediate."""
    return {"installed": True, "check_mode": False, "artifact": dict(ARTIFACT), "enable": enable,
            "unit": dict(unit) if unit is not None else {}, "state": state, "status_wait": 60}


def guard_entry(remediate, before=None, options=None):
    results = {"verify": {"changed": False, "ansible_facts": {"idmapguard": copy.deepcopy(before or COPYING)}},
               "helper": {}, "remediate": remediate}
    state = fold(options or {}, HOST, False, results)
    assert "remediate" in state.done and state.plan["remediate"]["guard"], state.plan["remediate"]
    return record(state)


# name, the role's fact -> status, protected, running, pid shown, words in why, the change line
CASES = [
    # the role published its fact, but guard.yml was skipped: the plan alone is no guard (the
    # earlier guard's state file is shown as what it is: stale)
    ("guard tasks skipped", dict(PRUNED), "stale", False, False, 42,
     "the remediate role's guard tasks did not run", None),
    ("installed, unit failed", dict(PRUNED, guard=outcome(FAILED)),
     "not_running", False, False, None, "NOT running: systemd reports it failed/failed (MainPID 0, 3 restarts)",
     "installed and enabled the copy-cache guard, but it is NOT running"),
    # a crash loop between two restarts: a state file of a dead process does not make it protected
    ("installed, crash loop", dict(PRUNED, guard=outcome(RESTARTING, dict(OWN_STATE, running=False))),
     "not_running", False, False, None, "activating/auto-restart", "but it is NOT running"),
    ("installed, not enabled (files only)", dict(PRUNED, guard=outcome(enable=False)),
     "installed", False, False, None, "not enabled", "installed the copy-cache guard (not enabled)"),
    ("started, state of its own", dict(PRUNED, guard=outcome(ACTIVE, OWN_STATE)),
     "started", True, True, 77, "running as pid 77 (systemd's MainPID)", "installed and started the copy-cache guard"),
    ("started, first pass not ended", dict(PRUNED, guard=outcome(ACTIVE, dict(STALE, running=False))),
     "starting", True, False, None, "started, first pass not ended: systemd runs it as pid 77 (active), "
     "but it wrote no state of its own within 60 s", "(first pass not ended)"),
    ("started, no state file at all", dict(PRUNED, guard=outcome(ACTIVE, None)),
     "starting", True, False, None, "first pass not ended", "(first pass not ended)"),
    # a live process wrote it, but not the unit's MainPID (a guard run by hand): not the unit's state
    ("started, state of another process", dict(PRUNED, guard=outcome(ACTIVE, dict(OWN_STATE, pid=99))),
     "starting", True, False, None, "first pass not ended", "(first pass not ended)"),
    ("started, not enabled at boot", dict(PRUNED, guard=outcome(dict(ACTIVE, UnitFileState="disabled"), OWN_STATE)),
     "started", True, True, 77, "NOT enabled at boot (UnitFileState disabled)", "installed and started"),
]


@pytest.mark.parametrize("name,remediate,status,protected,running,pid,words,change", CASES, ids=[c[0] for c in CASES])
def test_the_guard_entry_is_what_the_guard_tasks_did(name, remediate, status, protected, running, pid, words, change):
    # the facts before hold an earlier guard's stale state: never shown as the started one's
    row = guard_entry(remediate, dict(COPYING, guard=dict(STALE)))
    guard = row["guard"]
    assert (guard["status"], guard["protected"], guard["running"]) == (status, protected, running), guard
    assert words in guard["why"], guard["why"]
    assert (guard["state"] or {}).get("pid") == pid
    if status in ("started", "starting", "not_running", "installed"):
        assert guard["artifact"]["sha256"] == ARTIFACT["sha256"]
    assert "started" not in guard["why"] or status in ("started", "starting")
    started_lines = [c for c in row["changes"] if "copy-cache guard" in c]
    assert started_lines == ([c for c in started_lines if change in c] if change else []), row["changes"]
    assert len(started_lines) == (1 if change else 0)


def test_the_record_follows_the_fact_as_the_role_extends_it():
    # the fold replays on every read: before guard.yml ran the step is over (the role's fact is
    # there) and the guard is not started; after it, the same fold shows what it did
    before = guard_entry(dict(PRUNED))["guard"]
    after = guard_entry(dict(PRUNED, guard=outcome(ACTIVE, OWN_STATE)))["guard"]
    assert (before["status"], before["protected"]) == ("not_installed", False)
    assert (after["status"], after["protected"], after["state"]["pid"]) == ("started", True, 77)


@pytest.mark.parametrize("name,remediate,guarded,line", [
    ("started", dict(PRUNED, guard=outcome(ACTIVE, OWN_STATE)), 1, "installed, enabled and started by this rollout"),
    ("first pass not ended", dict(PRUNED, guard=outcome(ACTIVE, None)), 1, "started, first pass not ended"),
    ("not running", dict(PRUNED, guard=outcome(dict(ACTIVE, ActiveState="failed", MainPID="0"))), 0,
     "installed and enabled by this rollout, but NOT running"),
    ("guard tasks skipped", dict(PRUNED), 0, "not guarded: "),
])
def test_the_fleet_summary_counts_protected_hosts(name, remediate, guarded, line):
    del name
    report = build_report([guard_entry(remediate)])
    assert (report["summary"]["guarded"], report["summary"]["unguarded"]) == (guarded, 1 - guarded)
    assert report["hosts"][0]["guard"]["line"].startswith(line), report["hosts"][0]["guard"]["line"]
