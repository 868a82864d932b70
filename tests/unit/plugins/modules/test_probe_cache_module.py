# -*- coding: utf-8 -*-
"""probe_cache: check mode, diff, idempotence, refusal."""

import os

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.idmapguard.storage.plugins.modules import probe_cache


class Exit(Exception):
    def __init__(self, kind, result):
        super().__init__(kind)
        self.kind, self.result = kind, result


def _exit_json(self, **kwargs):
    raise Exit("exit", kwargs)


def _fail_json(self, **kwargs):
    raise Exit("fail", kwargs)


@pytest.fixture(autouse=True)
def exits(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)


def call(args):
    with patch_module_args(args):
        with pytest.raises(Exit) as raised:
            probe_cache.main()
    return raised.value.kind, raised.value.result


def test_check_mode_diff_then_clear_then_idempotent(tmp_path):
    (tmp_path / "overlay").mkdir()
    marker = tmp_path / "overlay" / "idmapped-lower-dir-false"
    marker.write_text("")
    (tmp_path / "overlay" / "overlay-true").write_text("")
    args = {"runroot": str(tmp_path), "clear": ["idmapped-lower-dir"]}
    kind, result = call(dict(args, _ansible_check_mode=True, _ansible_diff=True))
    assert kind == "exit" and result["changed"] is True and result["removed"] == [str(marker)]
    assert str(marker) in result["diff"]["before"] and result["diff"]["after"] == ""
    assert marker.exists()
    kind, result = call(args)
    assert result["changed"] is True and not marker.exists()
    assert os.listdir(str(tmp_path / "overlay")) == ["overlay-true"]
    kind, result = call(args)
    assert result["changed"] is False and result["absent"] == [str(marker)]


def test_refuses_a_directory_and_says_nothing_changed(tmp_path):
    (tmp_path / "overlay" / "overlay-false").mkdir(parents=True)
    kind, result = call({"runroot": str(tmp_path), "clear": ["overlay"]})
    assert kind == "fail" and "not a regular file" in result["msg"] and "removed before that: nothing" in result["msg"]
    assert (tmp_path / "overlay" / "overlay-false").is_dir()
