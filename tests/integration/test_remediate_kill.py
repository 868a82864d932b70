"""kill -9 of a prune at random points, and Podman creating/removing containers during a prune.

`make test-remediate` runs a few kill trials (REMEDIATE_KILL_TRIALS, default 3);
`make test-remediate-full` runs 30 or more. Each trial: make fresh unused copies, start the guard
with a short pause before every step (IDMAPGUARD_TEST_STEP_SLEEP) so a kill at a random time
lands in any step, kill -9 it, check that every lab Podman uses the store as before, then let a
second run finish and check again.
"""
import os
import random
import subprocess
import threading
import time

import remediate_support as rs

SUITES = [("bookworm", None), ("trixie", None), ("sid", "/usr/bin/fuse-overlayfs"), ("bullseye", None)]
TRIALS = int(os.environ.get("REMEDIATE_KILL_TRIALS", str(len(SUITES))))
SEED = int(os.environ.get("REMEDIATE_SEED", "0")) or int(time.time())
STEP_SLEEP = 0.25


def _host(lab_host, suite, mount_program):
    extra = {"mount_program": mount_program} if mount_program else {}
    host = lab_host(suite=suite, inodes=32768, size="400M", **extra)
    rs.install_guard(host)
    return host


def _start_guard(host, sleep: float) -> "tuple[subprocess.Popen, str]":
    """Start the guard inside the host; return the Popen and the guard's pid in the host."""
    cmd = ("echo $$; exec env %s=%s /usr/local/sbin/idmapguard-prune --min-age 0"
           % ("IDMAPGUARD_TEST_STEP_SLEEP", sleep))
    proc = subprocess.Popen(host.nsenter() + ["/bin/sh", "-c", cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    pid = proc.stdout.readline().strip()
    assert pid.isdigit(), pid
    return proc, pid


def _make_garbage(host, tag, rng, first_index, count):
    for index in range(first_index, first_index + count):
        idmap = rs.noncontig_map(index)
        name = "g%d" % index
        host.podman("create", "--name", name, "--uidmap", idmap, "--gidmap", idmap, tag, "true", check=True)
        host.podman("rm", name, check=True)


def _quick_agree(host, before, tag, used_map):
    """The checks of assert_podman_agrees that fit in a trial."""
    after = rs.podman_state(host)
    assert after["images"] == before["images"]
    assert after["containers"] == before["containers"]
    if before["check"] is not None:
        new = sorted(after["check"] - before["check"])
        assert not new, new[:20]
    for idmap in (used_map, rs.noncontig_map(9000)):
        proc = host.podman("create", "--name", "probe", "--uidmap", idmap, "--gidmap", idmap, tag, "true")
        assert proc.returncode == 0, proc.stderr
        host.podman("rm", "probe", check=True)


def test_kill9_at_random_points(lab_host):
    rng = random.Random(SEED)
    print("seed", SEED, "trials", TRIALS)
    hosts = {}
    for trial in range(TRIALS):
        suite, mount_program = SUITES[trial % len(SUITES)]
        if suite not in hosts:
            host = _host(lab_host, suite, mount_program)
            tag = host.image(files=200)
            keep_map = rs.noncontig_map(800)
            host.podman("create", "--name", "keeper", "--uidmap", keep_map, "--gidmap", keep_map, tag, "true",
                        check=True)
            hosts[suite] = (host, tag, keep_map, rs.try_start(host, "keeper"))
        host, tag, keep_map, keeper_starts = hosts[suite]
        count = rng.randint(2, 5)
        _make_garbage(host, tag, rng, 1000 + trial * 10, count)
        before = rs.podman_state(host)
        # steps: free-inode, images, mark, data x count, records, done (+ planning first)
        proc, pid = _start_guard(host, STEP_SLEEP)
        steps = []
        if rng.random() < 0.2:  # while planning (before any step)
            kill_after = rng.uniform(0.0, 0.4)
        else:  # from the first step on: free-inode, images, mark, data x count, records, done
            steps.append(proc.stderr.readline().strip())
            assert steps[0] == "step free-inode", steps
            kill_after = rng.uniform(0.0, STEP_SLEEP * (count + 4))
        time.sleep(kill_after)
        host.exec(["kill", "-9", pid])
        _out, err = proc.communicate(timeout=60)
        steps += [line for line in err.splitlines() if line.startswith("step ")]
        print("trial %d %s: killed after %.2fs, last step %s, rc %s" % (
            trial, suite, kill_after, steps[-1] if steps else "(planning)", proc.returncode))
        _quick_agree(host, before, tag, rs.noncontig_map(1000 + trial * 10))
        assert rs.try_start(host, "keeper") == keeper_starts
        before = rs.podman_state(host)
        _proc, result = rs.guard(host, "--min-age", "0")
        _proc, report = rs.guard(host, "--report", "--min-age", "0")
        assert all(c["in_use"] for c in report["copies"]), [c for c in report["copies"] if not c["in_use"]]
        assert sum(1 for _c in report["copies"]) == 1  # the keeper's copy
        _quick_agree(host, before, tag, keep_map)
        _proc, report = rs.guard(host, "--min-age", "0")  # the probes' copies


def test_podman_create_rm_loop_during_prune(lab_host):
    host = _host(lab_host, "trixie", None)
    tag = host.image(files=200)
    for index in range(3):
        idmap = rs.noncontig_map(index)
        host.podman("create", "--name", "stay%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true",
                    check=True)
    _make_garbage(host, tag, random.Random(1), 100, 6)
    before = rs.podman_state(host)
    errors = []
    done = threading.Event()
    loops = [0]

    def churn():
        index = 0
        while not done.is_set():
            # reuse maps whose copies the prune is removing, and brand-new ones
            idmap = rs.noncontig_map(100 + index % 6 if index % 2 else 200 + index)
            name = "churn%d" % index
            for args in (("create", "--name", name, "--uidmap", idmap, "--gidmap", idmap, tag, "true"),
                         ("rm", name)):
                proc = host.podman(*args)
                if proc.returncode != 0:
                    errors.append((args, proc.stderr))
            index += 1
            loops[0] = index

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        # At least 3 prunes, and on until the loop has overlapped them a few times, however
        # slow the machine is today.
        rounds = 0
        while rounds < 3 or (loops[0] < 4 and rounds < 40):
            proc, _pid = _start_guard(host, 0.2)
            _out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            rounds += 1
    finally:
        done.set()
        worker.join(timeout=300)
    assert loops[0] > 3, "the create/rm loop did not run during the prune"
    assert not errors, errors[:3]
    after = rs.podman_state(host)
    assert after["containers"] == before["containers"]  # no container lost
    assert after["images"] == before["images"]
    rs.guard(host, "--min-age", "0")
    _proc, report = rs.guard(host, "--report", "--min-age", "0")
    assert sorted(c["in_use"] for c in report["copies"]) == [True, True, True]
