# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`idmapguard-prune`: prune unused mapped copies now (one shot, by hand or from a script).

Installed by the ``remediate`` role next to the guard service (``idmapguard-guard``, see
cli.py), for a person or a script that wants a report, a plan or a prune right now. It runs
the store library's report and prune (store/operations.py), as the ``mapped_layers`` module
does, so there is one implementation of pruning, and the same prune-now decision as the role
(``reclaim_policy.prune_due``). The store is the guard's (``location`` in guard.json), or the
one given by --graphroot/--runroot, or Podman's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.settings import (
    DEFAULT_CONFIG, ParameterError, load_settings,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    PodmanError, StorageConfError, find_store,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import (
    DEFAULT_MIN_AGE, PolicyError, prune_due,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store import operations
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.location import LocationError, StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store.store import Store
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage

# Lab and test hook only: sleep this many seconds before every prune step, so that a kill -9
# at a random time lands in every step (tests/integration/test_remediate_kill.py).
STEP_SLEEP_ENV = "IDMAPGUARD_TEST_STEP_SLEEP"
# Test hook: copies per batch of the prune (store/walk_ahead.py), so the kill -9 trials also
# land in a later batch; never set in production.
BATCH_COPIES_ENV = "IDMAPGUARD_TEST_BATCH_COPIES"


def run_command(argv: List[str]) -> Tuple[int, str, str]:
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="idmapguard-prune", description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=0.0,
                        help="prune only when inode use of the graphroot is at least this percent (0: always)")
    parser.add_argument("--min-age", type=int, default=DEFAULT_MIN_AGE, help="seconds a copy must exist")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="the guard's parameter file, whose location is used (default %(default)s)")
    parser.add_argument("--graphroot", help="with --runroot: this store instead of the guard's")
    parser.add_argument("--runroot")
    parser.add_argument("--storage-conf")
    parser.add_argument("--image", action="append", dest="images", help="only copies of this image")
    parser.add_argument("--keep-map", action="append", default=[], dest="keep_maps",
                        help="UIDMAP or UIDMAP/GIDMAP whose copies are kept")
    parser.add_argument("--check", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--report", action="store_true", help="print the inventory, change nothing")
    return parser.parse_args(list(argv))


def keep_maps_from_args(args: argparse.Namespace) -> List[Dict[str, Any]]:
    keep = []
    for entry in args.keep_maps:
        uidmap, _sep, gidmap = entry.partition("/")
        keep.append({"uidmap": uidmap, "gidmap": gidmap or None})
    return keep


def location_from_args(args: argparse.Namespace) -> StoreLocation:
    """--graphroot/--runroot, else the guard's location, else Podman's (storage.conf when it fails)."""
    if args.graphroot or args.runroot:
        return StoreLocation(args.graphroot, args.runroot)
    settings = load_settings(args.config)
    if settings.location is not None:
        return settings.location
    return find_store(run_command, args.storage_conf or settings.storage_conf, settings.podman)


def _emit(value: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sleep = float(os.environ.get(STEP_SLEEP_ENV) or 0)
    marks: Dict[str, float] = {}

    def hook(step: str) -> None:
        marks.setdefault(step, time.monotonic())  # where a prune's time goes (make bench-latency)
        if sleep:
            sys.stderr.write("step %s\n" % step)
            sys.stderr.flush()
            time.sleep(sleep)

    try:
        if args.min_age < 0:
            raise ParameterError("--min-age must be 0 or more seconds, got %r" % (args.min_age,))
        keep = operations.parse_keep_maps(keep_maps_from_args(args))
        store = Store(location_from_args(args))
        if args.report:
            _emit(dict(operations.report(store, args.min_age), location=store.location.as_dict()))
            return 0
        usage = fs_usage(store.location.graphroot)
        use = 100.0 * usage["inodes_used"] / usage["inodes_total"] if usage["inodes_total"] else 0.0
        due, reason = prune_due("threshold" if args.threshold > 0 else "always", args.threshold,
                                usage["inodes_used"], usage["inodes_total"])
        if not due:
            _emit({"changed": False, "skipped": reason})
            return 0
        batch = int(os.environ.get(BATCH_COPIES_ENV) or 0) or None
        result = operations.prune(store, args.min_age, args.images, keep, args.check, hook=hook, batch_copies=batch)
    except (ParameterError, LocationError, operations.SelectionError, PodmanError, StorageConfError,
            PolicyError, StoreError) as exc:
        sys.stderr.write("idmapguard-prune: %s\n" % exc)
        return 2
    _emit({"changed": result["changed"], "removed": len(result.get("removed", [])),
           "skipped": len(result.get("not_removed", [])), "inodes_freed": result.get("inodes_freed", 0),
           "bytes_freed": result.get("bytes_freed", 0), "inode_use_before": round(use, 1),
           "check": args.check, "removed_layers": [c["layer_id"] for c in result.get("removed", [])],
           "freed_first": result.get("freed_first", []),
           # why each copy was left alone (e.g. "undeletable: <path>: immutable"), what was
           # changed, and staged data that could not be deleted (and its retries)
           "skipped_copies": result.get("not_removed", []), "changes": result.get("changes", []),
           "stranded": result.get("stranded", []), "stranded_retried": result.get("stranded_retried", []),
           "seconds": _seconds(marks, result)})
    return 0


def _seconds(marks: Dict[str, float], result: Dict[str, Any]) -> Dict[str, float]:
    """The phases of the run: planning and the first batch's pre-flight walk (from the "plan"
    step to the first hold of the write locks), the lock holds, the deletion after release (and
    its pauses for Podman), and the pre-flight walk in its child process (overlapped with the deletion;
    ``walk_waited``: how long the prune waited for it)."""
    seconds = {"locks": result.get("lock_seconds", 0.0), "delete": result.get("delete_seconds", 0.0),
               "delete_paused": result.get("delete_paused_seconds", 0.0),
               "walk": result.get("walk_seconds", 0.0), "walk_waited": result.get("walk_waited_seconds", 0.0)}
    if "plan" in marks and "locked" in marks:
        seconds["plan_and_preflight"] = round(marks["locked"] - marks["plan"], 3)
    return seconds


if __name__ == "__main__":
    raise SystemExit(main())
