#!/usr/bin/env python
"""Benchmark: a converged re-run of the rollout against a bare play, on the same lab hosts.

The bare play is what any fleet job pays anyway: `ping` plus `podman info` on every host. The
ratio (converged rollout / bare play) is what idmapguard costs on top once a fleet is done;
the goal is <= 1.5. All plays are timed in the same run on the same hosts with the same
inventory and connection settings (SSH, pipelining on for all), several rounds, alternating,
and the medians are compared:
  - the rollout with its default batches against the bare play in the same batches (a rolling
    fleet job pays for its batches either way), and against the bare play in one batch;
  - the rollout in one batch against the bare play in one batch (the per-host cost alone).
Prints the numbers; asserts nothing about time.

    make bench-rollout            (BENCH_ROUNDS=3, BENCH_HOSTS=bookworm,trixie,sid,sid-fuse)
"""
import json
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
SUITES = os.environ.get("BENCH_HOSTS", "bookworm,trixie,sid,sid-fuse").split(",")
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
            if suite == "sid-fuse":  # fixable_by_config: the rollout configures it when converging
                hosts.append(lab.up(suite="sid", mount_program="/usr/bin/fuse-overlayfs"))
            else:
                hosts.append(lab.up(suite=suite))
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
        # the same environment (SSH via the lab inventory, pipelining) for every play
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="1")
        rollout = ["ansible-playbook", "-i", inv, "idmapguard.storage.rollout",
                   "-e", "idmapguard_rollout_report_dir=" + os.path.join(work, "report")]
        print("converging the fleet once (not timed) ...", flush=True)
        run(rollout + ["-e", "idmapguard_configure_allow_store_change=true"], env)
        # default batches (on 4 hosts: 1, 1, 2 hosts one after another) and one batch of all hosts
        one_batch = rollout + ["-e", '{"idmapguard_rollout_batches": ["100%"]}']
        t_bare, t_bare_b, t_roll, t_one = [], [], [], []
        for i in range(ROUNDS):
            t_bare.append(run(["ansible-playbook", "-i", inv, bare], env))
            t_bare_b.append(run(["ansible-playbook", "-i", inv, bare_batched], env))
            t_roll.append(run(rollout, env))
            t_one.append(run(one_batch, env))
            print("round %d: bare %.1fs, bare in the rollout's batches %.1fs, converged rollout %.1fs, "
                  "in one batch %.1fs" % (i + 1, t_bare[-1], t_bare_b[-1], t_roll[-1], t_one[-1]), flush=True)
        mb, mbb = statistics.median(t_bare), statistics.median(t_bare_b)
        mr, mo = statistics.median(t_roll), statistics.median(t_one)
        print()
        print("hosts: %s" % ", ".join("%s (podman %s)" % (h.name, h.podman_version()) for h in hosts))
        print("connection: ssh, ANSIBLE_PIPELINING=1, same inventory for every play; medians of %d rounds" % ROUNDS)
        print("bare play (ping + podman info), one batch:           %.1fs" % mb)
        print("bare play, in the rollout's default batches %s: %.1fs" % (json.dumps(DEFAULT_BATCHES), mbb))
        print("converged rollout re-run, default batches: %.1fs  ratio %.2f vs bare in the same batches"
              " (%.2f vs bare in one batch)" % (mr, mr / mbb, mr / mb))
        print("converged rollout re-run, one batch:       %.1fs  ratio %.2f vs bare in one batch" % (mo, mo / mb))
        print("goal: ratio <= 1.5")
        return 0
    finally:
        for h in hosts:
            h.down()


if __name__ == "__main__":
    sys.exit(main())
