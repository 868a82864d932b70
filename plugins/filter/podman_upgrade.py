# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the rollout's opt-in Podman upgrade (logic: plugins/plugin_utils/podman_upgrade.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: podman_upgrade_plan
short_description: Decide the Podman upgrade of one host from its package manager's listing
version_added: 0.1.0
author: idmapguard developers
description:
  - Parses the output of C(apt-cache policy podman) or C(dnf list --showduplicates podman)
    (run with C(LC_ALL=C)) and picks the version to install, a version newer than the installed
    one that shares layers across non-contiguous ID maps (Podman 5.6 or later, or a package
    version listed in O(backports)). apt's candidate is preferred when it qualifies; a version
    pinned below 0 is never chosen.
  - "Returns C(upgrade=false) and a C(note) saying why when there is no such version (for
    example C(no Podman >= 5.6 in this host's repositories: the guard keeps the store bounded))."
  - The same file provides C(podman_upgrade_outcome) (the plan after the package step, with
    C(installed) and C(check_mode)) and C(podman_upgrade_failed_proof) (with C(verdict),
    C(proof) and C(reasons); marks an upgraded host whose proof failed, with the error).
options:
  _input:
    description: Standard output of the listing command.
    type: str
    required: true
  package_manager:
    description: C(apt), C(dnf), C(dnf5) or C(yum) (Ansible's C(ansible_facts.pkg_mgr)).
    type: str
    required: true
  backports:
    description: Exact package versions the operator declares to carry the containers/storage
      1.59 change (shares non-contiguous maps although older than 5.6).
    type: list
    elements: str
    default: []
  refresh_error:
    description: Why refreshing the package lists failed, if it did; added to the C(note).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Decide the upgrade
  ansible.builtin.set_fact:
    plan: "{{ listing.stdout | idmapguard.storage.podman_upgrade_plan(package_manager='apt') }}"
"""

RETURN = r"""
_value:
  description:
    - C(upgrade) (bool), C(target) and C(target_spec) (e.g. C(podman=5.8.6+ds1-3)),
      C(installed), C(available) (versions in the repositories, newest first), C(backport),
      C(rollback_spec) (the installed version, when a repository still has it), C(note), and
      C(upgraded), C(rolled_back), C(proof_failed), C(error) (filled in by the later steps).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.plugin_utils import podman_upgrade as logic


def podman_upgrade_plan(listing, package_manager, backports=None, refresh_error=""):
    if not isinstance(listing, str):
        raise AnsibleFilterError("podman_upgrade_plan expects the listing command's stdout (a string)")
    return logic.plan_upgrade(listing, str(package_manager), backports or [], str(refresh_error or ""))


def podman_upgrade_outcome(plan, installed, check_mode=False):
    return logic.upgrade_outcome(plan, bool(installed), bool(check_mode))


def podman_upgrade_failed_proof(plan, verdict, proof=None, reasons=None):
    return logic.failed_proof(plan, str(verdict), proof, list(reasons or []))


class FilterModule:
    """idmapguard Podman upgrade filters."""

    def filters(self):
        return {
            "podman_upgrade_plan": podman_upgrade_plan,
            "podman_upgrade_outcome": podman_upgrade_outcome,
            "podman_upgrade_failed_proof": podman_upgrade_failed_proof,
        }
