"""ansible-runner jobs as AWX runs them: a private data directory with project, inventory and
env/, the job's status and rc, its events, and the artifacts (set_stats, report files)."""
import glob
import json
import os
import shutil
from typing import Any, Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def private_data_dir(root: str, inventory_text: str, extravars: Dict[str, Any] = None) -> str:
    """AWX's layout: project/ (the project sync: this repository's playbooks), inventory/hosts,
    env/extravars, env/ssh_key (the machine credential: runner hands it to ssh-agent)."""
    os.makedirs(os.path.join(root, "inventory"))
    os.makedirs(os.path.join(root, "env"))
    shutil.copytree(os.path.join(REPO, "playbooks"), os.path.join(root, "project", "playbooks"))
    key_line = [ln for ln in inventory_text.splitlines() if ln.startswith("ansible_ssh_private_key_file=")]
    with open(key_line[0].split("=", 1)[1]) as src:
        key = src.read()
    with open(os.path.join(root, "env", "ssh_key"), "w") as dst:
        dst.write(key)
    # the key comes from the agent, as in AWX: no key file, no IdentitiesOnly
    lines = [ln.replace("-o IdentitiesOnly=yes ", "") for ln in inventory_text.splitlines()
             if not ln.startswith("ansible_ssh_private_key_file=")]
    with open(os.path.join(root, "inventory", "hosts"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(root, "env", "extravars"), "w") as f:
        json.dump(extravars or {}, f)
    return root


def job_result(artifact_dir: str) -> Dict[str, Any]:
    """status, rc, events, the set_stats artifacts and the report files of one finished job."""
    def read(name: str) -> str:
        with open(os.path.join(artifact_dir, name)) as f:
            return f.read().strip()

    events: List[Dict[str, Any]] = []
    for path in sorted(glob.glob(os.path.join(artifact_dir, "job_events", "*.json")),
                       key=lambda p: int(os.path.basename(p).split("-", 1)[0])):
        with open(path) as f:
            events.append(json.load(f))
    stats = [e for e in events if e.get("event") == "playbook_on_stats"]
    return {
        "status": read("status"),
        "rc": int(read("rc")),
        "events": events,
        "artifact_data": (stats[-1]["event_data"].get("artifact_data") or {}) if stats else {},
        "stats": stats[-1]["event_data"] if stats else {},
        "report_files": sorted(os.listdir(os.path.join(artifact_dir, "idmapguard-report")))
        if os.path.isdir(os.path.join(artifact_dir, "idmapguard-report")) else [],
        "artifact_dir": artifact_dir,
    }


def failed_tasks(events: List[Dict[str, Any]]) -> List[str]:
    return ["%s: %s" % (e["event_data"].get("host"), e["event_data"].get("task"))
            for e in events if e.get("event") == "runner_on_failed"
            and not e["event_data"].get("ignore_errors")]
