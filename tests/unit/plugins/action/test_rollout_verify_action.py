# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout_verify action with the host side replaced: the operator's variables it reads by name
(only those that are set), what it sends to idmap_support, and the record it returns where nothing
follows."""

import dataclasses
from unittest.mock import MagicMock

import pytest

from ansible.playbook.task import Task

from ansible_collections.idmapguard.storage.plugins.action.rollout_verify import (
    MODULE, OPTION_VARS, VERIFY_VARS, ActionModule,
)
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import DEFAULT_HELPER, Options

FACTS = {"verdict": "shares", "reasons": [], "reason_codes": ["c_shares"], "remedy": "r",
         "graphroot": {"mapped_copies": 0, "inodes_used": 10, "inodes_total": 100, "inodes_free": 90,
                       "mapped_copy_inodes": 0},
         "podman": {"version": "5.8.6", "disable_idmap_env": {"set": False, "kept": None}},
         "systemd": True, "guard": None, "canary": None, "proof": None}
CURRENT = {"path": DEFAULT_HELPER, "run_path": DEFAULT_HELPER, "staged": False, "checksum": "c", "version": "v",
           "source": "controller", "src": "/b", "arch": "x86_64", "changed": False, "current": True, "problem": ""}


def make_action(args, helper=None):
    """An ActionModule whose idmap_support call is recorded; the templar renders a value as it is
    (as for variables that hold no template) and counts what it was asked to render."""
    task = Task()
    task.args = args
    task.check_mode = False
    templar = MagicMock()
    rendered = []

    def template(value):
        rendered.append(value)
        return value

    templar.template.side_effect = template
    action = ActionModule(task, MagicMock(), MagicMock(check_mode=False), loader=None, templar=templar,
                          shared_loader_obj=None)
    calls = []

    def execute(module_name, module_args, task_vars=None):
        calls.append((module_name, module_args))
        return {"changed": False, "ansible_facts": {"idmapguard": dict(FACTS)}, "helper": {"present": True},
                "metrics": {"dir": None, "sha256": None}}

    action._execute_module = execute
    action._current_helper = lambda observed, task_vars: helper
    action._task.async_val = 0
    return action, calls, rendered


@pytest.fixture(autouse=True)
def no_base_run(monkeypatch):
    monkeypatch.setattr("ansible.plugins.action.ActionBase.run", lambda self, tmp=None, task_vars=None: {})
    monkeypatch.setattr("ansible_collections.idmapguard.storage.plugins.action.rollout_verify.display", MagicMock())


def test_every_rollout_option_has_its_variable():
    names = {key for key, _var in OPTION_VARS} | {"remediate_graphroot"}
    assert names == {f.name for f in dataclasses.fields(Options)}


def test_reads_only_the_variables_that_are_set():
    task_vars = {"inventory_hostname": "h", "unrelated": "x",
                 "idmapguard_rollout_proof_accept": ["commit"], "idmapguard_verify_podman_args": ["--cgroup-manager=x"],
                 "idmapguard_remediate_store_location": {"graphroot": "/srv/store", "runroot": "/run/s"},
                 "idmapguard_metrics_dir": ""}
    action, calls, rendered = make_action({}, helper=CURRENT)
    result = action.run(task_vars=task_vars)
    # only the variables that are set were templated, each once
    assert sorted(map(repr, rendered)) == sorted(map(repr, [
        ["commit"], ["--cgroup-manager=x"], {"graphroot": "/srv/store", "runroot": "/run/s"}, ""]))
    expected = {key: None for key, _var in OPTION_VARS}
    expected.update(proof_accept=["commit"], remediate_graphroot="/srv/store")
    assert result["rollout"]["options"] == expected
    [(name, module_args)] = calls
    assert name == MODULE
    # the operator's verify settings that are set; metrics_dest "" (idmapguard_metrics_dir): no metrics
    assert module_args["podman_args"] == ["--cgroup-manager=x"]
    assert "metrics_dest" not in module_args and "uidmap" not in module_args
    assert module_args["helper"] == DEFAULT_HELPER


def test_no_variables_set_is_the_defaults():
    action, calls, rendered = make_action({}, helper=CURRENT)
    result = action.run(task_vars={"inventory_hostname": "h"})
    assert rendered == []
    assert result["rollout"]["options"] == dict({key: None for key, _var in OPTION_VARS}, remediate_graphroot=None)
    [(_name, module_args)] = calls
    assert module_args["metrics_dest"] == "auto"
    assert not {name for name, _var in VERIFY_VARS} & set(module_args) - {"proof_accept", "proof_strict"}


def test_arguments_given_win_over_the_variables():
    action, calls, _rendered = make_action({"options": {"steps": ["verify"]}, "verify": {"uidmap": "0:1:2"},
                                            "metrics_dest": ""})
    result = action.run(task_vars={"inventory_hostname": "h", "idmapguard_rollout_steps": ["helper"],
                                   "idmapguard_verify_uidmap": "0:5:6"})
    assert result["rollout"]["options"] == {"steps": ["verify"]}
    [(_name, module_args)] = calls
    assert module_args["uidmap"] == "0:1:2" and "metrics_dest" not in module_args


def test_a_converged_host_gets_its_record_and_a_changed_one_does_not():
    action, _calls, _rendered = make_action({"options": {"steps": ["verify"]}, "metrics_dest": ""})
    rollout = action.run(task_vars={"inventory_hostname": "h"})["rollout"]
    assert rollout["act"] is False and rollout["record"]["host"] == "h" and rollout["record"]["verdict"] == "shares"
    # the helper not known current: the helper step follows, the record task folds its result
    action, _calls, _rendered = make_action({"metrics_dest": ""}, helper=None)
    rollout = action.run(task_vars={"inventory_hostname": "h"})["rollout"]
    assert rollout["act"] is True and rollout["record"] is None
