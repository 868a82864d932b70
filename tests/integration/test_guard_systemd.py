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
"""
import json
import os
import subprocess
import sys
import time

import remediate_support as rs
from test_remediate_role import ansible_playbook

UNIT = "idmapguard-guard.service"
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
    for host, tag in zip(hosts, tags):
        under_systemd(host, tag, began)


def under_systemd(host, tag, began):
    suite = host.suite

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

    step("evictions logged")

    # 3. SIGKILL of the MainPID: systemd restarts the guard
    before = show(host, "MainPID", "NRestarts")
    killed_at = time.time()
    host.exec(["kill", "-9", before["MainPID"]], check=True)

    def restarted():
        now = show(host, "MainPID", "NRestarts", "ActiveState")
        return now if now["MainPID"] not in ("0", before["MainPID"]) and now["ActiveState"] == "active" else None

    after = wait_for("a restarted guard", restarted, timeout=60)
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    started = wait_for("the new guard's started line", lambda: [
        e for e in journal(host) if e["event"] == "started" and e["pid"] == int(after["MainPID"])])
    log("%s: SIGKILL of MainPID %s at %.3f; restarted as %s, its started line at %.3f (%.1f s)" % (
        suite, before["MainPID"], killed_at, after["MainPID"], started[-1]["time"], started[-1]["time"] - killed_at))

    step("restart seen")

    # 4. staging of a killed eviction is finished at start-up, without a new eviction
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
    assert finished and not [e for e in events[since:] if e["event"] == "evicted"]
    assert status(host)["evictions"]["total"] == total_before
    podman_loads(host, tag)

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
    podman_loads(host, tag)
    assert host.exec(["podman", "ps", "-a"]).returncode == 0
    host.exec(["systemctl", "start", UNIT], check=True)
    wait_for("no staging after the next start", lambda: not staged(host), timeout=60)

    step("stop checked")

    # 6. a reboot of the host: the guard runs again
    old_init, old_pid = host.entry_pid(), main_pid(host)
    rebooted_at = time.time()
    host.exec(["systemctl", "reboot"])
    host.wait_booted(other_than=old_init)
    wait_for("the guard after the reboot", lambda: host.exec(["systemctl", "is-active", UNIT]).stdout.strip() == "active",
             host=host)
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
    step("rebooted and evicting")
