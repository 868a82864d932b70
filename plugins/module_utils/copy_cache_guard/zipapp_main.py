# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The entry of the guard's zip application (the one file the ``remediate`` role installs):

    python3 idmapguard-guard-VERSION-SHA.pyz guard [--config FILE] watch|once|status
    python3 idmapguard-guard-VERSION-SHA.pyz prune [...]

The role's ``idmapguard-guard`` and ``idmapguard-prune`` are two-line wrappers of these. The
archive holds this module and what its imports reach (plugins/plugin_utils/guard_artifact.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import sys
from typing import Optional, Sequence

from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard import cli, manual_prune

COMMANDS = {"guard": cli.main, "prune": manual_prune.main}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        sys.stderr.write("usage: idmapguard-guard.pyz {%s} [ARGS...]\n" % "|".join(sorted(COMMANDS)))
        return 2
    return COMMANDS[args[0]](args[1:])
