# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When the rollout's proof passed: the canary added no copy and the correctness proof passed by
its own judgement (idmap_support.judge_failures, the one definition of a passed check set:
accepted and known-issue failures forgiven unless strict). Standard library only; the rollout's
state machine (plugins/plugin_utils/rollout/advance.py) calls it on the controller.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Dict, List, Mapping, Optional

# The proof's own words when it names no failed check (the canary saw a new copy).
NEW_COPY = "a new non-contiguous map still added a copy"


def counted_failures(proof: Mapping[str, Any]) -> List[str]:
    """The failed checks that fail the proof, as idmap_support judged them (judge_failures): not
    accepted by the operator (proof_accept) and, unless the proof ran strict, not a known upstream
    bug the known-issue table predicts for this Podman."""
    accepted = set(proof.get("accepted_failures") or [])
    known = set() if proof.get("strict") else set(proof.get("known_issues") or {})
    return [str(name) for name in proof.get("failed_checks") or [] if name not in accepted and name not in known]


def judge(canary: Optional[Mapping[str, Any]], proof: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The canary and the correctness proof as one result, or None when neither ran.

    Passed: the canary ran and added no mapped copy, and the correctness proof passed (its own
    `passed`, the one definition: idmap_support.judge_failures, accepted and known-issue checks
    forgiven unless strict). `outcome` is `passed`, `known_issue` (passed with checks that fail as
    known upstream bugs) or `failed`."""
    canary = canary if isinstance(canary, Mapping) else {}
    proof = proof if isinstance(proof, Mapping) else {}
    if not canary.get("ran") and not proof.get("ran"):
        return None
    new_copies = int(canary.get("new_mapped_layers") or 0) if canary.get("ran") else None
    canary_ok = bool(canary.get("ran")) and new_copies == 0
    proof_ok = bool(proof.get("ran")) and bool(proof.get("passed"))
    passed = canary_ok and proof_ok
    known = proof.get("known_issues") if isinstance(proof.get("known_issues"), Mapping) else {}
    out = dict(canary)
    out.update({
        "ran": True,
        "checks": dict(proof.get("checks") or {}),
        "failed_checks": [str(name) for name in proof.get("failed_checks") or []],
        "accepted_failures": [str(name) for name in proof.get("accepted_failures") or []],
        "known_issues": {str(k): list(v or []) for k, v in known.items()},
        "strict": bool(proof.get("strict")),
        "summary": proof.get("summary") or "",
        "counted_failures": counted_failures(proof),
        "passed": passed,
        "outcome": (str(proof.get("outcome") or "passed") if passed else "failed"),
    })
    if not passed:
        what = []  # type: List[str]
        if not canary.get("ran"):
            what.append("the canary did not run")
        elif new_copies:
            what.append(NEW_COPY)
        if not proof.get("ran"):
            what.append("the correctness proof did not run")
        what += ["check %s failed" % name for name in out["counted_failures"]]
        out["why"] = "; ".join(what)
    return out
