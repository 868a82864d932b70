# -*- coding: utf-8 -*-
"""`idmapguard-guard status --wait`: the state of the guard process that runs now (the remediate
role reads it after a (re)start, for the report's pid, budget and last pass)."""

import subprocess
import time

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.guard_state import (
    GuardState, process_start, wait_for_running, written_by_running_guard,
)


@pytest.mark.parametrize("status,started,expected", [
    ({"pid": 7, "updated": 1000.0}, 990.0, True),      # written after the process started
    ({"pid": 7, "updated": 1000.0}, 1000.5, True),     # same second (btime is whole seconds)
    ({"pid": 7, "updated": 1000.0}, 1005.0, False),    # left by an earlier process with that pid
    ({"pid": 7, "updated": 1000.0}, None, False),      # the pid is not alive (the process a restart replaced)
    ({"pid": 7}, 990.0, False),                        # never written by a pass
    ({"error": "cannot read"}, 990.0, False),
    (None, 990.0, False),
])
def test_written_by_running_guard(status, started, expected):
    assert written_by_running_guard(status, started) is expected


def _save(path, pid, updated):
    state = GuardState(path)
    state.status = {"pid": pid, "updated": updated, "budget": {"budget_inodes": 5}}
    state.save()


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = None

    def sleep(self, seconds):
        self.sleeps += 1
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.sleeps)


def test_waits_for_the_restarted_process_to_write(tmp_path):
    path = str(tmp_path / "state.json")
    _save(path, 100, 1000.0)  # the process the restart replaced (pid 100, gone)
    alive = {200: 1990.0}
    clock = Clock()
    # the new process (pid 200) ends its first pass during the third wait
    clock.on_sleep = lambda n: _save(path, 200, 2000.0) if n == 3 else None
    status = wait_for_running(path, 60, clock=lambda: clock.now, sleep=clock.sleep, started=alive.get)
    assert status["running"] is True and status["pid"] == 200 and clock.sleeps == 3


def test_gives_up_after_the_wait_and_says_so(tmp_path):
    path = str(tmp_path / "state.json")
    _save(path, 100, 1000.0)
    clock = Clock()
    status = wait_for_running(path, 5, clock=lambda: clock.now, sleep=clock.sleep, started={}.get)
    assert status["running"] is False and status["pid"] == 100 and clock.now >= 5
    assert wait_for_running(str(tmp_path / "none.json"), 1, clock=lambda: clock.now, sleep=clock.sleep) is None


def test_process_start_of_a_real_process():
    before = time.time()
    child = subprocess.Popen(["sleep", "30"])
    try:
        started = process_start(child.pid)
        assert started is not None and before - 1.5 <= started <= time.time() + 1.0
    finally:
        child.kill()
        child.wait()
    assert process_start(child.pid) is None
