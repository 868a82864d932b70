# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Protection by default: which hosts get the copy-cache guard, which have it stopped, and what
the report says about it.

Every host whose verdict is still not `shares` after the other steps runs the guard (the remediate
role installs, enables and starts it), unless the operator opts out (idmapguard_rollout_guard:
false). A host that now shares and holds no mapped copies has a running guard stopped and
disabled (its state file stays). Without systemd as PID 1 the guard, a systemd service, cannot
be enabled: such a host is reported "not guarded" with that reason, never as protected."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Dict, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import State

NO_SYSTEMD = ("no systemd on this host (PID 1 is not systemd): the guard is a systemd service and "
              "cannot be enabled here")
SHARES = "Podman shares layers across maps here: no guard is needed"


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def guard_fact(facts: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    guard = facts.get("guard")
    return guard if isinstance(guard, Mapping) else None


def running(facts: Mapping[str, Any]) -> bool:
    """The facts show a guard that wrote its state recently (idmap_support: not `stale`)."""
    guard = guard_fact(facts)
    return bool(guard) and not guard.get("error") and not guard.get("stale")  # type: ignore[union-attr]


def decide(state: State) -> Dict[str, Any]:
    """{install, stop, run, reason}: the guard step's plan from the latest facts."""
    opts, facts = state.options, state.now
    verdict = facts.get("verdict")
    copies = _int((facts.get("graphroot") or {}).get("mapped_copies"), 1)
    systemd = bool(facts.get("systemd"))
    no = {"install": False, "stop": False, "run": False}

    def out(base: Dict[str, Any], reason: str) -> Dict[str, Any]:
        return dict(base, reason=reason)

    if "guard" in state.done:
        return out(no, "done")
    if opts.remediate_guard:
        # the operator's explicit opt-in of the remediate role: installed (and refreshed) every run
        if opts.guard_enable and not systemd:
            return out(no, "not guarded: " + NO_SYSTEMD)
        if state.check_mode:
            return out(no, "check mode: the guard would be installed (idmapguard_remediate_guard is true)")
        return out(dict(no, install=True, run=True), "idmapguard_remediate_guard is true")
    if verdict == "shares":
        if copies == 0 and running(facts) and systemd and "guard" in opts.steps and opts.guard:
            if state.check_mode:
                return out(no, "check mode: the guard would be stopped and disabled (shares, no mapped copies)")
            return out(dict(no, stop=True, run=True),
                       "Podman shares layers and the store holds no mapped copies: stop and disable the guard")
        return out(no, SHARES)
    if "guard" not in opts.steps:
        return out(no, "not guarded: the guard step is not selected (idmapguard_rollout_steps)")
    if not opts.guard or opts.remediate_guard is False:
        return out(no, "not guarded: the operator opted out (%s is false)"
                   % ("idmapguard_rollout_guard" if not opts.guard else "idmapguard_remediate_guard"))
    if opts.guard_enable and not systemd:
        return out(no, "not guarded: " + NO_SYSTEMD)
    if running(facts):
        return out(no, "the guard is running")
    if state.check_mode:
        return out(no, "check mode: the guard would be installed, enabled and started (verdict %s)" % verdict)
    return out(dict(no, install=True, run=True), "verdict %s: the guard keeps unused copies within its budget" % verdict)


def _unit(did: Mapping[str, Any]) -> Dict[str, Any]:
    """systemd's view of the unit, as the remediate role read it after the guard's (re)start and
    its wait (`unit`: UnitFileState, ActiveState, SubState, MainPID, NRestarts)."""
    unit = did.get("unit") if isinstance(did.get("unit"), Mapping) else {}
    return {"enabled": unit.get("UnitFileState") == "enabled", "unit_file_state": str(unit.get("UnitFileState") or "?"),
            "active": unit.get("ActiveState") == "active", "active_state": str(unit.get("ActiveState") or "?"),
            "sub_state": str(unit.get("SubState") or "?"), "main_pid": _int(unit.get("MainPID")),
            "restarts": _int(unit.get("NRestarts"))}


def started(did: Mapping[str, Any]) -> Dict[str, Any]:
    """{status, why, protected, running, state} of a guard the remediate role's guard tasks
    installed and (with idmapguard_remediate_guard_enable) started, from what they published:
    systemd's view of the unit after the wait, and the state the started guard wrote.

    - `started`: the unit is active with a MainPID, and the state was written by that very
      process after it started (`status --wait` says running, and its pid is the MainPID).
    - `starting`: the unit is active with a MainPID, but its first pass had not ended within the
      wait (no state of its own yet). Protected: the process runs under systemd, which restarts
      it on failure; only its numbers are missing (docs/guard.md, "What the report says").
    - `not_running`: installed and enabled, but systemd does not show an active unit with a
      process (a crash loop, a failed start): not protected, whatever a state file says.
    - `installed`: files only (idmapguard_remediate_guard_enable is false): not protected."""
    if not did.get("enable"):
        return {"status": "installed", "protected": False, "running": False, "state": None,
                "why": "installed by this rollout but not enabled (idmapguard_remediate_guard_enable is false)"}
    unit = _unit(did)
    wrote = did.get("state") if isinstance(did.get("state"), Mapping) else {}
    boot = "" if unit["enabled"] else "; NOT enabled at boot (UnitFileState %s)" % unit["unit_file_state"]
    if not (unit["active"] and unit["main_pid"] > 0):
        return {"status": "not_running", "protected": False, "running": False, "state": None,
                "why": "installed and enabled by this rollout, but NOT running: systemd reports it %s/%s "
                       "(MainPID %d, %d restarts)%s" % (unit["active_state"], unit["sub_state"], unit["main_pid"],
                                                        unit["restarts"], boot)}
    if wrote.get("running") and not wrote.get("error") and _int(wrote.get("pid")) == unit["main_pid"]:
        return {"status": "started", "protected": True, "running": True, "state": dict(wrote),
                "why": "installed, enabled and started by this rollout; running as pid %d (systemd's MainPID)%s"
                       % (unit["main_pid"], boot)}
    wait = did.get("status_wait")
    return {"status": "starting", "protected": True, "running": False, "state": None,
            "why": "started, first pass not ended: systemd runs it as pid %d (active), but it wrote no state "
                   "of its own within %s s%s" % (unit["main_pid"], wait if wait is not None else "the wait", boot)}


def record(state: State) -> Dict[str, Any]:
    """The report's guard entry: `status` (running, started, starting, not_running, installed,
    stale, stopped, not_installed), `why`, `protected` (the store is bounded: it shares, or a
    guard process runs under systemd), `running` (a guard process whose own state is shown), the
    guard's own `state` (pid, budget, cache, evictions, last pass) when the host has one, and the
    installed archive's `artifact` (path, sha256, version) when this rollout installed it.

    What this rollout did to the guard comes only from what the remediate role's guard tasks
    published after they ran (state.guard from `idmapguard_remediate.guard`), never from the plan:
    a plan whose guard tasks did not run reports the guard as the facts before show it."""
    facts = state.now
    fact = guard_fact(facts)
    shares = facts.get("verdict") == "shares"
    did = state.guard or {}
    plan = decide(state) if "guard" not in state.done else {}
    artifact = None
    if did.get("stopped"):
        row = {"status": "stopped", "running": False, "state": dict(fact) if fact else None,
               "why": "stopped and disabled by this rollout: Podman shares layers and the store holds no copies"}
    elif did.get("installed") and not did.get("check_mode"):
        row = started(did)
        artifact = did.get("artifact") if isinstance(did.get("artifact"), Mapping) else None
    else:
        row = _from_facts(fact, shares, str(plan.get("reason") or did.get("reason") or ""))
        if did.get("planned") and row["status"] != "running":
            row["why"] += ("; the guard was planned (%s), but the remediate role's guard tasks did not run"
                           % (did.get("reason") or "?"))
        if row["status"] == "running" and plan.get("reason") and plan.get("reason") != "the guard is running":
            row["why"] = "running (%s)" % plan["reason"]
    row["protected"] = shares or bool(row.get("protected"))
    row["artifact"] = dict(artifact) if artifact else None
    return row


def _from_facts(fact: Optional[Mapping[str, Any]], shares: bool, reason: str) -> Dict[str, Any]:
    """The guard as the latest verify facts show it (its state file), when this rollout did not
    install or stop it."""
    if fact and fact.get("error"):
        return {"status": "stale", "why": str(fact["error"]), "protected": False, "running": False, "state": dict(fact)}
    if fact and fact.get("stale"):
        return {"status": "stale", "why": "the guard has not written its state for 5 minutes: it is probably not running",
                "protected": False, "running": False, "state": dict(fact)}
    if fact:
        return {"status": "running", "why": "running", "protected": True, "running": True, "state": dict(fact)}
    why = reason
    if not why.startswith("not guarded") and not shares and not why.startswith("check mode"):
        why = "not guarded: " + why
    return {"status": "not_installed", "why": why, "protected": False, "running": False, "state": None}
