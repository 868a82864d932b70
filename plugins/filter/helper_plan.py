# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``idmapguard.storage.helper_plan``: the helper role's two decisions."""

from __future__ import annotations

DOCUMENTATION = r"""
name: helper_plan
short_description: Decide where a host's idmapped-mount helper comes from and whether it is current
version_added: 0.1.0
author: idmapguard developers
description:
  - Used by the C(idmapguard.storage.helper) role. With O(stage=source), picks the binary's source
    for a host (in this order an operator binary, a binary per architecture, the prebuilt binary of
    the execution environment if present on the controller, a controller build, a host build).
  - With O(stage=record), the input is that choice; returns the role's C(idmapguard_helper)
    record, with C(current) true when what M(idmapguard.storage.idmap_support) observed at the
    destination is already the expected binary (SHA-256), root-owned 0755 in a root-owned 0755
    directory, and runs; and C(problem) set when the controller cannot supply a binary for the host.
options:
  _input:
    description: For O(stage=source), the host's architecture; for O(stage=record), the source choice.
    type: raw
    required: true
  stage:
    description: Which decision.
    type: str
    choices: [source, record]
    required: true
  binary:
    description: Operator binary for every host (O(stage=source)).
    type: str
    default: ""
  binaries:
    description: Operator binaries per architecture (O(stage=source)).
    type: dict
    default: {}
  prebuilt:
    description: Path of the prebuilt binary of the execution environment (O(stage=source)).
    type: str
    default: ""
  build:
    description: C(controller) or C(host) (O(stage=source)).
    type: str
    default: controller
  build_path:
    description: Path of the binary a controller build produces (O(stage=source)).
    type: str
    default: ""
  observed:
    description: The C(helper) return value of M(idmapguard.storage.idmap_support) (O(stage=record)).
    type: dict
    default: {}
  dest:
    description: The install path on the host (O(stage=record)).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Choose the source
  ansible.builtin.set_fact:
    plan: "{{ ansible_architecture | idmapguard.storage.helper_plan(stage='source', build='controller', build_path='/tmp/b/idmapped-mount') }}"
- name: Decide whether the host's helper is current
  ansible.builtin.set_fact:
    idmapguard_helper: "{{ plan | idmapguard.storage.helper_plan(stage='record', observed=observed, dest='/usr/local/libexec/idmapguard/idmapped-mount') }}"
"""

RETURN = r"""
_value:
  description:
    - O(stage=source) gives C(arch), C(source) (C(operator), C(per_arch), C(prebuilt), C(controller),
      C(host)) and C(src) (the controller path, empty for a host build).
    - O(stage=record) gives C(path), C(run_path), C(staged), C(checksum), C(version), C(source),
      C(src), C(arch), C(changed), C(current) and C(problem).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.plugin_utils import helper_plan as plan_lib


def helper_plan(value, stage, binary="", binaries=None, prebuilt="", build="controller",
                build_path="", observed=None, dest=""):
    """Filter entry point; the decisions live in plugin_utils.helper_plan."""
    try:
        if stage == "source":
            return plan_lib.choose_source(str(value or ""), binary or "", binaries or {},
                                          prebuilt or "", build, build_path)
        if stage == "record":
            if not isinstance(value, dict) or not dest:
                raise plan_lib.HelperPlanError("helper_plan(stage='record') needs a source choice and dest")
            return plan_lib.helper_record(observed or {}, value, dest)
    except plan_lib.HelperPlanError as exc:
        raise AnsibleFilterError(str(exc))
    raise AnsibleFilterError("helper_plan: stage must be 'source' or 'record', got %r" % (stage,))


class FilterModule:
    """idmapguard helper filters."""

    def filters(self):
        return {"helper_plan": helper_plan}
