# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``idmapguard-guard``: the copy-cache guard's entry point.

    idmapguard-guard [--config FILE] watch [--seconds N]   the service (systemd, or by hand)
    idmapguard-guard [--config FILE] once                  one pass, then exit (cron)
    idmapguard-guard [--config FILE] status [--wait S]     the state the service last wrote (--wait:
                                                           up to S seconds for the running guard's)

Every parameter comes from the JSON file (default /etc/idmapguard/guard.json) that the
``remediate`` role writes; see settings.py and docs/guard.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import argparse
import json
import sys
from typing import Optional, Sequence

from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.guard_state import (
    read_status, wait_for_running,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.manual_prune import run_command
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.service import CopyCacheGuard, emit
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.settings import (
    DEFAULT_CONFIG, ParameterError, load_settings,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    PodmanError, StorageConfError, find_store,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.store import Store


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="idmapguard-guard", description="Keep unused ID-mapped layer copies "
                                     "of a Podman store within an inode budget.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="parameter file (default %(default)s)")
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    watch = sub.add_parser("watch", help="run as a service: watch the store, evict as needed")
    watch.add_argument("--seconds", type=float, help="stop after this many seconds (tests, benchmarks)")
    sub.add_parser("once", help="one pass, then exit")
    status = sub.add_parser("status", help="print the state the guard last wrote")
    # the remediate role after it (re)started the service: the state of the process that runs now
    status.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to SECONDS for a state written by the running guard (then running: true)")
    return parser.parse_args(list(argv))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args.config)
        if args.command == "status":
            status = wait_for_running(settings.state_file, args.wait) if args.wait > 0 else read_status(settings.state_file)
            shown = status if status is not None else {"state_file": settings.state_file, "error": "no guard state yet"}
            sys.stdout.write(json.dumps(shown, indent=2, sort_keys=True) + "\n")
            return 0 if status is not None and "error" not in status else 1
        location = settings.location or find_store(run_command, settings.storage_conf, settings.podman)
        guard = CopyCacheGuard(settings, Store(location))
        if args.command == "once":
            outcome = guard.run_pass("once")
            emit(sys.stdout, {"event": "pass", "evicted": len(outcome["evicted"]),
                              "kept": len(outcome["skipped"]), "status": outcome["status"]})
            return 0
        return guard.watch(args.seconds)
    except (ParameterError, PodmanError, StorageConfError, StoreError, ValueError) as exc:
        sys.stderr.write("idmapguard-guard: %s\n" % exc)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
