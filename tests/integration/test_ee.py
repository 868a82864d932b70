"""The execution environment as AWX uses it (issue 11, item 5): `ansible-runner run` inside the
image built by `make ee-image`, as uid 1000 (not root, no passwd entry of its own), against lab
hosts over SSH. The rollout in --check, then verify: job status, events, the set_stats fleet
report, and the report files under the job's artifact directory.

The image is given by IDMAPGUARD_EE_IMAGE (make test-ee sets it); Podman is the private one of
scripts/podman-ee.
"""
import json
import os
import subprocess

import pytest

from tests.integration.runner_support import REPO, failed_tasks, job_result, private_data_dir

PODMAN = os.path.join(REPO, "scripts", "podman-ee")
UID = 1000
PREBUILT = "/usr/libexec/idmapguard/idmapped-mount"


@pytest.fixture(scope="module")
def image():
    name = os.environ.get("IDMAPGUARD_EE_IMAGE")
    if not name:
        pytest.fail("IDMAPGUARD_EE_IMAGE is not set (run through `make test-ee`)")
    return name


def runner_job(image: str, pdd: str, playbook: str, ident: str, *extra: str) -> dict:
    """One AWX-style job: the private data dir owned by the job's uid, mounted at /runner."""
    subprocess.run(["chown", "-R", "%d:0" % UID, pdd], check=True)
    argv = [PODMAN, "run", "--rm", "--network", "host", "--user", "%d:0" % UID,
            "-v", "%s:/runner" % pdd, image,
            "ansible-runner", "run", "/runner", "-p", playbook, "--ident", ident, *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    print(proc.stderr[-2000:])
    job = job_result(os.path.join(pdd, "artifacts", ident))
    job["cli_rc"] = proc.returncode
    # an excerpt for the log: what AWX would show of this job
    print("== job %s: status=%s rc=%s cli_rc=%s" % (ident, job["status"], job["rc"], proc.returncode))
    for event in job["events"]:
        data = event.get("event_data") or {}
        if event["event"] in ("playbook_on_play_start", "runner_on_failed") or data.get("task") in (
                "Record what is installed", "Hand the report to AWX"):
            print("  event %s: %s %s" % (event["event"], data.get("task") or data.get("play"), data.get("host", "")))
    print("  set_stats idmapguard_fleet_report.summary_line: %s"
          % job["artifact_data"].get("idmapguard_fleet_report", {}).get("summary_line"))
    print("  report files: %s/idmapguard-report/%s" % (job["artifact_dir"], job["report_files"]))
    return job


def test_ee_rollout_check_then_verify(image, lab, tmp_path):
    host = lab.up(suite="sid")
    try:
        inventory_text = lab.inventory([host.name])
        # nothing in the image was built at job time: the helper and the collection are root-owned
        probe = subprocess.run([PODMAN, "run", "--rm", "--network", "none", "--user", "%d:0" % UID, image,
                                "sh", "-c", "id -u; %s --version; stat -c %%U /usr/share/ansible/collections/"
                                "ansible_collections/idmapguard/storage/native" % PREBUILT],
                               capture_output=True, text=True, check=True)
        assert probe.stdout.split("\n")[:3] == [str(UID), "idmapped-mount 0.1.0", "root"], probe.stdout

        # 1. the rollout in check mode: successful, the helper would be installed from the image
        pdd = private_data_dir(str(tmp_path / "rollout"), inventory_text)
        job = runner_job(image, pdd, "playbooks/rollout.yml", "rollout-check", "--cmdline=--check")
        report = job["artifact_data"]["idmapguard_fleet_report"]
        assert job["status"] == "successful" and job["rc"] == 0 and job["cli_rc"] == 0, failed_tasks(job["events"])
        assert report["summary"]["hosts"] == 1 and report["summary"]["failed"] == 0
        assert report["summary"]["check_mode"] is True
        row = report["hosts"][0]
        assert row["host"] == host.name
        assert any(c.startswith("would install helper") for c in row["changes"]), row
        starts = [e for e in job["events"] if e["event"] == "playbook_on_play_start"]
        assert starts and starts[0]["event_data"]["play"] == "Roll idmapguard out across the fleet"
        assert job["stats"]["failures"] == {} and job["stats"]["ok"].get(host.name, 0) > 0
        assert report["report_dir"] == "/runner/artifacts/rollout-check/idmapguard-report"
        assert job["report_files"] == ["fleet-report.html", "fleet-report.json", "fleet-report.md"]
        with open(os.path.join(job["artifact_dir"], "idmapguard-report", "fleet-report.json")) as f:
            assert json.load(f)["summary"] == report["summary"]
        # the helper came from the image's prebuilt binary; no build ran at job time
        recorded = [e["event_data"]["res"]["ansible_facts"]["idmapguard_helper"] for e in job["events"]
                    if e["event"] == "runner_on_ok" and e["event_data"].get("task") == "Record what is installed"]
        assert [(r["source"], r["changed"], r["staged"]) for r in recorded] == [("prebuilt", True, True)], recorded
        assert not [e for e in job["events"] if e["event"] == "runner_on_ok"
                    and e["event_data"].get("task") == "Build idmapped-mount on the controller"]
        # check mode changed nothing on the host
        assert not os.path.exists(host.path("/usr/local/libexec/idmapguard/idmapped-mount"))

        # 2. verify on the same host, which has no helper: the report says failed 1, so does the job
        pdd = private_data_dir(str(tmp_path / "verify"), inventory_text)
        job = runner_job(image, pdd, "playbooks/verify.yml", "verify")
        report = job["artifact_data"]["idmapguard_fleet_report"]
        assert report["summary"]["failed"] == 1 and "helper is not installed" in report["hosts"][0]["error"]
        assert job["status"] == "failed" and job["rc"] != 0 and job["cli_rc"] != 0
        assert failed_tasks(job["events"])[-1] == "%s: Fail the hosts whose verification failed" % host.name
        assert job["report_files"] == ["fleet-report.html", "fleet-report.json", "fleet-report.md"]
    finally:
        host.down()
