#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side of idmapguard.storage.storage_conf; the TOML editing runs in the action plugin."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: storage_conf
short_description: Edit containers-storage.conf in place, keeping every other byte, or write a drop-in
version_added: 0.1.0
description:
  - Sets and removes keys of the containers/storage configuration file (C(storage.conf))
    without rewriting it, so site settings and comments stay as they were.
  - The TOML is edited on the controller with tomlkit by the action plugin of the same name;
    the host needs only Python's standard library.
  - C(/etc/containers/storage.conf) replaces the vendor file C(/usr/share/containers/storage.conf)
    entirely, with no inheritance. When the file at O(path) does not exist, the edit starts from
    O(vendor_path), so no vendor default is lost.
  - Before it replaces the file, Podman on the host must accept the new file
    (C(podman info) with C(CONTAINERS_STORAGE_CONF) pointing at the candidate), unless O(validate=false).
    The new file is written to a temporary file in the same directory and renamed over the old one,
    keeping the owner, mode and SELinux context the file had.
  - Refuses, with no change, edits that would orphan data, unless O(allow_store_change=true).
    That covers changing C(driver), C(graphroot), C(runroot) or C(imagestore) while the current
    store holds layers. It also covers removing C(mount_program) where the store's
    C(overlay/.has-mount-program) marker says C(true). With that marker, containers/storage keeps
    using fuse-overlayfs from C(PATH) even without C(mount_program). The marker is there because
    layers written through a mount program may hold AUFS-style C(.wh.) whiteouts that native
    overlay does not understand. With O(allow_store_change=true), the module scans the store as
    containers/storage does. It removes the marker only when nothing in the store would be
    misread, so that containers/storage picks native overlay. When the scan finds something, it
    refuses. It also refuses while the store holds a container created with a non-contiguous ID map
    through the mount program, because such a container fails to start on native overlay (measured with
    Podman 5.8); remove it first and create it again afterwards.
  - Validation runs Podman with a throw-away libpod database (C(CONTAINERS_CONF_OVERRIDE) with a scratch
    C(static_dir)), because libpod prefers the driver, graphroot and runroot recorded in its database
    over storage.conf and would otherwise record a rejected candidate's values on a fresh host.
    After the write, Podman is asked again, the normal way; if it fails then, the old file is put back.
    If Podman keeps using a driver or path recorded in its database, the module warns.
  - A malformed existing file fails with its line and column, and nothing changes.
  - When neither O(path) nor O(vendor_path) exists, the edit starts from containers/storage's built-in
    defaults (C(runroot) and C(graphroot) spelled out, which Podman requires in a file at the default path).
author:
  - idmapguard contributors (@idmapguard)
options:
  path:
    description: The storage.conf to edit.
    type: path
    default: /etc/containers/storage.conf
  vendor_path:
    description: The file to start from when O(path) does not exist.
    type: path
    default: /usr/share/containers/storage.conf
  settings:
    description:
      - Keys to set, as dotted paths of bare TOML keys, for example C(storage.driver) or
        C(storage.options.overlay.mountopt). Missing tables are created.
      - A key that exists keeps its TOML type when the new value converts without loss
        (a boolean written into a key the file spells as a string stays a string).
      - A mapping as value sets each of its keys below the given key; other keys stay.
    type: dict
    default: {}
  absent:
    description:
      - Dotted keys to remove, for example C(storage.options.overlay.mount_program).
        Removals are applied before O(settings).
    type: list
    elements: str
    default: []
  backup:
    description: Keep a timestamped copy of the old file next to it.
    type: bool
    default: false
  validate:
    description: Have Podman on the host read the candidate file (C(podman info)) before it replaces the old one.
    type: bool
    default: true
  allow_store_change:
    description:
      - Allow changing C(driver), C(graphroot), C(runroot) or C(imagestore) while the current store holds layers.
      - Allow removing C(mount_program) from a store whose C(overlay/.has-mount-program) says C(true).
        The marker is cleared only when a scan finds no AUFS-style whiteout or fuse-overlayfs xattr.
    type: bool
    default: false
  dropin:
    description:
      - O(path) is a drop-in (for example C(/etc/containers/storage.rootful.conf.d/zz-idmapguard.conf)) that a
        Podman reading drop-ins (5.5 and later; measured on 5.8.6 and 6.1.1) reads after the main file.
      - The edit starts from the drop-in itself, or from an empty file with a header comment. O(vendor_path) is not used.
      - A drop-in cannot remove a key that a file read before it sets, so each O(absent) key is written as an empty
        string, which containers/storage takes as not set for its string options (C(mount_program), C(mountopt), ...).
      - The refusal checks compare the settings Podman uses now (C(podman info)) with those settings overridden by
        the drop-in. Podman judges the candidate with all its files, the candidate read last
        (C(CONTAINERS_STORAGE_CONF_OVERRIDE)).
      - After the write, if Podman still uses another C(mount_program) than the drop-in sets (a file read later sets
        it), the drop-in is put back as it was and the module fails with C(refused).
      - The idmapguard.storage.configure role sets this where the verify facts say Podman reads drop-ins.
    type: bool
    default: false
  _edit:
    description:
      - Internal. The action plugin of this module fills it with the edited text and what it was made
        from (C(content), C(source), C(source_sha1), C(changed_keys), C(store_before), C(store_after),
        C(dropin_sets)).
        Never set it yourself.
    type: dict
attributes:
  check_mode:
    support: full
    details: Nothing is written, validated or cleared; the refusal checks still run.
  diff_mode:
    support: full
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
notes:
  - Runs as root on the host; the store checks read C(<graphroot>/*-layers/layers.json) and
    C(<graphroot>/overlay/.has-mount-program) only.
  - Services that keep Podman running (C(podman.socket), quadlet units) read storage.conf when they
    start; restart them after a change (the idmapguard.storage.configure role can).
seealso:
  - name: containers-storage.conf(5)
    description: The keys of storage.conf.
    link: https://github.com/containers/storage/blob/main/docs/containers-storage.conf.5.md
"""

EXAMPLES = r"""
- name: On Podman 5.8 or 6, override a mount program set in the main file with our own drop-in
  idmapguard.storage.storage_conf:
    path: /etc/containers/storage.rootful.conf.d/zz-idmapguard.conf
    dropin: true
    settings:
      storage.driver: overlay
    absent:
      - storage.options.overlay.mount_program
    allow_store_change: true

- name: Let Podman >= 5.6 share layers through idmapped mounts (no fuse-overlayfs)
  idmapguard.storage.storage_conf:
    settings:
      storage.driver: overlay
    absent:
      - storage.options.overlay.mount_program
    allow_store_change: true
    backup: true

- name: Add a mount option, keeping everything else in the file
  idmapguard.storage.storage_conf:
    path: /etc/containers/storage.conf
    settings:
      storage.options.overlay.mountopt: nodev,metacopy=on
"""

RETURN = r"""
path:
  description: The file edited.
  returned: always
  type: str
  sample: /etc/containers/storage.conf
source:
  description: The file the edit started from (O(path), or O(vendor_path) when O(path) did not exist).
  returned: always
  type: str
  sample: /usr/share/containers/storage.conf
changed_keys:
  description: The dotted keys whose value the edit changes (empty when the file already says so).
  returned: always
  type: list
  elements: str
  sample: [storage.options.overlay.mount_program]
backup_file:
  description: The copy of the old file, when O(backup=true) and the file changed.
  returned: changed and backup
  type: str
  sample: /etc/containers/storage.conf.12345.2026-11-27@03:00:00~
store_changes:
  description: Store settings the edit changes, with their effective values before and after.
  returned: when the module ran on the host
  type: dict
  sample: {driver: {before: vfs, after: overlay}}
undo:
  description:
    - What puts O(path) back as it was before this change - C(path), C(existed), C(content) (null when the
      file did not exist), C(mode), C(owner) and C(group) (numeric ids, as strings).
    - A caller that must undo the change (the rollout after a failed proof) writes C(content) back with that
      mode and owner, or removes O(path) when C(existed) is false (a new drop-in is removed). A cleared mount-program marker
      (RV(mount_program_marker)) is not part of it.
  returned: changed
  type: dict
  sample: {path: /etc/containers/storage.conf, existed: true, content: "[storage]\ndriver = \"overlay\"\n", mode: "0644", owner: "0", group: "0"}
mount_program_marker:
  description:
    - What happened to C(<graphroot>/overlay/.has-mount-program) when O(absent) removes the mount program.
    - C(cleared) is true when the marker was (or in check mode would be) removed.
  returned: when the edit removes a mount program
  type: dict
  sample: {path: /var/lib/containers/storage/overlay/.has-mount-program, content: "true", cleared: true}
podman:
  description: The store as Podman reports it after the write (driver, graphroot, runroot, mount_program, graph_options).
  returned: changed, not in check mode, and validate
  type: dict
  sample: {driver: overlay, graphroot: /var/lib/containers/storage, mount_program: null}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import module_runner
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf import (
    StorageConfError,
    argument_spec,
    run,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run(module.params, module.check_mode, lambda env: module_runner(module, env))
    except StorageConfError as exc:
        module.fail_json(msg=exc.message(), changed=False, **exc.fields)
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
