# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout state as a pure fold over what the steps' tasks left behind.

playbooks/tasks/rollout_host.yml keeps no state of its own: each step's tasks only `register:`
(or, for a role, leave the role's result fact), and the block's lazily templated variable `_igr`
is `fold` of the operator's options over those results. Every time a task reads `_igr`, the fold
starts again from `start` and replays, in STEP_ORDER, each step whose plan entry says `run` and
whose result is there (`advance`); it stops at the first planned step without a result: that is
the step about to run. A rescue's failure comes last, then a rollback the rescue ran.
A step of several tasks is over when its last task, which always runs with it, has registered:
until then every one of its tasks still sees the step planned.

What each step left, and what `advance` reads of it (`EXTRACT`), is the only knowledge of the
task files here: a task that was skipped or failed left no result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Callable, Dict, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.advance import advance, fail
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.plan import STEP_ORDER, plan
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import (
    Options,
    RolloutError,
    State,
    start,
)

Results = Mapping[str, Any]


def ran(result: Any) -> bool:
    """A task's registered result that counts: it ran (not skipped) and did not fail."""
    return isinstance(result, Mapping) and bool(result) and not result.get("skipped") and not result.get("failed")


def _facts(result: Any) -> Optional[Dict[str, Any]]:
    """The verify facts of a registered idmap_support (or podman_upgrade) result (None: it did not run)."""
    if not ran(result):
        return None
    facts = (result.get("ansible_facts") or {}).get("idmapguard")
    if not isinstance(facts, Mapping):
        raise RolloutError("an idmap_support or podman_upgrade result without ansible_facts.idmapguard")
    return {"facts": facts}


def _verify_step(name: str) -> Callable[[State, Results], Optional[Dict[str, Any]]]:
    def extract(state: State, results: Results) -> Optional[Dict[str, Any]]:
        del state
        return _facts(results.get(name))
    return extract


def _upgrade(state: State, results: Results) -> Optional[Dict[str, Any]]:
    # the package manager fact, once setup has learnt it (or was known before)
    del state
    manager = results.get("pkg_mgr")
    return {"package_manager": str(manager)} if manager else None


def _upgrade_list(state: State, results: Results) -> Optional[Dict[str, Any]]:
    del state
    listing = results.get("upgrade_list")
    if not ran(listing):
        return None
    return {"listing": str(listing.get("stdout") or ""), "refresh": dict(results.get("upgrade_refresh") or {})}


def _upgrade_install(state: State, results: Results) -> Optional[Dict[str, Any]]:
    # podman_upgrade: whether the package changed (not the canary's `changed`), and the facts it gathered
    del state
    done = results.get("upgrade_install")
    facts = _facts(done)
    if facts is None:
        return None
    return dict(facts, changed=bool((done.get("podman") or {}).get("changed")))


def _role_fact(name: str, key: str) -> Callable[[State, Results], Optional[Dict[str, Any]]]:
    """A role's result fact (idmapguard_configure, idmapguard_remediate): set once the role has acted."""
    def extract(state: State, results: Results) -> Optional[Dict[str, Any]]:
        del state
        fact = results.get(name)
        return {key: fact} if isinstance(fact, Mapping) and fact else None
    return extract


def _rollback(state: State, results: Results) -> Optional[Dict[str, Any]]:
    # its last task, which always runs with it (either file task may have nothing to do)
    del state
    return {} if ran(results.get("rollback")) else None


def _upgrade_rollback(state: State, results: Results) -> Optional[Dict[str, Any]]:
    if not state.plan["upgrade_rollback"].get("spec"):
        return {}  # no previous Podman on offer: nothing runs on the host, the upgraded one stays
    return _facts(results.get("upgrade_rollback"))


def _guard_stop(state: State, results: Results) -> Optional[Dict[str, Any]]:
    del state
    return {"stopped": True} if ran(results.get("guard_stop")) else None


EXTRACT = {
    "reverify": _verify_step("reverify"),
    "upgrade": _upgrade,
    "upgrade_list": _upgrade_list,
    "upgrade_install": _upgrade_install,
    "configure": _role_fact("configure", "configure"),
    "verify_changed": _verify_step("verify_changed"),
    "rollback": _rollback,
    "upgrade_rollback": _upgrade_rollback,
    "remediate": _role_fact("remediate", "remediate"),
    "guard_stop": _guard_stop,
}  # type: Dict[str, Callable[[State, Results], Optional[Dict[str, Any]]]]
# the names a caller passes (each step's registered results or role fact; `verify` is the verify
# role's idmapguard_verify_result, `helper` the helper role's idmapguard_helper)
RESULT_NAMES = ("verify", "helper", "reverify", "pkg_mgr", "upgrade_refresh", "upgrade_list", "upgrade_install",
                "configure", "verify_changed", "rollback", "upgrade_rollback", "remediate", "guard_stop")


def _failed(state: State, failure: Mapping[str, Any], results: Results) -> State:
    state = fail(state, str(failure.get("task") or "?"), dict(failure.get("result") or {}),
                 failure.get("storage_conf"), failure.get("unit_conf"), failure.get("dropins"))
    # the rescue's rollback (the steps' own rollback, had it run, was replayed above)
    if state.plan["rollback"]["run"] and _rollback(state, results) is not None:
        state = advance(state, "rollback", {})
    return state


def fold(options: Mapping[str, Any], host: str, check_mode: bool, results: Optional[Results] = None,
         failure: Optional[Mapping[str, Any]] = None) -> State:
    """The host's rollout state after the results so far (RESULTS: RESULT_NAMES -> what the task
    registered, None where it has not run), and after FAILURE ({task, result, storage_conf}, the
    rescue's) if any."""
    results = dict(results or {})
    unknown = sorted(set(results) - set(RESULT_NAMES))
    if unknown:
        raise RolloutError("unknown step results: %s" % ", ".join(unknown))
    try:
        state = start(host, options, check_mode)
    except RolloutError:
        if failure is None:
            raise
        # options the rollout cannot start with: the failure (the task that read them) is the record
        state = State(host=str(host), check_mode=bool(check_mode), options=Options())
    state.plan = plan(state)
    verified = _facts(results.get("verify"))
    helper = results.get("helper")
    # verify is complete once the helper step (which follows the verify role) has also run
    if verified is not None and ("helper" not in state.options.steps or isinstance(helper, Mapping)):
        state = advance(state, "verify", dict(verified, helper=dict(helper or {})))
        for step in STEP_ORDER:
            if not state.plan[step]["run"]:
                continue
            result = EXTRACT[step](state, results)
            if result is None:
                break  # the step about to run (or the one that failed)
            state = advance(state, step, result)
    if failure is not None:
        state = _failed(state, failure, results)
    return state
