"""Every playbook's job status and exit status agree with its report (issue 11, item 4), through
ansible-runner as AWX drives it, against a real lab host: a host whose run failed is `failed 1`
in the fleet report, and the job is `failed` with rc != 0, in verify, remediate and rollout alike.
"""
import os

import ansible_runner
import pytest

from tests.integration.runner_support import failed_tasks, job_result, private_data_dir

# How each playbook is made to fail on a fresh sid host: verify needs a helper the host does
# not have; remediate and rollout are given a helper binary that does not exist.
CASES = {
    "verify": ({}, "helper is not installed"),
    "remediate": ({"idmapguard_helper_binary": "/nonexistent/idmapped-mount"}, "no binary at /nonexistent"),
    "rollout": ({"idmapguard_helper_binary": "/nonexistent/idmapped-mount"}, "no binary at /nonexistent"),
}


@pytest.fixture(scope="module")
def sid_inventory(lab):
    host = lab.up(suite="sid")
    yield lab.inventory([host.name]), host
    host.down()


@pytest.mark.parametrize("playbook", sorted(CASES))
def test_failed_host_fails_the_job(sid_inventory, tmp_path, playbook):
    inventory_text, host = sid_inventory
    extravars, why = CASES[playbook]
    pdd = private_data_dir(str(tmp_path / "job"), inventory_text, extravars)
    run = ansible_runner.run(private_data_dir=pdd, playbook="playbooks/%s.yml" % playbook,
                             ident=playbook, quiet=True, envvars={"ANSIBLE_PIPELINING": "1"})
    job = job_result(os.path.join(pdd, "artifacts", playbook))
    report = job["artifact_data"]["idmapguard_fleet_report"]
    print(playbook, run.status, run.rc, report["summary_line"], failed_tasks(job["events"]))

    assert report["summary"]["failed"] == 1, report["summary"]
    assert report["hosts"][0]["host"] == host.name and report["hosts"][0]["failed"]
    assert why in report["hosts"][0]["error"], report["hosts"][0]["error"]
    # the report files are under the job's artifact directory (AWX_ISOLATED_DATA_DIR)
    assert {"fleet-report.md", "fleet-report.html", "fleet-report.json"} <= set(job["report_files"])
    assert report["report_dir"] == os.path.join(job["artifact_dir"], "idmapguard-report")
    # ... and the job says so
    assert run.status == "failed" and job["status"] == "failed"
    assert run.rc != 0 and job["rc"] == run.rc
    assert job["stats"]["failures"].get(host.name, 0) >= 1
    noun = {"verify": "verification", "remediate": "remediation", "rollout": "rollout"}[playbook]
    # rescued failures are events too; the last one is the play failing the host
    assert failed_tasks(job["events"])[-1] == "%s: Fail the hosts whose %s failed" % (host.name, noun)
