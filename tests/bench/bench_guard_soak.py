"""Soak: the copy-cache guard with the role's defaults vs the old timer, one new map per second.

Per suite (bookworm: Podman 4.3, trixie: Podman 5.4; both copy the image's top layer per
distinct non-contiguous map) two lab hosts with the same store (ext4, ``--inodes``; sized so
that the old defaults run out) and the same F-file image are fed, in parallel, one new distinct
non-contiguous map per second for ``--seconds``: ``podman create`` + ``rm``, and on hosts that
can start such a container (trixie) every other tick ``podman run --rm``.

* guard host: ``idmapguard-guard watch`` started directly (lab hosts have no systemd) at the
  service's priority (nice 19, idle I/O class, SCHED_BATCH), with the parameter file the
  remediate role writes from its defaults (roles/remediate/defaults/main.yml).
* baseline host, same run: the old defaults - a timer (OnBootSec=5min, then every 15 min) of
  ``idmapguard-prune --threshold 80 --min-age 600``.

Prints per host: failed Podman commands (goal 0 for the guard), peak and final inode use of the
store filesystem, the guard's peak/final cache size vs its budget, evictions; and the ratios
guard/baseline. Writes tests/output/bench_guard_soak.json.

    python tests/bench/bench_guard_soak.py [--seconds 600] [--suites bookworm,trixie] [--files 2000]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from tests.lab.lab import Lab  # noqa: E402
import remediate_support as rs  # noqa: E402

# The old role defaults (before the guard service): timer and prune parameters.
OLD_BOOT_DELAY = 300
OLD_INTERVAL = 900
OLD_THRESHOLD = 80
OLD_MIN_AGE = 600
RUN_CAPABLE = {"trixie", "sid"}  # can start a container with a non-contiguous map in the lab
STATE_FILE = "/var/lib/idmapguard/guard-state.json"


def role_defaults():
    """The guard parameters of roles/remediate/defaults/main.yml (read, not restated)."""
    import yaml
    with open(os.path.join(REPO, "roles", "remediate", "defaults", "main.yml")) as handle:
        return yaml.safe_load(handle)


def soak_map(suite_index, tick):
    """A distinct non-contiguous map per tick (never repeats within a run)."""
    base = 1065537 + (suite_index * 100000 + tick) * 70000
    return "0:%d:65536,531571:531571:1" % (base % (2 ** 32 - 200000))


class Feeder(threading.Thread):
    """One new map per second into one host, on schedule whatever Podman's latency: each tick
    runs in its own thread (at most ``MAX_IN_FLIGHT``), so a slow create does not lower the rate.
    Records every Podman failure, and inode use after every tick."""

    MAX_IN_FLIGHT = 8

    def __init__(self, host, tag, seconds, use_run, suite_index, sample=None):
        super().__init__(daemon=True)
        self.host, self.tag, self.seconds, self.use_run = host, tag, seconds, use_run
        self.suite_index = suite_index
        self.sample = sample
        self.ops = 0
        self.failures = []
        self.peak_used = 0
        self.first_failure = None
        self.samples = []
        self.late_ticks = 0
        self.lock = threading.Lock()
        self.slots = threading.Semaphore(self.MAX_IN_FLIGHT)
        self.start_time = None

    def one_tick(self, tick):
        try:
            idmap = soak_map(self.suite_index, tick)
            name = "s%d" % tick
            if self.use_run and tick % 2:
                cmds = [("run", ["run", "--rm", "--name", name, "--uidmap", idmap, "--gidmap", idmap, self.tag, "true"])]
            else:
                cmds = [("create", ["create", "--name", name, "--uidmap", idmap, "--gidmap", idmap, self.tag, "true"]),
                        ("rm", ["rm", "-f", name])]
            for what, argv in cmds:
                proc = self.host.podman(*argv, timeout=300)
                with self.lock:
                    self.ops += 1
                    if proc.returncode != 0:
                        elapsed = time.time() - self.start_time
                        if self.first_failure is None:
                            self.first_failure = elapsed
                        self.failures.append({"t": round(elapsed, 1), "op": what, "rc": proc.returncode,
                                              "err": proc.stderr.strip().splitlines()[-1:] if proc.stderr else []})
                if proc.returncode != 0 and what == "create":
                    break
            used = self.host.inodes_used()
            extra = self.sample() if self.sample else {}
            with self.lock:
                self.peak_used = max(self.peak_used, used)
                self.samples.append(dict(t=round(time.time() - self.start_time, 1), inodes_used=used, **extra))
        finally:
            self.slots.release()

    def run(self):
        self.start_time = start = time.time()
        tick = 0
        workers = []
        while time.time() - start < self.seconds:
            due = start + tick
            if time.time() < due:
                time.sleep(due - time.time())
            if not self.slots.acquire(blocking=False):
                self.late_ticks += 1          # Podman is MAX_IN_FLIGHT ticks behind: wait, count it
                self.slots.acquire()
            worker = threading.Thread(target=self.one_tick, args=(tick,), daemon=True)
            worker.start()
            workers.append(worker)
            tick += 1
        self.elapsed = time.time() - start    # the schedule's span: maps per second as fed
        for worker in workers:
            worker.join()
        self.ticks = tick


def guard_sample(host):
    def sample():
        try:
            with open(host.path(STATE_FILE)) as handle:
                status = json.load(handle)["status"]
            return {"cache_inodes": status["cache"]["inodes"], "cache_copies": status["cache"]["copies"],
                    "evictions": status["evictions"]["total"]}
        except (OSError, ValueError, KeyError):
            return {}
    return sample


def start_guard(host, defaults):
    config = {"graphroot": rs.STORE, "runroot": "/run/containers/storage",
              "images": defaults["idmapguard_remediate_images"], "keep_maps": defaults["idmapguard_remediate_keep_maps"],
              "budget_percent": float(defaults["idmapguard_remediate_guard_budget_percent"]),
              "low_free_percent": float(defaults["idmapguard_remediate_guard_low_free_percent"]),
              "grace": float(defaults["idmapguard_remediate_guard_grace"]), "state_file": STATE_FILE}
    host.write_file("/etc/idmapguard/guard.json", json.dumps(config))
    # The unit's priority: Nice=19, IOSchedulingClass=idle, CPUSchedulingPolicy=batch.
    argv = ["nice", "-n", "19", "ionice", "-c", "3", "chrt", "--batch", "0",
            rs.GUARD_BIN, "--config", "/etc/idmapguard/guard.json", "watch"]
    log = open("/tmp/guard-soak-%s.log" % host.name, "w")
    return subprocess.Popen(host.nsenter() + argv, stdout=log, stderr=subprocess.STDOUT), log


def old_timer(host, seconds, stop):
    """The old timer: first run after 5 min, then every 15 min, threshold 80 %, min_age 600 s."""
    runs = []
    start = time.time()
    due = OLD_BOOT_DELAY
    while not stop.is_set() and due < seconds:
        if stop.wait(max(0.0, start + due - time.time())):
            break
        proc, out = rs.guard(host, "--threshold", str(OLD_THRESHOLD), "--min-age", str(OLD_MIN_AGE), check=False)
        runs.append({"t": round(time.time() - start, 1), "rc": proc.returncode, "result": out})
        due += OLD_INTERVAL
    return runs


def soak_suite(lab, suite, suite_index, args, defaults):
    hosts = {}
    try:
        for role in ("guard", "baseline"):
            hosts[role] = lab.up(suite=suite, inodes=args.inodes, size=args.size)
            rs.install_guard(hosts[role])
        tags = {role: host.image(files=args.files) for role, host in hosts.items()}
        total = os.statvfs(hosts["guard"].path(rs.STORE)).f_files
        guard_proc, guard_log = start_guard(hosts["guard"], defaults)
        time.sleep(2)
        use_run = suite in RUN_CAPABLE
        feeders = {role: Feeder(host, tags[role], args.seconds, use_run, suite_index,
                                guard_sample(host) if role == "guard" else None)
                   for role, host in hosts.items()}
        stop = threading.Event()
        timer_runs = []
        timer = threading.Thread(target=lambda: timer_runs.extend(old_timer(hosts["baseline"], args.seconds, stop)),
                                 daemon=True)
        started = time.time()
        for feeder in feeders.values():
            feeder.start()
        timer.start()
        for feeder in feeders.values():
            feeder.join()
        stop.set()
        timer.join()
        time.sleep(args.settle)  # the guard's grace and one pass, then the final figures
        guard_proc.terminate()
        guard_proc.wait(timeout=30)
        guard_log.close()
        status = json.load(open(hosts["guard"].path(STATE_FILE)))["status"]
        samples = feeders["guard"].samples
        result = {"suite": suite, "podman": hosts["guard"].podman_version(), "seconds": args.seconds,
                  "wall": round(time.time() - started, 1), "files": args.files, "inodes_total": total,
                  "budget_inodes": status["budget"]["budget_inodes"],
                  "low_free_inodes": status["budget"]["low_free_inodes"], "run_used": use_run}
        for role, feeder in feeders.items():
            final = hosts[role].inodes_used()
            result[role] = {"ticks": feeder.ticks, "late_ticks": feeder.late_ticks,
                            "maps_per_second": round(feeder.ticks / feeder.elapsed, 2),
                            "podman_commands": feeder.ops, "failed": len(feeder.failures),
                            "first_failure_s": feeder.first_failure, "failures": feeder.failures[:5],
                            "peak_inodes_used": feeder.peak_used, "final_inodes_used": final,
                            "peak_use_percent": round(100.0 * feeder.peak_used / total, 1),
                            "final_use_percent": round(100.0 * final / total, 1)}
        result["guard"].update(
            evictions=status["evictions"]["total"], evicted_inodes=status["evictions"]["inodes"],
            peak_cache_inodes=max([s.get("cache_inodes", 0) for s in samples] or [0]),
            final_cache_inodes=status["cache"]["inodes"], final_cache_copies=status["cache"]["copies"])
        result["baseline"]["timer_runs"] = timer_runs
        return result
    finally:
        for host in hosts.values():
            host.down()


def report(result):
    g, b = result["guard"], result["baseline"]
    print("== %s (Podman %s): %ds, one new map/s (%s), %d-file image, store %d inodes" % (
        result["suite"], result["podman"], result["seconds"], "create+rm / run --rm" if result["run_used"] else
        "create+rm", result["files"], result["inodes_total"]))
    print("   budget %d inodes (unused copies), evict at once below %d free" % (
        result["budget_inodes"], result["low_free_inodes"]))
    for role, r in (("guard (role defaults)", g), ("baseline (old timer)", b)):
        print("   %-22s maps %4d (%.2f/s)  failed %4d  first failure %s  peak use %5.1f%%  final use %5.1f%%" % (
            role, r["ticks"], r["maps_per_second"], r["failed"], "%.0fs" % r["first_failure_s"] if r["first_failure_s"] is not None else "-",
            r["peak_use_percent"], r["final_use_percent"]))
    print("   guard cache: peak %d / final %d inodes vs budget %d (peak %.2fx budget); %d evictions, %d inodes" % (
        g["peak_cache_inodes"], g["final_cache_inodes"], result["budget_inodes"],
        g["peak_cache_inodes"] / max(1, result["budget_inodes"]), g["evictions"], g["evicted_inodes"]))
    print("RESULT %s failed podman commands guard/baseline: %d/%d; peak inode use guard/baseline: %.2f" % (
        result["suite"], g["failed"], b["failed"], g["peak_inodes_used"] / max(1, b["peak_inodes_used"])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--suites", default="bookworm,trixie")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--inodes", type=int, default=250000,
                        help="store inodes; the old defaults need seconds x copy inodes free (default fails them)")
    parser.add_argument("--size", default="6G")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--output", default=os.path.join(REPO, "tests", "output", "bench_guard_soak.json"))
    args = parser.parse_args()
    defaults = role_defaults()
    lab = Lab()
    results = []
    for index, suite in enumerate(args.suites.split(",")):
        result = soak_suite(lab, suite, index, args, defaults)
        report(result)
        results.append(result)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=2)
    print("written", args.output)


if __name__ == "__main__":
    main()
