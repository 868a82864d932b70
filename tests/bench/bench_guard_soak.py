"""Soak: the copy-cache guard with the role's defaults vs the old timer, one new map per second.

Per suite (bullseye: Podman 3.0, bookworm: 4.3, trixie: 5.4; each copies the image's top layer
per distinct non-contiguous map) two lab hosts with the same store (ext4, ``--inodes``; sized so
that the old defaults run out of inodes before bytes) and the same image (default: the
seed-size real-userland image, tests/bench/bench_image.py) are fed, in parallel, one new
distinct non-contiguous map per second for ``--seconds`` (or as fast as Podman makes copies:
the rate reached is printed): ``podman create`` + ``rm``, and on hosts that can start such a
container (trixie) every other tick ``podman run --rm``.

* guard host: ``idmapguard-guard watch`` started directly (lab hosts have no systemd) at the
  service's priority (nice 19, idle I/O class, SCHED_BATCH), with the parameter file the
  remediate role writes from its defaults (roles/remediate/defaults/main.yml).
* baseline host, same run: the old defaults - a timer (OnBootSec=5min, then every 15 min) of
  ``idmapguard-prune --threshold 80 --min-age 600``.

Prints per host: failed Podman commands (goal 0 for the guard), peak and final inode use of the
store filesystem; the guard's peak cache (from its own state: every pass records what it saw
before evicting; a sample between passes misses the peaks) and final cache vs its budget,
evictions and the eviction lag after last use (from its log); the ratios guard/baseline; and
this machine's load (/proc/loadavg at start and end, 1-min load sampled every 15 s). Writes
tests/output/bench_guard_soak.json.

    python tests/bench/bench_guard_soak.py [--seconds 600] [--suites bullseye,bookworm,trixie]
        [--parallel] [--image userland|filler] [--entries 6900] [--files N] [--inodes 400000]
"""
import argparse
import json
import os
import statistics
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
import bench_image  # noqa: E402

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
    path = "/tmp/guard-soak-%s.log" % host.name
    log = open(path, "w")
    return subprocess.Popen(host.nsenter() + argv, stdout=log, stderr=subprocess.STDOUT), log, path


def guard_events(path):
    events = []
    with open(path) as handle:
        for line in handle:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return events


def eviction_lags(events):
    """Seconds from a copy's last use (creation or last seen in use) to its eviction."""
    return [e["time"] - e["last_used"] for e in events if e.get("event") == "evicted" and e.get("last_used")]


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


class LoadSampler(threading.Thread):
    """This machine's 1-min load every 15 s while a soak runs (the lab shares its cores)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.values = []

    def run(self):
        while True:
            self.values.append(float(bench_image.loadavg().split()[0]))
            if self.stop.wait(15):
                return

    def summary(self):
        vals = self.values or [0.0]
        return {"min": min(vals), "median": statistics.median(vals), "max": max(vals), "n": len(self.values)}


def soak_suite(lab, suite, suite_index, args, defaults):
    hosts = {}
    try:
        for role in ("guard", "baseline"):
            hosts[role] = lab.up(suite=suite, inodes=args.inodes, size=args.size)
            rs.install_guard(hosts[role])
        tags = {role: bench_image.load(host, args) for role, host in hosts.items()}
        total = os.statvfs(hosts["guard"].path(rs.STORE)).f_files
        guard_proc, guard_log, guard_log_path = start_guard(hosts["guard"], defaults)
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
        load_start = bench_image.loadavg()
        load = LoadSampler()
        load.start()
        for feeder in feeders.values():
            feeder.start()
        timer.start()
        for feeder in feeders.values():
            feeder.join()
        stop.set()
        timer.join()
        time.sleep(args.settle)  # the guard's grace and one pass, then the final figures
        load.stop.set()
        guard_proc.terminate()
        guard_proc.wait(timeout=30)
        guard_log.close()
        status = json.load(open(hosts["guard"].path(STATE_FILE)))["status"]
        samples = feeders["guard"].samples
        events = guard_events(guard_log_path)
        lags = eviction_lags(events)
        peak = status.get("peak") or {}
        result = {"suite": suite, "podman": hosts["guard"].podman_version(), "seconds": args.seconds,
                  "wall": round(time.time() - started, 1), "image": bench_image.describe(args), "inodes_total": total,
                  "load_start": load_start, "load_end": bench_image.loadavg(), "load_1min": load.summary(),
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
            # the guard's own record (every pass, before it evicts); the sampled figure only for comparison
            peak_cache_inodes=peak.get("cache_inodes", 0), peak_cache_at=round(peak.get("cache_at", 0) - started, 1),
            peak_cache_sampled=max([s.get("cache_inodes", 0) for s in samples] or [0]),
            peak_store_inodes_seen_by_guard=peak.get("inodes_used", 0),
            catch_ups=sum(1 for e in events if e.get("event") == "catching up"),
            final_cache_inodes=status["cache"]["inodes"], final_cache_copies=status["cache"]["copies"],
            eviction_lag_median=round(statistics.median(lags), 1) if lags else None,
            eviction_lag_max=round(max(lags), 1) if lags else None, eviction_lag_n=len(lags))
        guard = result["guard"]
        guard["peak_inodes_used"] = max(guard["peak_inodes_used"], guard["peak_store_inodes_seen_by_guard"])
        guard["peak_use_percent"] = round(100.0 * guard["peak_inodes_used"] / total, 1)
        result["baseline"]["timer_runs"] = timer_runs
        return result
    finally:
        for host in hosts.values():
            host.down()


def report(result):
    g, b = result["guard"], result["baseline"]
    budget = max(1, result["budget_inodes"])
    print("== %s (Podman %s): %ds, one new map/s (%s), store %d inodes" % (
        result["suite"], result["podman"], result["seconds"], "create+rm / run --rm" if result["run_used"] else
        "create+rm", result["inodes_total"]))
    print("   %s" % result["image"])
    print("   budget %d inodes (unused copies), evict at once below %d free" % (
        result["budget_inodes"], result["low_free_inodes"]))
    for role, r in (("guard (role defaults)", g), ("baseline (old timer)", b)):
        print("   %-22s maps %4d (%.2f/s, %d ticks late)  failed %4d  first failure %s  peak use %5.1f%%  "
              "final use %5.1f%%" % (
                  role, r["ticks"], r["maps_per_second"], r["late_ticks"], r["failed"],
                  "%.0fs" % r["first_failure_s"] if r["first_failure_s"] is not None else "-",
                  r["peak_use_percent"], r["final_use_percent"]))
    print("   guard cache: peak %d inodes = %.2fx budget at %.0fs (from its state; sampled between passes: %.2fx), "
          "final %d inodes = %.2fx budget (%d copies); %d evictions, %d inodes; %d catch-up(s)" % (
              g["peak_cache_inodes"], g["peak_cache_inodes"] / budget, g["peak_cache_at"],
              g["peak_cache_sampled"] / budget, g["final_cache_inodes"], g["final_cache_inodes"] / budget,
              g["final_cache_copies"], g["evictions"], g["evicted_inodes"], g["catch_ups"]))
    if g["eviction_lag_n"]:
        print("   eviction lag after last use: median %.0fs, max %.0fs (%d evictions)" % (
            g["eviction_lag_median"], g["eviction_lag_max"], g["eviction_lag_n"]))
    for role, r in (("guard", g), ("baseline", b)):
        for failure in r["failures"]:
            print("   %s failed: %s" % (role, json.dumps(failure)))
    print("   load: start %s, end %s; 1-min load during the run min %.1f median %.1f max %.1f" % (
        result["load_start"], result["load_end"], result["load_1min"]["min"], result["load_1min"]["median"],
        result["load_1min"]["max"]))
    print("RESULT %s (Podman %s) failed podman commands guard/baseline: %d/%d; maps/s %.2f; guard peak cache "
          "%.2fx budget, final %.2fx; peak inode use guard/baseline: %.2f; eviction lag median %s max %s" % (
              result["suite"], result["podman"], g["failed"], b["failed"], g["maps_per_second"],
              g["peak_cache_inodes"] / budget, g["final_cache_inodes"] / budget,
              g["peak_inodes_used"] / max(1, b["peak_inodes_used"]),
              "%.0fs" % g["eviction_lag_median"] if g["eviction_lag_n"] else "-",
              "%.0fs" % g["eviction_lag_max"] if g["eviction_lag_n"] else "-"))


def store_size(args):
    """Bytes for the store: the old defaults must run out of inodes, not bytes, first."""
    inodes, size = bench_image.copy_cost(args)
    copies = args.inodes // max(1, inodes) + 2
    return "%dM" % max(2048, (copies * size * 12 // 10 + (1 << 30)) >> 20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--suites", default="bullseye,bookworm,trixie")
    parser.add_argument("--parallel", action="store_true", help="soak the suites at the same time")
    bench_image.add_arguments(parser)
    parser.add_argument("--inodes", type=int, default=400000,
                        help="store inodes; the old defaults need seconds x copy inodes free (default fails them)")
    parser.add_argument("--size", help="store size (default: enough that inodes run out before bytes)")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--output", default=os.path.join(REPO, "tests", "output", "bench_guard_soak.json"))
    args = parser.parse_args()
    args.size = args.size or store_size(args)
    defaults = role_defaults()
    lab = Lab()
    suites = args.suites.split(",")
    print("soak: %s, %ds per suite, suites %s (%s), store %d inodes / %s; load at start %s" % (
        bench_image.describe(args), args.seconds, ",".join(suites), "in parallel" if args.parallel else "one after another",
        args.inodes, args.size, bench_image.loadavg()), flush=True)
    results = {}

    def one(index, suite):
        results[suite] = soak_suite(lab, suite, index, args, defaults)
        report(results[suite])
        sys.stdout.flush()

    if args.parallel:
        threads = [threading.Thread(target=one, args=(index, suite)) for index, suite in enumerate(suites)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for index, suite in enumerate(suites):
            one(index, suite)
    print("load at end %s" % bench_image.loadavg())
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump([results[s] for s in suites if s in results], handle, indent=2)
    print("written", args.output)


if __name__ == "__main__":
    main()
