# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's first verify of a host, and whether anything follows it.

The action rollout_verify (plugins/action/rollout_verify.py) makes the rollout's first look at a
host one task: it asks `verify_args` how to call idmap_support, runs it, and asks `next_steps`
whether the host needs anything more in this run. A converged host (a current helper, a verdict
that asks for no step, a metrics file that already says the same) needs nothing: the rollout
skips the rest of its tasks for it in one step (playbooks/tasks/rollout_host.yml).
Everything here calls the state machine's own functions (fold, plan, record, metrics)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Dict, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.fold import fold
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.metrics import write_due
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.record import record


def verify_args(options: Mapping[str, Any], host: str, check_mode: bool) -> Dict[str, Any]:
    """What the state before verify tells the rollout's first idmap_support call (`module`: where
    the helper is, and whether a missing one fails the host or is reported because the helper step
    installs it), and `helper_step`: whether the helper step is selected (only then is the
    helper's record an input of the state)."""
    state = fold(options, host, check_mode)
    module = {"helper": state.helper_path, "helper_missing": state.plan["helper"]["missing"]}
    first = state.plan["verify"]
    if first["proof_disable_idmap"]:
        # where only _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes stands in the way, prove in this call whether it
        # is needed, judged as the rollout's every proof (its proof_accept and proof_strict)
        module.update({key: first[key] for key in ("proof_disable_idmap", "proof_accept", "proof_strict")})
    return {"module": module, "helper_step": "helper" in state.options.steps}


def next_steps(options: Mapping[str, Any], host: str, check_mode: bool, verify: Mapping[str, Any],
               helper: Optional[Mapping[str, Any]], metrics_dir: str) -> Dict[str, Any]:
    """After the first verify (VERIFY: idmap_support's result; HELPER: the helper's record where it
    is known to be current without the helper step, else None): `act`, whether any task follows
    (the helper step, a step of the plan, or the metrics file), and why; where nothing follows,
    also `record`, the host's line in the report: the fold over these same results that the
    rollout's record task would make again (rollout_host.yml takes it instead, which on a
    converged fleet saves that task's templating of the whole verify result per host)."""
    state = fold(options, host, check_mode, {"verify": verify, "helper": helper})
    plan = state.plan
    line = record(state)
    metrics = False
    if metrics_dir:
        observed = verify.get("helper") or {}
        metrics = write_due(line, str(observed.get("version") or ""), verify.get("metrics"))
    why = [name for name, due in (("helper", plan["helper"]["run"]), ("steps", plan["act"]), ("metrics", metrics))
           if due]
    return {"act": bool(why), "why": why, "record": None if why else line}
