"""Sliced jobs as AWX runs them (issue 21 item 3): the workflow's canary job (one host), then
three slices over six lab hosts through ansible-runner, each writing its own fleet report,
merged by the report_merge playbook; the merged report must equal the report of one unsliced
run of the same hosts, host for host. A slice that would skip its canary unasked is refused.

Lean on purpose: every run is the rollout's helper and verify steps in check mode, so no run
changes a host and the four runs see the same six stores (real Podman, real facts, copies on
bookworm and trixie, none on sid).
"""
import json
import os

import ansible_runner
import pytest

from ansible_collections.idmapguard.storage.plugins.plugin_utils.slicing import slice_hosts
from tests.integration.runner_support import job_result, private_data_dir

SUITES = ["bookworm", "bookworm", "trixie", "trixie", "sid", "sid"]
SLICES = 3
MAP = "0:1065537:65536,531571:531571:1"
CHEAP = {"idmapguard_rollout_steps": ["helper", "verify"]}


@pytest.fixture(scope="module")
def six_hosts(lab):
    hosts = [lab.up(suite=suite) for suite in SUITES]
    try:
        for host in hosts:
            image = host.image(files=100)
            extents = [arg for extent in MAP.split(",") for arg in ("--uidmap", extent, "--gidmap", extent)]
            host.podman("create", "--name", "sliced", *extents, image, "/bin/true", check=True)
        yield hosts
    finally:
        for host in hosts:
            host.down()


def run_job(root, ident, inventory_text, playbook, extravars, cmdline=""):
    pdd = private_data_dir(os.path.join(root, ident), inventory_text, extravars)
    run = ansible_runner.run(private_data_dir=pdd, playbook=playbook, ident=ident, quiet=True, cmdline=cmdline,
                             envvars={"ANSIBLE_PIPELINING": "1", "ANSIBLE_HOST_KEY_CHECKING": "False"})
    return run, job_result(os.path.join(pdd, "artifacts", ident))


def read_report(directory):
    with open(os.path.join(directory, "fleet-report.json")) as handle:
        return json.load(handle)


def test_three_slices_merge_into_the_unsliced_report(lab, six_hosts, tmp_path):
    names = [host.name for host in six_hosts]
    inventory_text = lab.inventory(names)
    root = str(tmp_path)

    whole_dir = os.path.join(root, "reports", "unsliced")
    run, job = run_job(root, "unsliced", inventory_text, "playbooks/rollout.yml",
                       dict(CHEAP, idmapguard_rollout_report_dir=whole_dir), cmdline="--check")
    assert run.status == "successful", job["stats"]
    whole = read_report(whole_dir)

    # the workflow's first node: the canary job, one host, the first of the pattern by name
    canary_dir = os.path.join(root, "reports", "canary")
    run, job = run_job(root, "canary", inventory_text, "playbooks/rollout.yml",
                       dict(CHEAP, idmapguard_rollout_report_dir=canary_dir, idmapguard_rollout_canary_only=True),
                       cmdline="--check")
    assert run.status == "successful", job["stats"]
    assert [h["host"] for h in read_report(canary_dir)["hosts"]] == sorted(names)[:1]
    assert sorted(job["stats"]["ok"]) == sorted(names)[:1]

    # a slice whose batches skip the canary is refused unless told the canary is done: no host
    # is touched and the job fails
    run, job = run_job(root, "refused", inventory_text, "playbooks/rollout.yml",
                       dict(CHEAP, idmapguard_rollout_slice=1, idmapguard_rollout_slice_count=SLICES,
                            idmapguard_rollout_batches=["100%"]), cmdline="--check")
    assert run.status == "failed" and run.rc != 0
    assert not [e for e in job["events"] if e.get("event") == "runner_on_ok"]
    with open(os.path.join(root, "refused", "artifacts", "refused", "stdout")) as handle:
        assert "idmapguard_rollout_canary_done=true" in handle.read()

    # the sliced node after the canary passed, as the workflow runs it
    slice_dirs = []
    for number in range(1, SLICES + 1):
        directory = os.path.join(root, "reports", "slice-%d" % number)
        slice_dirs.append(directory)
        run, job = run_job(root, "slice-%d" % number, inventory_text, "playbooks/rollout.yml",
                           dict(CHEAP, idmapguard_rollout_report_dir=directory, idmapguard_rollout_slice=number,
                                idmapguard_rollout_slice_count=SLICES, idmapguard_rollout_canary_done=True),
                           cmdline="--check")
        assert run.status == "successful", job["stats"]
        report = read_report(directory)
        # the slice ran exactly AWX's share of the inventory: hosts by name, [number-1::3]
        assert sorted(h["host"] for h in report["hosts"]) == sorted(names)[number - 1::SLICES]
        assert sorted(job["stats"]["ok"]) == sorted(slice_hosts(names, names, number, SLICES))
        assert report["run"]["slice"] == number and report["run"]["slice_count"] == SLICES

    merged_dir = os.path.join(root, "reports", "merged")
    run, job = run_job(root, "merge", inventory_text, "playbooks/report_merge.yml",
                       {"idmapguard_report_merge_dirs": [os.path.join(root, "reports", "slice-*")],
                        "idmapguard_rollout_report_dir": merged_dir})
    assert run.status == "successful", job["stats"]
    merged = read_report(merged_dir)
    print("unsliced:", whole["summary_line"])
    print("merged:  ", merged["summary_line"])

    assert [h["host"] for h in merged["hosts"]] == [h["host"] for h in whole["hosts"]]
    for mine, theirs in zip(merged["hosts"], whole["hosts"]):
        assert mine == theirs, mine["host"]
    assert merged["summary"] == whole["summary"]
    assert merged["summary_line"] == whole["summary_line"]
    expected_paths = sorted(os.path.join(d, "fleet-report.json") for d in slice_dirs)
    assert sorted(s["path"] for s in merged["slices"]) == expected_paths
    assert merged["ignored"] == []
    # the merge job hands the merged report to AWX as a run does
    assert job["artifact_data"]["idmapguard_fleet_report"]["summary_line"] == whole["summary_line"]
    # a real fleet: copies on bookworm and trixie, sharing on sid
    assert whole["summary"]["by_verdict"].get("needs_podman_upgrade") == 4, whole["summary"]
    assert whole["summary"]["by_verdict"].get("shares") == 2, whole["summary"]
