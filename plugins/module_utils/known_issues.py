# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Known upstream bugs on the sharing path: the one table, and whether it predicts a failed proof check.

A proof check (sharing_proof.py) fails with one or more *problems*, each of a kind
(`commit_capability`, `commit_layer_owner`, ...). A failure is predicted, and so reported as
`known_issue` instead of failing the host, when every problem of the check is a symptom of an
issue in this table whose affected Podman versions include the host's. A failure with any
problem no entry explains, or on a Podman the table says is fixed, is a real failure: on a host
the rollout changed it rolls the change back, as before.

The table says what the lab showed (tests/integration/test_proof.py asserts the same) and where
the fix landed upstream, so the entry of a bug fixed in a release stops predicting failures
there: a failure on a fixed Podman is a regression, or a different bug, and fails the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

Version = Tuple[int, ...]


def _version(text: Optional[str]) -> Optional[Version]:
    """(5, 8, 6) from "5.8.6", "v6.1.1-rc1" or "6.1.1+ds1-1+b1"; None when there is no number."""
    match = re.match(r"\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text or "")
    if not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


# Each entry: the proof check it breaks; the problem kinds (sharing_proof.judge) that are its
# symptoms; the affected Podman versions [first, fixed) (fixed None: not fixed in any release);
# the c/storage versions for a distribution that patches c/storage itself; the reference; the
# release with the fix; what the lab showed. Podman 5.6.0 (c/storage 1.59) is the first to share
# layers through idmapped mounts for any map: the proof only runs where the verdict is `shares`.
KNOWN_ISSUES = (
    {
        "id": "container-libs#1126",
        "check": "commit",
        "symptoms": ("commit_capability", "commit_capability_eoverflow"),
        "title": "podman commit keeps the host rootid in the v3 security.capability of a file the container "
                 "copied up; a container of the committed image gets EOVERFLOW using that file",
        "podman_affected": ((5, 6, 0), (6, 1, 2)),
        "storage_affected": "c/storage 1.59.0 to 1.64.0",
        "reference": "container-libs PR #1126, follow-up #1132 "
                     "(https://github.com/podman-container-tools/container-libs/pull/1126)",
        "fixed_in": "Podman 6.1.2 (c/storage 1.64.1, backport PR #1144); not in 6.0.x (backport PR #1145 "
                    "closed: 6.0 is end of life); the 5.8 backport (PR #1143) is not in a Debian 5.8 release",
        "lab": "sid Podman 5.8.6 and experimental Podman 6.1.1 (podman6 suite): the committed layer keeps rootid 1065538, "
               "the container of the committed image gets EOVERFLOW (Value too large for defined data type)",
        "workaround": "set _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes for podman commit and builds of containers that "
                      "modify setcap files, or upgrade to Podman 6.1.2 or later",
    },
    {
        "id": "container-libs#914",
        "check": "commit",
        "symptoms": ("commit_layer_owner", "commit_owner_inside", "commit_start"),
        "title": "commit and build with a user namespace and idmapped mounts store host ids (the container "
                 "map's range) in the committed layer instead of the container's ids",
        "podman_affected": ((5, 6, 0), None),
        "storage_affected": "c/storage 1.59.0 and later (issue open)",
        "reference": "container-libs issue #914, moved from containers/storage #2396 "
                     "(https://github.com/podman-container-tools/container-libs/issues/914)",
        "fixed_in": None,
        "lab": "not seen in the lab: rootful commits of 5.8.6 and 6.1.1 keep the container's ids in the layer",
        "workaround": "set _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes for podman commit and builds (the upstream "
                      "workaround)",
    },
)


def affects(issue: Mapping[str, Any], podman_version: Optional[str]) -> bool:
    """The issue's affected range holds this Podman version (unknown version: it cannot say, so no)."""
    version = _version(podman_version)
    if version is None:
        return False
    first, fixed = issue["podman_affected"]
    return tuple(first) <= version and (fixed is None or version < tuple(fixed))


def _summary(issue: Mapping[str, Any]) -> Dict[str, Any]:
    return {"id": issue["id"], "title": issue["title"], "reference": issue["reference"],
            "fixed_in": issue["fixed_in"], "workaround": issue["workaround"]}


def explain(check: str, kinds: Sequence[str], podman_version: Optional[str],
            table: Sequence[Mapping[str, Any]] = KNOWN_ISSUES) -> List[Dict[str, Any]]:
    """The known issues that together explain every problem kind of a failed check on this Podman;
    [] when any problem is left unexplained (or the check reported none: nothing to match)."""
    if not kinds:
        return []
    found = []  # type: List[Dict[str, Any]]
    for kind in kinds:
        matching = [issue for issue in table if issue["check"] == check and kind in issue["symptoms"]
                    and affects(issue, podman_version)]
        if not matching:
            return []
        for issue in matching:
            if all(issue["id"] != seen["id"] for seen in found):
                found.append(_summary(issue))
    return found


def classify(checks: Mapping[str, Mapping[str, Any]], podman_version: Optional[str],
             table: Sequence[Mapping[str, Any]] = KNOWN_ISSUES) -> Dict[str, List[Dict[str, Any]]]:
    """{check: [known issues]} for each failed check the table predicts."""
    known = {}  # type: Dict[str, List[Dict[str, Any]]]
    for name, check in checks.items():
        if check.get("ok") is not False:
            continue
        kinds = [problem.get("kind") for problem in check.get("problems") or []]
        issues = explain(name, kinds, podman_version, table)
        if issues:
            known[name] = issues
    return known
