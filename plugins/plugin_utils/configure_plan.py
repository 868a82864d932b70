# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the configure role does on a host, decided from the verify facts and the role's variables.

`configure_plan` is a pure function; the role only runs the steps it returns. The plan is:

    {"action": "configure" | "skipped" | "undecided", "reason": str, "verdict": str,
     <step>: {"run": bool, "reason": str, ...what the step needs...}, ...}

with one entry per step in `STEPS`. A new step is one more function in that table: it gets the
inputs and the host-level decision and returns its entry; the role adds a task that runs when
`plan.<step>.run`.

`configure_outcome` turns the results of the tasks back into the `idmapguard_configure` fact.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.host_env import UNIT_DIRS

# Verdicts no storage.conf edit can change (copies_unexplained: no known cause, so nothing to change).
UNFIXABLE = ("needs_podman_upgrade", "unsupported_kernel", "unsupported_filesystem", "copies_unexplained")
# What a fixable_by_config host needs: native overlay, no mount program (both spellings).
FIX_SETTINGS = {"storage.driver": "overlay"}
FIX_ABSENT = ["storage.options.overlay.mount_program", "storage.options.mount_program"]
# A unit file or one of its drop-ins, in any directory host_env searches: the unit's name.
UNIT_PATH = re.compile(r"^(?:%s)/([^/]+?)(?:\.d/[^/]+)?$" % "|".join(re.escape(d) for d in UNIT_DIRS))


@dataclass
class ConfigureInputs:
    """The role's variables the plan depends on (names without the `idmapguard_configure_` prefix)."""

    facts: Mapping[str, Any] = field(default_factory=dict)
    verdict: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    absent: List[str] = field(default_factory=list)
    unset_disable_idmap_env: bool = True


@dataclass
class HostDecision:
    action: str
    reason: str
    verdict: str


def decide(inputs: ConfigureInputs) -> HostDecision:
    """configure, skipped (with why) or undecided (no facts and nothing explicit to do)."""
    facts = inputs.facts
    verdict = inputs.verdict or facts.get("verdict") or ""
    reasons = "; ".join(facts.get("reasons") or [])
    if verdict in UNFIXABLE:
        why = reasons or facts.get("remedy") or "no configuration change can make this host share layers"
        return HostDecision("skipped", "verdict %s: %s" % (verdict, why), verdict)
    if verdict == "fixable_by_config":
        return HostDecision("configure", "verdict fixable_by_config: %s" % reasons, verdict)
    if verdict == "shares":
        return HostDecision("configure", "verdict shares: nothing required", verdict)
    if inputs.settings or inputs.absent:
        # the operator said what to change: no verdict needed (and an unknown one does not stop it)
        return HostDecision("configure", "explicit settings", verdict)
    if verdict:
        return HostDecision("skipped", "unknown verdict %s" % verdict, verdict)
    return HostDecision("undecided", "no facts", verdict)


def storage_conf_step(inputs: ConfigureInputs, host: HostDecision) -> Dict[str, Any]:
    """The storage.conf edit: the fix for the verdict, then the operator's own edits."""
    settings = dict(FIX_SETTINGS) if host.verdict == "fixable_by_config" else {}
    absent = list(FIX_ABSENT) if host.verdict == "fixable_by_config" else []
    settings.update(inputs.settings)
    absent.extend(inputs.absent)
    return {"run": host.action == "configure", "reason": host.reason, "settings": settings, "absent": absent}


def split_disable_idmap_places(where: List[str]) -> Tuple[List[str], List[str]]:
    """(units a drop-in can fix, other places) among those that set _CONTAINERS_OVERLAY_DISABLE_IDMAP."""
    units = []  # type: List[str]
    others = []  # type: List[str]
    for place in where:
        match = UNIT_PATH.match(place)
        if match is None:
            others.append(place)
        elif match.group(1) not in units:
            units.append(match.group(1))
    return units, others


def disable_idmap_env_step(inputs: ConfigureInputs, host: HostDecision) -> Dict[str, Any]:
    """Drop-ins unsetting _CONTAINERS_OVERLAY_DISABLE_IDMAP for the units the facts name."""
    env = (inputs.facts.get("podman") or {}).get("disable_idmap_env") or {}
    units, not_fixed = split_disable_idmap_places(list(env.get("where") or [])) if env.get("set") else ([], [])
    if host.action == "skipped":
        # A host that cannot share layers keeps its units as they are; the other places are still reported.
        units = []
    kept = env.get("kept")
    if host.action != "configure":
        reason = "host not configured"
    elif kept and units:
        # set on purpose (the operator said so, or the correctness proof fails without it)
        reason = "kept on purpose in %s: %s" % (", ".join(units), kept)
        units = []
    elif not units:
        reason = "no unit sets _CONTAINERS_OVERLAY_DISABLE_IDMAP"
    elif not inputs.unset_disable_idmap_env:
        reason = "idmapguard_configure_unset_disable_idmap_env is false"
    else:
        reason = "set in %s" % ", ".join(units)
    run = host.action == "configure" and bool(units) and inputs.unset_disable_idmap_env
    return {"run": run, "reason": reason, "units": units, "not_fixed": not_fixed, "kept": kept}


def probe_cache_step(inputs: ConfigureInputs, host: HostDecision) -> Dict[str, Any]:
    """Remove the negative answers containers/storage cached in its runroot that verify proved stale.

    Only those in `podman.probe_cache.stale`: idmap_support lists a cached answer there only where
    the helper's probe on graphroot's filesystem passed. A negative answer the probe confirms, or
    could not judge, is never in that list and stays.
    """
    podman = inputs.facts.get("podman") or {}
    cache = podman.get("probe_cache") or {}
    stale = [str(f) for f in cache.get("stale") or []]
    files = [str((cache.get("files") or {}).get(f) or f) for f in stale]
    run = host.action == "configure" and host.verdict == "fixable_by_config" and bool(stale)
    if run:
        reason = "stale cached probe answer(s): %s" % ", ".join(files)
    elif stale:
        reason = "host not configured"
    else:
        reason = "no stale cached probe answer"
    return {"run": run, "reason": reason, "runroot": podman.get("runroot") or "/run/containers/storage",
            "features": stale if run else [], "files": files if run else []}


Step = Callable[[ConfigureInputs, HostDecision], Dict[str, Any]]
# Run by the role in this order, each task guarded by `plan.<name>.run`.
STEPS = (
    ("storage_conf", storage_conf_step),
    ("disable_idmap_env", disable_idmap_env_step),
    ("probe_cache", probe_cache_step),
)  # type: Tuple[Tuple[str, Step], ...]


def configure_plan(inputs: ConfigureInputs) -> Dict[str, Any]:
    host = decide(inputs)
    plan = {"action": host.action, "reason": host.reason, "verdict": host.verdict}  # type: Dict[str, Any]
    for name, step in STEPS:
        plan[name] = step(inputs, host)
    return plan


def _changed(result: Optional[Mapping[str, Any]]) -> bool:
    return bool((result or {}).get("changed"))


def configure_outcome(plan: Mapping[str, Any], storage_conf: Optional[Mapping[str, Any]],
                      dropins: Optional[Mapping[str, Any]], restart_units: List[str],
                      probe_cache: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The `idmapguard_configure` fact from the plan and the registered results of its steps."""
    conf = storage_conf or {}
    # a running Podman service keeps the driver's answers in memory: a cleared cache restarts it too
    changed = _changed(conf) or _changed(dropins) or _changed(probe_cache)
    if plan["action"] == "skipped":
        action = "skipped"
    else:
        action = "configured" if changed else "unchanged"
    written = [item.get("dest") for item in (dropins or {}).get("results") or []
               if isinstance(item, Mapping) and item.get("changed")]
    return {
        "action": action,
        "reason": plan["reason"],
        "verdict": plan["verdict"],
        "path": conf.get("path"),
        "conf_changed": _changed(conf),
        # what puts storage.conf back (the storage_conf module's `undo`), for the rollout's rollback
        "undo": conf.get("undo") if _changed(conf) else None,
        "changed_keys": list(conf.get("changed_keys") or []),
        "mount_program_marker": conf.get("mount_program_marker"),
        "podman": conf.get("podman"),
        "dropins": written,
        "not_fixed": list(plan["disable_idmap_env"]["not_fixed"]),
        "probe_cache_cleared": list((probe_cache or {}).get("removed") or []) if _changed(probe_cache) else [],
        "disable_idmap_kept": plan["disable_idmap_env"].get("kept"),
        "restarted": list(restart_units) if changed else [],
    }
