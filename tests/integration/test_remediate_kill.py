"""kill -9 of a prune in every one of its steps, and Podman creating/removing containers
during prunes, on every lab Podman.

`make test-remediate` runs one kill trial per step kind (REMEDIATE_KILL_TRIALS, default 10);
`make test-remediate-full` runs 30. Each trial: fresh unused copies, the guard with a pause
before every step (IDMAPGUARD_TEST_STEP_SLEEP prints "step NAME" and sleeps), a kill -9 aimed
at trial k's step kind (an occurrence picked at random for the per-copy kinds ``stage`` and
``delete``, so a kill also lands half-way through staging or deletion; the kill comes inside
that step's pause: all steps before it are done, it is not), then: Podman loads the store and creates
containers (asserted), a second run leaves no unused copy and no staged data. Half the trials
(picked by the seed) prune one copy per batch (IDMAPGUARD_TEST_BATCH_COPIES=1), so every step
from ``locked`` to ``delete`` repeats per copy and the kill may land in a later batch.
"""
import collections
import os
import random
import subprocess
import threading
import time

import remediate_support as rs

TRIALS = int(os.environ.get("REMEDIATE_KILL_TRIALS", "10"))
SEED = int(os.environ.get("REMEDIATE_SEED", "0")) or int(time.time())
SUITES = [("bookworm", None), ("trixie", None), ("sid", "/usr/bin/fuse-overlayfs"), ("bullseye", None)]
STEP_SLEEP = 0.5
# The step kinds of one prune, in order (stage and delete occur once per copy / staged entry).
KINDS = ["plan", "locked", "free-inode", "images", "mark", "stage", "records", "released", "delete", "stale"]


def _host(lab_host, suite, mount_program):
    extra = {"mount_program": mount_program} if mount_program else {}
    host = lab_host(suite=suite, inodes=32768, size="400M", **extra)
    rs.install_guard(host)
    return host


def _start_guard(host, sleep: float, *args: str, batch: int = 0) -> "tuple[subprocess.Popen, str]":
    """Start the guard inside the host; return the Popen and the guard's pid in the host.
    ``batch``: copies per batch of the prune (0: its default)."""
    cmd = ("echo $$; exec env %s=%s %s=%d /usr/local/sbin/idmapguard-prune --min-age 0 %s"
           % ("IDMAPGUARD_TEST_STEP_SLEEP", sleep, "IDMAPGUARD_TEST_BATCH_COPIES", batch, " ".join(args)))
    proc = subprocess.Popen(host.nsenter() + ["/bin/sh", "-c", cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    pid = proc.stdout.readline().strip()
    assert pid.isdigit(), pid
    return proc, pid


def _make_garbage(host, tag, first_index, count):
    for index in range(first_index, first_index + count):
        idmap = rs.noncontig_map(index)
        name = "g%d" % index
        host.podman("create", "--name", name, "--uidmap", idmap, "--gidmap", idmap, tag, "true", check=True)
        host.podman("rm", name, check=True)


def _quick_agree(host, before, tag, used_map, system_check=True):
    """Podman loads the store (images, ps, system check: nothing new) and creates containers."""
    if system_check:
        after = rs.podman_state(host)
    else:
        after = {"images": rs.images_view(host), "containers": rs.containers_view(host)}
    assert after["images"] == before["images"]
    assert after["containers"] == before["containers"]
    if system_check and before["check"] is not None:
        new = sorted(after["check"] - before["check"])
        assert not new, new[:20]
    for idmap in (used_map, rs.noncontig_map(9000)):
        proc = host.podman("create", "--name", "probe", "--uidmap", idmap, "--gidmap", idmap, tag, "true")
        assert proc.returncode == 0, proc.stderr
        host.podman("rm", "probe", check=True)


def _kill_in(host, rng, kind: str, copies: int, batch: int = 0):
    """Run the guard and kill -9 it in a step of ``kind``; returns the last step it printed.

    For the repeated kinds the occurrence is picked among those the prune will have: ``stage``
    comes once per planned copy (``copies``), ``delete`` at least four times per copy. With
    ``batch`` 1 every step from ``locked`` to ``delete`` comes once per copy (one batch each:
    store/walk_ahead.py), so the kill may land in a later batch."""
    proc, pid = _start_guard(host, STEP_SLEEP, batch=batch)
    repeated = ("stage", "delete") if batch != 1 else tuple(k for k in KINDS if k not in ("plan", "stale"))
    seen = []
    target = None
    try:
        while True:
            line = proc.stderr.readline()
            if not line:
                break  # finished before the kind came up (e.g. nothing left to delete)
            if line.startswith("step "):
                step = line.split()[1]
                seen.append(step)
                if step.split(":")[0] == kind:
                    if target is None:
                        # which occurrence of a repeated kind (one that comes up)
                        target = rng.randint(0, min(2, copies - 1))
                    if target == 0 or kind not in repeated:
                        # inside that step's pause: every step before it is done, it is not
                        time.sleep(rng.uniform(0.0, STEP_SLEEP * 0.4))  # + the time kill takes
                        break
                    target -= 1
        host.exec(["kill", "-9", pid])
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    seen += [line.split()[1] for line in err.splitlines() if line.startswith("step ")]
    return (seen[-1] if seen else "(none)"), proc.returncode, max(1, seen.count("locked"))


def _no_staged_data(host):
    left = host.exec("ls -A %s/idmapguard-staging 2>/dev/null; ls -A %s/overlay/tempdirs 2>/dev/null | "
                     "grep idmapguard || true" % (rs.STORE, rs.STORE)).stdout.split()
    assert not left, left


def test_kill9_in_every_step(lab_host):
    rng = random.Random(SEED)
    print("seed", SEED, "trials", TRIALS)
    hosts = {}
    landed = collections.Counter()
    for trial in range(TRIALS):
        suite, mount_program = SUITES[trial % len(SUITES)]
        kind = KINDS[trial % len(KINDS)]
        if suite not in hosts:
            host = _host(lab_host, suite, mount_program)
            tag = host.image(files=200)
            keep_map = rs.noncontig_map(800)
            host.podman("create", "--name", "keeper", "--uidmap", keep_map, "--gidmap", keep_map, tag, "true",
                        check=True)
            hosts[suite] = (host, tag, keep_map, rs.try_start(host, "keeper"))
        host, tag, keep_map, keeper_starts = hosts[suite]
        count = rng.randint(2, 3)
        _make_garbage(host, tag, 1000 + trial * 10, count)
        before = rs.podman_state(host)
        # Half the trials prune one copy per batch: the kill may land in the second or third
        # batch, after earlier batches were removed whole.
        batch = rng.choice((0, 1))
        last, rc, in_batch = _kill_in(host, rng, kind, count, batch)
        landed[last.split(":")[0]] += 1
        print("trial %d %s: aimed at %s, last step %s (batch %d), rc %s, %s" % (
            trial, suite, kind, last, in_batch, rc, "one copy per batch" if batch else "default batches"))
        _quick_agree(host, before, tag, rs.noncontig_map(1000 + trial * 10))
        assert rs.try_start(host, "keeper") == keeper_starts
        before = {"images": rs.images_view(host), "containers": rs.containers_view(host)}
        _proc, result = rs.guard(host, "--min-age", "0")
        _proc, report = rs.guard(host, "--report", "--min-age", "0")
        assert all(c["in_use"] for c in report["copies"]), [c for c in report["copies"] if not c["in_use"]]
        assert len(report["copies"]) == 1  # the keeper's copy
        assert not report.get("staging"), report.get("staging")
        _no_staged_data(host)
        _quick_agree(host, before, tag, keep_map, system_check=False)
        rs.guard(host, "--min-age", "0")  # the probes' copies
    print("KILL POINTS (last step printed before the kill): %s" % dict(sorted(landed.items())))
    if TRIALS >= len(KINDS):
        missing = [k for k in KINDS if not landed[k]]
        assert not missing, "no kill landed in %s: %s" % (missing, dict(landed))


def _assert_layers_intact(host):
    """Every container's layer and every layer's parent have a record and a driver dir."""
    import json
    with open(host.path(rs.STORE + "/overlay-layers/layers.json")) as handle:
        layers = {layer["id"]: layer for layer in json.load(handle)}
    with open(host.path(rs.STORE + "/overlay-containers/containers.json")) as handle:
        containers = json.load(handle)
    for container in containers:
        layer_id = container["layer"]
        while layer_id:
            assert layer_id in layers, "container %s lost layer %s" % (container["id"][:12], layer_id)
            assert os.path.isdir(host.path(rs.STORE + "/overlay/" + layer_id)), layer_id
            layer_id = layers[layer_id].get("parent")


def _can_run(host, tag):
    return host.podman("run", "--rm", "--uidmap", rs.contiguous_map(host), "--gidmap", rs.contiguous_map(host), tag,
                       "true", timeout=120).returncode == 0


def _churn_against_prunes(host, tag, with_run):
    for index in range(3):
        idmap = rs.noncontig_map(index)
        host.podman("create", "--name", "stay%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true",
                    check=True)
    _make_garbage(host, tag, 100, 4)
    before = rs.podman_state(host)
    errors = []
    done = threading.Event()
    loops = [0]

    def churn():
        index = 0
        while not done.is_set():
            # reuse maps whose copies the prune is removing, and brand-new ones: many maps
            idmap = rs.noncontig_map(100 + index % 4 if index % 2 else 200 + index)
            name = "churn%d" % index
            steps = [("create", "--name", name, "--uidmap", idmap, "--gidmap", idmap, tag, "true"), ("rm", name)]
            if with_run and index % 3 == 0:
                steps.append(("run", "--rm", "--uidmap", rs.contiguous_map(host), "--gidmap", rs.contiguous_map(host),
                              tag, "true"))
            for args in steps:
                proc = host.podman(*args, timeout=300)
                if proc.returncode != 0:
                    errors.append((args, proc.stderr))
            index += 1
            loops[0] = index

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        rounds = 0
        while rounds < 2 or (loops[0] < 5 and rounds < 40):
            proc, _pid = _start_guard(host, 0.05)
            _out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            rounds += 1
    finally:
        done.set()
        worker.join(timeout=300)
    assert loops[0] > 3, "the create/rm loop did not run during the prunes"
    assert not errors, errors[:3]
    after = rs.podman_state(host)
    assert after["containers"] == before["containers"]  # no container lost
    assert after["images"] == before["images"]
    _assert_layers_intact(host)
    rs.guard(host, "--min-age", "0")
    _proc, report = rs.guard(host, "--report", "--min-age", "0")
    assert sorted(c["in_use"] for c in report["copies"]) == [True, True, True]
    return loops[0], rounds


def test_podman_create_rm_run_loop_during_prunes_every_podman(lab_host):
    for suite, mount_program in SUITES:
        host = _host(lab_host, suite, mount_program)
        tag = host.image(files=200)
        with_run = _can_run(host, tag)
        loops, rounds = _churn_against_prunes(host, tag, with_run)
        print("%s: %d create/rm%s loops against %d prunes, 0 Podman errors" % (
            suite, loops, "/run" if with_run else "", rounds))
        host.down()
