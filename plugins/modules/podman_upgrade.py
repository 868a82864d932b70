#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: podman_upgrade
short_description: Install one Podman package version, then report that Podman's idmap_support facts
version_added: 0.1.0
description:
  - Installs the Podman package version O(spec) names with the host's package manager (C(apt-get) or
    C(dnf)/C(yum)), unless that version is installed already, and checks that it is the version installed now.
  - Then gathers the facts of the Podman now installed exactly as M(idmapguard.storage.idmap_support) does
    (the same code, in the same call), with the options given in O(verify); so a rollout that changes the
    package learns the new Podman's verdict without another round trip.
  - Which version to install is decided on the controller (the rollout's upgrade plan); this module installs
    only what it is told.
author:
  - idmapguard contributors (@idmapguard)
requirements:
  - Python 3.8 or later on the host (standard library only).
  - Rootful Podman installed from the package manager's packages.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Installs nothing; the facts are gathered as idmap_support gathers them in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The installed Podman version before and after.
options:
  spec:
    description: The package to install, C(podman=VERSION) (apt) or C(podman-[EPOCH:]VERSION) (dnf, yum).
    type: str
    required: true
  package_manager:
    description: Which package manager installs it.
    type: str
    required: true
    choices: [apt, dnf, dnf5, yum]
  downgrade:
    description: O(spec) is older than the installed version and may replace it (the previous Podman installed again).
    type: bool
    default: false
  verify:
    description:
      - The options of M(idmapguard.storage.idmap_support) to gather the facts with after the change
        (O(idmapguard.storage.idmap_support#module:canary), O(idmapguard.storage.idmap_support#module:proof), ...).
        An option left out or null takes that module's default.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Upgrade Podman, and verify the upgraded Podman with the canary and the proof
  idmapguard.storage.podman_upgrade:
    spec: podman=5.8.6+ds1-3
    package_manager: apt
    verify:
      canary: true
      proof: true
  register: upgraded
"""

RETURN = r"""
podman:
  description: The installed Podman package's version before and after, the version asked for, and whether it changed.
  returned: always
  type: dict
  sample: {"before": "5.4.2+ds1-2+b2", "after": "5.8.6+ds1-3", "wanted": "5.8.6+ds1-3", "changed": true}
command:
  description: The package manager's command line that ran (null where nothing was installed).
  returned: always
  type: list
  elements: str
helper:
  description: What is installed at the helper path, as M(idmapguard.storage.idmap_support) returns it.
  returned: success
  type: dict
ansible_facts:
  description: The facts of the Podman now installed, as M(idmapguard.storage.idmap_support) returns them.
  returned: success
  type: dict
  contains:
    idmapguard:
      description: See M(idmapguard.storage.idmap_support).
      type: dict
      returned: success
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import module_runner
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap_support import ARGUMENT_SPEC as VERIFY_SPEC
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_upgrade import (
    PACKAGE_MANAGERS,
    PodmanUpgradeError,
    UpgradeParams,
    run,
)


def _verify(module):
    """O(verify), validated against idmap_support's own argument spec (nulls dropped first)."""
    given = {k: v for k, v in (module.params["verify"] or {}).items() if v is not None}
    checked = ArgumentSpecValidator(VERIFY_SPEC).validate(given)
    if checked.error_messages:
        raise PodmanUpgradeError("verify: %s" % "; ".join(checked.error_messages))
    return checked.validated_parameters


def main():
    module = AnsibleModule(
        argument_spec=dict(
            spec=dict(type="str", required=True),
            package_manager=dict(type="str", required=True, choices=list(PACKAGE_MANAGERS)),
            downgrade=dict(type="bool", default=False),
            verify=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    try:
        params = UpgradeParams(spec=module.params["spec"], package_manager=module.params["package_manager"],
                               downgrade=module.params["downgrade"], verify=_verify(module))
        podman = params.verify.get("podman") or "podman"
        result = run(params, module_runner(module), module.check_mode,
                     podman_path=None if "/" in podman else module.get_bin_path(podman),
                     install_runner=module_runner(module, {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}))
    except PodmanUpgradeError as exc:
        module.fail_json(msg=str(exc))
    else:
        for warning in result["warnings"]:
            module.warn(warning)
        diff = {"before": "podman %s\n" % result["podman"]["before"], "after": "podman %s\n" % result["podman"]["after"]}
        module.exit_json(changed=result["changed"], podman=result["podman"], command=result["command"],
                         helper=result["helper"], ansible_facts={"idmapguard": result["facts"]},
                         **({"diff": diff} if module._diff else {}))


if __name__ == "__main__":
    main()
