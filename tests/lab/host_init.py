"""PID 1 of a lab host (copied into the host as /usr/local/sbin/idmapguard-lab-init).

Runs sshd and reaps every orphan: podman's conmon double-forks and is re-parented to us, and
a PID 1 that does not wait() would collect zombies. Restarts sshd if it dies. Writes
/run/idmapguard-lab-ready once sshd runs, which is what `labctl up` waits for. The lab ends
a host by killing this process, which makes the kernel end everything in its PID namespace.
Stays Python 3.8-compatible: it runs under the host's own python3.
"""
import os
import signal
import subprocess
import sys
import time

READY = "/run/idmapguard-lab-ready"
LOG = "/run/idmapguard-lab-sshd.log"


def start_sshd():
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = open(LOG, "ab")
    return subprocess.Popen(["/usr/sbin/sshd", "-D", "-e"], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, close_fds=True)


def main():
    # PID 1 gets no default signal actions: exit cleanly on TERM/INT instead of ignoring them
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    sshd = start_sshd()
    with open(READY, "w") as f:
        f.write("%d\n" % sshd.pid)
    while True:
        try:
            pid = os.waitpid(-1, 0)[0]
        except ChildProcessError:
            time.sleep(1)
            pid = 0
        except InterruptedError:
            continue
        if pid == sshd.pid or sshd.poll() is not None:
            time.sleep(1)
            sshd = start_sshd()


if __name__ == "__main__":
    main()
