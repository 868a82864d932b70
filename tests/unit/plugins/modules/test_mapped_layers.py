# -*- coding: utf-8 -*-
"""The mapped_layers module end to end on a synthetic store: check mode, diff, errors."""

import importlib.util
import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.idmapguard.storage.plugins.module_utils.store import staging as staging_mod
from ansible_collections.idmapguard.storage.plugins.modules import mapped_layers

_FAKE = os.path.join(os.path.dirname(__file__), "..", "module_utils", "store", "fake_store.py")
_spec = importlib.util.spec_from_file_location("remediate_fake_store", _FAKE)
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)


class Exit(Exception):
    def __init__(self, result, failed):
        super().__init__(result)
        self.result = result
        self.failed = failed


@pytest.fixture
def run_module(monkeypatch):
    def exit_json(_self, **kwargs):
        raise Exit(kwargs, False)

    def fail_json(_self, **kwargs):
        raise Exit(kwargs, True)

    monkeypatch.setattr(mapped_layers.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(mapped_layers.AnsibleModule, "fail_json", fail_json)

    def run(args, check=False, diff=False):
        args = dict(args)
        if check:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args):
            with pytest.raises(Exit) as exc:
                mapped_layers.main()
        return exc.value

    return run


@pytest.fixture
def store(tmp_path):
    built = fake.FakeStore(tmp_path)
    ids = fake.standard(built)
    return built, ids


def _args(built, **extra):
    args = {"graphroot": built.graphroot, "runroot": built.runroot, "min_age": 60}
    args.update(extra)
    return args


def test_report_is_read_only(run_module, store):
    built, ids = store
    before = built.snapshot()
    out = run_module(_args(built))
    assert not out.failed and out.result["changed"] is False
    assert out.result["mapped_copies"] == 4
    assert out.result["filesystem"]["inodes_total"] >= 0
    assert {c["layer_id"] for c in out.result["copies"]} == set(ids["copies"]) | {ids["copy2"]}
    assert built.snapshot() == before


def test_check_mode_is_the_exact_plan(run_module, store):
    built, _ids = store
    before = built.snapshot()
    planned = run_module(_args(built, state="pruned"), check=True, diff=True)
    assert planned.result["changed"] is True and len(planned.result["removed"]) == 3
    assert planned.result["diff"]["before"]["mapped_copies"]
    assert built.snapshot() == before
    done = run_module(_args(built, state="pruned"))
    assert sorted(c["layer_id"] for c in done.result["removed"]) == \
        sorted(c["layer_id"] for c in planned.result["removed"])
    assert done.result["inodes_freed"] == planned.result["inodes_freed"]
    assert "diff" not in done.result
    again = run_module(_args(built, state="pruned"))
    assert again.result["changed"] is False


def test_keep_maps_and_images(run_module, store):
    built, ids = store
    out = run_module(_args(built, state="pruned", images=["localhost/other:latest"],
                           keep_maps=[{"uidmap": "0:1:1"}]), check=True)
    assert [c["layer_id"] for c in out.result["removed"]] == [ids["copy2"]]


@pytest.mark.parametrize("args,message", [
    ({"keep_maps": [{"uidmap": "0:1:0"}]}, "keep_maps"),
    ({"min_age": -1}, "min_age"),
    ({"graphroot": "relative/path"}, "absolute"),
])
def test_bad_parameters_fail_clearly(run_module, store, args, message):
    built, _ids = store
    before = built.snapshot()
    out = run_module(dict(_args(built, state="pruned"), **args))
    assert out.failed and message in out.result["msg"]
    assert built.snapshot() == before


def test_tampered_store_fails_and_deletes_nothing(run_module, store):
    built, _ids = store
    images = built.read("overlay-images/images.json")
    images[0]["mapped-layers"].append("0" * 63 + "/")
    with open(built.path("overlay-images", "images.json"), "w") as handle:
        json.dump(images, handle)
    before = built.snapshot()
    out = run_module(_args(built, state="pruned"))
    assert out.failed and "TamperedStoreError" in out.result["msg"] and "invalid id" in out.result["msg"]
    assert built.snapshot() == before


def _transient(built):
    """The store as containers/storage lays it out with transient_store = true: the containers'
    JSON and lock in the runroot, none in the graphroot."""
    os.rmdir(os.path.join(built.runroot, "overlay-containers"))
    os.rename(built.path("overlay-containers"), os.path.join(built.runroot, "overlay-containers"))


def test_location_is_taken_whole_and_returned_whole(run_module, store):
    built, _ids = store
    _transient(built)
    location = {"graphroot": built.graphroot, "runroot": built.runroot, "transient_store": True}
    report = run_module({"location": location, "min_age": 60})
    assert not report.failed, report.result
    assert report.result["location"] == dict(location, imagestore=None, additional_image_stores=[],
                                             driver="overlay")
    assert report.result["store"]["source"] == "parameters"
    # what the remediate role does: the report's location, whole, to the prune
    done = run_module({"location": report.result["location"], "state": "pruned", "min_age": 60})
    assert not done.failed and len(done.result["removed"]) == 3, done.result


def test_a_transient_store_named_by_graphroot_and_runroot_alone_is_refused_unchanged(run_module, store):
    # The remediate role's prune used to pass graphroot and runroot only: on a transient store
    # the containers' lock is then looked for in the graphroot.
    built, _ids = store
    _transient(built)
    before = built.snapshot()
    out = run_module(_args(built, state="pruned"))
    assert out.failed and "containers.lock" in out.result["msg"] and "nothing was changed" in out.result["msg"]
    assert built.snapshot() == before


def test_location_and_single_paths_are_exclusive(run_module, store):
    built, _ids = store
    out = run_module({"location": {"graphroot": built.graphroot, "runroot": built.runroot},
                      "graphroot": built.graphroot})
    assert out.failed and "not both" in out.result["msg"]


def test_copies_left_alone_are_not_removed_and_the_task_is_not_skipped(run_module, store, monkeypatch):
    """A copy the prune puts back (it cannot be staged) is returned as ``not_removed``. Under the
    old key ``skipped`` Ansible took the list for the task's own skipped flag: ``is skipped`` was
    true and the remediate role recorded that no prune ran."""
    # ansible-test's module unit context forbids ansible.plugins; `make test-unit` has it
    ansible_tests = pytest.importorskip("ansible.plugins.test.core")
    built, _ids = store
    real_stage = staging_mod.StagingRun.stage
    victims = []

    def failing_stage(self, parent, name, staged_name, area="graph"):
        if staged_name.endswith(".tar-split.gz") and not victims:
            victims.append(staged_name[:-len(".tar-split.gz")])
        if victims and staged_name == victims[0] + ".tar-split.gz":
            raise OSError(28, "No space left on device")
        return real_stage(self, parent, name, staged_name, area)

    monkeypatch.setattr(staging_mod.StagingRun, "stage", failing_stage)
    out = run_module(_args(built, state="pruned"))
    assert not out.failed, out.result
    assert [(c["layer_id"], c["reason"]) for c in out.result["not_removed"]] == [(victims[0], "cannot stage")]
    assert len(out.result["removed"]) == 2 and out.result["changed"] is True
    assert "skipped" not in out.result
    assert ansible_tests.skipped(dict(out.result)) is False
