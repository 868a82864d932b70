# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's row of the fleet report, from its rollout state (the keys fleet_report reads)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.proof_verdict import NEW_COPY
from ansible_collections.idmapguard.storage.plugins.plugin_utils.podman_upgrade import NO_SHARING_NOTE
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout import guard
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import State


def _graphroot(facts: Mapping[str, Any]) -> Mapping[str, Any]:
    return facts.get("graphroot") or {}


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def proof_failed_error(proof: Optional[Mapping[str, Any]]) -> str:
    """The record's error for a host whose failed proof rolled storage.conf back."""
    proof = proof if isinstance(proof, Mapping) else {}
    checks = list(proof.get("counted_failures") or proof.get("failed_checks") or [])
    return "proof failed (%s); storage.conf was restored" % ", ".join(checks or [NEW_COPY])


def _reclaimed(state: State, key: str, facts_key: str) -> Any:
    """What remediation did (or would do, in check mode), else what the facts show."""
    if key in state.remediated:
        return state.remediated[key]
    before = _int(_graphroot(state.before).get(facts_key))
    after = _int(_graphroot(state.now).get(facts_key))
    return max(0, before - after)


def _upgrade(state: State, guard_row: Mapping[str, Any]) -> Dict[str, Any]:
    """The upgrade step's outcome; where no Podman that shares is offered, what bounds the store
    instead: the guard, only where one runs."""
    upgrade = dict(state.upgrade or {})
    note = str(upgrade.get("note") or "")
    if note.startswith(NO_SHARING_NOTE):
        tail = note[len(NO_SHARING_NOTE):]
        if guard_row.get("status") in ("running", "started", "starting") and guard_row.get("protected"):
            upgrade["note"] = NO_SHARING_NOTE + ": the guard keeps the store bounded" + tail
        else:
            upgrade["note"] = NO_SHARING_NOTE + "; " + str(guard_row.get("why") or "not guarded") + tail
    upgrade.pop("judged", None)
    return upgrade


def record(state: State) -> Dict[str, Any]:
    before, after = state.before, state.now
    verdict_before = before.get("verdict")
    verdict = after.get("verdict", verdict_before)
    reasons = list(after.get("reasons", before.get("reasons", [])) or [])
    if (verdict_before or "") != (verdict or ""):
        # where the verdict changed, also what was fixed
        reasons += ["fixed: %s" % reason for reason in before.get("reasons") or []]
    proof = state.proof
    upgrade = state.upgrade or {}
    rolled_back = bool(state.rolled_back or upgrade.get("rolled_back"))
    changes = []  # type: List[str]
    if "helper" in state.options.steps and state.helper.get("changed"):
        changes.append("%s helper at %s" % ("would install" if state.check_mode else "installed",
                                            state.helper.get("path")))
    changes.extend(state.changes)
    guard_row = guard.record(state)
    if guard_row["status"] == "started":
        changes.append("installed and started the copy-cache guard")
    elif guard_row["status"] == "starting":
        changes.append("installed and started the copy-cache guard (first pass not ended)")
    elif guard_row["status"] == "not_running":
        changes.append("installed and enabled the copy-cache guard, but it is NOT running")
    elif guard_row["status"] == "installed":
        changes.append("installed the copy-cache guard (not enabled)")
    elif guard_row["status"] == "stopped":
        changes.append("stopped and disabled the copy-cache guard (state file kept)")
    if state.failed is not None:
        failed, error = True, "%s: %s" % (state.failed.get("task"), state.failed.get("msg"))
    elif upgrade.get("proof_failed"):
        failed, error = True, str(upgrade.get("error") or proof_failed_error(proof))
    else:
        failed, error = rolled_back, proof_failed_error(proof) if rolled_back else ""
    return {
        "host": state.host,
        "check_mode": state.check_mode,
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
        "copies_removed": _reclaimed(state, "copies_removed", "mapped_copies"),
        "inodes_freed": _reclaimed(state, "inodes_freed", "mapped_copy_inodes"),
        "noncontiguous_map_cost": proof.get("inodes_delta") if isinstance(proof, Mapping) and proof.get("ran") else None,
        "proof": proof,
        # checks that failed as known upstream bugs while the host kept its change
        "known_issue": (sorted((proof.get("known_issues") or {}).keys())
                        if isinstance(proof, Mapping) and proof.get("passed") and not proof.get("strict") else []),
        "rolled_back": rolled_back,
        "podman_upgrade": _upgrade(state, guard_row) if upgrade else {},
        "guard": guard_row,
        # consistency gate, undeletable copies, stranded staging (the remediate role's fact)
        "store_integrity": {key: state.remediated[key] for key in
                            ("consistency", "inconsistencies", "stranded", "undeletable") if key in state.remediated},
        "changes": changes,
        "failed": failed,
        "error": error,
    }
