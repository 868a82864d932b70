# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`idmapguard-prune`: prune unused mapped copies now (one shot, by hand or from a script).

Installed by the ``remediate`` role next to the guard service (``idmapguard-guard``, see
cli.py), for a person or a script that wants a report, a plan or a prune right now. It calls
the same backend as the ``mapped_layers`` module, so there is one implementation of pruning,
and the same prune-now decision as the role (``reclaim_policy.prune_due``).
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

from ansible_collections.idmapguard.storage.plugins.module_utils.mapped_layers import (
    DEFAULT_MIN_AGE, ParameterError, resolve_store, run_mapped_layers,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import PolicyError, prune_due
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage

# Lab and test hook only: sleep this many seconds before every prune step, so that a kill -9
# at a random time lands in every step (tests/integration/test_remediate_kill.py).
STEP_SLEEP_ENV = "IDMAPGUARD_TEST_STEP_SLEEP"


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
    parser.add_argument("--graphroot")
    parser.add_argument("--runroot")
    parser.add_argument("--storage-conf")
    parser.add_argument("--image", action="append", dest="images", help="only copies of this image")
    parser.add_argument("--keep-map", action="append", default=[], dest="keep_maps",
                        help="UIDMAP or UIDMAP/GIDMAP whose copies are kept")
    parser.add_argument("--check", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--report", action="store_true", help="print the inventory, change nothing")
    return parser.parse_args(list(argv))


def params_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    keep = []
    for entry in args.keep_maps:
        uidmap, _sep, gidmap = entry.partition("/")
        keep.append({"uidmap": uidmap, "gidmap": gidmap or None})
    return {"state": "report" if args.report else "pruned", "graphroot": args.graphroot,
            "runroot": args.runroot, "storage_conf": args.storage_conf, "min_age": args.min_age,
            "images": args.images, "keep_maps": keep, "podman": "podman"}


def _emit(value: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    params = params_from_args(args)
    sleep = float(os.environ.get(STEP_SLEEP_ENV) or 0)

    def hook(step: str) -> None:
        if sleep:
            sys.stderr.write("step %s\n" % step)
            sys.stderr.flush()
            time.sleep(sleep)

    try:
        where = resolve_store(params, run_command)
        params.update(graphroot=where["graphroot"], runroot=where["runroot"],
                      imagestore=where["imagestore"], transient_store=where["transient_store"])
        usage = fs_usage(where["graphroot"])
        use = 100.0 * usage["inodes_used"] / usage["inodes_total"] if usage["inodes_total"] else 0.0
        due, reason = prune_due("threshold" if args.threshold > 0 else "always", args.threshold,
                                usage["inodes_used"], usage["inodes_total"])
        if params["state"] == "pruned" and not due:
            _emit({"changed": False, "skipped": reason})
            return 0
        result = run_mapped_layers(params, run_command, args.check, hook)
    except (ParameterError, PolicyError, StoreError) as exc:
        sys.stderr.write("idmapguard-prune: %s\n" % exc)
        return 2
    result.pop("diff", None)
    if params["state"] == "pruned":
        summary = {"changed": result["changed"], "removed": len(result.get("removed", [])),
                   "skipped": len(result.get("skipped", [])), "inodes_freed": result.get("inodes_freed", 0),
                   "bytes_freed": result.get("bytes_freed", 0), "inode_use_before": round(use, 1),
                   "check": args.check, "removed_layers": [c["layer_id"] for c in result.get("removed", [])],
                   "freed_first": result.get("freed_first", []),
                   # why each copy was left alone (e.g. "undeletable: <path>: immutable"), what
                   # was changed, and staged data that could not be deleted (and its retries)
                   "skipped_copies": result.get("skipped", []), "changes": result.get("changes", []),
                   "stranded": result.get("stranded", []),
                   "stranded_retried": result.get("stranded_retried", [])}
        _emit(summary)
    else:
        _emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
