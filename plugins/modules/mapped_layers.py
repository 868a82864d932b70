#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report and prune the ID-mapped layer copies of a containers/storage overlay store."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: mapped_layers
short_description: Report and remove unused ID-mapped copies of image layers in a Podman store
version_added: 0.1.0
description:
  - containers/storage before 1.59 (Podman before 5.6) stores a full, chowned copy of an image's
    top layer for every distinct non-contiguous C(--uidmap)/C(--gidmap) (listed in C(mapped-layers)
    of C(overlay-images/images.json)). Nothing in Podman removes them short of deleting the image,
    and they stay after an upgrade. This module reports them and removes the unused ones.
  - With O(state=report) (and in check mode) it only reads the store's JSON under its shared locks,
    briefly; inodes and bytes of each copy are measured after the locks are released (a copy that
    vanished meanwhile is reported with C(measured=vanished)), or estimated from one copy per image
    with O(sizes=estimate).
  - With O(state=pruned) it removes every copy that no layer has as parent (so no container uses it),
    that is no image's top layer, is not mounted (neither counted in C(mountpoints.json) nor a mount
    point anywhere in its paths in C(/proc/self/mountinfo), same-filesystem bind mounts included),
    is not marked incomplete by a process at work, and is older than O(min_age).
  - Locks and writes exactly as containers/storage does (POSIX record locks layers, images,
    containers; temp file and rename; a new last-write token). The write locks are held only to
    re-check the plan, update C(images.json) and C(layers.json) and move each copy's data by rename
    into C(<graphroot>/idmapguard-staging); the data is deleted after the locks are released, at
    idle I/O priority, so Podman is never blocked for a time that grows with the data.
  - Before any change, under the same short hold of the store's locks, the store must pass a
    consistency gate (every layer file parses as c/storage writes it, every image's top layer and
    mapped layer and every layer's parent exist); a store that fails is refused with the first
    inconsistency named and nothing changed (O(state=report) marks it C(inconsistent)).
  - A copy whose data cannot be moved whole is put back whole and reported in RV(not_removed); a failure
    part-way names every change made before it.
  - At 0 free inodes it first frees an inode inside a copy it is about to remove, then proceeds;
    the store location then comes from storage.conf, because Podman itself fails.
  - The order of the steps (see C(docs/remediate.md)) leaves a store Podman uses without error if the
    run is killed at any point; a later run finishes the job, staged data left by a killed run included
    (reported in RV(recovered)).
author:
  - idmapguard contributors (@idmapguard)
options:
  state:
    description:
      - V(report) lists images, their top layers and mapped copies, with use, inodes and bytes.
      - V(pruned) removes the unused copies.
    type: str
    choices: [report, pruned]
    default: report
  location:
    description:
      - The store's location whole, as the verify facts' C(store_location) and this module's RV(location)
        give it. Mutually exclusive with O(graphroot), O(runroot), O(imagestore) and O(transient_store).
      - Default is what C(podman info) reports, or storage.conf when Podman fails.
    type: dict
    suboptions:
      graphroot:
        description: The graph root.
        type: path
        required: true
      runroot:
        description: The run root (holds C(mountpoints.json), and with O(location.transient_store) the containers).
        type: path
        required: true
      imagestore:
        description: The split image store of storage.conf C(imagestore), or null.
        type: path
      transient_store:
        description: Whether storage.conf sets C(transient_store).
        type: bool
        default: false
      additional_image_stores:
        description: Read-only additional image stores (never changed).
        type: list
        elements: path
        default: []
      driver:
        description: The storage driver; only V(overlay) stores hold mapped copies.
        type: str
        default: overlay
  graphroot:
    description:
      - The store's graph root, for a store named by its paths one by one (O(location) names it whole).
        Default is what C(podman info) reports, or storage.conf when Podman fails.
    type: path
  runroot:
    description:
      - The store's run root (holds C(overlay-layers/mountpoints.json)). Default as for O(graphroot).
    type: path
  imagestore:
    description:
      - The split image store of storage.conf C(imagestore), if any. Default as for O(graphroot).
    type: path
  transient_store:
    description:
      - Whether the store runs with C(transient_store). Default as for O(graphroot).
    type: bool
  storage_conf:
    description:
      - storage.conf to read when Podman cannot answer. Default is the one containers/storage uses.
    type: path
  podman:
    description:
      - The Podman binary used to find the store.
    type: str
    default: podman
  min_age:
    description:
      - Seconds a copy must exist before it may be removed. A margin only (for versions of
        containers/storage not read and clocks that step) - every version read creates a copy and the
        container layer on it in one hold of the layer store's lock, and the prune re-checks each copy
        under that lock (C(docs/guard.md)).
    type: int
    default: 5
  sizes:
    description:
      - How O(state=report) and check mode find the inodes and bytes of each copy, always after the
        store's locks are released. V(measured) walks every copy; V(estimate) walks one copy per image
        and gives the others its figures (each copy says which in C(measured)).
      - The walk runs in a thread at low CPU priority (nice 19) and idle I/O priority and waits while a
        Podman process holds a store lock, so on a busy host it takes longer rather than slowing Podman;
        V(estimate) is the fast choice there.
    type: str
    choices: [measured, estimate]
    default: measured
  images:
    description:
      - Only remove copies of these images (full id, id prefix of at least 12 characters, or name).
    type: list
    elements: str
  keep_maps:
    description:
      - Keep copies made for these maps (e.g. maps that will be used again soon).
    type: list
    elements: dict
    suboptions:
      uidmap:
        description: UID map as Podman writes it, C(container:host:size,...).
        type: str
        required: true
      gidmap:
        description: GID map; when absent, any GID map matches.
        type: str
attributes:
  check_mode:
    support: full
    details: Returns exactly the copies a run would remove, with their inodes and bytes.
  diff_mode:
    support: full
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
notes:
  - Runs as root on the host. Read-only additional image stores are never changed
    (containers/storage does not make mapped copies in them).
  - Store metadata is untrusted input; ids must be 64 lowercase hex digits, deletion never
    follows a symlink nor leaves the copy's own paths, and a store that does not look like what
    containers/storage writes fails the task with nothing deleted.
seealso:
  - name: containers/storage pull request 2346
    description: Idmapped mounts for any ID map (containers/storage 1.59, Podman 5.6).
    link: https://github.com/containers/storage/pull/2346
"""

EXAMPLES = r"""
- name: Show the mapped copies and inode use of the store
  idmapguard.storage.mapped_layers:
  register: copies

- name: Remove unused copies older than ten minutes, except those for the service map
  idmapguard.storage.mapped_layers:
    state: pruned
    min_age: 600
    keep_maps:
      - uidmap: "0:1065537:65536,531571:531571:1"
        gidmap: "0:1065537:65536,531571:531571:1"

- name: Remove unused copies of the store the verify role found, passed whole
  idmapguard.storage.mapped_layers:
    state: pruned
    location: "{{ ansible_facts.idmapguard.store_location }}"

- name: Remove unused copies of one image only, on a store Podman does not know about
  idmapguard.storage.mapped_layers:
    state: pruned
    location:
      graphroot: /srv/containers/storage
      runroot: /run/containers/storage
    images:
      - localhost/app:latest
"""

RETURN = r"""
location:
  description: The location of the store acted on, whole (what O(location) takes).
  returned: always
  type: dict
  sample: {"graphroot": "/var/lib/containers/storage", "runroot": "/run/containers/storage",
           "imagestore": null, "transient_store": false, "additional_image_stores": [], "driver": "overlay"}
store:
  description: The store acted on and where its location came from (parameters, podman, storage.conf).
  returned: always
  type: dict
  sample: {"graphroot": "/var/lib/containers/storage", "runroot": "/run/containers/storage",
           "imagestore": null, "transient_store": false, "additional_image_stores": [], "driver": "overlay",
           "source": "podman"}
filesystem:
  description: Inode and byte usage of the graph root's filesystem (after the prune when one ran).
  returned: always
  type: dict
  sample: {"inodes_total": 4096, "inodes_used": 4090, "inodes_free": 6,
           "bytes_total": 200000000, "bytes_used": 1000000, "bytes_free": 199000000}
images:
  description: Each image with its top layer and mapped layers.
  returned: state=report
  type: list
  elements: dict
copies:
  description:
    - Each mapped copy, with its image, uid/gid map, whether it is in use and why, its age, and the
      inodes and bytes it holds.
  returned: state=report
  type: list
  elements: dict
  sample: [{"layer_id": "2f0c...", "image_id": "9a1b...", "image_name": "localhost/bb:300",
            "uidmap": "0:1065537:65536,531571:531571:1", "gidmap": "0:1065537:65536,531571:531571:1",
            "in_use": true, "why": ["parent of layer 5d2e... (container 77aa...)"], "inodes": 321, "bytes": 1400000}]
mapped_copies:
  description: Number of mapped copies.
  returned: state=report
  type: int
mapped_copy_inodes:
  description: Inodes the mapped copies hold.
  returned: state=report
  type: int
mapped_copy_bytes:
  description: Bytes the mapped copies hold.
  returned: state=report
  type: int
plan:
  description: The copies selected for removal before the store was locked for writing.
  returned: state=pruned
  type: dict
removed:
  description: The copies removed (in check mode, the copies that would be removed).
  returned: state=pruned
  type: list
  elements: dict
not_removed:
  description:
    - Planned copies left alone, with C(reason) (V(in use), V(mounted), V(gone), V(cannot stage),
      V(undeletable)) and C(why).
    - V(undeletable) is the pre-flight's finding, made in the walk that measures each copy after the
      locks are released (an inode flag that forbids unlinking, C(chattr +i) or C(+a), on any entry; a
      directory whose entries cannot be removed), or a flag that changed between that walk and the
      staging step. Its C(why) names the entry and the flag, as C(undeletable) then the path then
      C(immutable) or C(append-only), separated by colons.
      Such a copy is left whole (records, mapped-layers entry, data); the rest of the run goes on.
    - Formerly C(skipped), a key Ansible reserves for a skipped task (a non-empty
      list made the task count as skipped).
  returned: state=pruned
  type: list
  elements: dict
changes:
  description: What was changed, in order (JSON files, copies staged, staged entries deleted).
  returned: state=pruned and not check mode
  type: list
  elements: str
staging_left:
  description: Staged data that could not be deleted (e.g. a mount point inside), with why; the store
    is unaffected and the next run tries again.
  returned: state=pruned and not check mode
  type: list
  elements: dict
stranded:
  description:
    - Staged data that could not be deleted, kept in C(<graphroot>/idmapguard-staging/stranded-*) under
      names that say why (C(<layer>.overlay.stranded-EPERM)). Each with C(path), C(errno), C(blocked_by)
      (the entry that failed) and C(what_to_do). It is no longer part of the store; each later run
      tries once more (RV(stranded_retried)). With O(state=report), the stranded entries found.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/lib/containers/storage/idmapguard-staging/stranded-1a2b/2f0c.overlay.stranded-EPERM",
            "errno": "EPERM", "blocked_by": "/var/lib/containers/storage/idmapguard-staging/stranded-1a2b/2f0c.overlay/diff/x",
            "what_to_do": "an inode flag forbids deleting it: lsattr -d ...; chattr -i -a ..., then run again"}]
stranded_retried:
  description: One line per stranded run this run tried again (entries deleted, still stranded and why).
  returned: state=pruned and not check mode
  type: list
  elements: str
recovered:
  description: Staging directories left by a prune that was killed, deleted by this run.
  returned: state=pruned and not check mode
  type: list
  elements: dict
lock_seconds:
  description: How long the store's write locks were held (all batches together; each batch of copies has its own short hold).
  returned: state=pruned and not check mode
  type: float
walk_seconds:
  description:
    - How long the pre-flight walk took in its own low-priority child process. It walks the next batch of
      copies while the batch before is deleted, so this time overlaps the deletion.
  returned: state=pruned and not check mode
  type: float
walk_waited_seconds:
  description: How long the prune waited for that walk (mostly the first batch's, which nothing overlaps).
  returned: state=pruned and not check mode
  type: float
staging:
  description: Staging directories of killed prunes still to be deleted (the next prune does it).
  returned: state=report
  type: list
  elements: str
consistency:
  description:
    - V(consistent), or V(inconsistent) when the store fails the consistency gate (a layer file that
      does not parse as c/storage writes it, an emptied C(layers.json) while images exist, an image's
      top layer or a mapped layer missing from the layer files, a layer whose parent is missing).
      An inconsistent store lists no copies, and O(state=pruned) fails on it with nothing changed.
  returned: state=report
  type: str
inconsistencies:
  description: What the consistency gate found, first one first (empty when consistent).
  returned: state=report
  type: list
  elements: str
sizes:
  description: How copy sizes were found (V(measured), V(estimate)).
  returned: state=report
  type: str
inodes_freed:
  description: Inodes held by the removed copies (in check mode, by the planned ones).
  returned: state=pruned
  type: int
bytes_freed:
  description: Bytes held by the removed copies (in check mode, by the planned ones).
  returned: state=pruned
  type: int
freed_first:
  description: Paths removed first to get a free inode on a full filesystem (empty otherwise).
  returned: state=pruned and not check mode
  type: list
  elements: str
fs_before:
  description: Filesystem usage before the prune.
  returned: state=pruned and not check mode
  type: dict
fs_after:
  description: Filesystem usage after the prune.
  returned: state=pruned and not check mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import module_runner
from ansible_collections.idmapguard.storage.plugins.module_utils.mapped_layers import (
    MappedLayersError, argument_spec, run,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run(module.params, module_runner(module), module.check_mode)
    except MappedLayersError as exc:
        module.fail_json(msg="mapped_layers: %s" % exc)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
