# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one runner type for every command the host side runs (Podman, the helper), and running a
command that answers with one JSON object (`podman info --format json`, the helper's `probe`),
with one shape of error for every way that can go wrong."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

# What the logic needs from AnsibleModule.run_command, so it can be tested without Ansible:
# run(argv) -> (rc, stdout, stderr). An environment is bound when the runner is made
# (module_runner(module, env)), so every caller and every fake has this one signature.
Runner = Callable[[List[str]], Tuple[int, str, str]]


def module_runner(module: Any, env: Optional[Dict[str, str]] = None) -> Runner:
    """A Runner on AnsibleModule.run_command, with `env` added to the environment of every command."""
    extra = dict(env or {})

    def run(argv: List[str]) -> Tuple[int, str, str]:
        rc, out, err = module.run_command(argv, environ_update=extra, check_rc=False)
        return rc, out, err

    return run


def run_json(run: Runner, argv: List[str], error: Type[Exception]) -> Dict[str, Any]:
    """The JSON object `argv` prints; `error` (with the command and its output) otherwise."""
    command = " ".join(argv)
    try:
        rc, out, err = run(argv)
    except OSError as exc:
        raise error("cannot run %s: %s" % (argv[0], exc))
    if rc != 0:
        # the end of the output: Podman and the helper say what went wrong last
        raise error("%s failed (rc=%d): %s" % (command, rc, (err or out or "").strip()[-800:]))
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise error("%s printed no JSON: %s" % (command, exc))
    if not isinstance(data, dict):
        raise error("%s printed JSON that is not an object" % command)
    return data
