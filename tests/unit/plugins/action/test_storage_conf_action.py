# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage_conf action plugin with the host side replaced: which file it starts from, what it
sends to the module, the diff, and errors with line and column."""

import base64
import pathlib
from unittest.mock import MagicMock

import pytest

from ansible.playbook.task import Task

from ansible_collections.idmapguard.storage.plugins.action.storage_conf import BUILTIN_DEFAULTS, ActionModule

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "storage-conf"


def make_action(args, files, module_result=None):
    """An ActionModule whose host has FILES (path -> text); returns it and the module calls."""
    task = Task()
    task.args = args
    task.check_mode = False
    action = ActionModule(task, MagicMock(), MagicMock(check_mode=False), loader=None, templar=MagicMock(),
                          shared_loader_obj=None)
    calls = []

    def execute(module_name, module_args, task_vars=None):
        if module_name == "ansible.legacy.slurp":
            src = module_args["src"]
            if src not in files:
                return {"failed": True, "msg": "file not found: %s" % src}
            return {"content": base64.b64encode(files[src].encode()).decode()}
        calls.append((module_name, module_args))
        return dict(module_result or {"changed": True})

    action._execute_module = execute
    action._task.async_val = 0
    return action, calls


@pytest.fixture(autouse=True)
def no_base_run(monkeypatch):
    monkeypatch.setattr("ansible.plugins.action.ActionBase.run", lambda self, tmp=None, task_vars=None: {})


def test_starts_from_the_vendor_file_when_etc_is_absent():
    vendor = (FIXTURES / "debian-bookworm.conf").read_text()
    action, calls = make_action({"absent": ["storage.options.overlay.mountopt"]},
                                {"/usr/share/containers/storage.conf": vendor})
    result = action.run(task_vars={})
    [(name, args)] = calls
    assert name == "idmapguard.storage.storage_conf"
    assert args["_edit"]["source"] == "/usr/share/containers/storage.conf"
    assert args["_edit"]["content"] == vendor.replace('mountopt = "nodev"\n', "")
    assert result["diff"]["before"] == vendor
    assert "absent; vendor file" in result["diff"]["before_header"]


def test_identical_result_calls_no_module_and_writes_nothing():
    vendor = (FIXTURES / "debian-trixie.conf").read_text()
    action, calls = make_action({"settings": {"storage.options.overlay.mountopt": "nodev"}},
                                {"/usr/share/containers/storage.conf": vendor})
    result = action.run(task_vars={})
    assert result["changed"] is False and calls == []


def test_neither_file_starts_from_builtin_defaults():
    action, calls = make_action({"settings": {"storage.driver": "overlay"}}, {})
    action.run(task_vars={})
    args = calls[0][1]
    assert args["_edit"]["source"] == "(built-in defaults)" and args["_edit"]["source_sha1"] is None
    assert args["_edit"]["content"] == BUILTIN_DEFAULTS + 'driver = "overlay"\n'


def test_store_views_sent_to_the_module():
    text = '[storage]\ndriver = "overlay"\n[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n'
    action, calls = make_action({"absent": ["storage.options.overlay.mount_program"], "allow_store_change": True},
                                {"/etc/containers/storage.conf": text})
    action.run(task_vars={})
    args = calls[0][1]
    assert args["_edit"]["store_before"]["mount_program"] == "/usr/bin/fuse-overlayfs"
    assert args["_edit"]["store_after"]["mount_program"] is None
    assert args["allow_store_change"] is True


def test_malformed_file_fails_with_line_and_column_and_calls_no_module():
    action, calls = make_action({"settings": {"storage.driver": "overlay"}},
                                {"/etc/containers/storage.conf": '[storage]\ndriver = "vfs\n'})
    result = action.run(task_vars={})
    assert result["failed"] is True and calls == []
    assert result["line"] == 2 and result["column"] >= 1
    assert "/etc/containers/storage.conf is not valid TOML: line 2, column" in result["msg"]


def test_module_failure_has_no_diff():
    action = make_action({"settings": {"storage.driver": "vfs"}},
                         {"/etc/containers/storage.conf": '[storage]\ndriver = "overlay"\n'},
                         module_result={"failed": True, "msg": "refusing", "changed": False})[0]
    result = action.run(task_vars={})
    assert result["failed"] is True and "diff" not in result


def test_documentation_and_action_plugin_use_the_one_argument_spec():
    """The spec lives in module_utils/storage_conf/__init__.py; DOCUMENTATION must describe exactly
    it (ansible-test validate-modules checks the same), the action plugin validates with it.
    (A controller test: it imports the action plugin, which needs ansible-core.)"""
    import yaml
    from ansible_collections.idmapguard.storage.plugins.action import storage_conf as action
    from ansible_collections.idmapguard.storage.plugins.module_utils import storage_conf as writer
    from ansible_collections.idmapguard.storage.plugins.modules import storage_conf as module
    documented = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = writer.argument_spec()
    assert set(documented) == set(spec)
    for name, option in spec.items():
        for key in ("type", "default", "elements"):
            assert documented[name].get(key) == option.get(key), (name, key)
    assert action.user_argument_spec is writer.user_argument_spec


DROPIN = "/etc/containers/storage.rootful.conf.d/zz-idmapguard.conf"
FIX = {"path": DROPIN, "dropin": True, "settings": {"storage.driver": "overlay"},
       "absent": ["storage.options.overlay.mount_program", "storage.options.mount_program"]}


def test_a_new_dropin_sets_absent_keys_to_empty_and_diffs_from_dev_null():
    main = '[storage]\ndriver = "overlay"\n[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n'
    action, calls = make_action(FIX, {"/etc/containers/storage.conf": main})
    result = action.run(task_vars={})
    [(dummy, args)] = calls
    content = args["_edit"]["content"]
    assert content.startswith("# containers/storage drop-in written by idmapguard.storage.storage_conf")
    assert 'driver = "overlay"' in content and 'mount_program = ""' in content
    assert "fuse-overlayfs" not in content  # never a copy of the main file
    assert args["_edit"]["source"] == DROPIN and args["_edit"]["source_sha1"] == ""
    assert args["_edit"]["dropin_sets"] == {"driver": "overlay", "mount_program": None}
    assert result["diff"]["before"] == "" and result["diff"]["before_header"].startswith("/dev/null")
    assert result["diff"]["after"] == content


def test_an_existing_dropin_is_edited_and_the_same_content_is_no_change():
    action, calls = make_action(FIX, {})
    action.run(task_vars={})
    written = calls[0][1]["_edit"]["content"]
    action, calls = make_action(FIX, {DROPIN: written})
    result = action.run(task_vars={})
    assert result["changed"] is False and calls == []
    action, calls = make_action(dict(FIX, settings={"storage.driver": "vfs"}), {DROPIN: written})
    result = action.run(task_vars={})
    assert calls[0][1]["_edit"]["source_sha1"] not in ("", None)
    assert result["diff"]["before"] == written and result["diff"]["before_header"] == DROPIN
