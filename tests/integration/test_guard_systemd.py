"""The guard as it is deployed: the remediate role's systemd unit, under the suite's own systemd
(lab hosts with ``init="systemd"``: systemd-nspawn --boot, docs/lab.md), with the role's
defaults and the guard on, against real Podman on bookworm (4.3) and trixie (5.4).

One host per suite, in order:
1. the role installs, enables and starts the unit (``systemctl is-enabled`` / ``is-active``);
2. copies past the budget are evicted, and ``journalctl -u idmapguard-guard`` holds one
   ``evicted`` line per eviction the guard counted;
3. SIGKILL of the MainPID: systemd restarts the guard (a new MainPID, NRestarts + 1);
4. staging left by a SIGKILLed eviction (idmapguard-prune killed while deleting) is finished
   by the guard's start, within seconds, with no new eviction;
5. ``systemctl stop`` while the guard deletes staged copies: the stop ends well inside the
   unit's TimeoutStopSec, the unit's result is success, Podman loads the store, and the next
   start leaves no staging behind;
6. ``systemctl reboot`` of the host: after the boot (a new systemd) the guard runs again (the
   unit active with a new MainPID, its "started" line in this boot's journal) and evicts.
The unit's sandboxing directives (roles/remediate/templates/idmapguard-guard.service.j2) are
on throughout, so each of these steps also proves they leave the guard what it needs.
Timings are printed (for the record), never asserted beyond the unit's own timeout.

The evidence (per suite: SIGKILL -> new MainPID and seconds until active again; reboot ->
seconds until the guard is active again; staging finished at start-up and its seconds; the
journal line of each eviction; systemctl stop mid-eviction, its seconds and what `podman system
check` says then and after the next start) goes to tests/output/guard_systemd_evidence.json,
written after each suite, and is printed at the end.
"""
import json
import os
import re
import subprocess
import sys
import time

import remediate_support as rs
from test_remediate_role import ansible_playbook

UNIT = "idmapguard-guard.service"
EVIDENCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "output",
                        "guard_systemd_evidence.json")
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  roles:
    - role: idmapguard.storage.remediate
      vars:
        idmapguard_remediate_guard: true
"""
SUITES = ["bookworm", "trixie"]
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"


def log(msg):
    print("[guard-systemd] %s" % msg, file=sys.stderr)


def show(host, *props):
    out = host.exec(["systemctl", "show", UNIT, "-p", ",".join(props)], check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(host, *args):
    """The guard's JSON lines in the journal (optionally only this boot's: ``-b``)."""
    out = host.exec(["journalctl", "-u", UNIT, "-o", "cat", "--no-pager"] + list(args), check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def journal_lines(host, event, *args):
    """The journal's own lines (ISO time with microseconds, host, unit[pid]) of the guard's
    EVENT lines, as an operator reads them."""
    out = host.exec(["journalctl", "-u", UNIT, "-o", "short-iso-precise", "--no-pager"] + list(args),
                    check=True).stdout
    found = []
    for line in out.splitlines():
        brace = line.find("{")
        if brace < 0:
            continue
        try:
            if json.loads(line[brace:]).get("event") == event:
                found.append(line)
        except ValueError:
            continue
    return found


def check_result(host):
    """`podman system check` as evidence (remediate_support.system_check: its problem lines,
    empty when it exits 0; Podman 4.x has no such command)."""
    problems = rs.system_check(host)
    if problems is None:
        return {"podman": host.podman_version(), "ok": None, "problems": ["no `podman system check` in Podman 4.x"]}
    return {"podman": host.podman_version(), "ok": not problems, "problems": sorted(problems)}


def named_layers(host, problems):
    """What the store's records say of each layer `podman system check` named: in layers.json
    (with its flags), a mapped copy in images.json, a layer the guard staged (so we can tell a
    copy still in use from one on its way out)."""
    ids = sorted(set(re.findall(r"layer ([0-9a-f]{64})", " ".join(problems))))
    with open(host.path(rs.STORE + "/overlay-layers/layers.json")) as handle:
        layers = {layer["id"]: layer for layer in json.load(handle)}
    with open(host.path(rs.STORE + "/overlay-images/images.json")) as handle:
        mapped = {m for image in json.load(handle) for m in image.get("mapped-layers") or []}
    return {layer_id: {"in_layers_json": layer_id in layers, "flags": (layers.get(layer_id) or {}).get("flags"),
                       "mapped_copy": layer_id in mapped,
                       "has_driver_dir": os.path.isdir(host.path("%s/overlay/%s" % (rs.STORE, layer_id)))}
            for layer_id in ids}


def record_evidence(suite, evidence):
    """Add SUITE's evidence to tests/output/guard_systemd_evidence.json (kept across suites)."""
    os.makedirs(os.path.dirname(EVIDENCE), exist_ok=True)
    try:
        with open(EVIDENCE) as handle:
            everything = json.load(handle)
    except (OSError, ValueError):
        everything = {}
    everything[suite] = evidence
    with open(EVIDENCE + ".tmp", "w") as handle:
        json.dump(everything, handle, indent=2, sort_keys=True)
    os.replace(EVIDENCE + ".tmp", EVIDENCE)


def wait_for(what, check, timeout=120.0, every=0.1, host=None):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = ""
            if host is not None:
                detail = host.exec("systemctl status %s --no-pager; journalctl -b --no-pager | tail -40" % UNIT).stdout
            raise AssertionError("timed out waiting for %s\n%s" % (what, detail))
        time.sleep(every)


def main_pid(host):
    return int(show(host, "MainPID")["MainPID"])


def staged(host):
    """What prunes staged and have not deleted yet (both staging roots)."""
    found = []
    for root in ("idmapguard-staging", "overlay/tempdirs"):
        try:
            found += [os.path.join(root, e) for e in os.listdir(host.path("%s/%s" % (rs.STORE, root)))
                      if root == "idmapguard-staging" or e.startswith("idmapguard")]
        except FileNotFoundError:
            pass
    return found


def status(host):
    return json.loads(host.exec([rs.GUARD_BIN, "--config", "/etc/idmapguard/guard.json", "status"],
                                check=True).stdout)


def make_copies(host, tag, first, count):
    """COUNT unused copies (create + rm with a new non-contiguous map each)."""
    for index in range(first, first + count):
        idmap = rs.noncontig_map(index)
        host.podman("create", "--name", "c%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true",
                    check=True)
        host.podman("rm", "c%d" % index, check=True)


def podman_loads(host, tag):
    assert rs.images_view(host)
    rs.containers_view(host)
    idmap = rs.noncontig_map(9000)
    proc = host.podman("create", "--name", "probe", "--uidmap", idmap, "--gidmap", idmap, tag, "true")
    assert proc.returncode == 0, proc.stderr
    host.podman("rm", "probe", check=True)


def kill_prune_while_deleting(host):
    """idmapguard-prune (the same library as the guard) SIGKILLed in its first deletion of a
    staged entry: what it staged stays in staging, as after a killed eviction."""
    cmd = "echo $$; exec env IDMAPGUARD_TEST_STEP_SLEEP=1 %s --min-age 0" % rs.PRUNE_BIN
    proc = subprocess.Popen(host.nsenter() + ["/bin/sh", "-c", cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    try:
        pid = proc.stdout.readline().strip()
        assert pid.isdigit(), pid
        steps = []
        while True:
            line = proc.stderr.readline()
            assert line, "the prune ended before deleting: %s" % steps
            if line.startswith("step "):
                steps.append(line.split()[1])
                if steps[-1].startswith("delete:"):
                    break
        host.exec(["kill", "-9", pid], check=True)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return steps


def test_guard_unit_under_systemd(lab_host, inventory, tmp_path):
    """Both suites' hosts get the role in one run (it is most of the time); then each host
    goes through the steps of the module doc."""
    began = time.monotonic()
    hosts = [lab_host(suite, init="systemd", inodes=16384, size="400M") for suite in SUITES]
    tags = [host.image(files=1000) for host in hosts]
    for host in hosts:  # node_exporter's textfile directory: the sandbox must let the guard write it
        os.makedirs(host.path(TEXTFILE_DIR))
    book = tmp_path / "guard.yml"
    book.write_text(PLAYBOOK)
    ansible_playbook(inventory(*hosts), str(book))
    log("both hosts up, role applied at +%.0f s" % (time.monotonic() - began))
    if os.path.exists(EVIDENCE):
        os.unlink(EVIDENCE)  # this run's evidence only
    for host, tag in zip(hosts, tags):
        under_systemd(host, tag, began)
    with open(EVIDENCE) as handle:
        print("[guard-systemd] evidence (%s):\n%s" % (EVIDENCE, handle.read()))


def under_systemd(host, tag, began):
    suite = host.suite
    evidence = {"podman": host.podman_version(),
                "systemd": host.exec(["systemctl", "--version"], check=True).stdout.splitlines()[0]}

    def step(what):
        log("%s: %s at +%.0f s" % (suite, what, time.monotonic() - began))

    # 1. the role's defaults with the guard on: installed, enabled, running
    assert host.exec(["systemctl", "is-enabled", UNIT]).stdout.strip() == "enabled"
    wait_for("the guard's first pass", lambda: host.exec(["systemctl", "is-active", UNIT]).stdout.strip() == "active"
             and os.path.exists(host.path("/var/lib/idmapguard/guard-state.json")))
    first = journal(host)
    assert first[0]["event"] == "started" and not [e for e in first if e["event"] == "error"], first

    step("role applied")

    # 2. evictions past the budget (10 % of the store's inodes: about one copy here), one
    # journal line each
    make_copies(host, tag, 0, 3)
    step("copies made")

    def counted():
        """(journal lines, the guard's count) once two evictions are done and both agree"""
        lines = [e for e in journal(host) if e["event"] == "evicted"]
        total = status(host)["evictions"]["total"]
        return (lines, total) if total >= 2 and len(lines) == total else None

    evicted, total = wait_for("two evictions, each in the journal", counted)
    lines = [(e["time"], e["layer_id"][:12], e["reason"]) for e in evicted]
    log("%s: %d evictions, journal lines: %s" % (suite, total, lines))
    assert len({e["layer_id"] for e in evicted}) == len(evicted)
    assert [e for e in journal(host) if e["event"] == "error"] == []
    assert os.path.exists(host.path(TEXTFILE_DIR + "/idmapguard_guard.prom"))
    evicted_lines = journal_lines(host, "evicted")
    assert len(evicted_lines) == total, evicted_lines
    evidence["evictions"] = {"guard_count": total, "journal_lines": evicted_lines}

    step("evictions logged")

    # 3. SIGKILL of the MainPID: systemd restarts the guard
    before = show(host, "MainPID", "NRestarts")
    killed_at, killed_mono = time.time(), time.monotonic()
    host.exec(["kill", "-9", before["MainPID"]], check=True)

    def restarted():
        now = show(host, "MainPID", "NRestarts", "ActiveState")
        return now if now["MainPID"] not in ("0", before["MainPID"]) and now["ActiveState"] == "active" else None

    after = wait_for("a restarted guard", restarted, timeout=60)
    active_again = time.monotonic() - killed_mono
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    started = wait_for("the new guard's started line", lambda: [
        e for e in journal(host) if e["event"] == "started" and e["pid"] == int(after["MainPID"])])
    log("%s: SIGKILL of MainPID %s at %.3f; restarted as %s, its started line at %.3f (%.1f s)" % (
        suite, before["MainPID"], killed_at, after["MainPID"], started[-1]["time"], started[-1]["time"] - killed_at))
    evidence["sigkill"] = {
        "main_pid_before": int(before["MainPID"]), "main_pid_after": int(after["MainPID"]),
        "n_restarts": [int(before["NRestarts"]), int(after["NRestarts"])],
        "seconds_until_active_with_new_main_pid": round(active_again, 2),
        "seconds_until_started_line": round(started[-1]["time"] - killed_at, 2),
        "journal_started_line": [line for line in journal_lines(host, "started")
                                 if "[%s]" % after["MainPID"] in line][-1:]}

    step("restart seen")

    # 4. staging of a killed eviction is finished at start-up, before any new eviction
    host.exec(["systemctl", "stop", UNIT], check=True)
    make_copies(host, tag, 10, 2)
    steps = kill_prune_while_deleting(host)
    left = staged(host)
    assert left, steps
    total_before = status(host)["evictions"]["total"]
    start = time.monotonic()
    host.exec(["systemctl", "start", UNIT], check=True)
    wait_for("staging finished", lambda: not staged(host), timeout=60, host=host)
    took = time.monotonic() - start
    events = journal(host, "-b")
    since = max(i for i, e in enumerate(events) if e["event"] == "started")
    finished = [e for e in events[since:] if e["event"] == "staging"]
    log("%s: killed prune left %d staged paths (steps %s); the guard's start finished them in %.1f s: %s"
        % (suite, len(left), steps[-3:], took, finished))
    # The "staging" lines come only from the start-up's finish_staging (service.py). The killed
    # prune's later batches (its first batch is one copy) leave unused copies the new guard may
    # evict next: every staging line comes before its first eviction, so none waited for one.
    evicted = [i for i, e in enumerate(events) if i > since and e["event"] == "evicted"]
    staging_at = [i for i, e in enumerate(events) if i > since and e["event"] == "staging"]
    assert finished and (not evicted or max(staging_at) < min(evicted)), events[since:]
    new_evictions = status(host)["evictions"]["total"] - total_before
    assert new_evictions >= len(evicted), (new_evictions, evicted)  # it may evict again after the read
    podman_loads(host, tag)
    evidence["staging_at_start"] = {
        "staged_paths_left_by_killed_prune": len(left), "seconds_until_finished": round(took, 2),
        "new_evictions_after_it": new_evictions,
        "journal_staging_lines": journal_lines(host, "staging", "-b")[-len(finished):]}

    step("staging finished")

    # 5. systemctl stop while the guard deletes staged copies
    host.exec(["systemctl", "stop", UNIT], check=True)
    make_copies(host, tag, 20, 6)
    host.exec(["systemctl", "start", UNIT], check=True)
    seen = wait_for("the guard deleting staged copies", lambda: staged(host), timeout=120, every=0.02)
    start = time.monotonic()
    stop = host.exec(["systemctl", "stop", UNIT])
    took = time.monotonic() - start
    result = show(host, "Result", "TimeoutStopUSec", "ActiveState")
    stopped = [e for e in journal(host, "-b") if e["event"] == "stopped"][-1]
    log("%s: stop while %d staged paths: %.2f s (TimeoutStopSec %s), result %s, %s" % (
        suite, len(seen), took, result["TimeoutStopUSec"], result["Result"], stopped))
    assert stop.returncode == 0, stop.stderr
    assert result["Result"] == "success" and result["ActiveState"] == "inactive", result
    assert took < 30
    # what Podman's own check says with the stop's staged leftovers (if any) still on disk
    check_stopped = check_result(host)
    left_at_stop = staged(host)
    check_stopped["named_layers"] = named_layers(host, check_stopped["problems"])
    podman_loads(host, tag)
    assert host.exec(["podman", "ps", "-a"]).returncode == 0
    host.exec(["systemctl", "start", UNIT], check=True)
    wait_for("no staging after the next start", lambda: not staged(host), timeout=60)
    check_started = check_result(host)
    log("%s: podman system check after the stop (%d staged paths left): %s; after the next start: %s" % (
        suite, len(left_at_stop), check_stopped, check_started))
    evidence["stop_mid_eviction"] = {
        "staged_paths_when_stopped": len(seen), "seconds": round(took, 2), "result": result["Result"],
        "timeout_stop": result["TimeoutStopUSec"], "staged_paths_left_after_stop": len(left_at_stop),
        "journal_stopped_line": journal_lines(host, "stopped", "-b")[-1:],
        "podman_system_check_after_stop": check_stopped,
        "podman_system_check_after_next_start": check_started}
    # once the next start finished the staging, Podman's own check finds nothing of ours (5.x):
    # only the mtimes its chown walk leaves on each copy it made (remediate_support), which a copy
    # the guard has not evicted yet still shows
    check_started["named_layers"] = named_layers(host, check_started["problems"])
    if check_started["ok"] is False:
        # a copy the running guard evicted between the check and this read is no longer recorded
        # at all; a layer recorded but not as a mapped copy (the image's own) must not show up
        copies = {layer for layer, seen in check_started["named_layers"].items()
                  if seen["mapped_copy"] or not seen["in_layers_json"]}
        beyond = rs.damage_beyond_copy_mtimes(check_started["problems"], copies)
        assert not beyond, check_started

    step("stop checked")

    # 6. a reboot of the host: the guard runs again
    old_init, old_pid = host.entry_pid(), main_pid(host)
    rebooted_at = time.time()
    rebooted_mono = time.monotonic()
    host.exec(["systemctl", "reboot"])
    host.wait_booted(other_than=old_init)
    booted = time.monotonic() - rebooted_mono
    wait_for("the guard after the reboot", lambda: host.exec(["systemctl", "is-active", UNIT]).stdout.strip() == "active",
             host=host)
    active_again = time.monotonic() - rebooted_mono
    pid = main_pid(host)
    started = wait_for("the guard's started line in this boot", lambda: [
        e for e in journal(host, "-b") if e["event"] == "started" and e["pid"] == pid])
    assert pid != old_pid
    log("%s: systemctl reboot at %.3f; the guard's started line of the new boot at %.3f (%.1f s): %s" % (
        suite, rebooted_at, started[-1]["time"], started[-1]["time"] - rebooted_at, started[-1]))
    assert host.exec(["systemctl", "is-enabled", UNIT]).stdout.strip() == "enabled"
    make_copies(host, tag, 40, 3)
    wait_for("evictions after the reboot", lambda: [e for e in journal(host, "-b") if e["event"] == "evicted"])
    podman_loads(host, tag)
    evidence["reboot"] = {
        "main_pid_before": old_pid, "main_pid_after": pid,
        "seconds_until_booted_seen": round(booted, 2), "seconds_until_guard_active_seen": round(active_again, 2),
        "seconds_until_started_line": round(started[-1]["time"] - rebooted_at, 2),
        "journal_started_line": journal_lines(host, "started", "-b")[-1:],
        "journal_evicted_lines_after_boot": journal_lines(host, "evicted", "-b")}
    record_evidence(suite, evidence)
    step("rebooted and evicting")
