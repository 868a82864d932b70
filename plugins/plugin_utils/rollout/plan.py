# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which step runs next, from the state: the rollout's every decision.

`plan(state)` returns `{step: {"run": bool, "reason": str, ...}}` for every step of STEP_ORDER
and `act` (does any step after verify run: the gate of playbooks/tasks/rollout_steps.yml).
Each entry also carries what its step's task needs (the verify options, the package manager,
the reclaim decision, the files a rollback writes), so the YAML only passes data on."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Dict, List, Mapping, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import (
    DEFAULT_POLICY,
    DEFAULT_THRESHOLD_PERCENT,
    prune_due,
)
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout import guard
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import State

# The steps after verify, in the order playbooks/tasks/rollout_steps.yml runs them.
STEP_ORDER = (
    "reverify",          # verify again with a helper the helper step just installed
    "upgrade",           # opt-in: learn the package manager
    "upgrade_list",      # list the Podman versions in the host's repositories; plan the upgrade
    "upgrade_install",   # install the Podman that shares; the same call gathers its facts (canary, proof when due)
    "configure",         # storage.conf, drop-ins, stale probe answers
    "verify_changed",    # verify after configure, with the canary and proof when due
    "rollback",          # a failed proof puts storage.conf back (the module's `undo`)
    "upgrade_rollback",  # a failed upgrade installs the previous Podman again
    "remediate",         # prune per the reclaim policy and/or install the guard
    "guard_stop",        # a host that now shares with no copies: stop and disable the guard
)
PACKAGE_MANAGERS = ("apt", "dnf", "dnf5", "yum")


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _entry(run: bool, reason: str, **extra: Any) -> Dict[str, Any]:
    out = {"run": bool(run), "reason": reason}
    out.update(extra)
    return out


def conf_changed(state: State) -> bool:
    """Configure changed (or, in check mode, would change) storage.conf, a drop-in or the probe cache."""
    return state.configure.get("action") == "configured"


def proof_due(state: State, upgrading: bool = False) -> Tuple[bool, str]:
    """Whether the canary and the correctness proof run with the next verify after a change
    (UPGRADING: the verify is the upgrade's own, after the new Podman is installed)."""
    opts = state.options
    if "proof" not in opts.steps:
        return False, "proof step not selected"
    if state.check_mode:
        return False, "check mode: the proof creates and removes an image and a container"
    if opts.proof == "never":
        return False, "idmapguard_rollout_proof is never"
    if opts.proof == "always":
        return True, "idmapguard_rollout_proof is always"
    if upgrading or state.upgrade.get("upgraded"):
        return True, "Podman was upgraded"
    if conf_changed(state):
        return True, "storage.conf changed"
    return False, "storage.conf unchanged"


def _verify_options(state: State, canary_proof: bool, why: str) -> Dict[str, Any]:
    return {"canary": canary_proof, "proof": canary_proof, "why_proof": why,
            "proof_accept": list(state.options.proof_accept), "proof_strict": state.options.proof_strict,
            "disable_idmap_reason": state.disable_kept or state.options.disable_idmap_reason}


def _module_verify(state: State, options: Mapping[str, Any]) -> Dict[str, Any]:
    """podman_upgrade's `verify`: idmap_support's options for the gather after a package change (the
    YAML adds the operator's idmapguard_verify_* map, podman and unit settings)."""
    out = {"helper": state.helper_path, "podman_backport": state.backport}
    out.update({k: v for k, v in options.items() if k != "why_proof"})
    out["disable_idmap_reason"] = out.get("disable_idmap_reason") or None
    return out


def configure_pending(state: State) -> bool:
    """Configure is still to run on this host (so its proof waits until after it)."""
    return ("configure" not in state.done and "configure" in state.options.steps
            and state.now.get("verdict") == "fixable_by_config")


def reclaim(state: State) -> Dict[str, Any]:
    """The one reclaim decision: {due, reason} (reclaim_policy.prune_due on the latest facts).
    After a Podman upgrade the old Podman's copies are pruned whatever the inode use."""
    opts = state.options
    if opts.remediate_graphroot:
        # another store than the facts describe: the role reads it and decides (decision None)
        return {"due": True, "reason": "store %s given: the remediate role decides from it" % opts.remediate_graphroot,
                "role_decides": True}
    policy = "always" if state.upgrade.get("upgraded") and not state.upgrade.get("proof_failed") else (
        opts.remediate_policy or DEFAULT_POLICY)
    threshold = DEFAULT_THRESHOLD_PERCENT if opts.remediate_threshold is None else opts.remediate_threshold
    graphroot = state.now.get("graphroot") or {}
    due, reason = prune_due(policy, threshold, _int(graphroot.get("inodes_used")), _int(graphroot.get("inodes_total")))
    return {"due": due, "reason": reason}


def _rollback_files(state: State) -> Dict[str, Any]:
    """What puts storage.conf back: the storage_conf module's `undo` (and those of the files units
    name in CONTAINERS_STORAGE_CONF), and the drop-ins configure wrote. `write` is storage.conf's,
    `writes` every file to write back."""
    writes = []  # type: List[Dict[str, Any]]
    remove = []  # type: List[str]
    undos = [state.configure.get("undo") or None] + list(state.configure.get("unit_undo") or [])
    for undo in undos:
        if isinstance(undo, Mapping):
            if undo.get("existed"):
                writes.append({k: undo.get(k) for k in ("path", "content", "mode", "owner", "group")})
            else:
                remove.append(str(undo.get("path")))
    main = undos[0]
    write = writes[0] if isinstance(main, Mapping) and main.get("existed") else None
    remove += [str(path) for path in state.configure.get("dropins") or []]
    # systemd keeps a unit's drop-ins loaded until told: removing ours needs a reload to count
    reload = bool(state.now.get("systemd")) and any(path.startswith("/etc/systemd/") for path in remove)
    return {"write": write, "writes": writes, "remove": remove, "daemon_reload": reload}


def plan(state: State) -> Dict[str, Any]:  # pylint: disable=too-many-locals,too-many-statements
    opts, now = state.options, state.now
    verdict = now.get("verdict")
    done = set(state.done)
    out = {}  # type: Dict[str, Any]
    out["helper"] = _entry("helper" in opts.steps and "verify" not in done,
                           "helper step selected" if "helper" in opts.steps else "helper step not selected",
                           # a missing helper: the helper step installs it and verify runs again
                           missing="report" if "helper" in opts.steps else "fail")
    # the first verify also proves, where only _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes stands in the way,
    # whether the variable is needed (the module decides where that is): no separate proof call
    first_proof = "configure" in opts.steps and "proof" in opts.steps and not state.check_mode
    # judged as every proof of the rollout (the operator's rollout options), with the declared reason
    disable_proof = {"proof_disable_idmap": first_proof, "proof_accept": list(opts.proof_accept),
                     "proof_strict": opts.proof_strict, "disable_idmap_reason": opts.disable_idmap_reason}
    out["verify"] = _entry(True, "verify always runs", **disable_proof)
    if not state.verified:
        for step in STEP_ORDER:
            out[step] = _entry(False, "verify first")
        out["act"] = False
        return out
    failed = state.failed is not None

    helper_changed = "helper" in opts.steps and bool(state.helper.get("changed"))
    out["reverify"] = _entry(helper_changed and not state.rejudged and "reverify" not in done and not failed,
                             "helper unchanged" if not helper_changed else
                             "the helper changed; the verdict was made again from the probe it ran when installed"
                             if state.rejudged else "the helper changed", **disable_proof)

    upgrade = state.upgrade
    wanted = opts.upgrade_podman and state.before.get("verdict") == "needs_podman_upgrade"
    out["upgrade"] = _entry(wanted and "upgrade" not in done and not failed,
                            ("verdict %s" % state.before.get("verdict")) if opts.upgrade_podman
                            else "idmapguard_rollout_upgrade_podman is off",
                            update_cache=opts.upgrade_update_cache, backports=list(opts.upgrade_backports))
    manager = str(upgrade.get("package_manager") or "")
    listing = ("upgrade" in done and "upgrade_list" not in done and manager in PACKAGE_MANAGERS and not failed)
    out["upgrade_list"] = _entry(
        listing, "package manager %s" % (manager or "unknown"),
        refresh=listing and manager == "apt" and opts.upgrade_update_cache,
        argv=(["apt-cache", "policy", "podman"] if manager == "apt" else [manager, "-q", "list", "--showduplicates", "podman"]),
        # dnf list exits 1 when no repository has the package: that is an answer, not a failure
        rc_must_be_zero=manager == "apt")
    install = bool(upgrade.get("upgrade")) and not state.check_mode and "upgrade_install" not in done and not failed
    # podman_upgrade gathers the installed Podman's facts in the same call, as the verify after the
    # upgrade (with the canary and the proof: due after an upgrade; a proof configure still comes
    # before is judged after configure), so no idmap_support call sits between the upgrade and configure
    up_due, up_why = proof_due(state, upgrading=True)
    up_verify = dict(_verify_options(state, up_due, up_why), proof_disable_idmap=first_proof,
                     podman_backport=bool(upgrade.get("backport")) or opts.podman_backport)
    out["upgrade_install"] = _entry(install, "check mode: nothing is installed" if state.check_mode
                                    else str(upgrade.get("note") or "no upgrade planned"),
                                    package_manager=manager, spec=upgrade.get("target_spec"),
                                    verify=_module_verify(state, up_verify))
    due, why = proof_due(state)

    pending = configure_pending(state)
    # Every verify before configure (the first, the helper's again, the upgrade's) proves in the same
    # call whether _CONTAINERS_OVERLAY_DISABLE_IDMAP is needed where it alone stands in the way
    # (`proof_disable_idmap`): configure removes it only where that proof ran and passed (no separate
    # proof before configure: test_rollout's table shows the facts carry it on every path)
    out["configure"] = _entry(pending and not failed, "verdict %s" % verdict)

    changed = conf_changed(state)
    verify_after = (not state.check_mode and not failed and "verify_changed" not in done and not pending
                    and (changed or (due and verdict == "shares" and state.proof is None
                                     and "upgrade_install" not in done)))
    if changed:
        reason = "storage.conf changed"
    elif due:
        reason = why
    else:
        reason = "nothing changed"
    out["verify_changed"] = _entry(verify_after, reason, **_verify_options(state, due, why))

    proof = state.proof
    proof_failed = isinstance(proof, Mapping) and not proof.get("passed")
    files = _rollback_files(state)
    roll = ((proof_failed or failed) and changed and not state.rolled_back and not state.check_mode
            and (bool(files["writes"]) or bool(files["remove"])))
    out["rollback"] = _entry(roll, ("the proof failed" if proof_failed else "the rollout failed" if failed
                                    else "nothing to put back"), **files)

    up_failed = bool(upgrade.get("proof_failed")) and not upgrade.get("rolled_back") and "upgrade_rollback" not in done
    spec = upgrade.get("rollback_spec")
    # the previous Podman again, and (the same podman_upgrade call) its facts for the record: no
    # canary or proof (the host fails either way), the operator's backport declaration again
    out["upgrade_rollback"] = _entry(up_failed and not failed, str(upgrade.get("error") or "no failed upgrade"),
                                     package_manager=manager, spec=spec,
                                     verify=_module_verify(state, {"canary": False, "proof": False,
                                                                   "podman_backport": opts.podman_backport}))

    copies = _int((now.get("graphroot") or {}).get("mapped_copies"), 1)  # unknown: look
    decision = reclaim(state)
    gplan = guard.decide(state)
    if "remediate" not in opts.steps:
        prune, prune_why = False, "remediate step not selected"
    elif upgrade.get("proof_failed"):
        prune, prune_why = False, "the proof failed after the Podman upgrade: nothing is pruned"
    elif state.rolled_back or proof_failed:
        prune, prune_why = False, "the proof failed: nothing is pruned"
    elif copies <= 0:
        prune, prune_why = False, "no mapped copies"
    else:
        prune, prune_why = decision["due"], "%d mapped copies; %s" % (copies, decision["reason"])
    install = gplan["install"] and not (upgrade.get("proof_failed") or state.rolled_back or proof_failed)
    remediate = (prune or install) and not failed and "remediate" not in done
    out["remediate"] = _entry(remediate, prune_why, prune=prune,
                              decision=None if decision.get("role_decides") else {"due": prune, "reason": prune_why},
                              guard=install, guard_reason=gplan["reason"])
    out["guard_stop"] = _entry(gplan["stop"] and not failed and "guard_stop" not in done, gplan["reason"])
    out["guard"] = gplan
    # a step that ran keeps the entry it ran with (not run again: each entry's `run` says so too)
    out.update({step: dict(entry) for step, entry in state.ran.items() if step in STEP_ORDER})
    out["act"] = any(out[step]["run"] for step in STEP_ORDER)
    return out
