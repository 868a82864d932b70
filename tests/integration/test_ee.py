"""The execution environment as AWX uses it (issue 11 item 5, issue 21 item 2): every job goes
`ansible-runner transmit` here (the controller) | `ansible-runner worker` inside the image built
by `make ee-image`, as uid 1000 (not root, no passwd entry of its own), with nothing mounted: the
private data dir travels in the stream, as across Receptor | `ansible-runner process` here, into
a directory of its own. Job status, events, set_stats and the report artifact are checked on
the process side, where AWX reads them.

One bookworm lab host (Podman 4.3, which copies): the rollout in --check, verify (fails: no
helper yet), then remediate with the guard (issue 18 item 3): the guard's archive is built inside
the EE from the collection installed there, and the host ends with exactly the bytes this
checkout builds (same sha256).

The image is given by IDMAPGUARD_EE_IMAGE (make test-ee sets it); Podman is the private one of
scripts/podman-ee.
"""
import hashlib
import json
import os
import re
import subprocess

import pytest

import remediate_support as rs
from tests.integration.runner_support import REPO, awx_pipeline, failed_tasks, private_data_dir

PODMAN = os.path.join(REPO, "scripts", "podman-ee")
UID = 1000
PREBUILT = "/usr/libexec/idmapguard/idmapped-mount"
REPORT_FILES = ["fleet-report.html", "fleet-report.json", "fleet-report.md"]


@pytest.fixture(scope="module")
def image():
    name = os.environ.get("IDMAPGUARD_EE_IMAGE")
    if not name:
        pytest.fail("IDMAPGUARD_EE_IMAGE is not set (run through `make test-ee`)")
    return name


def worker_argv(image: str):
    """The execution node: the worker in the EE as uid 1000, the job streamed in on stdin."""
    return [PODMAN, "run", "--rm", "-i", "--network", "host", "--user", "%d:0" % UID, image,
            "ansible-runner", "worker", "--private-data-dir", "/runner"]


def awx_job(image: str, pdd: str, playbook: str, ident: str, cmdline: str = "") -> dict:
    job = awx_pipeline(pdd, ident, playbook, worker_argv(image), cmdline=cmdline)
    # an excerpt for the log: what AWX would show of this job
    print("== job %s: status=%s rc=%s stream statuses=%s exit codes=%s stream %d bytes" % (
        ident, job["status"], job["rc"], job["stream_statuses"], job["exit_codes"], job["stream_bytes"]))
    for event in job["events"]:
        data = event.get("event_data") or {}
        if event["event"] in ("playbook_on_play_start", "runner_on_failed") or data.get("task") in (
                "Record the helper this host has", "Write the report as Markdown, HTML and JSON", "Install the guard's archive (one zip application)"):
            print("  event %s: %s %s" % (event["event"], data.get("task") or data.get("play"), data.get("host", "")))
    print("  set_stats idmapguard_fleet_report.summary_line: %s"
          % job["artifact_data"].get("idmapguard_fleet_report", {}).get("summary_line"))
    print("  report files: %s/idmapguard-report/%s" % (job["artifact_dir"], job["report_files"]))
    if job["status"] not in ("successful", "failed"):
        print(job["stderr"])
    return job


def ok_results(job: dict, task: str) -> list:
    return [e["event_data"]["res"] for e in job["events"]
            if e["event"] == "runner_on_ok" and e["event_data"].get("task") == task]


def report_artifact(job: dict) -> dict:
    """The report as the process side has it: set_stats, and the JSON file among the artifacts."""
    report = job["artifact_data"]["idmapguard_fleet_report"]
    assert job["report_files"] == REPORT_FILES
    with open(os.path.join(job["artifact_dir"], "idmapguard-report", "fleet-report.json")) as f:
        assert json.load(f)["summary"] == report["summary"]
    return report


def test_ee_jobs_through_transmit_worker_process(image, lab, tmp_path):
    host = lab.up(suite="bookworm")
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
        job = awx_job(image, pdd, "playbooks/rollout.yml", "rollout-check", "--check")
        assert job["status"] == "successful" and job["rc"] == 0, (failed_tasks(job["events"]), job["stderr"])
        assert job["stream_statuses"][-1] == "successful" and "running" in job["stream_statuses"]
        assert set(job["exit_codes"].values()) == {0}, job["exit_codes"]
        report = report_artifact(job)
        assert report["summary"]["hosts"] == 1 and report["summary"]["failed"] == 0
        assert report["summary"]["check_mode"] is True
        row = report["hosts"][0]
        assert row["host"] == host.name
        assert any(c.startswith("would install helper") for c in row["changes"]), row
        starts = [e for e in job["events"] if e["event"] == "playbook_on_play_start"]
        assert starts and starts[0]["event_data"]["play"] == "Roll idmapguard out across the fleet"
        assert job["stats"]["failures"] == {} and job["stats"]["ok"].get(host.name, 0) > 0
        # the playbook wrote its report into the job's artifact dir on the worker; process has it
        assert report["report_dir"] == "/runner/artifacts/rollout-check/idmapguard-report"
        # the helper came from the image's prebuilt binary; no build ran at job time
        recorded = [r["ansible_facts"]["idmapguard_helper"] for r in ok_results(job, "Record the helper this host has")]
        assert [(r["source"], r["changed"], r["staged"]) for r in recorded] == [("prebuilt", True, True)], recorded
        assert not ok_results(job, "Build idmapped-mount on the controller")
        # check mode changed nothing on the host
        assert not os.path.exists(host.path("/usr/local/libexec/idmapguard/idmapped-mount"))

        # 2. verify on the same host, which has no helper: the report says failed 1, so does the job
        pdd = private_data_dir(str(tmp_path / "verify"), inventory_text)
        job = awx_job(image, pdd, "playbooks/verify.yml", "verify")
        report = report_artifact(job)
        assert report["summary"]["failed"] == 1 and "helper is not installed" in report["hosts"][0]["error"]
        assert job["status"] == "failed" and job["rc"] != 0 and job["stream_statuses"][-1] == "failed"
        assert failed_tasks(job["events"])[-1] == "%s: Fail the hosts whose verification failed" % host.name

        # 3. remediate with the guard: one unused copy to reclaim, the guard's archive built in the EE
        tag = host.image(files=50)
        idmap = rs.noncontig_map(0)
        host.podman("create", "--name", "ee0", "--uidmap", idmap, "--gidmap", idmap, tag, "true", check=True)
        host.podman("rm", "ee0", check=True)
        assert rs.mapped_copy_count(host) == 1
        pdd = private_data_dir(str(tmp_path / "remediate"), inventory_text, extravars={
            "idmapguard_remediate_policy": "always", "idmapguard_remediate_min_age": 0,
            # lab hosts run no systemd: the files only (docs/guard.md, "Without systemd")
            "idmapguard_remediate_guard": True, "idmapguard_remediate_guard_enable": False})
        job = awx_job(image, pdd, "playbooks/remediate.yml", "remediate")
        assert job["status"] == "successful" and job["rc"] == 0, (failed_tasks(job["events"]), job["stderr"])
        assert job["stream_statuses"][-1] == "successful"
        report = report_artifact(job)
        assert report["summary"]["hosts"] == 1 and report["summary"]["failed"] == 0
        assert rs.mapped_copy_count(host) == 0
        assert any(c.startswith("removed 1 mapped copies") for c in report["hosts"][0]["changes"]), report["hosts"][0]

        with open(os.path.join(REPO, "galaxy.yml")) as handle:
            version = re.search(r"^version: *(\S+)", handle.read(), re.M).group(1)
        built = rs.build_archive(version=version)
        installed = ok_results(job, "Install the guard's archive (one zip application)")
        archive = "/usr/local/lib/idmapguard/" + built.file_name
        assert [(r["path"], r["sha256"], r["changed"]) for r in installed] == [(archive, built.sha256, True)], installed
        with open(host.path(archive), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == built.sha256
        print("  guard archive on %s: %s sha256 %s (%d bytes)" % (host.name, archive, built.sha256, len(built.data)))
        # and it runs on the host: one pass, which then reports the build
        host.exec(["/usr/local/sbin/idmapguard-guard", "--config", "/etc/idmapguard/guard.json", "once"], check=True)
        status = json.loads(host.exec(["/usr/local/sbin/idmapguard-guard", "status"], check=True).stdout)
        assert status["artifact"] == {"path": archive, "sha256": built.sha256, "version": version}
    finally:
        host.down()
