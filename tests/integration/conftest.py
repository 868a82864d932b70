"""pytest fixtures for integration tests on lab hosts (see docs/lab.md).

- `lab`: the session's Lab (tests/lab/lab.py); ends hosts left by killed earlier runs.
- `lab_host(suite="sid", **opts)`: factory; every host it makes is torn down when the test
  ends, pass or fail. opts are Lab.up's: name, store_fs, inodes, size, storage_conf,
  mount_program.
- `inventory(*hosts)`: writes an Ansible INI inventory for those hosts, returns its path.
SIGTERM/SIGHUP become KeyboardInterrupt so finalizers still run when a CI job is cancelled;
whatever survives a SIGKILL is ended by the next run (`lab.reap_orphans()`) or `make lab-down`.
"""
import os
import signal
import sys
from typing import Callable, List

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.lab.lab import Lab, LabHost  # noqa: E402


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


@pytest.fixture(scope="session")
def lab() -> Lab:
    if os.geteuid() != 0:
        pytest.fail("lab hosts need root (run through `make test-lab` as root)")
    the_lab = Lab(log=lambda msg: print(msg, file=sys.stderr))
    the_lab.reap_orphans()
    yield the_lab
    the_lab._down_mine()


@pytest.fixture
def lab_host(lab: Lab) -> Callable[..., LabHost]:
    made: List[LabHost] = []

    def make(suite: str = "sid", **opts) -> LabHost:
        host = lab.up(suite=suite, **opts)
        made.append(host)
        return host

    yield make
    for host in reversed(made):
        host.down()


@pytest.fixture
def inventory(lab: Lab, tmp_path) -> Callable[..., str]:
    written: List[str] = []

    def write(*hosts: LabHost) -> str:
        if not hosts:
            raise ValueError("inventory() needs the lab hosts to list")
        # one file per call: a test may keep inventories of different host sets
        path = tmp_path / f"inventory-{len(written)}.ini"
        written.append(str(path))
        path.write_text(lab.inventory([h.name for h in hosts]))
        return str(path)

    return write
