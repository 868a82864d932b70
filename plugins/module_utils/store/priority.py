# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a block at idle I/O priority (what ``ionice -c3`` does), or a function in a thread at
idle I/O and low CPU priority (what ``chrt --batch 0 nice -n 19 ionice -c3`` does).

Idle I/O is used for deleting staged data after the store's locks are released: that work
must leave the disk to Podman. Its CPU priority is left alone on purpose: deletion is mostly
kernel time in unlinkat, and at nice 19 on a busy host it would fall far behind ``rm -rf``
(whose pace a prune keeps), while Podman's waits on the store are on I/O (fsync of its JSON).
The guard that falls behind raises its own priority (``normal_priority``).
ioprio_set(2) has no libc wrapper, so it goes through syscall(2) with the number of the
running architecture (on one not listed here nothing is changed). The class only matters
under a scheduler that honours it (BFQ, mq-deadline since Linux 5.14; not ``none``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import contextlib
import os
import platform
import threading
from typing import Any, Callable, Dict, Iterator, Optional, TypeVar

from ansible_collections.idmapguard.storage.plugins.module_utils.store.libc import LIBC as _LIBC

_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13
IOPRIO_CLASS_BEST_EFFORT = 2
IOPRIO_CLASS_IDLE = 3
Result = TypeVar("Result")
# (ioprio_set, ioprio_get) per machine (include/uapi/asm-generic/unistd.h and arch tables).
_SYSCALLS = {
    "x86_64": (251, 252), "amd64": (251, 252), "i386": (289, 290), "i686": (289, 290),
    "aarch64": (30, 31), "arm64": (30, 31), "riscv64": (30, 31), "armv7l": (314, 315),
    "ppc64le": (273, 274), "ppc64": (273, 274), "s390x": (282, 283),
}


def _numbers() -> Optional[tuple]:
    return _SYSCALLS.get(platform.machine().lower())


def get_io_priority() -> Optional[int]:
    numbers = _numbers()
    if _LIBC is None or numbers is None:
        return None
    value = _LIBC.syscall(numbers[1], _IOPRIO_WHO_PROCESS, 0)
    return None if value < 0 else int(value)


def set_io_priority(value: int) -> bool:
    """ioprio_set for the calling thread; True when the kernel took it."""
    numbers = _numbers()
    if _LIBC is None or numbers is None:
        return False
    return _LIBC.syscall(numbers[0], _IOPRIO_WHO_PROCESS, 0, value) == 0


def idle_io_value() -> int:
    return IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT


@contextlib.contextmanager
def idle_priority() -> Iterator[bool]:
    """Idle I/O class for this thread during the block, restored afterwards. Yields whether
    the kernel took it."""
    old_io = get_io_priority()
    is_idle = set_io_priority(idle_io_value())
    try:
        yield is_idle
    finally:
        if old_io is not None:
            set_io_priority(old_io)


def _low_cpu(nice: int = 19) -> bool:
    """SCHED_BATCH at nice ``nice`` (19 unless told) for the calling thread (Linux: scheduling and nice are per thread);
    True when the kernel took either. Not SCHED_IDLE: on a host whose CPUs are all busy an
    idle-class walk would hardly progress at all (the guard service makes the same choice)."""
    taken = False
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        taken = True
    except (AttributeError, OSError):
        pass
    try:
        tid = threading.get_native_id()
        # Never raised above its own: lowering a nice value back may need CAP_SYS_NICE.
        os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))
        taken = True
    except (AttributeError, OSError):
        pass
    return taken


def lower_this_thread(nice: int = 19) -> Dict[str, bool]:
    """SCHED_BATCH, nice ``nice`` (19 unless told; never higher than it was) and idle I/O for
    the calling thread, for good: for a thread or a child process that exists only to walk
    (run_in_background; walk_ahead.py at its own WALK_NICE); says which the kernel took."""
    return {"low_cpu": _low_cpu(nice), "idle_io": set_io_priority(idle_io_value())}


def run_in_background(work: Callable[[], Result]) -> "tuple[Result, Dict[str, bool]]":
    """Run ``work`` in a thread of its own at low CPU priority (SCHED_BATCH, nice 19) and idle
    I/O priority and wait for it.

    For walks that only count (inodes and bytes of copies for a report or a plan): on a host
    with few cores a walk at normal priority takes CPU from the ``podman create`` it must not
    slow down; at nice 19 a waking Podman thread gets the CPU back at once. The priority is the
    thread's own and ends with it, so the caller's is never changed and nothing needs restoring
    (lowering a nice value again is not always allowed). Returns work's result and which
    priorities the kernel took; an exception raised by work is raised here.
    """
    outcome: Dict[str, Any] = {}
    taken = {"low_cpu": False, "idle_io": False}

    def body() -> None:
        taken.update(lower_this_thread())
        try:
            outcome["value"] = work()
        except BaseException as exc:  # pylint: disable=broad-except
            outcome["error"] = exc

    worker = threading.Thread(target=body, name="idmapguard-measure", daemon=True)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"], taken


@contextlib.contextmanager
def normal_priority() -> Iterator[bool]:
    """SCHED_OTHER, nice 0 and best-effort I/O for the calling thread during the block, its
    own priorities back afterwards (raising a nice value and SCHED_BATCH are always allowed).

    For the guard when it has fallen behind: it runs at nice 19 and idle I/O (its systemd unit)
    so that it never slows Podman while it keeps up, but on a host whose CPUs Podman keeps busy
    that share is too small to delete as fast as Podman copies. Yields whether it was taken
    (raising a priority needs CAP_SYS_NICE)."""
    tid = threading.get_native_id()
    try:
        old_policy, old_nice = os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, tid)
    except (AttributeError, OSError):
        yield False
        return
    old_io = get_io_priority()
    raised = False
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, tid, 0)
        raised = True
    except OSError:
        pass
    set_io_priority((IOPRIO_CLASS_BEST_EFFORT << _IOPRIO_CLASS_SHIFT) | 4)
    try:
        yield raised
    finally:
        try:
            os.sched_setscheduler(0, old_policy, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, old_nice)
        except OSError:
            pass
        if old_io is not None:
            set_io_priority(old_io)
