# -*- coding: utf-8 -*-
"""plugin_utils.rollout: the per-host state machine, as tables.

`drive` runs a host's rollout the way playbooks/tasks/rollout_host.yml does: start, verify,
then every step of STEP_ORDER whose plan entry says `run`, feeding each the scripted result of
its module or role. Each case lists the steps that ran and what the record says."""

import copy
import json

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.filter.rollout import (
    FilterModule,
    rollout_advance,
    rollout_record,
    rollout_start,
    rollout_state,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap_support import DISABLE_CASE, host_facts_of
from ansible_collections.idmapguard.storage.plugins.module_utils.proof_verdict import counted_failures, judge
from ansible_collections.idmapguard.storage.plugins.module_utils.verdict import evaluate
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.advance import advance, fail
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.fold import fold
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.plan import STEP_ORDER, plan
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.record import record
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import (
    DEFAULT_HELPER,
    RolloutError,
    State,
    start,
)

# the steps that call idmap_support; podman_upgrade (upgrade_install, upgrade_rollback) gathers the same
# facts in the call that changed the package: PACKAGE_STEPS, counted apart (test_gathers_per_upgrade_path)
VERIFY_STEPS = ("reverify", "verify_changed")
PACKAGE_STEPS = ("upgrade_install", "upgrade_rollback")
GUARD_RUNNING = {"pid": 42, "updated": 1.0e9, "stale": False, "budget": {"budget_inodes": 1000},
                 "cache": {"copies": 2, "inodes": 300}, "evictions": {"total": 5, "inodes": 700}}


def facts(verdict="shares", copies=0, used=10, total=100, copy_inodes=0, reasons=(), codes=None, version="5.8.6",
          systemd=True, guard=None, canary=None, proof=None, disable_kept=None):
    return {"verdict": verdict, "reasons": list(reasons), "reason_codes": list(codes or ["c_" + verdict]),
            "remedy": "r_" + verdict,
            "graphroot": {"mapped_copies": copies, "inodes_used": used, "inodes_total": total,
                          "inodes_free": total - used, "mapped_copy_inodes": copy_inodes},
            "podman": {"version": version, "disable_idmap_env": {"set": bool(disable_kept), "kept": disable_kept}},
            "systemd": systemd, "guard": guard, "canary": canary, "proof": proof}


CANARY_OK = {"ran": True, "new_mapped_layers": 0, "inodes_delta": 0}
CANARY_COPIED = {"ran": True, "new_mapped_layers": 1, "inodes_delta": 300}
PROOF_OK = {"ran": True, "passed": True, "checks": {}, "failed_checks": [], "accepted_failures": []}
PROOF_COMMIT = {"ran": True, "passed": False, "checks": {"commit": {}}, "failed_checks": ["commit"], "accepted_failures": []}
KNOWN = {"commit": [{"id": "container-libs#1126"}]}
PROOF_ACCEPTED = dict(PROOF_COMMIT, passed=True, outcome="passed", accepted_failures=["commit"])
PROOF_KNOWN = dict(PROOF_COMMIT, passed=True, outcome="known_issue", known_issues=KNOWN)
PROOF_STRICT = dict(PROOF_COMMIT, passed=False, outcome="failed", known_issues=KNOWN, strict=True)
SHARES_PROVEN = facts("shares", copies=2, used=85, copy_inodes=200, canary=CANARY_OK, proof=PROOF_OK)
UNDO = {"path": "/etc/containers/storage.conf", "existed": True, "content": "[storage]\n", "mode": "0644",
        "owner": "0", "group": "0"}
CONFIGURED = {"action": "configured", "reason": "r", "conf_changed": True, "path": "/etc/containers/storage.conf",
              "changed_keys": ["storage.options.overlay.mount_program"], "undo": UNDO, "dropins": [],
              "probe_cache_cleared": []}
UNCHANGED = {"action": "unchanged", "reason": "r", "conf_changed": False, "path": None, "changed_keys": [],
             "undo": None, "dropins": [], "probe_cache_cleared": []}
APT_UPGRADE = ("podman:\n  Installed: 5.4.2+ds1-1\n  Candidate: 5.8.6+ds1-1\n  Version table:\n"
               "     5.8.6+ds1-1 500\n        500 http://deb.debian.org/debian sid/main amd64 Packages\n"
               " *** 5.4.2+ds1-1 500\n        500 http://deb.debian.org/debian trixie/main amd64 Packages\n"
               "        100 /var/lib/dpkg/status\n")
APT_NONE = ("podman:\n  Installed: 4.3.1+ds1-8+b1\n  Candidate: 4.3.1+ds1-8+b1\n  Version table:\n"
            " *** 4.3.1+ds1-8+b1 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n"
            "        100 /var/lib/dpkg/status\n")


OK = {"ok": True, "errno": None, "message": "ok"}
NO = {"ok": False, "errno": "EINVAL", "message": "no"}
HELPER = "/usr/local/libexec/idmapguard/idmapped-mount"
UNIT = "/etc/systemd/system/podman.service.d/10-disable.conf"


def gathered(mount_program=None, disable=False, kept=None, proof=None, copies=0, used=10):
    """Facts as idmap_support gathers them while the helper is missing (whole: the verdict is made
    again from them on the controller, idmap_support.with_probe), judged by the verdict rules."""
    out = facts(copies=copies, used=used, proof=proof)
    out["kernel"] = {"release": "6.18.4", "idmapped_mount": True, "overlay_idmapped_lower": True,
                     "probe": {"error": "the idmapped-mount helper is not installed at %s" % HELPER}}
    out["graphroot"].update(path="/var/lib/containers/storage", fs_type="ext4")
    out["podman"] = {"version": "5.8.6", "driver": "overlay", "mount_program": mount_program, "backport_declared": False,
                     "disable_idmap_env": {"set": disable, "where": [UNIT] if disable else [], "kept": kept},
                     "max_user_namespaces": 1000, "chrooted": False, "supports_shifting": True,
                     "probe_cache": {"present": False, "markers": {}, "files": {}, "stale": []},
                     "additional_image_stores": [], "unit_storage_conf": [],
                     "mount_program_marker": {"path": None, "content": None, "fuse_overlayfs": None}}
    hf = host_facts_of(out)
    if kept:
        hf.disable_idmap_kept = kept
    judged = evaluate(hf)
    out.update(verdict=judged.verdict, reasons=judged.reasons, reason_codes=judged.reason_codes, remedy=judged.remedy,
               shares_noncontiguous=judged.shares_noncontiguous)
    return out


def installed(**checks):
    """The helper role's idmapguard_helper where it installed the helper and ran verify's probe with it."""
    argv = [HELPER, "probe", "--uidmap", "0:1:1,5:5:1", "--gidmap", "0:1:1,5:5:1", "/var/lib/containers/storage"]
    probe = {"version": "0.1.0", "kernel": "6.18.4", "path": argv[-1], "fs_type": "ext4",
             "checks": dict({"mount_api": OK, "idmapped_mount": OK, "overlay_idmapped_lower": OK}, **checks)}
    return {"changed": True, "run_path": HELPER, "path": HELPER,
            "probe": {"argv": argv, "rc": 0, "stdout": json.dumps(probe), "stderr": ""}}


DISABLE_PROOF_OK = dict(PROOF_OK, why=DISABLE_CASE)
# a proof asked for (the operator's idmapguard_verify_proof) where the verdict gives it no case
NOT_RUN = {"ran": False, "passed": None, "would_run": False, "checks": {}, "failed_checks": []}
DISABLE_PROOF_FAILS = dict(PROOF_COMMIT, passed=False, why=DISABLE_CASE)
# a unit file configure edited (the one a unit's CONTAINERS_STORAGE_CONF names)
UNIT_CONF = "/etc/containers/podman-service-storage.conf"
UNIT_UNDO = dict(UNDO, path=UNIT_CONF)

# a role always leaves its result fact
UNSCRIPTED = {"remediate": {"remediate": {"pruned": False}}}
# what the remediate role's guard tasks add to it (idmapguard_remediate.guard): enabled, active,
# the started process's own state (test_rollout_guard_record.py has the table of outcomes)
GUARD_STARTED = {"installed": True, "check_mode": False, "enable": True, "status_wait": 60,
                 "artifact": {"path": "/a.pyz", "sha256": "0" * 64, "version": "1"},
                 "unit": {"UnitFileState": "enabled", "ActiveState": "active", "SubState": "running",
                          "MainPID": "77", "NRestarts": "0"},
                 "state": dict(GUARD_RUNNING, pid=77, running=True)}
GUARD_FILES_ONLY = dict(GUARD_STARTED, enable=False, unit={}, state=None)


def drive(before, options=None, results=None, check_mode=False, helper=None):
    """(steps run, idmap_support calls, final state). RESULTS: step -> result, or a list of
    results for a step that runs more than once (the verify steps take {"facts": ...})."""
    results = dict(results or {})
    helper = results.pop("_helper", helper)
    state = start("h", options or {}, check_mode)
    state.plan = plan(state)
    state = advance(state, "verify", {"facts": before, "helper": helper or {}})
    ran, calls = [], 1
    if not state.plan["act"]:
        return ran, calls, state
    for step in STEP_ORDER:
        if not state.plan[step]["run"]:
            continue
        ran.append(step)
        result = results.get(step, UNSCRIPTED.get(step, {}))
        if isinstance(result, list):
            result = result.pop(0)
        calls += step in VERIFY_STEPS
        state = advance(state, step, result)
    return ran, calls, state


def registered(step, result):
    """What STEP's tasks leave for the fold (rollout/fold.py RESULT_NAMES), given its scripted result."""
    if step in ("reverify", "verify_changed"):
        return {step: {"changed": False, "ansible_facts": {"idmapguard": result["facts"]}}}
    if step == "upgrade":
        return {"pkg_mgr": result.get("package_manager")}
    if step == "upgrade_list":
        return {"upgrade_list": {"rc": 0, "stdout": result.get("listing", "")},
                "upgrade_refresh": result.get("refresh", {"skipped": True})}
    if step == "upgrade_install":
        # podman_upgrade: `changed` is also true for the canary; podman.changed says whether the package did
        return {"upgrade_install": {"changed": True, "podman": {"changed": bool(result.get("changed"))},
                                    "ansible_facts": {"idmapguard": result["facts"]}}}
    if step == "configure":
        return {"configure": result["configure"]}
    if step == "rollback":
        return {"rollback": {"changed": False, "msg": "put back"}}
    if step == "upgrade_rollback":
        return {"upgrade_rollback": {"changed": True, "podman": {"changed": True},
                                     "ansible_facts": {"idmapguard": result["facts"]}}} if "facts" in result else {}
    if step == "remediate":
        return {"remediate": result["remediate"]}
    assert step == "guard_stop"
    return {"guard_stop": {"changed": True}}


def fold_drive(before, options=None, results=None, check_mode=False, helper=None):
    """As `drive`, the way playbooks/tasks/rollout_host.yml runs now: the tasks only register, and
    every read of `_igr` folds the options over what is registered so far (rollout/fold.py)."""
    results = dict(results or {})
    helper = results.pop("_helper", helper)
    seen = {"verify": {"changed": False, "ansible_facts": {"idmapguard": before}}, "helper": helper or {}}
    # before verify: the verify role runs on the start state
    assert fold(options or {}, "h", check_mode, {}).done == []
    state = fold(options or {}, "h", check_mode, seen)
    calls = 1
    while True:
        step = next((s for s in STEP_ORDER if state.plan[s]["run"]), None)
        if step is None:
            break
        result = results.get(step, UNSCRIPTED.get(step, {}))
        if isinstance(result, list):
            result = result.pop(0)
        seen.update(registered(step, result))
        calls += step in VERIFY_STEPS
        new = fold(options or {}, "h", check_mode, seen)
        assert len(new.done) > len(state.done), step  # every step's result moves the fold on
        state = new
    return [s for s in state.done if s != "verify"], calls, state


# name, facts before, options, scripted results, check mode -> steps, idmap_support calls, record subset
CASES = [
    ("converged, shares", facts(), {}, {}, False,
     [], 1, {"failed": False, "changes": [], "verdict": "shares"}),
    ("converged, copies below the threshold, no systemd", facts("needs_podman_upgrade", copies=3, used=50, systemd=False),
     {}, {}, False, [], 1, {"failed": False, "changes": []}),
    # a new helper runs verify's probe when installed: the verdict is made again from it, no second verify
    ("new helper: judged again from its probe", gathered(), {}, {"_helper": installed()}, False,
     [], 1, {"failed": False, "verdict": "shares", "changes": ["installed helper at %s" % HELPER]}),
    ("new helper, its probe says no idmapped lower: judged again", gathered(), {},
     {"_helper": installed(overlay_idmapped_lower=NO)}, False, ["remediate"], 1,
     {"failed": False, "verdict": "unsupported_kernel", "verdict_before": "unsupported_kernel"}),
    ("new helper, fixable: configure, one verify with the proof", gathered(mount_program="/usr/bin/fuse-overlayfs"), {},
     {"_helper": installed(), "configure": {"configure": CONFIGURED}, "verify_changed": {"facts": SHARES_PROVEN}},
     False, ["configure", "verify_changed", "remediate"], 2, {"failed": False, "verdict": "shares"}),
    # the operator's idmapguard_verify_proof: the first verify asked for the proof, which did not run (a host
    # to configure has no case for it), nor would now: judged again, no verify again (it was 3 calls)
    ("new helper, fixable, proof asked but not run: judged again, one verify after configure",
     gathered(mount_program="/usr/bin/fuse-overlayfs", proof=NOT_RUN), {},
     {"_helper": installed(), "configure": {"configure": CONFIGURED}, "verify_changed": {"facts": SHARES_PROVEN}},
     False, ["configure", "verify_changed", "remediate"], 2, {"failed": False, "verdict": "shares"}),
    # (no probe: a helper role without the probe arguments; or the proof's case the new verdict changes)
    ("new helper, no probe: verify again", facts(), {},
     {"_helper": {"changed": True, "run_path": "/p", "path": "/p"}, "reverify": {"facts": facts()}}, False,
     ["reverify"], 2, {"failed": False}),
    ("new helper, proof asked with a guessed verdict the probe changes: verify again",
     gathered(proof=dict(PROOF_OK, why="verdict shares")), {},
     {"_helper": installed(overlay_idmapped_lower=NO),
      "reverify": {"facts": facts("unsupported_kernel", systemd=False)}}, False,
     ["reverify"], 2, {"failed": False, "verdict": "unsupported_kernel"}),
    ("fixable: configure, verify with the canary and proof, prune", facts("fixable_by_config", copies=2, used=85),
     {}, {"configure": {"configure": CONFIGURED}, "verify_changed": {"facts": SHARES_PROVEN},
          "remediate": {"remediate": {"copies_found": 2, "copies_removed": 2, "inodes_freed": 200,
                                      "filesystem": {"inodes_used": 60, "inodes_free": 40, "inodes_total": 100}}}},
     False, ["configure", "verify_changed", "remediate"], 2,
     {"failed": False, "verdict": "shares", "mapped_copies_after": 0, "inodes_used_after": 60, "copies_removed": 2,
      "changes": ["edited /etc/containers/storage.conf: storage.options.overlay.mount_program",
                  "removed 2 mapped copies (200 inodes)"]}),
    ("fixable, proof never: plain verify", facts("fixable_by_config"), {"proof": "never"},
     {"configure": {"configure": CONFIGURED}, "verify_changed": {"facts": facts()}}, False,
     ["configure", "verify_changed"], 2, {"failed": False, "proof": None}),
    # still copying after configure: guarded (protection by default)
    ("fixable, configure changes nothing: no verify, guard", facts("fixable_by_config"), {},
     {"configure": {"configure": UNCHANGED}, "remediate": {"remediate": {"pruned": False, "guard": GUARD_STARTED}}},
     False, ["configure", "remediate"], 1,
     {"failed": False, "changes": ["installed and started the copy-cache guard"]}),
    ("fixable, configure skipped, no systemd", facts("fixable_by_config", systemd=False), {},
     {"configure": {"configure": dict(UNCHANGED, action="skipped", reason="operator said no")}}, False,
     ["configure"], 1, {"changes": ["not configured: operator said no"]}),
    ("fixable, check mode: no verify, no proof", facts("fixable_by_config"), {},
     {"configure": {"configure": CONFIGURED}}, True, ["configure"], 1,
     {"changes": ["would edit /etc/containers/storage.conf: storage.options.overlay.mount_program"], "failed": False}),
    ("proof fails (canary copied): rollback, host fails", facts("fixable_by_config", copies=3, used=90),
     {}, {"configure": {"configure": CONFIGURED},
          "verify_changed": {"facts": facts("copies_unexplained", canary=CANARY_COPIED, proof=PROOF_OK)}},
     False, ["configure", "verify_changed", "rollback"], 2,
     {"failed": True, "rolled_back": True, "verdict": "fixable_by_config",
      "error": "proof failed (a new non-contiguous map still added a copy); storage.conf was restored"}),
    ("proof check fails: rollback", facts("fixable_by_config"), {},
     {"configure": {"configure": CONFIGURED}, "verify_changed": {"facts": facts(canary=CANARY_OK, proof=PROOF_COMMIT)}},
     False, ["configure", "verify_changed", "rollback"], 2,
     {"failed": True, "error": "proof failed (commit); storage.conf was restored"}),
    ("proof check accepted", facts("fixable_by_config"), {"proof_accept": ["commit"]},
     {"configure": {"configure": CONFIGURED},
      "verify_changed": {"facts": facts(canary=CANARY_OK, proof=PROOF_ACCEPTED)}},
     False, ["configure", "verify_changed"], 2, {"failed": False}),
    ("proof check a known issue: passes, reported", facts("fixable_by_config"), {},
     {"configure": {"configure": CONFIGURED},
      "verify_changed": {"facts": facts(canary=CANARY_OK, proof=PROOF_KNOWN)}},
     False, ["configure", "verify_changed"], 2, {"failed": False, "known_issue": ["commit"]}),
    ("proof check a known issue, strict: rollback", facts("fixable_by_config"), {"proof_strict": True},
     {"configure": {"configure": CONFIGURED},
      "verify_changed": {"facts": facts(canary=CANARY_OK, proof=PROOF_STRICT)}},
     False, ["configure", "verify_changed", "rollback"], 2, {"failed": True, "known_issue": []}),
    # the first verify proves whether _CONTAINERS_OVERLAY_DISABLE_IDMAP is needed (proof_disable_idmap)
    ("disable_idmap only, proven in the first verify: configure removes it",
     gathered(disable=True, proof=DISABLE_PROOF_OK, copies=2, used=85), {},
     {"configure": {"configure": CONFIGURED}, "verify_changed": {"facts": SHARES_PROVEN}},
     False, ["configure", "verify_changed", "remediate"], 2, {"failed": False, "verdict": "shares"}),
    ("disable_idmap only, needed (the first verify's proof fails): kept",
     gathered(disable=True, proof=DISABLE_PROOF_FAILS, kept="the correctness proof fails without it: commit (r)"),
     {}, {"configure": {"configure": dict(UNCHANGED, action="skipped", reason="kept")}}, False,
     ["configure", "remediate"], 1, {"failed": False, "reason_codes": ["disable_idmap_deliberate"]}),
    ("disable_idmap only, new helper: the first verify's proof stands", gathered(disable=True, proof=DISABLE_PROOF_OK),
     {}, {"_helper": installed(), "configure": {"configure": CONFIGURED}, "verify_changed": {"facts": SHARES_PROVEN}},
     False, ["configure", "verify_changed", "remediate"], 2, {"failed": False}),
    # Facts without that proof: every verify the rollout makes before configure asks for it
    # (test_every_verify_before_configure_proves_whether_disable_idmap_is_needed; the operator's
    # idmapguard_verify_proof_disable_idmap is the verify role's, never read by the rollout), so here it
    # could not run: the variable is in the module's own process environment (no Podman without it to
    # prove with; configure has no unit to unset it in), and no other call is made to try again
    ("disable_idmap only, in the process environment: no proof possible, none tried again",
     dict(gathered(disable=True), podman=dict(gathered(disable=True)["podman"], disable_idmap_env={
         "set": True, "where": ["process environment"], "kept": None})), {},
     {"configure": {"configure": dict(UNCHANGED, not_fixed=["process environment"])}},
     False, ["configure", "remediate"], 1, {"failed": False, "verdict": "fixable_by_config"}),
    # and facts that lack it for any other reason: configure, then the proof after it, and a failed proof
    # puts the units back (as where the variable is one obstacle of several)
    ("disable_idmap only, facts without the proof: configure, proof after it, rolled back if it fails",
     facts("fixable_by_config", codes=["disable_idmap_env"]), {},
     {"configure": {"configure": CONFIGURED},
      "verify_changed": {"facts": facts("fixable_by_config", codes=["disable_idmap_env"], canary=CANARY_OK,
                                        proof=DISABLE_PROOF_FAILS)}},
     False, ["configure", "verify_changed", "rollback"], 2, {"failed": True, "rolled_back": True}),
    ("proof always, shares: one verify with the proof", facts(), {"proof": "always"},
     {"verify_changed": {"facts": facts(canary=CANARY_OK, proof=PROOF_OK)}}, False,
     ["verify_changed"], 2, {"failed": False, "noncontiguous_map_cost": 0}),
    ("proof always, still copies: no canary", facts("needs_podman_upgrade", copies=0, systemd=False),
     {"proof": "always"}, {}, False, [], 1, {"failed": False}),
    ("copies at the threshold: prune", facts("needs_podman_upgrade", copies=3, used=85, systemd=False), {},
     {"remediate": {"remediate": {"copies_found": 3, "copies_removed": 3, "inodes_freed": 30}}}, False,
     ["remediate"], 1, {"copies_removed": 3}),
    ("copies, threshold 40", facts("needs_podman_upgrade", copies=3, used=50, systemd=False),
     {"remediate_threshold": 40}, {}, False, ["remediate"], 1, {}),
    ("copies, remediate step off", facts("needs_podman_upgrade", copies=3, used=90, systemd=False),
     {"steps": ["verify"]}, {}, False, [], 1, {}),
    # --- the opt-in Podman upgrade
    ("upgrade: shares after, proven in the same verify", facts("needs_podman_upgrade", copies=3, used=10, version="5.4.2"),
     {"upgrade_podman": True, "guard": False},
     {"upgrade": {"package_manager": "apt"}, "upgrade_list": {"listing": APT_UPGRADE},
      "upgrade_install": {"changed": True, "facts": dict(SHARES_PROVEN)},
      "remediate": {"remediate": {"copies_found": 2, "copies_removed": 2, "inodes_freed": 20}}},
     False, ["upgrade", "upgrade_list", "upgrade_install", "remediate"], 1,
     {"failed": False, "verdict": "shares"}),
    ("upgrade: fixable after, configure, then proof", facts("needs_podman_upgrade", version="5.4.2", systemd=False),
     {"upgrade_podman": True},
     {"upgrade": {"package_manager": "apt"}, "upgrade_list": {"listing": APT_UPGRADE},
      "upgrade_install": {"changed": True, "facts": facts("fixable_by_config", canary=CANARY_COPIED, proof=None)},
      "configure": {"configure": CONFIGURED}, "verify_changed": {"facts": facts(canary=CANARY_OK, proof=PROOF_OK)}},
     False, ["upgrade", "upgrade_list", "upgrade_install", "configure", "verify_changed"], 2,
     {"failed": False}),
    ("upgrade: proof fails, previous Podman back", facts("needs_podman_upgrade", version="5.4.2", systemd=False),
     {"upgrade_podman": True},
     {"upgrade": {"package_manager": "apt"}, "upgrade_list": {"listing": APT_UPGRADE},
      "upgrade_install": {"changed": True, "facts": facts("copies_unexplained", canary=CANARY_COPIED, proof=PROOF_OK)},
      "upgrade_rollback": {"facts": facts("needs_podman_upgrade", version="5.4.2", systemd=False)}},
     False, ["upgrade", "upgrade_list", "upgrade_install", "upgrade_rollback"], 1,
     {"failed": True, "rolled_back": True, "verdict": "needs_podman_upgrade"}),
    ("upgrade: none offered, no guard possible", facts("needs_podman_upgrade", version="4.3.1", systemd=False),
     {"upgrade_podman": True}, {"upgrade": {"package_manager": "apt"}, "upgrade_list": {"listing": APT_NONE}},
     False, ["upgrade", "upgrade_list"], 1, {"failed": False}),
    ("upgrade: check mode plans only", facts("needs_podman_upgrade", version="5.4.2", systemd=False),
     {"upgrade_podman": True}, {"upgrade": {"package_manager": "apt"}, "upgrade_list": {"listing": APT_UPGRADE}},
     True, ["upgrade", "upgrade_list"], 1, {"failed": False}),
    ("upgrade: unknown package manager", facts("needs_podman_upgrade", systemd=False), {"upgrade_podman": True},
     {"upgrade": {"package_manager": "zypper"}}, False, ["upgrade"], 1, {"failed": False}),
    # --- protection by default: the guard
    ("copying host with systemd: guard installed", facts("needs_podman_upgrade", copies=0), {},
     {"remediate": {"remediate": {"copies_found": 0, "copies_removed": 0, "guard": GUARD_STARTED}}}, False,
     ["remediate"], 1,
     {"changes": ["installed and started the copy-cache guard"]}),
    ("copying host, guard running: left alone", facts("needs_podman_upgrade", copies=1, guard=GUARD_RUNNING), {},
     {}, False, [], 1, {"changes": []}),
    ("copying host, guard stale: installed again", facts("needs_podman_upgrade", guard=dict(GUARD_RUNNING, stale=True)),
     {}, {}, False, ["remediate"], 1, {}),
    ("copying host, opted out", facts("needs_podman_upgrade"), {"guard": False}, {}, False, [], 1, {}),
    ("copying host, guard step not selected", facts("needs_podman_upgrade"), {"steps": ["helper", "verify"]},
     {}, False, [], 1, {}),
    ("copying host without systemd: not guarded", facts("needs_podman_upgrade", systemd=False), {}, {}, False,
     [], 1, {}),
    ("copying host without systemd, files only", facts("needs_podman_upgrade", systemd=False),
     {"guard_enable": False}, {"remediate": {"remediate": {"pruned": False, "guard": GUARD_FILES_ONLY}}}, False,
     ["remediate"], 1, {"changes": ["installed the copy-cache guard (not enabled)"]}),
    ("copying host, check mode: would install", facts("needs_podman_upgrade"), {}, {}, True, [], 1, {}),
    ("shares, no copies, guard running: stopped", facts(guard=GUARD_RUNNING), {}, {}, False, ["guard_stop"], 1,
     {"changes": ["stopped and disabled the copy-cache guard (state file kept)"]}),
    ("shares, copies left, guard running: kept", facts(copies=2, guard=GUARD_RUNNING), {}, {}, False, [], 1, {}),
    ("shares, guard running, opted out: kept", facts(guard=GUARD_RUNNING), {"guard": False}, {}, False, [], 1, {}),
    ("fixed by configure: no guard", facts("fixable_by_config"), {},
     {"configure": {"configure": CONFIGURED}, "verify_changed": {"facts": facts(canary=CANARY_OK, proof=PROOF_OK)}},
     False, ["configure", "verify_changed"], 2, {}),
    ("proof failed: no guard, no prune", facts("fixable_by_config", copies=3, used=90), {},
     {"configure": {"configure": CONFIGURED},
      "verify_changed": {"facts": facts("copies_unexplained", copies=3, used=90, canary=CANARY_COPIED, proof=PROOF_OK)}},
     False, ["configure", "verify_changed", "rollback"], 2, {"failed": True}),
    ("operator's remediate_guard: installed every run", facts(guard=GUARD_RUNNING), {"remediate_guard": True},
     {}, False, ["remediate"], 1, {}),
]


@pytest.mark.parametrize("name,before,options,results,check_mode,steps,calls,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_transitions(name, before, options, results, check_mode, steps, calls, expected):
    ran, verify_calls, state = drive(before, options, copy.deepcopy(results), check_mode)
    # the fold over registered results (what the playbook does) takes the same steps to the same state
    assert fold_drive(before, options, copy.deepcopy(results), check_mode) == (ran, verify_calls, state)
    assert ran == steps
    assert verify_calls == calls
    # issue 19: idmap_support runs at most twice on every path (a package change gathers in its own call)
    assert verify_calls <= 2
    row = record(state)
    assert {key: row[key] for key in expected} == expected
    for step in STEP_ORDER:
        assert state.plan[step]["reason"], step


# name, facts before, options, check mode -> guard status, protected, words in why
GUARD_CASES = [
    ("shares, nothing", facts(), {}, False, "not_installed", True, "no guard is needed"),
    ("installed now", facts("needs_podman_upgrade"), {}, False, "started", True, "started by this rollout"),
    ("planned, guard tasks did not run", facts("needs_podman_upgrade"), {}, False, "not_installed", False,
     "guard tasks did not run"),
    ("running", facts("needs_podman_upgrade", guard=GUARD_RUNNING), {}, False, "running", True, "running"),
    ("stale", facts("needs_podman_upgrade", guard=dict(GUARD_RUNNING, stale=True), systemd=False), {}, False,
     "stale", False, "probably not running"),
    ("unreadable", facts("needs_podman_upgrade", guard={"error": "bad json"}, systemd=False), {}, False,
     "stale", False, "bad json"),
    ("no systemd", facts("needs_podman_upgrade", systemd=False), {}, False, "not_installed", False,
     "not guarded: no systemd"),
    ("opted out", facts("needs_podman_upgrade"), {"guard": False}, False, "not_installed", False,
     "not guarded: the operator opted out (idmapguard_rollout_guard is false)"),
    ("remediate_guard false", facts("needs_podman_upgrade"), {"remediate_guard": False}, False, "not_installed", False,
     "idmapguard_remediate_guard is false"),
    ("check mode", facts("needs_podman_upgrade"), {}, True, "not_installed", False, "would be installed"),
    ("files only", facts("needs_podman_upgrade", systemd=False), {"guard_enable": False}, False, "installed", False,
     "not enabled"),
    ("stopped", facts(guard=GUARD_RUNNING), {}, False, "stopped", True, "stopped and disabled"),
]


@pytest.mark.parametrize("name,before,options,check_mode,status,protected,why", GUARD_CASES,
                         ids=[c[0] for c in GUARD_CASES])
def test_guard_record(name, before, options, check_mode, status, protected, why):
    outcome = {"installed now": GUARD_STARTED, "files only": GUARD_FILES_ONLY}.get(name)
    results = {"remediate": {"remediate": {"pruned": False, "guard": outcome}}} if outcome else {}
    _ran, _calls, state = drive(before, options, results, check_mode)
    guard = record(state)["guard"]
    assert (guard["status"], guard["protected"]) == (status, protected)
    assert why in guard["why"]
    if before.get("guard") and not before["guard"].get("error"):
        assert guard["state"]["pid"] == 42


@pytest.mark.parametrize("guard_running,words", [
    (True, "no Podman >= 5.6 in this host's repositories: the guard keeps the store bounded"),
    (False, "no Podman >= 5.6 in this host's repositories; not guarded: no systemd"),
])
def test_no_upgrade_note_promises_a_bound_only_where_a_guard_runs(guard_running, words):
    before = facts("needs_podman_upgrade", version="4.3.1", systemd=False, guard=GUARD_RUNNING if guard_running else None)
    _ran, _calls, state = drive(before, {"upgrade_podman": True},
                                {"upgrade": {"package_manager": "apt"}, "upgrade_list": {"listing": APT_NONE}})
    assert record(state)["podman_upgrade"]["note"].startswith(words)


def test_the_remediate_role_gets_the_plans_decision():
    _ran, _calls, state = drive(facts("needs_podman_upgrade", copies=3, used=85, systemd=False), {}, {})
    state = start("h", {}, False)
    state = advance(state, "verify", {"facts": facts("needs_podman_upgrade", copies=3, used=85, systemd=False)})
    entry = state.plan["remediate"]
    assert entry["decision"] == {"due": True, "reason": "3 mapped copies; inode use 85.0% >= 80.0%"}
    assert entry["guard"] is False
    # another store than the facts describe: the role decides from its own report
    other = advance(start("h", {"remediate_graphroot": "/srv/s"}, False), "verify",
                    {"facts": facts("needs_podman_upgrade", copies=1, used=1, systemd=False)})
    assert other.plan["remediate"]["run"] and other.plan["remediate"]["decision"] is None


def test_after_an_upgrade_the_old_copies_are_pruned_whatever_the_use():
    _ran, _calls, state = drive(facts("needs_podman_upgrade", copies=3, used=5, version="5.4.2"),
                                {"upgrade_podman": True, "guard": False},
                                {"upgrade": {"package_manager": "apt"}, "upgrade_list": {"listing": APT_UPGRADE},
                                 "upgrade_install": {"changed": True, "facts": dict(SHARES_PROVEN, graphroot=dict(
                                     SHARES_PROVEN["graphroot"], inodes_used=5))}})
    assert "remediate" in state.done
    assert state.plan["remediate"]["decision"]["reason"].endswith("policy always")


def test_a_failure_in_the_configure_role_rolls_back_from_the_modules_undo():
    state = advance(start("h", {}, False), "verify", {"facts": facts("fixable_by_config")})
    failed = fail(state, "Restart the units", {"msg": "unit not found"},
                  storage_conf={"changed": True, "path": UNDO["path"], "undo": UNDO})
    assert failed.plan["rollback"]["run"]
    assert failed.plan["rollback"]["write"] == {k: UNDO[k] for k in ("path", "content", "mode", "owner", "group")}
    done = advance(failed, "rollback", {})
    row = record(done)
    assert (row["failed"], row["rolled_back"], row["error"]) == (True, True, "Restart the units: unit not found")
    # nothing written yet: nothing to put back
    assert not fail(state, "Verify", {"msg": "x"}).plan["rollback"]["run"]


def test_a_configure_task_failing_after_a_units_file_was_edited_puts_every_file_back():
    """Written before the role published its fact: storage.conf, one of two files units name (the
    loop failed at the second), and a systemd drop-in. The rescue's rollback puts back all three."""
    state = advance(start("h", {}, False), "verify", {"facts": facts("fixable_by_config")})
    unit_undo = {"path": "/etc/podman-unit.conf", "existed": True, "content": "[storage]\n", "mode": "0600",
                 "owner": "0", "group": "0"}
    unit_conf = {"failed": True, "results": [
        {"changed": True, "path": unit_undo["path"], "undo": unit_undo},
        {"failed": True, "msg": "permission denied", "path": "/etc/other.conf"}]}
    dropins = {"results": [{"changed": True, "dest": "/etc/systemd/system/podman.service.d/zz-idmapguard.conf"},
                           {"changed": False, "dest": "/etc/systemd/system/podman-restart.service.d/zz-idmapguard.conf"}]}
    failed = fail(state, "Edit the storage.conf a unit names", {"msg": "permission denied"},
                  storage_conf={"changed": True, "path": UNDO["path"], "undo": UNDO},
                  unit_conf=unit_conf, dropins=dropins)
    rollback = failed.plan["rollback"]
    assert rollback["run"]
    assert [w["path"] for w in rollback["writes"]] == [UNDO["path"], unit_undo["path"]]
    assert rollback["remove"] == ["/etc/systemd/system/podman.service.d/zz-idmapguard.conf"]
    assert rollback["daemon_reload"]  # a systemd drop-in was removed
    assert not fail(state, "t", {"msg": "m"}, unit_conf=unit_conf).plan["rollback"]["daemon_reload"]
    no_systemd = advance(start("h", {}, False), "verify", {"facts": facts("fixable_by_config", systemd=False)})
    assert not fail(no_systemd, "t", {"msg": "m"}, dropins=dropins).plan["rollback"]["daemon_reload"]
    # only a unit's file changed (storage.conf was already right): still rolled back
    only_unit = fail(state, "x", {"msg": "y"}, storage_conf={"changed": False, "path": UNDO["path"]}, unit_conf=unit_conf)
    assert only_unit.plan["rollback"]["run"] and only_unit.plan["rollback"]["write"] is None
    assert [w["path"] for w in only_unit.plan["rollback"]["writes"]] == [unit_undo["path"]]
    # through the fold, as the rescue passes it
    seen = {"verify": {"ansible_facts": {"idmapguard": facts("fixable_by_config")}}, "helper": {}}
    folded = fold({}, "h", False, seen, {"task": "t", "result": {"msg": "m"}, "storage_conf": None,
                                         "unit_conf": unit_conf, "dropins": dropins})
    assert [w["path"] for w in folded.plan["rollback"]["writes"]] == [unit_undo["path"]]
    assert folded.plan["rollback"]["remove"] == ["/etc/systemd/system/podman.service.d/zz-idmapguard.conf"]


def test_rollback_of_a_file_that_did_not_exist_removes_it_and_the_dropins():
    state = advance(start("h", {}, False), "verify", {"facts": facts("fixable_by_config")})
    state = advance(state, "configure", {"configure": dict(CONFIGURED, undo=dict(UNDO, existed=False, content=None),
                                                           dropins=["/etc/systemd/system/podman.service.d/x.conf"])})
    state = advance(state, "verify_changed", {"facts": facts(canary=CANARY_COPIED, proof=PROOF_OK)})
    assert state.plan["rollback"]["write"] is None
    assert state.plan["rollback"]["remove"] == [UNDO["path"], "/etc/systemd/system/podman.service.d/x.conf"]


def test_helper_path():
    assert start("h", {}, False).helper_path == DEFAULT_HELPER
    assert start("h", {"helper_dest": "/opt/h"}, False).helper_path == "/opt/h"
    assert start("h", {"steps": ["verify"], "verify_helper": "/opt/v", "helper_dest": "/opt/h"}, False).helper_path == "/opt/v"
    assert start("h", {"steps": ["verify"], "helper_dest": "/opt/h"}, False).helper_path == "/opt/h"
    installed = advance(start("h", {}, True), "verify",
                        {"facts": facts(), "helper": {"changed": True, "run_path": "/tmp/staged", "path": "/p"}})
    assert installed.helper_path == "/tmp/staged" and installed.plan["reverify"]["run"]
    assert start("h", {"steps": ["verify"]}, False).as_dict()["plan"] == {}
    assert plan(start("h", {"steps": ["verify"]}, False))["helper"]["missing"] == "fail"


@pytest.mark.parametrize("canary,proof,outcome,counted", [
    (CANARY_OK, PROOF_OK, "passed", []),
    (CANARY_COPIED, PROOF_OK, "failed", []),
    (CANARY_OK, PROOF_COMMIT, "failed", ["commit"]),
    (CANARY_OK, PROOF_ACCEPTED, "passed", []),
    (CANARY_OK, PROOF_KNOWN, "known_issue", []),
    (CANARY_OK, PROOF_STRICT, "failed", ["commit"]),
    (None, PROOF_OK, "failed", []),
    (CANARY_OK, None, "failed", []),
])
def test_one_definition_of_a_passed_proof(canary, proof, outcome, counted):
    """The module's `passed` (idmap_support.judge_failures) and the canary; nothing decided twice."""
    judged = judge(canary, proof)
    assert (judged["outcome"], judged["counted_failures"], judged["passed"]) == (outcome, counted, outcome != "failed")
    assert judge(None, None) is None
    assert judge({"ran": False}, {"ran": False}) is None


def test_counted_failures():
    assert counted_failures({"failed_checks": ["a", "b", "c"], "accepted_failures": ["a"],
                             "known_issues": {"b": []}}) == ["c"]
    assert counted_failures({"failed_checks": ["a", "b"], "known_issues": {"b": []}, "strict": True}) == ["a", "b"]


def test_state_round_trips_through_a_dict():
    results = {"configure": {"configure": CONFIGURED}, "verify_changed": {"facts": SHARES_PROVEN}}
    _ran, _calls, state = drive(facts("fixable_by_config"), {}, results)
    assert State.from_dict(state.as_dict()) == state


@pytest.mark.parametrize("options,words", [
    ({"steps": ["verify", "nonsense"]}, "unknown steps nonsense"),
    ({"proof": "sometimes"}, "idmapguard_rollout_proof must be one of"),
    ({"remediate_policy": "sometimes"}, "idmapguard_remediate_policy must be one of"),
    ({"remediate_threshold": "high"}, "must be a number"),
    ({"nonsense": 1}, "unknown rollout options: nonsense"),
])
def test_bad_options(options, words):
    with pytest.raises(RolloutError, match=words):
        start("h", options, False)
    with pytest.raises(AnsibleFilterError, match=words):
        rollout_start(options, host="h")


def test_filters():
    assert set(FilterModule().filters()) == {"rollout_start", "rollout_advance", "rollout_state", "rollout_record",
                                             "rollout_metrics_due"}
    # the operator's variables that are not set arrive as None
    state = rollout_start({"steps": None, "proof": None, "remediate_policy": None, "remediate_threshold": None},
                          host="h", check_mode="false")
    assert state["plan"]["helper"]["run"] and state["check_mode"] is False
    state = rollout_advance(state, "verify", facts=facts("needs_podman_upgrade", copies=2, used=80, systemd=False))
    assert state["plan"]["act"] is True
    assert state["plan"]["remediate"]["decision"]["reason"] == "2 mapped copies; inode use 80.0% >= 80.0%"
    failed = rollout_advance(state, "failed", task="Edit", result={"msg": "x"})
    assert rollout_record(failed)["error"] == "Edit: x"
    assert rollout_record(rollout_start({}, host="h"))["failed"] is False
    with pytest.raises(AnsibleFilterError, match="unknown rollout step"):
        rollout_advance(state, "dance")
    with pytest.raises(AnsibleFilterError, match="verify facts"):
        rollout_advance(state, "reverify", facts={"no": "verdict"})
    with pytest.raises(AnsibleFilterError, match="host is required"):
        rollout_start({})
    with pytest.raises(AnsibleFilterError, match="no host"):
        rollout_record({"before": {}})


def test_rollback_writes_back_the_files_units_name_and_removes_a_new_dropin():
    unit_file = dict(UNDO, path="/etc/containers/unit-storage.conf")
    dropin = dict(UNDO, path="/etc/containers/storage.rootful.conf.d/zz-idmapguard.conf", existed=False, content=None)
    state = advance(start("h", {}, False), "verify", {"facts": facts("fixable_by_config")})
    state = advance(state, "configure", {"configure": dict(CONFIGURED, undo=dropin, unit_undo=[unit_file])})
    state = advance(state, "verify_changed", {"facts": facts(canary=CANARY_COPIED, proof=PROOF_OK)})
    rollback = state.plan["rollback"]
    assert rollback["run"] and rollback["write"] is None
    assert rollback["writes"] == [{k: unit_file[k] for k in ("path", "content", "mode", "owner", "group")}]
    assert rollback["remove"] == [dropin["path"]]


def test_fold_stops_at_a_step_that_was_skipped_or_failed():
    seen = {"verify": {"ansible_facts": {"idmapguard": facts("fixable_by_config")}}, "helper": {}}
    assert fold({}, "h", False, seen).plan["configure"]["run"]
    seen["configure"] = CONFIGURED
    for result in ({"skipped": True}, {"failed": True, "ansible_facts": {"idmapguard": facts()}}, None):
        state = fold({}, "h", False, dict(seen, verify_changed=result))
        assert state.done == ["verify", "configure"] and state.plan["verify_changed"]["run"]
    # verify is complete only with the helper step's result (the helper role runs after the verify role)
    assert fold({}, "h", False, {"verify": seen["verify"]}).done == []
    assert fold({"steps": ["verify"]}, "h", False, {"verify": seen["verify"]}).done == ["verify"]


def test_fold_a_rescue_rolls_back_once():
    seen = {"verify": {"ansible_facts": {"idmapguard": facts("fixable_by_config")}}, "helper": {}}
    failure = {"task": "Restart the units", "result": {"msg": "unit not found"},
               "storage_conf": {"changed": True, "path": UNDO["path"], "undo": UNDO}}
    state = fold({}, "h", False, seen, failure)
    assert state.plan["rollback"]["run"] and not state.rolled_back
    done = fold({}, "h", False, dict(seen, rollback={"changed": False, "msg": "put back"}), failure)
    row = record(done)
    assert (row["failed"], row["rolled_back"], row["error"]) == (True, True, "Restart the units: unit not found")
    assert not done.plan["rollback"]["run"]
    # the proof's rollback ran, then a later task failed: the rescue does not roll back again
    copied = facts("copies_unexplained", canary=CANARY_COPIED, proof=PROOF_OK)
    seen.update(configure=CONFIGURED, verify_changed={"ansible_facts": {"idmapguard": copied}}, rollback={"changed": False})
    after = fold({}, "h", False, seen, {"task": "Write metrics", "result": {"msg": "x"}})
    assert after.done.count("rollback") == 1 and after.rolled_back and not after.plan["rollback"]["run"]


def test_fold_options_it_cannot_start_with():
    with pytest.raises(RolloutError, match="idmapguard_rollout_proof must be one of"):
        fold({"proof": "sometimes"}, "h", False, {})
    # in the rescue: the failure (of the task that read them) is the host's record
    state = fold({"proof": "sometimes"}, "h", False, {}, {"task": "Judge the host", "result": {"msg": "bad proof"}})
    assert record(state)["error"] == "Judge the host: bad proof"
    with pytest.raises(RolloutError, match="unknown step results: dance"):
        fold({}, "h", False, {"dance": {}})


def test_rollout_state_filter():
    state = rollout_state({"steps": None}, host="h", check_mode="false", verify=None, helper=None, configure=None)
    assert state["done"] == [] and state["plan"]["helper"]["run"]
    copying = facts("needs_podman_upgrade", copies=2, used=80, systemd=False)
    state = rollout_state({}, host="h", verify={"ansible_facts": {"idmapguard": copying}}, helper={})
    assert state["plan"]["remediate"]["run"] and state["done"] == ["verify"]
    with pytest.raises(AnsibleFilterError, match="host is required"):
        rollout_state({})
    with pytest.raises(AnsibleFilterError, match="unknown step results"):
        rollout_state({}, host="h", dance={})


def test_a_step_keeps_the_plan_entry_it_ran_with():
    """The remediate role reads its decision and guard while its own result already moved the
    fold on: the entry stays what it ran with, says it does not run again, and that it began
    (so the role's tasks after its result fact still run: rollout_steps.yml `run or began`)."""
    seen = {"verify": {"ansible_facts": {"idmapguard": facts("needs_podman_upgrade", copies=3, used=85)}}, "helper": {}}
    before = fold({}, "h", False, seen).plan["remediate"]
    assert before["run"] and before["guard"] and before["decision"]["due"]
    seen["remediate"] = {"copies_found": 3, "copies_removed": 3, "inodes_freed": 30,
                         "filesystem": {"inodes_used": 10, "inodes_free": 90, "inodes_total": 100}}
    after = fold({}, "h", False, seen)
    assert "began" not in before
    assert after.plan["remediate"] == dict(before, run=False, began=True)
    assert not after.plan["act"]


def test_the_record_names_the_unit_file_configure_edited_and_rolled_back():
    """configure edits the storage.conf a unit's CONTAINERS_STORAGE_CONF names (issue 20's unit case): the
    host's record says which file, and a rollback names it too."""
    edited = dict(CONFIGURED, conf_changed=False, path=None, changed_keys=[], undo=None,
                  unit_files=[UNIT_CONF], unit_undo=[UNIT_UNDO])
    _ran, _calls, state = drive(facts("fixable_by_config"), {},
                                {"configure": {"configure": edited}, "verify_changed": {"facts": SHARES_PROVEN}})
    assert record(state)["changes"] == ["edited %s (a unit's CONTAINERS_STORAGE_CONF)" % UNIT_CONF]
    _ran, _calls, state = drive(facts("fixable_by_config"), {}, {"configure": {"configure": edited}}, True)
    assert record(state)["changes"] == ["would edit %s (a unit's CONTAINERS_STORAGE_CONF)" % UNIT_CONF]
    both = dict(CONFIGURED, unit_files=[UNIT_CONF], unit_undo=[UNIT_UNDO])
    ran, _calls, state = drive(facts("fixable_by_config"), {}, {
        "configure": {"configure": both},
        "verify_changed": {"facts": facts("copies_unexplained", canary=CANARY_COPIED, proof=PROOF_OK)}})
    assert ran == ["configure", "verify_changed", "rollback"]
    assert record(state)["changes"][-1] == "rolled back %s, %s" % (UNDO["path"], UNIT_CONF)
    assert UNIT_CONF in record(state)["changes"][1]


@pytest.mark.parametrize("options,check_mode,proves", [
    ({}, False, True),
    ({}, True, False),
    ({"steps": ["helper", "verify", "configure", "remediate", "guard"]}, False, False),
    ({"steps": ["helper", "verify", "proof", "remediate", "guard"]}, False, False),
    ({"proof": "never"}, False, True),  # as the proof before configure always did
])
def test_every_verify_before_configure_proves_whether_disable_idmap_is_needed(options, check_mode, proves):
    options = dict(options, proof_accept=["commit"], disable_idmap_reason="ours")
    state = start("h", options, check_mode)
    # judged as the rollout's every proof: the rollout's accepted checks, the operator's reason
    judged = {"proof_disable_idmap": proves, "proof_accept": ["commit"], "proof_strict": False, "disable_idmap_reason": "ours"}
    assert {k: plan(state)["verify"][k] for k in judged} == judged
    verified = advance(state, "verify", {"facts": facts(), "helper": {"changed": True, "run_path": "/p"}})
    assert {k: verified.plan["reverify"][k] for k in judged} == judged
    assert {k: verified.plan["upgrade_install"]["verify"][k] for k in judged} == judged


# The upgrade paths, honestly counted: idmap_support calls (the table above), and every gather of the
# host's facts, podman_upgrade's own after each package change among them (one round trip each: the
# package change and its gather are one call, where before they were two).
@pytest.mark.parametrize("name,gathers,package_calls", [
    ("upgrade: shares after, proven in the same verify", 2, 1),
    ("upgrade: fixable after, configure, then proof", 3, 1),
    ("upgrade: proof fails, previous Podman back", 3, 2),
])
def test_gathers_per_upgrade_path(name, gathers, package_calls):
    _name, before, options, results, check_mode, steps, calls, _expected = next(c for c in CASES if c[0] == name)
    ran, verify_calls, state = drive(before, options, copy.deepcopy(results), check_mode)
    package = [s for s in ran if s in PACKAGE_STEPS and (s != "upgrade_rollback" or state.plan[s]["spec"])]
    assert (len(package), verify_calls + len(package)) == (package_calls, gathers)
    assert verify_calls <= 2 and ran == steps and verify_calls == calls


def test_the_upgrade_gathers_with_the_canary_and_the_proof_and_the_declared_backport():
    """What podman_upgrade's gather is told: the verify after an upgrade (the canary and the proof are
    due after an upgrade, the backport the plan declared, the first verify's proof of the variable);
    after a failed one, the previous Podman's plain facts (the operator's backport word again)."""
    state = advance(start("h", {"upgrade_podman": True, "upgrade_backports": ["5.4.2+ds1-2+b2"],
                                "proof_accept": ["commit"]}, False),
                    "verify", {"facts": facts("needs_podman_upgrade", version="4.3.1", systemd=False)})
    state = advance(state, "upgrade", {"package_manager": "apt"})
    listing = ("podman:\n  Installed: 4.3.1+ds1-8+b1\n  Candidate: 5.4.2+ds1-2+b2\n  Version table:\n"
               "     5.4.2+ds1-2+b2 500\n        500 http://deb.debian.org/debian trixie/main amd64 Packages\n"
               " *** 4.3.1+ds1-8+b1 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n"
               "        100 /var/lib/dpkg/status\n")
    state = advance(state, "upgrade_list", {"listing": listing})
    entry = state.plan["upgrade_install"]
    assert entry["run"] and (entry["spec"], entry["package_manager"]) == ("podman=5.4.2+ds1-2+b2", "apt")
    assert {k: entry["verify"][k] for k in ("canary", "proof", "proof_disable_idmap", "podman_backport", "proof_accept",
                                            "helper")} == {
        "canary": True, "proof": True, "proof_disable_idmap": True, "podman_backport": True,
        "proof_accept": ["commit"], "helper": DEFAULT_HELPER}
    failed = advance(state, "upgrade_install", {"changed": True, "facts": facts(
        "needs_podman_upgrade", version="5.4.2", canary=CANARY_COPIED, proof=PROOF_OK, systemd=False)})
    back = failed.plan["upgrade_rollback"]
    assert back["run"] and back["spec"] == "podman=4.3.1+ds1-8+b1"
    assert {k: back["verify"][k] for k in ("canary", "proof", "podman_backport")} == {
        "canary": False, "proof": False, "podman_backport": False}
    # the package did not change (already that version): no upgrade to judge, the facts still count
    same = advance(state, "upgrade_install", {"changed": False, "facts": facts("shares", version="5.4.2")})
    assert not same.upgrade["upgraded"] and same.now["podman"]["version"] == "5.4.2"
    assert not same.plan["upgrade_rollback"]["run"]
