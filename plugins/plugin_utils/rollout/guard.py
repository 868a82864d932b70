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


def record(state: State) -> Dict[str, Any]:
    """The report's guard entry: `status` (running, started, installed, stale, stopped,
    not_installed), `why`, `protected` (the store is bounded: it shares, or a guard runs), and
    the guard's own `state` (pid, budget, cache, evictions, last pass) when the host has one."""
    facts = state.now
    fact = guard_fact(facts)
    shares = facts.get("verdict") == "shares"
    did = state.guard or {}
    plan = decide(state) if "guard" not in state.done else {}
    if did.get("stopped"):
        status, why = "stopped", "stopped and disabled by this rollout: Podman shares layers and the store holds no copies"
    elif did.get("installed") and did.get("enabled"):
        status, why = "started", "installed, enabled and started by this rollout"
        started = did.get("state")
        if isinstance(started, Mapping) and started.get("running") and not started.get("error"):
            fact = started  # the started process's own state, not the one verify read before
        else:
            why += "; no state from the started guard yet (its first pass had not ended)"
            fact = None
    elif did.get("installed"):
        status, why = "installed", "installed by this rollout but not enabled (idmapguard_remediate_guard_enable is false)"
    elif fact and fact.get("error"):
        status, why = "stale", str(fact["error"])
    elif fact and fact.get("stale"):
        status, why = "stale", "the guard has not written its state for 5 minutes: it is probably not running"
    elif fact:
        status, why = "running", "running"
    else:
        status, why = "not_installed", str(plan.get("reason") or did.get("reason") or "")
        if not why.startswith("not guarded") and not shares and not why.startswith("check mode"):
            why = "not guarded: " + why
    if status == "running" and plan.get("reason") and plan.get("reason") != "the guard is running":
        why = "running (%s)" % plan["reason"]
    protected = shares or status in ("running", "started")
    return {"status": status, "why": why, "protected": protected,
            "state": dict(fact) if fact else None}
