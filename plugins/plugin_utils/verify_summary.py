# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one-line summary of a host's verify: verdict, inode use, mapped copies, Podman and kernel.

One wording for the verify role's summary task (filter verify_summary) and the rollout's verify
(action rollout_verify), so an operator reads the same line from either."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Mapping, Optional


def summary(host: str, facts: Mapping[str, Any], helper: Optional[Mapping[str, Any]] = None) -> str:
    """FACTS: idmap_support's ansible_facts.idmapguard; HELPER: its `helper` return value."""
    root = facts.get("graphroot") or {}
    podman = facts.get("podman") or {}
    line = ("idmapguard %s: %s; inodes %s/%s used (%s free) on %s %s; %s mapped copies holding %s inodes; "
            "podman %s, kernel %s" % (
                host, facts.get("verdict"), root.get("inodes_used"), root.get("inodes_total"),
                root.get("inodes_free"), root.get("fs_type"), root.get("path"), root.get("mapped_copies"),
                root.get("mapped_copy_inodes"), podman.get("version") or "?", (facts.get("kernel") or {}).get("release")))
    canary = facts.get("canary")
    if canary:
        line += "; canary added %s copies" % canary.get("new_mapped_layers")
    proof = facts.get("proof")
    if proof and proof.get("ran"):
        line += "; proof %s" % proof.get("summary")
    if facts.get("reasons"):
        line += "; reasons: " + " | ".join(str(r) for r in facts["reasons"])
    if not (helper or {}).get("present", True):
        line += "; helper not installed yet"
    return line
