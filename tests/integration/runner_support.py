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


def awx_pipeline(pdd: str, ident: str, playbook: str, worker: List[str], cmdline: str = "",
                 timeout: int = 900) -> Dict[str, Any]:
    """One job the way AWX runs it: `ansible-runner transmit` of the private data dir here (the
    controller), `ansible-runner worker` in WORKER (an execution node: the command that runs it,
    e.g. `podman run -i ... IMAGE ansible-runner worker --private-data-dir /runner`), and
    `ansible-runner process` into PDD's artifacts here, where AWX reads them. The worker's stream
    is kept as well: the status lines on it are what AWX's status handler sees."""
    import subprocess
    import sys
    import threading

    runner = os.path.join(os.path.dirname(sys.executable), "ansible-runner")
    transmit_argv = [runner, "transmit", pdd, "-p", playbook, "--ident", ident]
    if cmdline:
        transmit_argv.append("--cmdline=%s" % cmdline)
    # process writes into a directory of its own: nothing the job produced can come from the
    # transmitted data dir
    processed = pdd + "-processed"
    os.makedirs(processed)
    transmit = subprocess.Popen(transmit_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    work = subprocess.Popen(worker, stdin=transmit.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    transmit.stdout.close()
    process = subprocess.Popen([runner, "process", processed, "--ident", ident], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stream: List[bytes] = []

    def relay() -> None:
        for line in iter(work.stdout.readline, b""):
            stream.append(line)
            process.stdin.write(line)
        process.stdin.close()

    errors: Dict[str, bytes] = {}

    def drain(name: str, pipe) -> None:
        errors[name] = pipe.read()

    threads = [threading.Thread(target=relay)] + [
        threading.Thread(target=drain, args=(name, proc.stderr))
        for name, proc in (("transmit", transmit), ("worker", work), ("process", process))]
    threads.append(threading.Thread(target=drain, args=("process_stdout", process.stdout)))
    for thread in threads:
        thread.start()
    codes = {name: proc.wait(timeout=timeout) for name, proc in
             (("transmit", transmit), ("worker", work), ("process", process))}
    for thread in threads:
        thread.join(timeout=60)
    statuses = []
    for line in stream:
        try:
            data = json.loads(line)
        except ValueError:
            continue  # the artifacts' zip follows its header line
        if isinstance(data, dict) and "status" in data and "event" not in data:
            statuses.append(data["status"])
    job = job_result(os.path.join(processed, "artifacts", ident))
    job.update(exit_codes=codes, stream_statuses=statuses, stream_bytes=sum(len(b) for b in stream),
               stderr={name: errors.get(name, b"").decode("utf-8", "replace")[-2000:]
                       for name in ("transmit", "worker", "process")})
    return job
