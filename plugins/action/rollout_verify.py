# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin idmapguard.storage.rollout_verify: the rollout's first look at a host, one task.

Runs idmap_support once (the facts, the verdict, the installed helper and the host's metrics
file) with the settings the rollout's state gives it, prints the verify role's summary line, and
says whether any task follows on this host (`rollout.act`). The decisions are the rollout state
machine's (plugin_utils/rollout/first_verify.py) and the helper role's (plugin_utils/helper_plan.py:
whether the helper idmap_support saw is already the one the role would install, read with the
role's own defaults); this file only gathers their inputs.

The operator's variables are read here, once per host, by name (OPTION_VARS, VERIFY_VARS): only
those that are set are templated. (Passed as task arguments, each of the 28 `{{ var |
default(none) }}` was compiled and rendered per host on the controller: about a third of this
task's controller time on a converged host.)
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import PolicyError
from ansible_collections.idmapguard.storage.plugins.plugin_utils.helper_plan import HelperPlanError, known_current
from ansible_collections.idmapguard.storage.plugins.plugin_utils.plain_data import plain
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.first_verify import next_steps, verify_args
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import RolloutError
from ansible_collections.idmapguard.storage.plugins.plugin_utils.verify_summary import summary

display = Display()

MODULE = "idmapguard.storage.idmap_support"
# the helper role, whose defaults say where its binary comes from when the operator does not
HELPER_ROLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "roles", "helper")
HELPER_SETTINGS = ("dest", "build", "prebuilt", "binary", "binaries", "native_dir", "controller_build_dir")
# the rollout's options (the rollout_state filter's input) and the operator's variable behind each
OPTION_VARS = (
    ("steps", "idmapguard_rollout_steps"),
    ("proof", "idmapguard_rollout_proof"),
    ("proof_strict", "idmapguard_rollout_proof_strict"),
    ("proof_accept", "idmapguard_rollout_proof_accept"),
    ("upgrade_podman", "idmapguard_rollout_upgrade_podman"),
    ("upgrade_backports", "idmapguard_rollout_upgrade_backports"),
    ("upgrade_update_cache", "idmapguard_rollout_upgrade_update_cache"),
    ("guard", "idmapguard_rollout_guard"),
    ("guard_enable", "idmapguard_remediate_guard_enable"),
    ("remediate_guard", "idmapguard_remediate_guard"),
    ("remediate_policy", "idmapguard_remediate_policy"),
    ("remediate_threshold", "idmapguard_remediate_inode_threshold"),
    ("podman_backport", "idmapguard_verify_podman_backport"),
    ("disable_idmap_reason", "idmapguard_verify_disable_idmap_reason"),
    ("helper_dest", "idmapguard_helper_dest"),
    ("verify_helper", "idmapguard_verify_helper"),
)
# remediate_graphroot: the graphroot of this variable (the operator's store location)
STORE_LOCATION_VAR = "idmapguard_remediate_store_location"
# idmap_support's options the operator may set, and the variable behind each (the verify role's)
VERIFY_VARS = tuple((name, "idmapguard_verify_" + name) for name in (
    "uidmap", "gidmap", "canary", "proof", "proof_accept", "proof_strict", "disable_idmap_reason", "podman_backport",
    "podman_args", "units"))


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("options", "verify", "metrics_dest"))

    def _helper_settings(self, task_vars):
        """The helper role's variables as the role would read them: the operator's, else the
        role's defaults (templated as in the role, with its role_path)."""
        defaults = self._loader.load_from_file(os.path.join(HELPER_ROLE, "defaults", "main.yml"),
                                               trusted_as_template=True) or {}
        env = dict(defaults)
        env.update(task_vars)
        env["role_path"] = HELPER_ROLE
        templar = self._templar.copy_with_new_env(available_variables=env)
        return {name: templar.template(env["idmapguard_helper_" + name]) for name in HELPER_SETTINGS}

    def _current_helper(self, observed, task_vars):
        """The helper role's record where the installed helper is already current, else None."""
        try:
            arch = self._templar.template(task_vars.get("ansible_architecture") or "") or observed.get("architecture")
            return known_current(observed, str(arch or ""), plain(self._helper_settings(task_vars)))
        except (AnsibleError, HelperPlanError, KeyError, TypeError, ValueError):
            return None  # the role runs, and says what is wrong

    def _variables(self, task_vars, names):
        """{key: the operator's variable rendered, None where it is not set} for NAMES ((key, variable))."""
        return {key: self._templar.template(task_vars[var]) if var in task_vars else None for key, var in names}

    def _options(self, task_vars):
        """The rollout's options from the operator's variables (null: not set)."""
        options = self._variables(task_vars, OPTION_VARS)
        location = self._variables(task_vars, (("location", STORE_LOCATION_VAR),))["location"]
        options["remediate_graphroot"] = location.get("graphroot") if isinstance(location, dict) else None
        return options

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _spec, args = self.validate_argument_spec(argument_spec={
            "options": {"type": "dict"},
            "verify": {"type": "dict"},
            "metrics_dest": {"type": "str"},
        })
        if args["options"] is None:
            args["options"] = self._options(task_vars)
        if args["verify"] is None:
            args["verify"] = self._variables(task_vars, VERIFY_VARS)
        if args["metrics_dest"] is None:
            # idmapguard_metrics_dir, "auto" where it is not set (as the metrics step reads it)
            args["metrics_dest"] = (self._templar.template(task_vars["idmapguard_metrics_dir"])
                                    if "idmapguard_metrics_dir" in task_vars else "auto")
        options = plain(args["options"])
        host = task_vars.get("inventory_hostname")
        check_mode = boolean(self._play_context.check_mode)
        result["rollout"] = {"options": options}
        try:
            start = verify_args(options, host, check_mode)
        except (RolloutError, PolicyError, TypeError) as exc:
            result.update(failed=True, msg=str(exc))
            return result
        # the operator's idmapguard_verify_* settings (null: not set, the module's default)
        module_args = {k: v for k, v in plain(args["verify"]).items() if v is not None and v != ""}
        module_args.update(start["module"])
        if args["metrics_dest"]:
            module_args["metrics_dest"] = args["metrics_dest"]
        verified = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        result.update(verified)
        if verified.get("failed"):
            return result
        facts = (verified.get("ansible_facts") or {}).get("idmapguard") or {}
        observed = verified.get("helper") or {}
        display.display(summary(host, facts, observed))
        helper = self._current_helper(observed, task_vars) if start["helper_step"] else None
        try:
            result["rollout"].update(next_steps(options, host, check_mode, plain(verified), helper,
                                                args["metrics_dest"]), helper=helper)
        except (RolloutError, PolicyError, TypeError) as exc:
            result.update(failed=True, msg=str(exc))
        return result
