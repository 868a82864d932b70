# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``idmapguard.storage.verify_summary``: the one-line summary of a host's verify."""

from __future__ import annotations

DOCUMENTATION = r"""
name: verify_summary
short_description: The one-line summary of a host's idmapguard verify
version_added: 0.4.0
author: idmapguard developers
description:
  - C(facts | verify_summary(host=..., helper=...)) returns the line the verify role prints per host -
    verdict, inode use of the graphroot, mapped copies, Podman and kernel, then what the canary added,
    the proof's summary, the reasons and a helper that is not installed yet.
  - The rollout prints the same line (C(plugins/plugin_utils/verify_summary.py), the one wording).
options:
  _input:
    description: The facts of M(idmapguard.storage.idmap_support) (C(ansible_facts.idmapguard)).
    type: dict
    required: true
  host:
    description: The host's inventory name.
    type: str
    required: true
  helper:
    description: The C(helper) return value of M(idmapguard.storage.idmap_support) (null - not looked at).
    type: dict
"""

EXAMPLES = r"""
- name: Print the summary
  ansible.builtin.debug:
    msg: "{{ ansible_facts.idmapguard | idmapguard.storage.verify_summary(host=inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The summary line.
  type: str
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.plugin_utils.plain_data import plain
from ansible_collections.idmapguard.storage.plugins.plugin_utils.verify_summary import summary


def verify_summary(facts, host=None, helper=None):
    if not isinstance(facts, Mapping) or not host:
        raise AnsibleFilterError("verify_summary: needs idmap_support's facts (a dict) and host")
    return summary(str(host), plain(facts), plain(helper) if isinstance(helper, Mapping) else None)


class FilterModule:
    """idmapguard verify summary."""

    def filters(self):
        return {"verify_summary": verify_summary}
