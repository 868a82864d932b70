"""Runs the canary or the proof on a lab host, as the module would, for the tests that need to
stop it at a known point (copied into the host with the collection; see test_proof.py).

    python3 canary_driver.py canary|proof [PAUSE_VERB]

Podman is real; the runner only pauses (writes /tmp/idmapguard-paused-PID, then sleeps)
before the first podman call whose verb is PAUSE_VERB, so a test can SIGKILL or SIGSTOP the
run with its objects in the store. Prints the result as JSON.
"""
import json
import os
import subprocess
import sys
import time

from ansible_collections.idmapguard.storage.plugins.module_utils import canary, sharing_proof
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap import DEFAULT_GIDMAP, DEFAULT_UIDMAP
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import podman_info, settings_from_info


def main() -> None:
    what = sys.argv[1]
    pause = sys.argv[2] if len(sys.argv) > 2 else None

    def run(argv):
        if pause and len(argv) > 1 and argv[1] == pause:
            with open("/tmp/idmapguard-paused-%d" % os.getpid(), "w") as f:
                f.write(" ".join(argv))
            while True:
                time.sleep(60)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    if what == "canary":
        settings = settings_from_info(podman_info(run, "podman"))
        result = canary.run_canary(run, settings, DEFAULT_UIDMAP, DEFAULT_GIDMAP)
    else:
        result = sharing_proof.run_proof(run, DEFAULT_UIDMAP, DEFAULT_GIDMAP)
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
