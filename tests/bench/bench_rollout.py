#!/usr/bin/env python
"""Benchmark: a converged re-run of the rollout against a bare play, on the same lab hosts.

The bare play is what any fleet job pays anyway: `ping` plus `podman info` on every host. The
ratio (converged rollout / bare play) is what idmapguard costs on top once a fleet is done;
the goal is <= 1.2. All plays are timed in the same run on the same hosts with the same
inventory and connection settings (SSH, pipelining on for all), several rounds, alternating,
and the medians are compared:
  - the rollout with its default batches against the bare play in the same batches (a rolling
    fleet job pays for its batches either way), and against the bare play in one batch;
  - the rollout in one batch against the bare play in one batch (the per-host cost alone).
The order of the plays alternates from round to round, and the spread of the per-round ratios
is printed beside the medians (on a loaded machine single rounds drift). With BENCH_BEFORE, the
older collection's converged re-runs are timed in the same rounds against the same bare plays.

Before the timed rounds every version re-runs once untimed: the first re-run after the run that
converged the fleet still rewrites the metrics file (the record of a run that installed the
helper differs), which is not the steady state the goal is about. Beside the wall times, the
controller's CPU seconds per play (ansible-playbook and its workers and ssh clients) are printed:
on a shared machine they drift less than the wall time.

Per host, before and after a change of the collection (BENCH_BEFORE: a checkout of the older
collection, e.g. `git worktree add /work/wt/rollout-before <sha>`): for a host the rollout
changes (sid with fuse-overlayfs and mapped copies: configure, proof, prune) and for the same host
converged (the re-run), the task results (those that ran, and the skipped ones, which still cost
the controller a worker each), the module calls by module
(idmap_support among them; a callback counts them, tests/bench/callback/count_tasks.py), and the
wall time of the changed host's run. Before and after run interleaved, BENCH_HOST_ROUNDS rounds
(default 1) of a fresh host per path and version, the order alternating from round to round, so
both see the same load; the after/before ratio of the wall time per round and its median are
printed per path.
Prints the numbers; asserts nothing about time.

    make bench-rollout   (BENCH_ROUNDS=3, BENCH_HOST_ROUNDS=1, BENCH_HOSTS=bookworm,trixie,sid,sid-fuse, or e.g. sid*16,trixie*16;
                          BENCH_BEFORE=path; BENCH_PART=all|hosts|ratio;
                          BENCH_EXTRA='["-e", "idmapguard_metrics_dir="]' adds arguments to the rollout)
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from tests.lab.lab import Lab  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# rounds of the per-host part (BENCH_PART=hosts): a fresh host per path and version in each
HOST_ROUNDS = int(os.environ.get("BENCH_HOST_ROUNDS", "1"))
SUITES = []  # type: list
for _item in os.environ.get("BENCH_HOSTS", "bookworm,trixie,sid,sid-fuse").split(","):
    _suite, _sep, _times = _item.partition("*")
    SUITES += [_suite] * int(_times or 1)
BEFORE = os.environ.get("BENCH_BEFORE", "")
PART = os.environ.get("BENCH_PART", "all")
# the changed hosts of BENCH_PART=hosts, one per path through the rollout (every one a fresh host, so the
# helper is installed in the same run): fuse = sid + fuse-overlayfs (configure, proof, prune); disable =
# sid whose podman.service sets _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes (its proof, configure unsets it);
# upgrade-fuse = trixie 5.4 + fuse-overlayfs whose repository has sid's 5.8 (upgrade, then configure);
# upgrade-fail = bookworm 4.3 upgraded to trixie's 5.4 declared a backport (the proof fails, 4.3 back)
CHANGED = os.environ.get("BENCH_CHANGED", "fuse").split(",")
CALLBACKS = os.path.join(REPO, "tests", "bench", "callback")
MAPS = ["0:1065537:65536,531571:531571:1,19997967:19997967:1",
        "0:2065537:65536,531571:531571:1,19997967:19997967:1"]
# node_exporter's textfile directory as Debian's package makes it: every host writes its metrics
# file (docs/metrics.md), as on a fleet that runs node_exporter
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
# the rollout's default batches (playbooks/rollout.yml)
DEFAULT_BATCHES = [1, "10%", "50%", "100%"]

BARE_PLAY = """\
- name: Bare fleet play
  hosts: all
  gather_facts: false
  serial: {serial}
  tasks:
    - name: Ping
      ansible.builtin.ping:
    - name: Podman info
      ansible.builtin.command: podman info --format json
      changed_when: false
"""


# the controller's CPU seconds of every play run() ran, in order (user + system of the
# ansible-playbook process tree: its workers and their ssh clients)
CPU = []  # type: list


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv, env, may_fail=False) -> float:
    start, cpu = time.monotonic(), _children_cpu()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO, check=False)
    took = time.monotonic() - start
    CPU.append(_children_cpu() - cpu)
    if proc.returncode != 0 and not may_fail:
        sys.stdout.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit("bench-rollout: %s failed (exit %d)" % (argv[3] if len(argv) > 3 else argv, proc.returncode))
    return took


def collections_root(checkout: str, work: str, label: str) -> str:
    """An ANSIBLE_COLLECTIONS_PATH whose idmapguard.storage is CHECKOUT."""
    root = os.path.join(work, "collections-" + label)
    link = os.path.join(root, "ansible_collections", "idmapguard", "storage")
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(os.path.abspath(checkout), link)
    return root


def counted_run(argv, env, count_file, may_fail=False):
    env = dict(env, ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="count_tasks",
               BENCH_COUNT_FILE=count_file)
    took = run(argv, env, may_fail)
    with open(count_file) as f:
        return took, json.load(f)


def changed_host(lab, path):
    """A fresh lab host for PATH (CHANGED) and the rollout's extra arguments for it."""
    if path == "fuse":
        return lab.up(suite="sid", mount_program="/usr/bin/fuse-overlayfs"), []
    if path == "disable":
        host = lab.up(suite="sid")
        host.write_file("/etc/systemd/system/podman.service.d/50-noidmap.conf",
                        "[Service]\nEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
        return host, []
    if path == "upgrade-fuse":
        return (lab.up(suite="trixie", apt_repo="sid-podman", mount_program="/usr/bin/fuse-overlayfs"),
                ["-e", "idmapguard_rollout_upgrade_podman=true"])
    if path == "upgrade-fail":
        # bookworm 4.3 whose repository has trixie's 5.4, wrongly declared a backport: the upgrade's
        # canary still copies, the host fails and gets its previous Podman back (the run exits non-zero)
        return (lab.up(suite="bookworm", apt_repo="trixie-podman-bookworm"),
                ["-e", "idmapguard_rollout_upgrade_podman=true",
                 "-e", '{"idmapguard_rollout_upgrade_backports": ["5.4.2+ds1-2+b2"]}'])
    raise SystemExit("BENCH_CHANGED: unknown path %r (fuse, disable, upgrade-fuse, upgrade-fail)" % path)


def per_host(lab, work, env) -> None:
    """Before/after: a host the rollout changes (per path), and the fuse host converged; before and
    after interleaved (a fresh host each), the order alternating from round to round."""
    versions = [("after", REPO)] + ([("before", BEFORE)] if BEFORE else [])
    venvs = {}
    for label, checkout in versions:
        root = collections_root(checkout, work, label)
        venvs[label] = dict(env, ANSIBLE_COLLECTIONS_PATH=root, PYTHONPATH=root)
    rows = []
    for i in range(HOST_ROUNDS):
        for path in CHANGED:
            for label, _checkout in (versions if i % 2 == 0 else list(reversed(versions))):
                rows += [(i + 1,) + row for row in per_host_path(lab, work, venvs[label], label, path, i + 1)]
    print()
    print("per host (a fresh host each: the helper is installed in the same run; fuse = sid 5.8.6 + fuse-overlayfs,"
          " 2 mapped copies: configure, proof, prune; disable = sid + _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes in"
          " podman.service; upgrade-fuse = trixie 5.4.2 + fuse-overlayfs, upgraded to 5.8.6 then configured):")
    print("(tasks: results that ran; skipped: skipped results, each still a worker on the controller;"
          " cpu: the controller's CPU seconds; load: 1-min load average at the end of the run)")
    # gathers: every gather of the host's facts, idmap_support's and podman_upgrade's own after a package change
    print("(idmap: idmap_support calls; gath: those plus podman_upgrade's, which gathers in the same call)")
    header = ("round", "version", "path", "host", "wall s", "cpu s", "load", "tasks", "skipped", "remote", "idmap",
              "gath", "module calls")
    print("%-5s %-7s %-12s %-10s %8s %6s %5s %6s %7s %6s %5s %4s  %s" % header)
    for rnd, label, path, state, took, cpu, load, row in rows:
        mods = ", ".join("%s %d" % (k, v) for k, v in sorted(row["modules"].items()))
        calls = row["modules"].get("idmap_support", 0)
        gathers = calls + row["modules"].get("podman_upgrade", 0)
        line = (rnd, label, path, state, took, cpu, load, row["tasks"], row.get("skipped", "?"), row["remote"], calls,
                gathers, mods)
        print("%-5d %-7s %-12s %-10s %8.1f %6.1f %5.1f %6d %7s %6d %5d %4d  %s" % line)
    if BEFORE:
        print()
        print("wall time of the changed run, after / before, per round (same round: same load, order alternating):")
        for path in CHANGED:
            walls = {label: [r[4] for r in rows if r[1] == label and r[2] == path and r[3] == "changed"]
                     for label, _checkout in versions}
            ratios = [a / b for a, b in zip(walls["after"], walls["before"])]
            cpus = {label: [r[5] for r in rows if r[1] == label and r[2] == path and r[3] == "changed"]
                    for label, _checkout in versions}
            print("  %-12s before %s s, after %s s; ratio per round %s: median %.2f (spread %.2f..%.2f);"
                  " controller cpu median before %.1f s, after %.1f s" % (
                      path, " ".join("%.1f" % w for w in walls["before"]), " ".join("%.1f" % w for w in walls["after"]),
                      " ".join("%.2f" % r for r in ratios), statistics.median(ratios), min(ratios), max(ratios),
                      statistics.median(cpus["before"]), statistics.median(cpus["after"])))
    print("load average (1, 5, 15 min) at the end: %.2f %.2f %.2f on %d cores" % (os.getloadavg() + (os.cpu_count(),)))


def per_host_path(lab, work, venv, label, path, rnd=1):
    """The changed run (and, for the fuse host, the converged re-runs) on a fresh host for PATH."""
    rows = []
    host, extra = changed_host(lab, path)
    try:
        host.exec(["mkdir", "-p", TEXTFILE_DIR], check=True)
        image = host.image(files=300)
        for idmap in MAPS:
            args = []
            for extent in idmap.split(","):
                args += ["--uidmap", extent, "--gidmap", extent]
            host.podman("create", "--name", "b%d" % abs(hash(idmap)), *args, image, "/bin/true", check=True)
            host.podman("rm", "b%d" % abs(hash(idmap)), check=True)
        inv = os.path.join(work, "inv-%s-%s-%d.ini" % (label, path, rnd))
        with open(inv, "w") as f:
            f.write(lab.inventory([host.name]))
        argv = ["ansible-playbook", "-i", inv, "idmapguard.storage.rollout",
                "-e", "idmapguard_rollout_report_dir=" + os.path.join(work, "report-%s-%d" % (label, rnd)),
                "-e", '{"idmapguard_rollout_proof_accept": ["commit"]}',
                "-e", "idmapguard_configure_allow_store_change=true",
                "-e", "idmapguard_remediate_policy=always", "-e", "idmapguard_remediate_min_age=0"] + extra
        # the first re-run still rewrites the metrics file where the changed run's record
        # differs (the proof's cost, the helper version); the second shows the steady state
        for state in ("changed", "converged", "converged2") if path == "fuse" else ("changed",):
            took, counts = counted_run(argv, venv, os.path.join(work, "count-%s-%s-%s-%d.json" % (label, path, state, rnd)),
                                       may_fail=path == "upgrade-fail")
            row = counts.get(host.name, {"tasks": 0, "skipped": 0, "remote": 0, "modules": {}})
            load = os.getloadavg()[0]
            rows.append((label, path, state, took, CPU[-1], load, row))
            print("round %d %s %s %s: %.1fs, cpu %.1fs, %s (load %.1f)"
                  % (rnd, label, path, state, took, CPU[-1], row, load), flush=True)
    finally:
        host.down()
    return rows


def main() -> int:
    if os.geteuid() != 0:
        print("bench-rollout needs root (lab hosts)")
        return 1
    lab = Lab(log=lambda m: print(m, flush=True))
    hosts = []
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="1")
    if PART in ("all", "hosts"):
        per_host(lab, tempfile.mkdtemp(prefix="bench-rollout-hosts."), env)
    if PART == "hosts":
        return 0
    try:
        for suite in SUITES:
            if suite == "sid-fuse":  # fixable_by_config: the rollout configures it when converging
                hosts.append(lab.up(suite="sid", mount_program="/usr/bin/fuse-overlayfs"))
            else:
                hosts.append(lab.up(suite=suite))
        for h in hosts:
            h.exec(["mkdir", "-p", TEXTFILE_DIR], check=True)
        work = tempfile.mkdtemp(prefix="bench-rollout.")
        inv = os.path.join(work, "inventory.ini")
        with open(inv, "w") as f:
            f.write(lab.inventory([h.name for h in hosts]))
        bare = os.path.join(work, "bare.yml")
        with open(bare, "w") as f:
            f.write(BARE_PLAY.format(serial='["100%"]'))
        bare_batched = os.path.join(work, "bare-batched.yml")
        with open(bare_batched, "w") as f:
            f.write(BARE_PLAY.format(serial=json.dumps(DEFAULT_BATCHES)))
        # the same environment (SSH via the lab inventory, pipelining) for every play (env above)
        rollout = ["ansible-playbook", "-i", inv, "idmapguard.storage.rollout",
                   "-e", "idmapguard_rollout_report_dir=" + os.path.join(work, "report")]
        rollout += json.loads(os.environ.get("BENCH_EXTRA", "[]"))
        print("converging the fleet once (not timed) ...", flush=True)
        run(rollout + ["-e", "idmapguard_configure_allow_store_change=true"], env)
        # (the record, so the metrics file, is the same for both versions: neither re-run rewrites it)
        # default batches (on 4 hosts: 1, 1, 2 hosts one after another) and one batch of all hosts
        one_batch = rollout + ["-e", '{"idmapguard_rollout_batches": ["100%"]}']
        # with BENCH_BEFORE, the older collection's converged re-run too, in the same rounds
        before_env = None
        if BEFORE:
            root = collections_root(BEFORE, work, "before")
            before_env = dict(env, ANSIBLE_COLLECTIONS_PATH=root, PYTHONPATH=root)
        times = {name: [] for name in ("bare", "bare_b", "roll", "one", "before", "before_one")}
        cpu = {name: [] for name in times}
        plays = [("bare", ["ansible-playbook", "-i", inv, bare], env),
                 ("bare_b", ["ansible-playbook", "-i", inv, bare_batched], env),
                 ("roll", rollout, env), ("one", one_batch, env)]
        if before_env:
            plays += [("before", rollout, before_env), ("before_one", one_batch, before_env)]
        # the first re-run after the converging run may still rewrite the metrics file: untimed
        print("re-running each version once (not timed) ...", flush=True)
        for name, argv, play_env in plays:
            if name in ("roll", "before"):
                run(argv, play_env)
        print("load before the rounds: %.2f" % os.getloadavg()[0], flush=True)
        for i in range(ROUNDS):
            # alternate the order: a drifting load then favours neither side
            for name, argv, play_env in (plays if i % 2 == 0 else list(reversed(plays))):
                times[name].append(run(argv, play_env))
                cpu[name].append(CPU[-1])
            print("round %d (load %.1f): %s" % (i + 1, os.getloadavg()[0], ", ".join(
                "%s %.1fs (cpu %.1fs)" % (name, times[name][-1], cpu[name][-1]) for name, _argv, _env in plays)),
                flush=True)
        mb, mbb = statistics.median(times["bare"]), statistics.median(times["bare_b"])
        print()
        print("hosts: %s" % ", ".join("%s (podman %s)" % (h.name, h.podman_version()) for h in hosts))
        print("connection: ssh, ANSIBLE_PIPELINING=1, same inventory for every play; medians of %d rounds" % ROUNDS)
        print("bare play (ping + podman info), one batch:           %.1fs" % mb)
        print("bare play, in the rollout's default batches %s: %.1fs" % (json.dumps(DEFAULT_BATCHES), mbb))
        for label, batched_name, one_name in (("", "roll", "one"), ("BEFORE ", "before", "before_one")):
            if not times[batched_name]:
                continue
            mr, mo = statistics.median(times[batched_name]), statistics.median(times[one_name])
            print("%sconverged rollout re-run, default batches: %.1fs  ratio %.2f vs bare in the same batches"
                  " (%.2f vs bare in one batch)" % (label, mr, mr / mbb, mr / mb))
            print("%sconverged rollout re-run, one batch:       %.1fs  ratio %.2f vs bare in one batch" % (label, mo, mo / mb))
            batched = [r / b for r, b in zip(times[batched_name], times["bare_b"])]
            single = [o / b for o, b in zip(times[one_name], times["bare"])]
            print("%sper-round ratios, default batches: %s (median %.2f, spread %.2f..%.2f)" % (
                label, " ".join("%.2f" % r for r in batched), statistics.median(batched), min(batched), max(batched)))
            print("%sper-round ratios, one batch:       %s (median %.2f, spread %.2f..%.2f)" % (
                label, " ".join("%.2f" % r for r in single), statistics.median(single), min(single), max(single)))
            cb, co = statistics.median(cpu[batched_name]), statistics.median(cpu[one_name])
            print("%scontroller cpu (median): default batches %.1fs vs bare %.1fs (ratio %.2f); one batch %.1fs vs bare"
                  " %.1fs (ratio %.2f)" % (label, cb, statistics.median(cpu["bare_b"]),
                                           cb / statistics.median(cpu["bare_b"]), co, statistics.median(cpu["bare"]),
                                           co / statistics.median(cpu["bare"])))
        print("goal: ratio <= 1.2")
        print("load average (1, 5, 15 min) at the end: %.2f %.2f %.2f on %d cores" % (os.getloadavg() + (os.cpu_count(),)))
        return 0
    finally:
        for h in hosts:
            h.down()


if __name__ == "__main__":
    sys.exit(main())
