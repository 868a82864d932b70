# -*- coding: utf-8 -*-
"""canary: every path out removes the container and the image (Podman replaced by a recorder;
the real canary runs on lab hosts in tests/integration/test_verify.py)."""

import os
import signal
import tarfile

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils import canary
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import StorageSettings

MAP = "0:1065537:65536,531571:531571:1"


@pytest.fixture
def store(monkeypatch, tmp_path):
    """A store whose mapped-copy count the fake Podman changes."""
    state = {"copies": 0, "calls": [], "fail": None, "objects": set()}

    def copies(_settings):
        return {"count": state["copies"], "inodes": 20 * state["copies"], "layers": ["l"] * state["copies"]}

    monkeypatch.setattr(canary, "mapped_copies", copies)
    monkeypatch.setattr(canary, "json_snapshot", lambda _s: "images=%d" % len(state["objects"]))
    monkeypatch.setattr(canary, "fs_usage", lambda _p: {"inodes_used": 100 + 20 * state["copies"]})

    def run(argv):
        state["calls"].append(argv[1:])
        verb = argv[1]
        if state["fail"] == verb:
            if verb == "create":
                state["copies"] += 1  # a failed create leaves its copy behind (real Podman 4.3 does)
            return 125, "", "Error: %s failed" % verb
        if state["fail"] == "signal-" + verb:
            os.kill(os.getpid(), signal.SIGTERM)
        if verb == "import":
            with tarfile.open(argv[3]) as tar:
                assert len(tar.getnames()) == 2 + canary.CANARY_FILES
            state["objects"].add(argv[4])
        elif verb == "create":
            state["copies"] += state["copy_per_create"]
            state["objects"].add(argv[3])
        elif verb == "rm":
            state["objects"].discard(argv[-1])
        elif verb == "image":
            return (0 if argv[-1] in state["objects"] else 1), "", ""
        elif verb == "rmi":
            state["objects"].discard(argv[-1])
            state["copies"] = 0
        return 0, "", ""

    state["run"] = run
    state["copy_per_create"] = 1
    state["settings"] = StorageSettings(driver="overlay", graphroot=str(tmp_path), runroot=str(tmp_path))
    return state


def verbs(state):
    """The verbs after the leftover listing (ps, images) every run starts with."""
    assert [c[0] for c in state["calls"][:2]] == ["ps", "images"]
    return [c[0] for c in state["calls"][2:]]


def test_canary_that_copies(store):
    result = canary.run_canary(store["run"], store["settings"], MAP, MAP)
    assert result["new_mapped_layers"] == 1 and result["new_mapped_layer_inodes"] == 20
    assert result["store_restored"] is True and result["inodes_delta"] == 0
    assert verbs(store) == ["import", "create", "rm", "image", "rmi"]
    assert not store["objects"]
    create = store["calls"][3]
    assert create[create.index("--uidmap") + 1] == MAP and create[create.index("--gidmap") + 1] == MAP


def test_canary_that_shares(store):
    store["copy_per_create"] = 0
    result = canary.run_canary(store["run"], store["settings"], MAP, MAP)
    assert result["new_mapped_layers"] == 0 and result["store_restored"] is True


def test_failed_create_is_cleaned_up_and_raised(store):
    store["fail"] = "create"
    with pytest.raises(canary.CanaryError, match="store restored: True"):
        canary.run_canary(store["run"], store["settings"], MAP, MAP)
    assert verbs(store) == ["import", "create", "rm", "image", "rmi"]
    assert not store["objects"] and store["copies"] == 0


def test_failed_import_is_raised(store):
    store["fail"] = "import"
    with pytest.raises(canary.CanaryError, match="podman import failed"):
        canary.run_canary(store["run"], store["settings"], MAP, MAP)
    assert verbs(store) == ["import", "rm", "image"]


def test_sigterm_during_create_unwinds_through_cleanup(store):
    store["fail"] = "signal-create"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(canary.CanaryError, match="interrupted"):
        canary.run_canary(store["run"], store["settings"], MAP, MAP)
    assert verbs(store)[-3:] == ["rm", "image", "rmi"]
    assert not store["objects"]
    assert signal.getsignal(signal.SIGTERM) == before


def _proc(tmp_path, pid, start):
    d = tmp_path / "proc" / str(pid)
    d.mkdir(parents=True)
    # the command name may hold spaces and parentheses: field 22 is counted from the last ')'
    (d / "stat").write_text("%d (we (i) rd) S " % pid + " ".join(["1"] * 18) + " %s 0 0\n" % start)
    return str(tmp_path / "proc")


def test_owner_alive_needs_the_same_start_time(tmp_path):
    proc = _proc(tmp_path, 4242, "777")
    assert canary.process_start_time(4242, proc) == "777"
    assert canary.owner_alive("idmapguard-canary-4242-777-abcd1234", proc) is True
    assert canary.owner_alive("localhost/idmapguard-canary-4242-777-abcd1234:latest", proc) is True
    assert canary.owner_alive("idmapguard-canary-4242-778-abcd1234", proc) is False  # pid reused
    assert canary.owner_alive("idmapguard-canary-4243-777-abcd1234", proc) is False  # gone
    assert canary.owner_alive("someone-else", proc) is None
    assert canary.owner_alive("idmapguard-canary-0123456789ab", proc) is None  # old style: not judged


def test_object_names_carry_this_process():
    name = canary.object_name()
    assert canary.owner_alive(name) is True
    assert name.startswith("idmapguard-canary-%d-" % os.getpid())


def test_remove_leftovers_removes_only_dead_runs(tmp_path):
    proc = _proc(tmp_path, 4242, "777")
    live, dead = "idmapguard-canary-4242-777-aaaa1111", "idmapguard-canary-4243-777-bbbb2222"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    for name in (live, dead, "unrelated"):
        (tmp / (name + "-x")).mkdir()
    calls = []

    def run(argv):
        calls.append(argv[1:])
        if argv[1] == "ps":
            return 0, '[{"Names": ["%s"]}, {"Names": ["%s"]}, {"Names": ["web"]}]' % (live, dead), ""
        if argv[1] == "images":
            return 0, '[{"Names": ["localhost/%s:latest", "localhost/%s:latest"]}]' % (dead, live), ""
        return 0, "", ""

    removed = canary.remove_leftovers(run, "podman", [], str(tmp), proc)
    assert ["rm", "--force", "--ignore", dead] in calls and ["rmi", "--force", "localhost/%s:latest" % dead] in calls
    assert not any(live in " ".join(c) for c in calls if c[0] in ("rm", "rmi"))
    assert sorted(p.name for p in tmp.iterdir()) == sorted([live + "-x", "unrelated-x"])
    assert len(removed) == 3
