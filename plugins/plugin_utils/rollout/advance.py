# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state after a step's result: one function per step (STEPS), then the plan made again.

Every step's task hands its module's or role's result over as it is; what the rollout keeps of
it, which change it records in words, and what comes next are decided here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import copy
from typing import Any, Callable, Dict, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.idmap_support import with_probe
from ansible_collections.idmapguard.storage.plugins.module_utils.proof_verdict import judge
from ansible_collections.idmapguard.storage.plugins.plugin_utils import podman_upgrade
from ansible_collections.idmapguard.storage.plugins.plugin_utils.configure_plan import undo_after_failure
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.plan import (
    PACKAGE_MANAGERS,
    configure_pending,
    plan,
)
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import RolloutError, State


def _facts(result: Mapping[str, Any]) -> Dict[str, Any]:
    facts = result.get("facts")
    if not isinstance(facts, Mapping) or "verdict" not in facts:
        raise RolloutError("the step's result needs the verify facts (ansible_facts.idmapguard) as `facts`")
    return copy.deepcopy(dict(facts))


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _would(state: State, would: str, did: str) -> str:
    return would if state.check_mode else did


def _verified(state: State, result: Mapping[str, Any], canary_proof: bool) -> None:
    """The facts of a verify after a change; with the canary and proof, their judgement (the one
    definition, module_utils/proof_verdict.py), unless configure still comes before it."""
    state.after = _facts(result)
    if canary_proof and not configure_pending(state):
        state.proof = judge(state.after.get("canary"), state.after.get("proof"))


def _rejudged(facts: Mapping[str, Any], probe: Any) -> Optional[Dict[str, Any]]:
    """The facts judged again with the probe the helper role ran right after installing the helper
    (its idmapguard_helper.probe); None where that is not sound (idmap_support.with_probe) or no probe ran."""
    if not isinstance(probe, Mapping) or not probe.get("argv"):
        return None
    return with_probe(facts, [str(a) for a in probe["argv"]], _int(probe.get("rc"), 1), str(probe.get("stdout") or ""),
                      str(probe.get("stderr") or ""))


def verify(state: State, result: Mapping[str, Any]) -> None:
    state.before = _facts(result)
    state.helper = dict(result.get("helper") or {})
    if "helper" in state.options.steps and state.helper.get("changed") and state.helper.get("run_path"):
        # from now on verify with the installed (or, in check mode, staged) helper; the facts are
        # judged again from its probe, else verify runs again (`reverify`)
        state.helper_path = str(state.helper["run_path"])
        rejudged = _rejudged(state.before, state.helper.get("probe"))
        if rejudged is not None:
            state.before, state.rejudged = rejudged, True
    state.after = copy.deepcopy(state.before)


def reverify(state: State, result: Mapping[str, Any]) -> None:
    state.before = _facts(result)
    state.after = copy.deepcopy(state.before)


def upgrade(state: State, result: Mapping[str, Any]) -> None:
    manager = str(result.get("package_manager") or "")
    state.upgrade = {"package_manager": manager}
    if manager not in PACKAGE_MANAGERS:
        state.upgrade = podman_upgrade.plan_upgrade("", manager, state.options.upgrade_backports)


def upgrade_list(state: State, result: Mapping[str, Any]) -> None:
    manager = state.upgrade.get("package_manager") or ""
    refresh = result.get("refresh") or {}
    # failed_when: false keeps a failed refresh from failing the host: its message is the error
    failed = refresh.get("failed") or (refresh.get("msg") and not refresh.get("cache_updated")
                                       and not refresh.get("skipped"))
    refresh_error = str(refresh.get("msg") or "") if failed else ""
    planned = podman_upgrade.plan_upgrade(str(result.get("listing") or ""), manager,
                                          state.options.upgrade_backports, refresh_error)
    if state.check_mode:
        planned = podman_upgrade.upgrade_outcome(planned, installed=False, check_mode=True)
        if planned.get("upgrade"):
            state.changes.append(planned["note"])
    state.upgrade = planned


def upgrade_install(state: State, result: Mapping[str, Any]) -> None:
    """podman_upgrade's result: whether it changed the package, and the facts of the Podman installed
    now, gathered in the same call (with the canary and the proof its plan entry asked for)."""
    state.upgrade = podman_upgrade.upgrade_outcome(state.upgrade, installed=bool(result.get("changed")))
    state.changes.append(state.upgrade["note"])
    if state.upgrade.get("upgraded"):
        # a declared backport is what verify is told from now on
        state.backport = bool(state.upgrade.get("backport")) or state.options.podman_backport
    _verified(state, result, bool(((state.plan.get("upgrade_install") or {}).get("verify") or {}).get("proof")))


def _configure_changes(state: State, outcome: Mapping[str, Any]) -> None:
    """What configure did, in words for the report."""
    if outcome.get("action") == "skipped":
        state.changes.append("not configured: %s" % outcome.get("reason"))
        return
    if outcome.get("conf_changed"):
        keys = list(outcome.get("changed_keys") or [])
        state.changes.append("%s %s%s" % (_would(state, "would edit", "edited"), outcome.get("path"),
                                          (": " + ", ".join(keys)) if keys else ""))
    # the files units name in CONTAINERS_STORAGE_CONF (Podman started by such a unit reads that file alone)
    state.changes.extend("%s %s (a unit's CONTAINERS_STORAGE_CONF)" % (_would(state, "would edit", "edited"), path)
                         for path in outcome.get("unit_files") or [])
    state.changes.extend("drop-in %s" % path for path in outcome.get("dropins") or [])
    state.changes.extend("%s stale cached probe answer %s" % (_would(state, "would remove", "removed"), path)
                         for path in outcome.get("probe_cache_cleared") or [])


def configure(state: State, result: Mapping[str, Any]) -> None:
    outcome = dict(result.get("configure") or {})
    if not outcome.get("action"):
        raise RolloutError("configure: the result needs the configure role's idmapguard_configure as `configure`")
    # why _CONTAINERS_OVERLAY_DISABLE_IDMAP stays (the operator's word or the proof), for the
    # verify after configuring: the variable is still set, and must be read as deliberate
    disable = (state.now.get("podman") or {}).get("disable_idmap_env") or {}
    state.disable_kept = str(disable.get("kept") or "")
    state.configure = outcome
    _configure_changes(state, outcome)


def verify_changed(state: State, result: Mapping[str, Any]) -> None:
    _verified(state, result, bool(state.plan.get("verify_changed", {}).get("proof")))


def rollback(state: State, result: Mapping[str, Any]) -> None:
    del result
    state.rolled_back = True
    # the host is back where it was: its facts are those from before the change
    state.after = copy.deepcopy(state.before)
    # every file the rollback wrote back or removed (its plan entry): storage.conf or our drop-in, the
    # files units name in CONTAINERS_STORAGE_CONF, the systemd drop-ins
    entry = state.plan.get("rollback") or {}
    paths = [str(w.get("path")) for w in entry.get("writes") or [] if isinstance(w, Mapping)]
    paths += [str(p) for p in entry.get("remove") or [] if str(p) not in paths]
    if not paths:
        paths = [str((state.configure.get("undo") or {}).get("path") or state.configure.get("path") or "storage.conf")]
    state.changes.append("rolled back %s" % ", ".join(paths))


def upgrade_rollback(state: State, result: Mapping[str, Any]) -> None:
    spec = state.upgrade.get("rollback_spec")
    state.upgrade = dict(state.upgrade, rolled_back=bool(spec))
    if spec:
        state.changes.append("installed %s again" % spec)
    state.backport = state.options.podman_backport
    if spec:  # the previous Podman's facts, gathered by the podman_upgrade call that installed it again
        state.after = _facts(result)


def remediate(state: State, result: Mapping[str, Any]) -> None:
    """What the remediate role did; the facts after it come from the prune's own measurement
    (mapped_layers returns the filesystem after the prune), not from another verify."""
    done = dict(result.get("remediate") or {})
    state.remediated = done
    entry = state.plan.get("remediate") or {}
    if isinstance(done.get("guard"), Mapping):
        # what the role's guard tasks did, published after them (archive, systemd's view of the
        # unit, the started guard's state): rollout.guard.record reads this, never the plan
        state.guard = dict(done["guard"], reason=entry.get("guard_reason"))
    elif entry.get("guard"):
        # planned, but the guard tasks left no outcome (skipped, or the role ended before them)
        state.guard = {"planned": True, "reason": entry.get("guard_reason")}
    removed = _int(done.get("copies_removed"))
    if removed > 0:
        verb = _would(state, "would remove", "removed")
        state.changes.append("%s %d mapped copies (%s inodes)" % (verb, removed, done.get("inodes_freed")))
    if removed > 0 and not state.check_mode:
        after = copy.deepcopy(state.now)
        graphroot = dict(after.get("graphroot") or {})
        filesystem = done.get("filesystem") if isinstance(done.get("filesystem"), Mapping) else {}
        freed = _int(done.get("inodes_freed"))
        graphroot["mapped_copies"] = max(0, _int(done.get("copies_found"), _int(graphroot.get("mapped_copies"))) - removed)
        graphroot["mapped_copy_inodes"] = max(0, _int(graphroot.get("mapped_copy_inodes")) - freed)
        for key in ("inodes_used", "inodes_free", "inodes_total"):
            if key in filesystem:
                graphroot[key] = _int(filesystem[key])
        after["graphroot"] = graphroot
        state.after = after


def guard_stop(state: State, result: Mapping[str, Any]) -> None:
    state.guard = {"stopped": bool(result.get("stopped", True)), "reason": (state.plan.get("guard_stop") or {}).get("reason")}


StepFn = Callable[[State, Mapping[str, Any]], None]
STEPS = {
    "verify": verify,
    "reverify": reverify,
    "upgrade": upgrade,
    "upgrade_list": upgrade_list,
    "upgrade_install": upgrade_install,
    "configure": configure,
    "verify_changed": verify_changed,
    "rollback": rollback,
    "upgrade_rollback": upgrade_rollback,
    "remediate": remediate,
    "guard_stop": guard_stop,
}  # type: Dict[str, StepFn]


def _settle_upgrade(state: State) -> None:
    """An upgraded host is judged once nothing that could still make it share is to come: it
    must say `shares` with a passing proof, else it fails (podman_upgrade.failed_proof)."""
    up = state.upgrade
    if not up.get("upgraded") or up.get("judged") or state.check_mode:
        return
    if "upgrade_install" not in state.done or configure_pending(state) or state.plan.get("verify_changed", {}).get("run"):
        return
    judged = podman_upgrade.failed_proof(up, str(state.now.get("verdict")), state.proof,
                                         list(state.now.get("reasons") or []))
    judged["judged"] = True
    state.upgrade = judged


def advance(state: State, step: str, result: Optional[Mapping[str, Any]] = None) -> State:
    """The state after STEP returned RESULT (what its task registered, under the names each
    step function reads). The plan is made again for the new state."""
    if step not in STEPS:
        raise RolloutError("unknown rollout step %r (known: %s)" % (step, ", ".join(sorted(STEPS))))
    new = copy.deepcopy(state)
    if step in state.plan:
        # `began`: a role publishes its result fact before its last tasks (configure restarts the
        # units, remediate installs the guard), and Ansible re-evaluates the step's `when` for
        # every task of an included role: those tasks run while `run or began` holds
        new.ran[step] = dict(state.plan[step], run=False, began=True)
    STEPS[step](new, dict(result or {}))
    new.done.append(step)
    new.plan = plan(new)
    _settle_upgrade(new)
    new.plan = plan(new)
    return new


def fail(state: State, task: str, result: Optional[Mapping[str, Any]] = None,
         storage_conf: Optional[Mapping[str, Any]] = None, unit_conf: Optional[Mapping[str, Any]] = None,
         dropins: Optional[Mapping[str, Any]] = None) -> State:
    """The state after a task failed (the rescue): what failed, and, when the configure role had
    changed files before one of its tasks failed (storage.conf, a file a unit names, systemd
    drop-ins), what undoes each, from its registered results, so the rollback puts all back."""
    new = copy.deepcopy(state)
    res = dict(result or {})
    new.failed = {"task": str(task), "msg": str(res.get("msg") or res.get("stderr") or "failed")}
    if not new.configure:
        new.configure = undo_after_failure(storage_conf, unit_conf, dropins) or {}
    new.plan = plan(new)
    return new
