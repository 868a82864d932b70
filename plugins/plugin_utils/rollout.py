# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's decisions for one host: which steps act (and so whether the host needs any
step at all), and the host's record for the fleet report. The playbook's tasks only run what
`rollout_steps` says and pass `host_record` its inputs (plugins/filter/rollout.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import prune_due

ALL_STEPS = ["helper", "verify", "configure", "proof", "remediate"]
# The remediate role's defaults (roles/remediate/defaults/main.yml), for a play that sets none.
REMEDIATE_POLICY = "threshold"
REMEDIATE_THRESHOLD = 80.0
# The proof's own words when it names no failed check (the canary saw a new copy).
PROOF_NEW_COPY = "a new non-contiguous map still added a copy"


def proof_failed_error(proof: Optional[Mapping[str, Any]]) -> str:
    """The record's error for a host whose failed proof rolled storage.conf back."""
    checks = list((proof or {}).get("failed_checks") or []) if isinstance(proof, Mapping) else []
    return "proof failed (%s); storage.conf was restored" % ", ".join(checks or [PROOF_NEW_COPY])


def proof_result(facts: Mapping[str, Any]) -> Dict[str, Any]:
    """What the rollout keeps of the canary and the correctness proof (facts after the proof step):
    the canary's numbers, the checks, and whether the host may keep the change. `passed` holds when
    the canary added no copy and the proof passed (every check held, or failed only where the
    known-issue table predicts it on this Podman and strict mode is off: `outcome` known_issue).
    A failure the table does not predict leaves `passed` false, and the rollout rolls back."""
    canary = facts.get("canary") or {}
    proof = facts.get("proof") or {}
    canary_ok = bool(canary.get("ran")) and _int(canary.get("new_mapped_layers"), 1) == 0
    passed = canary_ok and bool(proof.get("passed"))
    known = proof.get("known_issues") or {}
    if not canary_ok:
        outcome = "failed"
    else:
        outcome = str(proof.get("outcome") or ("passed" if passed else "failed"))
    result = dict(canary)
    result.update({
        "checks": dict(proof.get("checks") or {}),
        "failed_checks": list(proof.get("failed_checks") or []),
        "known_issues": {name: list(issues) for name, issues in known.items()} if isinstance(known, Mapping) else {},
        "strict": bool(proof.get("strict")),
        "summary": proof.get("summary") or "",
        "passed": passed,
        "outcome": outcome,
    })
    return result


def known_issue_checks(proof: Optional[Mapping[str, Any]]) -> List[str]:
    """The checks that failed only as known upstream bugs and did not fail the host."""
    if not isinstance(proof, Mapping) or not proof.get("passed") or proof.get("strict"):
        return []
    return sorted((proof.get("known_issues") or {}).keys())


def _graphroot(facts: Mapping[str, Any]) -> Mapping[str, Any]:
    return facts.get("graphroot") or {}


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass
class StepInputs:
    """What the steps are decided from: the facts before any change and the run's options."""

    facts: Mapping[str, Any]
    steps: List[str] = field(default_factory=lambda: list(ALL_STEPS))
    check_mode: bool = False
    helper_changed: bool = False
    proof: str = "changed"  # idmapguard_rollout_proof: changed | always | never
    conf_changed: bool = False
    remediate_policy: str = REMEDIATE_POLICY
    remediate_threshold: float = REMEDIATE_THRESHOLD
    remediate_guard: bool = False
    remediate_graphroot: str = ""
    # the opt-in Podman upgrade (idmapguard_rollout_upgrade_podman) and what it did so far
    # (plugins/plugin_utils/podman_upgrade.py: upgraded, proof_failed, ...)
    upgrade_podman: bool = False
    upgrade: Mapping[str, Any] = field(default_factory=dict)
    # the facts after the steps so far (after an upgrade, the new Podman's); empty: as before
    after: Mapping[str, Any] = field(default_factory=dict)


def remediate_due(inputs: StepInputs) -> Dict[str, Any]:
    """Whether the remediate role would do anything: the guard is installed whatever the use, and
    a store the operator names (not the one the facts describe) is left to the role to judge."""
    if inputs.remediate_guard:
        return {"due": True, "reason": "the on-host guard is installed"}
    if inputs.remediate_graphroot:
        return {"due": True, "reason": "store %s given: the role judges it" % inputs.remediate_graphroot}
    graphroot = _graphroot(inputs.facts)
    due, reason = prune_due(inputs.remediate_policy, inputs.remediate_threshold,
                            _int(graphroot.get("inodes_used")), _int(graphroot.get("inodes_total")))
    return {"due": due, "reason": reason}


def rollout_steps(inputs: StepInputs) -> Dict[str, Any]:
    """{step: {"run": bool, "reason": str}} for reverify, configure, proof and remediate, and
    `act` (any of them, or a helper change): the gate of rollout_act.yml."""
    facts = inputs.facts
    verdict = facts.get("verdict")
    copies = _int(_graphroot(facts).get("mapped_copies"), 1)  # unknown: look
    upgraded = bool(inputs.upgrade.get("upgraded"))
    plan = {}  # type: Dict[str, Any]
    helper = "helper" in inputs.steps and inputs.helper_changed
    plan["reverify"] = {"run": helper, "reason": "the helper changed" if helper else "helper unchanged"}
    upgrade = inputs.upgrade_podman and verdict == "needs_podman_upgrade"
    plan["upgrade"] = {"run": upgrade,
                       "reason": ("verdict %s" % verdict) if inputs.upgrade_podman else "idmapguard_rollout_upgrade_podman is off"}
    # after an upgrade, the new Podman's verdict decides whether configure is the next fix
    verdict_now = (inputs.after or {}).get("verdict", verdict)
    configure = "configure" in inputs.steps and verdict_now == "fixable_by_config"
    plan["configure"] = {"run": configure, "reason": "verdict %s" % verdict_now}
    if "proof" not in inputs.steps:
        proof, why = False, "proof step not selected"
    elif inputs.check_mode:
        proof, why = False, "check mode: the proof creates and removes an image and a container"
    elif inputs.proof == "always":
        proof, why = True, "idmapguard_rollout_proof is always"
    elif upgraded and inputs.proof != "never":
        proof, why = True, "Podman was upgraded"
    elif inputs.proof == "changed":
        proof, why = inputs.conf_changed, ("storage.conf changed" if inputs.conf_changed else "storage.conf unchanged")
    else:
        proof, why = False, "idmapguard_rollout_proof is %s" % inputs.proof
    plan["proof"] = {"run": proof, "reason": why}
    proof_failed = bool(inputs.upgrade.get("proof_failed"))
    remediate = "remediate" in inputs.steps and copies > 0 and not proof_failed
    if proof_failed:
        why = "the proof failed after the Podman upgrade: nothing is pruned"
    else:
        why = "%d mapped copies" % copies if "remediate" in inputs.steps else "remediate step not selected"
    plan["remediate"] = {"run": remediate, "reason": why}
    due = remediate_due(inputs) if remediate else {"due": False, "reason": plan["remediate"]["reason"]}
    plan["remediate"]["due"] = due["due"]
    plan["remediate"]["due_reason"] = due["reason"]
    # Before configure runs, a proof can only be due when it is always run (a changed
    # storage.conf needs configure, which is due then anyway).
    act = helper or upgrade or configure or (proof and inputs.proof == "always") or (remediate and due["due"])
    plan["act"] = bool(act)
    return plan


@dataclass
class RecordInputs:
    """What the rollout knows about a host when it records it (names as in rollout_host.yml)."""

    host: str
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    check_mode: bool = False
    steps: List[str] = field(default_factory=lambda: list(ALL_STEPS))
    helper: Mapping[str, Any] = field(default_factory=dict)  # the helper role's idmapguard_helper
    changes: List[str] = field(default_factory=list)
    remediated: Mapping[str, Any] = field(default_factory=dict)  # the remediate role's idmapguard_remediate
    proof: Optional[Mapping[str, Any]] = None
    rolled_back: bool = False
    podman_upgrade: Mapping[str, Any] = field(default_factory=dict)  # the upgrade step's outcome
    failed_task: Optional[str] = None  # set in the rescue: the task that failed ...
    failed_result: Optional[Mapping[str, Any]] = None  # ... and its result


def _reclaimed(inputs: RecordInputs, key: str, facts_key: str) -> Any:
    """What remediation did (or would do, in check mode), else what the facts show."""
    if key in inputs.remediated:
        return inputs.remediated[key]
    before = _int(_graphroot(inputs.before).get(facts_key))
    after = _int(_graphroot(inputs.after).get(facts_key))
    return max(0, before - after)


def host_record(inputs: RecordInputs) -> Dict[str, Any]:
    """The host's row of the fleet report (the keys plugins/filter/fleet_report.py reads)."""
    before, after = inputs.before, inputs.after
    verdict_before = before.get("verdict")
    verdict = after.get("verdict", verdict_before)
    reasons = list(after.get("reasons", before.get("reasons", [])) or [])
    if (verdict_before or "") != (verdict or ""):
        # where the verdict changed, also what was fixed
        reasons += ["fixed: %s" % reason for reason in before.get("reasons") or []]
    proof = inputs.proof
    upgrade = inputs.podman_upgrade or {}
    rolled_back = bool(inputs.rolled_back or upgrade.get("rolled_back"))
    changes = []  # type: List[str]
    if "helper" in inputs.steps and inputs.helper.get("changed"):
        changes.append("%s helper at %s" % ("would install" if inputs.check_mode else "installed",
                                            inputs.helper.get("path")))
    changes.extend(inputs.changes)
    if inputs.failed_task is not None:
        result = inputs.failed_result or {}
        failed, error = True, "%s: %s" % (inputs.failed_task, result.get("msg", result.get("stderr", "failed")))
    elif upgrade.get("proof_failed"):
        failed, error = True, str(upgrade.get("error") or proof_failed_error(proof))
    else:
        failed, error = rolled_back, proof_failed_error(proof) if rolled_back else ""
    return {
        "host": inputs.host,
        "check_mode": inputs.check_mode,
        "verdict_before": verdict_before,
        "verdict": verdict,
        "reasons": reasons,
        "reason_codes": list(after.get("reason_codes", before.get("reason_codes", [])) or []),
        "remedy": after.get("remedy", before.get("remedy", "")),
        "podman_version": (after.get("podman", before.get("podman")) or {}).get("version", ""),
        "inodes_total": _graphroot(before).get("inodes_total"),
        "inodes_used_before": _graphroot(before).get("inodes_used"),
        "inodes_used_after": _graphroot(after).get("inodes_used"),
        "mapped_copies_before": _graphroot(before).get("mapped_copies"),
        "mapped_copies_after": _graphroot(after).get("mapped_copies"),
        "copies_removed": _reclaimed(inputs, "copies_removed", "mapped_copies"),
        "inodes_freed": _reclaimed(inputs, "inodes_freed", "mapped_copy_inodes"),
        "noncontiguous_map_cost": proof.get("inodes_delta") if isinstance(proof, Mapping) and proof.get("ran") else None,
        "proof": proof,
        # checks that failed as known upstream bugs (reference, fixed-in: proof.known_issues) while
        # the host kept its change: it shares, with these known issues
        "known_issue": known_issue_checks(proof),
        "rolled_back": rolled_back,
        "podman_upgrade": dict(upgrade),
        "guard": after.get("guard", before.get("guard")),
        # consistency gate, undeletable copies, stranded staging (the remediate role's fact)
        "store_integrity": {key: inputs.remediated[key] for key in
                            ("consistency", "inconsistencies", "stranded", "undeletable") if key in inputs.remediated},
        "changes": changes,
        "failed": failed,
        "error": error,
    }
