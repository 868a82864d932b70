# -*- coding: utf-8 -*-
"""idmap_support: the module's contract (facts shape, changed, check mode, failures), with
Podman and the helper replaced by recorded outputs. Real Podman runs in tests/integration."""

import hashlib
import json
import os

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.idmapguard.storage.plugins.module_utils import idmap_support as backend
from ansible_collections.idmapguard.storage.plugins.module_utils import sharing_proof
from ansible_collections.idmapguard.storage.plugins.modules import idmap_support

CONTRACT_KEYS = {"verdict", "reasons", "reason_codes", "remedy", "shares_noncontiguous", "kernel", "graphroot",
                 "podman", "canary", "proof", "guard", "store_location", "systemd"}
OK = {"ok": True, "errno": None, "message": "ok"}


class Exit(Exception):
    def __init__(self, kind, result):
        super().__init__(kind)
        self.kind = kind
        self.result = result


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A graphroot in tmp, a fake helper file, and recorded command outputs."""
    graphroot = tmp_path / "storage"
    graphroot.mkdir()
    helper = tmp_path / "idmapped-mount"
    helper.write_text("#!/bin/sh\nexit 99\n")
    helper.chmod(0o755)
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n'
                    '[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n'
                    % (graphroot, tmp_path / "run"))
    state = {"podman_ok": True, "version": "5.8.6", "calls": [], "warnings": []}
    info = {"version": {"Version": "5.8.6"},
            "store": {"configFile": str(conf), "graphDriverName": "overlay", "graphOptions": {},
                      "graphRoot": str(graphroot), "runRoot": str(tmp_path / "run"),
                      "graphStatus": {"Supports shifting": "true"}}}
    probe = {"version": "0.1.0", "kernel": "6.18.4", "path": str(graphroot), "fs_type": "ext4",
             "uidmap": [], "gidmap": [],
             "checks": {"mount_api": OK, "idmapped_mount": OK, "overlay_idmapped_lower": OK}}

    def run_command(self, argv, check_rc=False, **kwargs):
        state["calls"].append(list(argv))
        if argv[0] == str(helper):
            return 0, json.dumps(probe), ""
        if argv[1:] == ["--version"]:
            return (0, "podman version %s\n" % state["version"], "") if state["podman_ok"] else (1, "", "boom")
        if argv[1:] == ["info", "--format", "json"]:
            if not state["podman_ok"]:
                return 125, "", "Error: no space left on device"
            info["version"]["Version"] = state["version"]
            return 0, json.dumps(info), ""
        raise AssertionError("unexpected command %r" % (argv,))

    def exit_json(self, **kwargs):
        raise Exit("exit", kwargs)

    def fail_json(self, **kwargs):
        raise Exit("fail", kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: state["warnings"].append(msg))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/" + name)
    state.update(helper=str(helper), conf=str(conf), graphroot=str(graphroot), probe=probe)
    return state


def call(args):
    with patch_module_args(args):
        with pytest.raises(Exit) as raised:
            idmap_support.main()
    return raised.value.kind, raised.value.result


def test_read_only_run_returns_contract_facts_unchanged(host):
    kind, result = call({"helper": host["helper"]})
    assert kind == "exit"
    assert result["changed"] is False
    facts = result["ansible_facts"]["idmapguard"]
    assert set(facts) == CONTRACT_KEYS
    assert facts["verdict"] == "shares" and facts["canary"] is None and facts["guard"] is None
    assert set(facts["kernel"]) == {"release", "idmapped_mount", "overlay_idmapped_lower", "probe"}
    # the store's location, whole, as the mapped_layers module's `location` takes it
    assert set(facts["store_location"]) == {"graphroot", "runroot", "imagestore", "transient_store",
                                            "additional_image_stores", "driver"}
    assert facts["store_location"]["graphroot"] == facts["graphroot"]["path"]
    assert {"path", "fs_type", "inodes_total", "inodes_used", "inodes_free", "bytes_total", "bytes_used",
            "bytes_free", "mapped_copies", "mapped_copy_inodes"} <= set(facts["graphroot"])
    assert {"version", "driver", "mount_program", "graph_options", "runroot", "storage_conf", "source",
            "supports_shifting", "userns_available", "disable_idmap_env"} <= set(facts["podman"])
    assert facts["podman"]["supports_shifting"] is True
    assert facts["graphroot"]["path"] == host["graphroot"]
    # the probe ran on graphroot with the default non-contiguous maps
    probe_call = [c for c in host["calls"] if c[0] == host["helper"]][0]
    assert probe_call[-1] == host["graphroot"] and "531571:531571:1" in probe_call[3]


def test_check_mode_skips_the_canary(host):
    kind, result = call({"helper": host["helper"], "canary": True, "_ansible_check_mode": True})
    assert kind == "exit" and result["changed"] is False and result["canary"] is None
    assert not any("import" in c for c in host["calls"])
    assert any("check mode" in w for w in host["warnings"])


def test_check_mode_says_the_proof_would_run(host):
    kind, result = call({"helper": host["helper"], "proof": True, "_ansible_check_mode": True})
    assert kind == "exit" and result["changed"] is False
    assert result["proof"]["ran"] is False and result["proof"]["would_run"] is True
    assert result["proof"]["skipped"] == "check mode"
    assert not any(c[1:2] in (["run"], ["import"]) for c in host["calls"])
    assert any("proof would run" in w for w in host["warnings"])


def test_proof_does_not_run_where_nothing_shares(host):
    host["version"] = "5.4.2"
    kind, result = call({"helper": host["helper"], "proof": True})
    assert kind == "exit" and result["changed"] is False and result["verdict"] == "needs_podman_upgrade"
    assert result["proof"]["ran"] is False and result["proof"]["would_run"] is False
    assert "needs_podman_upgrade" in result["proof"]["skipped"]


def test_old_podman_needs_upgrade(host):
    host["version"] = "5.4.2"
    kind, result = call({"helper": host["helper"]})
    assert result["verdict"] == "needs_podman_upgrade" and result["reason_codes"] == ["podman_too_old"]
    kind, result = call({"helper": host["helper"], "podman_backport": True})
    assert result["verdict"] == "shares" and result["podman"]["backport_declared"] is True


def test_podman_failure_falls_back_to_storage_conf(host):
    host["podman_ok"] = False
    kind, result = call({"helper": host["helper"], "storage_conf": host["conf"]})
    assert kind == "exit"
    assert result["podman"]["source"] == "storage.conf"
    assert result["podman"]["mount_program"] == "/usr/bin/fuse-overlayfs"
    assert result["reason_codes"] == ["podman_missing", "mount_program"]


def test_missing_helper_says_to_deploy_it(host, tmp_path):
    kind, result = call({"helper": str(tmp_path / "nope")})
    assert kind == "fail"
    assert "idmapguard.storage.helper" in result["msg"] and str(tmp_path / "nope") in result["msg"]


@pytest.mark.parametrize("bad", ["0:1:0", "0:1", "0:1:10,5:100:10", "a:b:c", ""])
def test_invalid_map_fails_naming_it(host, bad):
    kind, result = call({"helper": host["helper"], "uidmap": bad})
    assert kind == "fail" and "invalid map" in result["msg"]


def test_maps_validated_against_shared_vectors():
    """The module validates with idmap.parse_idmap, tested on tests/vectors/idmap_specs.json;
    check here that every vector reaches the module's error path the same way."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "vectors", "idmap_specs.json")
    with open(path) as handle:
        vectors = json.load(handle)
    params = dict(helper="/nonexistent", uidmap="", gidmap="0:0:1")
    checked = 0
    for case in vectors.get("invalid", []):
        spec = case["spec"] if isinstance(case, dict) else case
        if not isinstance(spec, str):
            continue
        params["uidmap"] = spec
        with pytest.raises(backend.SupportError, match="invalid map"):
            backend.gather(backend.SupportParams(**params), lambda argv: (1, "", ""), False)
        checked += 1
    assert checked > 5


def test_probe_enospc_is_a_warning_not_a_verdict(host):
    host["probe"]["checks"]["idmapped_mount"] = {"ok": False, "errno": "ENOSPC", "message": "scratch dir"}
    host["probe"]["checks"]["overlay_idmapped_lower"] = {"ok": False, "errno": None, "message": "not run"}
    kind, result = call({"helper": host["helper"]})
    assert result["verdict"] == "shares"  # 6.18 on ext4: guessed able
    assert any("guessed from the release number" in w for w in host["warnings"])


def test_helper_identity_is_returned_outside_the_facts(host):
    kind, result = call({"helper": host["helper"]})
    assert kind == "exit"
    assert result["helper"]["present"] is True and result["helper"]["path"] == host["helper"]
    assert len(result["helper"]["sha256"]) == 64 and result["helper"]["runs"] is True
    assert "helper" not in result["ansible_facts"]["idmapguard"]


def test_missing_helper_reported_when_asked(host, tmp_path):
    missing = str(tmp_path / "nope")
    kind, result = call({"helper": missing, "helper_missing": "report"})
    assert kind == "exit" and result["changed"] is False
    assert result["helper"]["present"] is False
    facts = result["ansible_facts"]["idmapguard"]
    assert set(facts) == CONTRACT_KEYS
    assert missing in facts["kernel"]["probe"]["error"]
    # the caller installs the helper and asks again: no warning about a guessed verdict
    assert not any("guessed" in w for w in host["warnings"])


def test_stale_negative_probe_cache_is_fixable_and_named(host, tmp_path):
    """c/storage cached `idmapped-lower-dir-false` and Podman says it will not shift; the helper's
    probe passes: the cache is stale, the one file to clear is in the facts."""
    cache = tmp_path / "run" / "overlay"
    cache.mkdir(parents=True)
    (cache / "idmapped-lower-dir-false").write_text("")
    (cache / "overlay-true").write_text("")
    (cache / "native-diff()-true").write_text("")
    kind, result = call({"helper": host["helper"]})
    assert kind == "exit" and result["changed"] is False
    assert result["verdict"] == "fixable_by_config" and result["reason_codes"] == ["probe_cache_stale"]
    probe_cache = result["podman"]["probe_cache"]
    assert probe_cache["markers"] == {"idmapped-lower-dir": False, "overlay": True, "native-diff()": True}
    assert probe_cache["stale"] == ["idmapped-lower-dir"]
    assert probe_cache["files"]["idmapped-lower-dir"] == str(cache / "idmapped-lower-dir-false")
    assert str(cache / "idmapped-lower-dir-false") in result["reasons"][0]
    assert result["podman"]["graph_status"] == {"Supports shifting": "true"}
    assert (cache / "idmapped-lower-dir-false").exists()  # reading never changes anything


def test_split_imagestore_from_storage_conf_is_in_the_facts(host, tmp_path):
    """`podman info` does not print a split `imagestore`; storage.conf has it (issue 12: the
    module used to drop it, so it looked for images in graphroot only)."""
    images = tmp_path / "images"
    images.mkdir()
    text = open(host["conf"]).read().replace("[storage]\n", '[storage]\nimagestore = "%s"\n' % images, 1)
    open(host["conf"], "w").write(text)
    kind, result = call({"helper": host["helper"]})
    assert kind == "exit"
    assert result["podman"]["imagestore"] == str(images)
    assert result["podman"]["origins"]["imagestore"] == "storage.conf " + host["conf"]
    assert result["podman"]["origins"]["graphroot"] == "podman info"


def test_metrics_dest_returns_the_host_metrics_file_beside_the_facts(host, tmp_path):
    """What a caller needs to skip an unchanged metrics write; never part of the facts."""
    kind, result = call({"helper": host["helper"]})
    assert kind == "exit" and "metrics" not in result
    dest = tmp_path / "textfile"
    dest.mkdir()
    kind, result = call({"helper": host["helper"], "metrics_dest": str(dest)})
    assert result["metrics"] == {"dir": str(dest), "sha256": None}
    assert "metrics" not in result["ansible_facts"]["idmapguard"]
    (dest / "idmapguard_host.prom").write_text("x 1\n")
    kind, result = call({"helper": host["helper"], "metrics_dest": str(dest)})
    assert result["metrics"]["sha256"] == hashlib.sha256(b"x 1\n").hexdigest()
    kind, result = call({"helper": host["helper"], "metrics_dest": ""})
    assert result["metrics"] == {"dir": None, "sha256": None}


FAIL = {"ok": False, "errno": "EINVAL", "message": "no"}


def _gathered(host, tmp_path, **args):
    """(facts gathered while the helper was missing, the helper identity, facts gathered with it)."""
    kind, missing = call(dict(args, helper=str(tmp_path / "nope"), helper_missing="report"))
    assert kind == "exit"
    kind, present = call(dict(args, helper=host["helper"]))
    assert kind == "exit"
    return missing["ansible_facts"]["idmapguard"], missing["helper"], present["ansible_facts"]["idmapguard"]


def _same_store(facts):
    """FACTS without the filesystem's usage, which the test's own files move between two calls."""
    facts = json.loads(json.dumps(facts))
    for key in ("inodes_used", "inodes_free", "bytes_used", "bytes_free"):
        facts["graphroot"].pop(key, None)
    return facts


@pytest.mark.parametrize("probe_checks,rc,expect", [
    ({}, 0, "shares"),
    ({"idmapped_mount": FAIL, "overlay_idmapped_lower": FAIL}, 0, "unsupported_filesystem"),
    ({"overlay_idmapped_lower": FAIL}, 0, "unsupported_kernel"),
    ({"idmapped_mount": {"ok": False, "errno": "ENOSPC", "message": "scratch"}}, 0, None),  # inconclusive
    (None, 2, None),  # no JSON: the probe could not run
], ids=["passes", "fs-no-idmap", "no-overlay-idmap", "enospc", "no-json"])
def test_with_probe_judges_as_gather_with_the_helper_installed(host, tmp_path, monkeypatch, probe_checks, rc, expect):
    """The rollout installs a missing helper and has the verdict made again on the controller from the
    helper's probe (with_probe) instead of a second idmap_support: the facts must be those idmap_support
    gathers with the helper there."""
    if probe_checks is not None:
        host["probe"]["checks"].update(probe_checks)
    if rc:
        real = basic.AnsibleModule.run_command

        def broken(self, argv, check_rc=False, **kwargs):
            if argv[0] == host["helper"]:
                host["calls"].append(list(argv))
                return rc, "", "boom"
            return real(self, argv, check_rc=check_rc, **kwargs)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", broken)
    missing, helper, present = _gathered(host, tmp_path)
    assert helper["probe_args"][0] == "probe" and helper["probe_args"][-1] == host["graphroot"]
    argv = [host["helper"]] + helper["probe_args"]
    out = json.dumps(host["probe"]) if not rc else ""
    again = backend.with_probe(missing, argv, rc, out, "boom" if rc else "")
    assert _same_store(again) == _same_store(present)
    if expect:
        assert again["verdict"] == expect
    # the module's own probe ran with the same arguments
    assert [c for c in host["calls"] if c[:2] == [host["helper"], "probe"]][-1] == argv


def test_with_probe_keeps_the_stale_probe_cache_answer(host, tmp_path):
    cache = tmp_path / "run" / "overlay"
    cache.mkdir(parents=True)
    (cache / "idmapped-lower-dir-false").write_text("")
    missing, helper, present = _gathered(host, tmp_path)
    assert present["podman"]["probe_cache"]["stale"] == ["idmapped-lower-dir"]
    argv = [host["helper"]] + helper["probe_args"]
    assert _same_store(backend.with_probe(missing, argv, 0, json.dumps(host["probe"]), "")) == _same_store(present)


def _disable_proof(monkeypatch, failed):
    checks = {name: {"ok": name not in failed, "message": "m", "reference": "ref-" + name} for name in
              ("start", "ownership", "file_caps", "commit")}
    proof = {"ran": True, "checks": checks, "failed_checks": list(failed), "cleanup_errors": [], "ids": {}}
    runs = []

    def run_proof(run, uidmap, gidmap, podman="podman"):
        runs.append(uidmap)
        return json.loads(json.dumps(proof))
    monkeypatch.setattr(sharing_proof, "run_proof", run_proof)  # imported by idmap_support where asked for
    monkeypatch.setattr(backend.host_env, "disable_idmap_env",
                        lambda: {"set": True, "where": ["/etc/systemd/system/podman.service.d/10-x.conf"]})
    return runs


@pytest.mark.parametrize("failed,codes,kept", [
    ((), ["disable_idmap_env"], None),
    (("start",), ["disable_idmap_deliberate"], "the correctness proof fails without it: start (ref-start)"),
])
def test_proof_disable_idmap_proves_in_the_same_call(host, monkeypatch, failed, codes, kept):
    """Where only _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes (in a unit) stands in the way, proof_disable_idmap runs
    the proof in the first call (the rollout's pre-proof, without a second idmap_support)."""
    runs = _disable_proof(monkeypatch, failed)
    kind, result = call({"helper": host["helper"]})
    assert kind == "exit" and result["proof"] is None and runs == []
    assert result["reason_codes"] == ["disable_idmap_env"]
    kind, result = call({"helper": host["helper"], "proof_disable_idmap": True})
    assert kind == "exit" and len(runs) == 1 and result["changed"] is True
    assert result["proof"]["ran"] is True and result["proof"]["why"] == backend.DISABLE_CASE
    assert result["reason_codes"] == codes
    assert result["podman"]["disable_idmap_env"]["kept"] == kept


def test_proof_disable_idmap_runs_no_proof_where_the_host_shares(host, monkeypatch):
    runs = _disable_proof(monkeypatch, ())
    monkeypatch.setattr(backend.host_env, "disable_idmap_env", lambda: {"set": False, "where": []})
    kind, result = call({"helper": host["helper"], "proof_disable_idmap": True})
    assert kind == "exit" and result["verdict"] == "shares" and result["proof"] is None and runs == []
    assert result["changed"] is False


def test_with_probe_refuses_where_the_proof_case_changes(host, tmp_path, monkeypatch):
    """A proof asked for while the helper was missing ran for the guessed verdict: where the probe changes
    the verdict, the proof's case changes too, so only gathering again tells (None)."""
    runs = _disable_proof(monkeypatch, ())
    monkeypatch.setattr(backend.host_env, "disable_idmap_env", lambda: {"set": False, "where": []})
    missing, helper, _present = _gathered(host, tmp_path, proof=True)
    assert missing["proof"]["ran"] is True and missing["proof"]["why"] == backend.SHARES_CASE and runs
    argv = [host["helper"]] + helper["probe_args"]
    assert backend.with_probe(missing, argv, 0, json.dumps(host["probe"]), "")["verdict"] == "shares"
    host["probe"]["checks"]["overlay_idmapped_lower"] = FAIL
    assert backend.with_probe(missing, argv, 0, json.dumps(host["probe"]), "") is None


def test_with_probe_keeps_a_proof_that_did_not_run_and_would_not_now(host, tmp_path, monkeypatch):
    """The operator's idmapguard_verify_proof asks every verify for the proof; on a host that is to be
    configured it does not run (no case), with the helper or without: the facts made again from the
    probe are those idmap_support gathers with the helper (no verify again: it was one more call)."""
    runs = _disable_proof(monkeypatch, ())
    monkeypatch.setattr(backend.host_env, "disable_idmap_env", lambda: {"set": True, "where": ["process environment"]})
    missing, helper, present = _gathered(host, tmp_path, proof=True)
    assert missing["proof"]["ran"] is False and not missing["proof"]["would_run"] and runs == []
    argv = [host["helper"]] + helper["probe_args"]
    again = backend.with_probe(missing, argv, 0, json.dumps(host["probe"]), "")
    assert again is not None and again["reason_codes"] == ["disable_idmap_env"]
    assert _same_store(again) == _same_store(present)
