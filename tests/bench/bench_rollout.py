#!/usr/bin/env python
"""Benchmark: a converged re-run of the rollout against a bare play, on the same lab hosts.

The bare play is what any fleet job pays anyway: `ping` plus `podman info` on every host. The
ratio (converged rollout / bare play) is what idmapguard costs on top once a fleet is done;
the goal is <= 1.5. Both are timed in the same run on the same hosts, several rounds,
alternating, and the medians are compared. Prints the numbers; asserts nothing about time.

    make bench-rollout            (BENCH_ROUNDS=3, BENCH_HOSTS=bookworm,trixie,sid)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from tests.lab.lab import Lab  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SUITES = os.environ.get("BENCH_HOSTS", "bookworm,trixie,sid").split(",")

BARE_PLAY = """\
- name: Bare fleet play
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
    - name: Podman info
      ansible.builtin.command: podman info --format json
      changed_when: false
"""


def run(argv, env) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO, check=False)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit("bench-rollout: %s failed (exit %d)" % (argv[3] if len(argv) > 3 else argv, proc.returncode))
    return took


def main() -> int:
    if os.geteuid() != 0:
        print("bench-rollout needs root (lab hosts)")
        return 1
    lab = Lab(log=lambda m: print(m, flush=True))
    hosts = []
    try:
        for suite in SUITES:
            hosts.append(lab.up(suite=suite))
        work = tempfile.mkdtemp(prefix="bench-rollout.")
        inv = os.path.join(work, "inventory.ini")
        with open(inv, "w") as f:
            f.write(lab.inventory([h.name for h in hosts]))
        bare = os.path.join(work, "bare.yml")
        with open(bare, "w") as f:
            f.write(BARE_PLAY)
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="1")
        rollout = ["ansible-playbook", "-i", inv, "idmapguard.storage.rollout",
                   "-e", "idmapguard_rollout_report_dir=" + os.path.join(work, "report")]
        print("converging the fleet once (not timed) ...", flush=True)
        run(rollout, env)
        # default batches ([1, "10%", "50%", "100%"]: on 3 hosts that is 3 sequential batches)
        # and one batch of all hosts (the per-host cost alone)
        one_batch = rollout + ["-e", '{"idmapguard_rollout_batches": ["100%"]}']
        t_bare, t_roll, t_one = [], [], []
        for i in range(ROUNDS):
            t_bare.append(run(["ansible-playbook", "-i", inv, bare], env))
            t_roll.append(run(rollout, env))
            t_one.append(run(one_batch, env))
            print("round %d: bare %.1fs, converged rollout %.1fs, in one batch %.1fs"
                  % (i + 1, t_bare[-1], t_roll[-1], t_one[-1]), flush=True)
        mb, mr, mo = statistics.median(t_bare), statistics.median(t_roll), statistics.median(t_one)
        print()
        print("hosts: %s" % ", ".join("%s (podman %s)" % (h.name, h.podman_version()) for h in hosts))
        print("bare play (ping + podman info),          median of %d: %.1fs" % (ROUNDS, mb))
        print("converged rollout re-run (default batches), median: %.1fs  ratio %.2f" % (mr, mr / mb))
        print("converged rollout re-run (one batch),       median: %.1fs  ratio %.2f" % (mo, mo / mb))
        print("goal: ratio <= 1.5")
        return 0
    finally:
        for h in hosts:
            h.down()


if __name__ == "__main__":
    sys.exit(main())
