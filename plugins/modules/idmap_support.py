#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
---
module: idmap_support
short_description: Tell whether a Podman host shares image layers across non-contiguous ID maps
version_added: 0.1.0
description:
  - Gathers, once, what decides whether rootful Podman on this host stores a full chowned copy of an
    image's top layer for every distinct non-contiguous C(--uidmap)/C(--gidmap) (containers/storage
    before 1.59, Podman before 5.6), and returns a verdict with every obstacle found and a remedy.
  - The kernel and filesystem are judged by the C(idmapped-mount) helper's C(probe) on the filesystem
    holding graphroot (an idmapped mount with the map, and overlay on top of it). Deploy the helper
    with the C(idmapguard.storage.helper) role first.
  - Podman's settings come from C(podman info --format json); when Podman fails or is missing they are
    read from C(storage.conf). (C(podman info) itself still answers at 0 free inodes with Podman 4.3 and 5.8;
    C(podman create) does not.)
  - At 0 free inodes the probe cannot create its scratch directory on graphroot's filesystem (ENOSPC); the
    verdict then falls back to release-number rules, says so in a warning and in its reasons.
  - Mapped copies are counted with the collection's store library (the same reader the remediation uses).
  - Without O(canary) the module changes nothing and reports C(changed=false). With O(canary=true) it
    imports a tiny image built from a few files, creates (never starts) a container with the
    non-contiguous map, counts the store's mapped copies before and after, and removes the container
    and the image (which removes any copy). It then reports C(changed=true), because it created and
    removed those objects, even though the store is left as it was found (C(canary.store_restored)).
  - The canary never runs in check mode.
  - With O(proof=true), where the verdict (after the canary) is C(shares), the correctness proof runs. It builds a
    small image offline from the host's own programs (BusyBox if present, else C(sh), C(stat), C(cat), C(touch),
    C(chown), C(true) with the shared libraries they load), starts a container with the non-contiguous map,
    commits it and starts a container of the committed image, and checks C(start), C(ownership), C(file_caps)
    and C(commit) from inside and outside (RV(proof.checks)). Everything it made is removed again. It never runs
    in check mode (RV(proof.would_run) says whether it would).
  - The proof also runs, with O(proof=true), where the only obstacle is C(_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes) set in
    units or files (this module's Podman does not see it, so it shares); when a check fails there, the variable is
    needed and is reported as kept on purpose (C(disable_idmap_deliberate)), and the configure role keeps it.
  - Every object the canary and the proof make is named C(idmapguard-canary-<pid>-<start time>-<token>); each run
    first removes the objects of runs whose process is gone (a killed run), never those of a live one.
  - The verdict rules and the Podman to containers/storage version table are documented in
    C(docs/verdicts.md) of the collection.
author:
  - idmapguard contributors (@idmapguard)
requirements:
  - Python 3.8 or later on the host (standard library only).
  - The C(idmapped-mount) helper on the host (see O(helper)).
  - Root on the host (the probe mounts; Podman is rootful).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: In check mode the canary is skipped (with a warning); everything else is read-only anyway.
  diff_mode:
    support: none
    details: The module edits no file, so there is nothing to diff.
  facts:
    support: full
  platform:
    platforms: posix
options:
  helper:
    description:
      - Path of the C(idmapped-mount) helper on the host.
      - The module fails, saying to deploy it, when it is not there.
    type: path
    default: /usr/local/libexec/idmapguard/idmapped-mount
  helper_missing:
    description:
      - What a missing O(helper) does.
      - C(fail) fails the module, saying to deploy the helper.
      - C(report) returns the facts anyway, with kernel and filesystem support guessed from the
        release number (C(kernel.probe) holds the error) and RV(helper.present=false), for a caller
        that installs the helper next and then runs this module again (the rollout playbook does).
    type: str
    choices: [fail, report]
    default: fail
  uidmap:
    description:
      - UID map for the probe and the canary, in Podman's C(container:host:size[,...]) syntax.
      - Validated like the helper validates it. Should be non-contiguous (more than one extent),
        since that is the case older containers/storage copies.
    type: str
    default: "0:1065537:65536,531571:531571:1,19997967:19997967:1"
  gidmap:
    description:
      - GID map for the probe and the canary, same syntax as O(uidmap).
    type: str
    default: "0:1065537:65536,531571:531571:1,19997967:19997967:1"
  canary:
    description:
      - Run the live canary (see the description). Never in check mode.
    type: bool
    default: false
  proof:
    description:
      - Run the correctness proof (see the description) where the verdict is C(shares). Never in check mode.
      - A failed check does not fail the module; it is reported in RV(proof) and as a warning, with the
        upstream reference and the workaround.
    type: bool
    default: false
  proof_accept:
    description:
      - Proof checks whose failure is reported but does not make RV(proof.passed) false (a known upstream bug
        this fleet accepts, for example C(commit) where no one commits containers).
    type: list
    elements: str
    choices: [start, ownership, file_caps, commit]
    default: []
  proof_strict:
    description:
      - Every proof check must hold. By default a check that fails exactly as a known upstream bug predicts for this
        Podman version (the table in C(plugins/module_utils/known_issues.py), for example container-libs 1126 on
        C(commit) before Podman 6.1.2) is reported in RV(proof.known_issues) and does not make RV(proof.passed)
        false; with O(proof_strict=true) it does.
    type: bool
    default: false
  proof_disable_idmap:
    description:
      - Run the correctness proof also where O(proof=false), but only where the one obstacle is
        C(_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes) set in units or files (not in this module's environment); the proof
        then tells whether the variable is needed before the configure role removes it (RV(podman.disable_idmap_env.kept)),
        in the same call as the facts. Never in check mode.
      - The rollout playbook sets it on its first verify where the configure and proof steps are selected.
    type: bool
    default: false
  disable_idmap_reason:
    description:
      - Declare that C(_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes) is set on this host on purpose, and why (for example
        C(podman commit of setcap images, container-libs 1126)).
      - Where it is set, the reason C(disable_idmap_deliberate) replaces C(disable_idmap_env), RV(podman.disable_idmap_env.kept)
        holds the why, and the configure role leaves the variable in place.
    type: str
  podman_backport:
    description:
      - Declare that the installed Podman, although older than 5.6, carries the containers/storage
        change that shares layers across any map (a distribution backport of containers/storage PR 2346).
      - The podman_too_old reason is then not reported. Prefer proving it with O(canary=true).
    type: bool
    default: false
  podman:
    description:
      - The Podman executable (name looked up in E(PATH), or a path).
    type: str
    default: podman
  podman_args:
    description:
      - Global options put after the Podman executable in every call (for example
        C(--cgroup-manager=cgroupfs) on hosts without systemd).
    type: list
    elements: str
    default: []
  storage_conf:
    description:
      - storage.conf to read when Podman fails. By default the one containers/storage reads
        (E(CONTAINERS_STORAGE_CONF), C(/etc/containers/storage.conf), C(/usr/share/containers/storage.conf)).
    type: path
  units:
    description:
      - systemd units that start Podman, looked at besides Podman's own units (C(podman.service),
        C(podman-restart.service), C(podman-auto-update.service), C(podman-clean-transient.service),
        C(podman-kube@.service)) and the rootful quadlets (C(/etc/containers/systemd) and the like).
      - Each unit's files are read, not asked of systemd (unit file and drop-ins in systemd's order); where
        C(Environment=) or C(EnvironmentFile=) in C([Service]) sets E(CONTAINERS_STORAGE_CONF), Podman started by the
        unit reads that file alone. See RV(podman.unit_storage_conf) and the reason C(unit_storage_conf).
    type: list
    elements: str
    default: []
  metrics_dest:
    description:
      - Also look at the host's metrics file of M(idmapguard.storage.metrics_textfile) whose O(idmapguard.storage.metrics_textfile#module:dest)
        is this (C(auto), a directory, or an empty string), and return RV(metrics), so that a caller can tell
        without another round trip whether writing the host's metrics would change the file.
      - Not given, the file is not looked at.
    type: str
seealso:
  - name: containers/storage PR 2346 (idmapped mounts for any map)
    description: The upstream change released in containers/storage 1.59 and Podman 5.6.
    link: https://github.com/containers/storage/pull/2346
"""

EXAMPLES = r"""
- name: Judge every host (read-only)
  idmapguard.storage.idmap_support:

- name: Prove it with the live canary, with a map of your own
  idmapguard.storage.idmap_support:
    canary: true
    uidmap: "0:1065537:65536,531571:531571:1"
    gidmap: "0:1065537:65536,531571:531571:1"

- name: Hosts whose Podman build carries a backport, Podman without systemd
  idmapguard.storage.idmap_support:
    podman_backport: true
    podman_args: [--cgroup-manager=cgroupfs]

- name: Stop on hosts that cannot be fixed by configuration
  ansible.builtin.assert:
    that: ansible_facts.idmapguard.verdict in ['shares', 'fixable_by_config']
    fail_msg: "{{ ansible_facts.idmapguard.reasons | join('; ') }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts about this host, under the key C(idmapguard).
  returned: always
  type: dict
  contains:
    idmapguard:
      description: The same dictionary as the top-level return values listed below (verdict, reasons, ...).
      returned: always
      type: dict
      sample: {"verdict": "shares", "reasons": [], "reason_codes": [], "shares_noncontiguous": true}
verdict:
  description:
    - C(shares) non-contiguous maps already share the image's layers;
      C(fixable_by_config) kernel, filesystem and Podman are able but a setting stands in the way;
      C(needs_podman_upgrade) Podman's containers/storage copies layers for non-contiguous maps;
      C(unsupported_kernel) the kernel cannot make idmapped mounts or overlay on idmapped lowers;
      C(unsupported_filesystem) the filesystem holding graphroot cannot be idmapped on this kernel;
      C(copies_unexplained) every rule expects sharing but the canary's map was copied, or Podman says it will
      not shift; the cause is unknown and no upgrade or configuration change is recommended.
    - The most fundamental obstacle decides; see RV(reasons) for all of them.
  returned: always
  type: str
  sample: needs_podman_upgrade
reasons:
  description: Every obstacle found, one sentence each, most fundamental first.
  returned: always
  type: list
  elements: str
  sample: ["Podman 4.3.1 vendors containers/storage older than 1.59, which stores a chowned copy ..."]
reason_codes:
  description:
    - Machine-readable codes of RV(reasons), same order. One of C(kernel_no_mount_api), C(kernel_no_idmap),
      C(kernel_no_overlay_idmap), C(fs_no_idmap), C(podman_missing), C(podman_too_old), C(canary_copied),
      C(podman_no_shifting), C(driver_vfs), C(driver_not_overlay), C(mount_program), C(disable_idmap_env),
      C(disable_idmap_deliberate),
      C(no_userns), C(chrooted), C(probe_cache_stale), C(probe_cache_unproven), C(mount_program_marker), C(unit_storage_conf),
      C(additional_image_store).
  returned: always
  type: list
  elements: str
  sample: [podman_too_old]
remedy:
  description: What to do, in one sentence an operator can act on.
  returned: always
  type: str
shares_noncontiguous:
  description: Whether this host's stack shares image layers across non-contiguous maps (RV(verdict) is C(shares)).
  returned: always
  type: bool
kernel:
  description: The kernel, as the helper's probe found it on the filesystem holding graphroot.
  returned: always
  type: dict
  contains:
    release:
      description: Kernel release.
      returned: always
      type: str
      sample: 6.12.48+deb13-amd64
    idmapped_mount:
      description: An idmapped bind mount with the non-contiguous map works there.
      returned: always
      type: bool
    overlay_idmapped_lower:
      description: Overlay with that idmapped mount as a lower layer works there.
      returned: always
      type: bool
    probe:
      description:
        - The helper's probe JSON as printed (version, kernel, path, fs_type, uidmap, gidmap, checks).
        - "C({\"error\": \"...\"}) when the helper could not run the probe at all."
      returned: always
      type: dict
graphroot:
  description: The store's graph root and the filesystem holding it.
  returned: always
  type: dict
  contains:
    path:
      description: graphroot path.
      returned: always
      type: str
    fs_type:
      description: Filesystem type (from the probe's statfs).
      returned: always
      type: str
    inodes_total:
      description: Inodes of the filesystem.
      returned: always
      type: int
    inodes_used:
      description: Inodes in use.
      returned: always
      type: int
    inodes_free:
      description: Free inodes.
      returned: always
      type: int
    bytes_total:
      description: Size of the filesystem in bytes.
      returned: always
      type: int
    bytes_used:
      description: Bytes in use.
      returned: always
      type: int
    bytes_free:
      description: Bytes available.
      returned: always
      type: int
    mapped_copies:
      description: Number of ID-mapped copies of image top layers (C(mapped-layers) of images.json).
      returned: always
      type: int
    mapped_copy_inodes:
      description: Inodes those copies hold.
      returned: always
      type: int
guard:
  description:
    - What the on-host copy-cache guard (C(idmapguard-guard), installed by the C(remediate) role) last
      wrote to C(/var/lib/idmapguard/guard-state.json), or null when there is no guard on the host.
    - Keys C(budget) (C(budget_inodes), C(low_free_inodes), C(inodes_total)), C(cache) (C(copies),
      C(inodes), C(in_use_copies)), C(evictions) (C(total), C(inodes), C(recent)), C(filesystem),
      C(updated), C(pid), C(artifact) (C(path), C(sha256), C(version) of the archive the running guard started
      from; null when it runs from a checkout), and C(stale) (true when it has not written for 5 minutes;
      probably not running).
  returned: always
  type: dict
store_location:
  description:
    - Where the store is, whole (graphroot, runroot, imagestore, transient_store, additional_image_stores,
      driver), from the storage settings in effect. Pass it as it is to M(idmapguard.storage.mapped_layers)
      O(idmapguard.storage.mapped_layers#module:location); the remediate role and the guard take it by default.
  returned: always
  type: dict
  sample: {graphroot: /var/lib/containers/storage, runroot: /run/containers/storage, imagestore: null,
           transient_store: false, additional_image_stores: [], driver: overlay}
systemd:
  description:
    - Whether systemd is the host's init (C(/run/systemd/system) exists). The rollout installs the
      copy-cache guard, a systemd service, only where it is.
  returned: always
  type: bool
podman:
  description: Podman and its storage settings in effect.
  returned: always
  type: dict
  contains:
    version:
      description: Podman version, or null when it could not be determined.
      returned: always
      type: str
    driver:
      description: Graph driver.
      returned: always
      type: str
    mount_program:
      description: The overlay C(mount_program) in effect (for example fuse-overlayfs), or null.
      returned: always
      type: str
    graph_options:
      description: Graph driver options in effect, as C(key=value).
      returned: always
      type: list
      elements: str
    runroot:
      description: Run root of the store.
      returned: always
      type: str
    imagestore:
      description: Split image store, or null.
      returned: always
      type: str
    storage_conf:
      description: The storage.conf in effect (or null when there is none).
      returned: always
      type: str
    source:
      description: Where the settings came from, C(podman) (podman info) or C(storage.conf) (Podman failed).
      returned: always
      type: str
    origins:
      description:
        - Where each of C(driver), C(graphroot), C(runroot), C(imagestore), C(transient_store) and
          C(mount_program) came from - C(podman info), C(storage.conf <path>) (a split C(imagestore),
          which C(podman info) does not print, or everything when Podman failed) or C(default)
          (containers/storage's built-in value).
      returned: always
      type: dict
      sample: {driver: podman info, graphroot: podman info, imagestore: storage.conf /etc/containers/storage.conf}
    storage_conf_files:
      description:
        - Every storage.conf file this Podman reads, in order (a later file overrides an earlier one), each with
          C(path) and C(kind) - C(env) (C(CONTAINERS_STORAGE_CONF) of the module's process, then read alone;
          C(set_by) says who set it, C(process environment) or C(module option storage_conf)),
          C(main) (C(/etc/containers/storage.conf), else C(/usr/share/containers/storage.conf)) or C(drop-in)
          (C(storage.conf.d/) and C(storage.rootful.conf.d/) under C(/usr/share/containers) and C(/etc/containers),
          sorted by file name; Podman 5.5 and later).
      returned: always
      type: list
      elements: dict
    reads_dropins:
      description: Whether this Podman reads storage.conf drop-ins (null when its version is unknown).
      returned: always
      type: bool
    setting_files:
      description:
        - For C(driver), C(graphroot), C(runroot), C(imagestore), C(transient_store) and C(mount_program), the last
          file of RV(podman.storage_conf_files) that sets it, with C(file), C(kind), C(line) and C(value) (C(file) null
          and C(kind) C(default) when none does), and C(set_by) for a file named by E(CONTAINERS_STORAGE_CONF).
      returned: always
      type: dict
      sample: {mount_program: {file: /etc/containers/storage.conf.d/50-fuse.conf, kind: drop-in, line: 2,
               value: /usr/bin/fuse-overlayfs}}
    unit_storage_conf:
      description:
        - Per systemd unit that starts Podman and has files on the host (Podman's own units, the quadlets, O(units)) -
          C(unit), C(sources) (unit file, or quadlet file, then drop-ins, in the order systemd applies them),
          C(storage_conf) (null, or the unit's E(CONTAINERS_STORAGE_CONF) - C(path), and the C(file), C(line) and
          C(via) (C(Environment) or C(EnvironmentFile), then C(env_file) and C(env_file_line)) that set it),
          C(storage_conf_files) and C(setting_files) (as the keys above, for Podman started by that unit),
          C(same_files) (it reads the same files as the module's Podman), C(differs) (settings whose value differs
          from the module's) and C(copying) (the C(driver) other than overlay or C(mount_program) those files set).
      returned: always
      type: list
      elements: dict
      sample: [{unit: podman.service, same_files: false, differs: [mount_program],
                copying: {mount_program: /usr/bin/fuse-overlayfs},
                storage_conf: {path: /srv/podman/storage.conf, file: /etc/systemd/system/podman.service.d/10-conf.conf,
                               line: 2, via: Environment, source: unit, unit: podman.service}}]
    supports_shifting:
      description: Podman's own C(Supports shifting) from podman info, or null when it does not print it.
      returned: always
      type: bool
    graph_status:
      description: C(podman info)'s graph status as printed (C(Supports shifting), C(Native Overlay Diff), ...); empty from storage.conf.
      returned: always
      type: dict
    mount_program_marker:
      description:
        - graphroot's C(overlay/.has-mount-program) (C(path), C(content) or null) and the C(fuse_overlayfs) found
          in E(PATH), which containers/storage uses while the marker says C(true), configured or not.
      returned: always
      type: dict
    additional_image_stores:
      description: Read-only additional image stores in effect.
      returned: always
      type: list
      elements: str
    probe_cache:
      description:
        - The answers containers/storage cached in C(<runroot>/overlay) (C(<feature>-true) or C(-false)).
        - C(stale) lists the negative answers about C(overlay) or C(idmapped-lower-dir) that the helper's probe
          disproved; the configure role removes exactly those files.
      returned: always
      type: dict
      contains:
        dir:
          description: The cache directory, or null for a driver other than overlay.
          returned: always
          type: str
        present:
          description: The directory could be read.
          returned: always
          type: bool
        markers:
          description: Feature name to cached answer.
          returned: always
          type: dict
        files:
          description: Feature name to the file holding the answer.
          returned: always
          type: dict
        texts:
          description: Feature name to the text in its file, where there is one.
          returned: always
          type: dict
        negative_sharing:
          description: Features with a negative answer that makes containers/storage copy layers.
          returned: always
          type: list
          elements: str
        stale:
          description: Those of them the helper's probe disproved.
          returned: always
          type: list
          elements: str
    userns_available:
      description: Podman can create user namespaces (max_user_namespaces above 0 and not under a plain chroot).
      returned: always
      type: bool
    max_user_namespaces:
      description: C(/proc/sys/user/max_user_namespaces), or null.
      returned: always
      type: int
    chrooted:
      description: This process runs under a plain chroot.
      returned: always
      type: bool
    disable_idmap_env:
      description: Whether C(_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes) is set for Podman, and where.
      returned: always
      type: dict
      contains:
        set:
          description: The variable is set to C(yes) somewhere Podman sees it.
          returned: always
          type: bool
        where:
          description: Files (systemd units, drop-ins, environment files) or C(process environment).
          returned: always
          type: list
          elements: str
        kept:
          description:
            - Why the variable is there on purpose (O(disable_idmap_reason), or the proof checks that fail without it),
              or null. The configure role does not remove a variable that is kept.
          returned: always
          type: str
    backport_declared:
      description: The value of O(podman_backport).
      returned: always
      type: bool
metrics:
  description: The host's metrics file (see O(metrics_dest)). Not part of the host facts.
  returned: when O(metrics_dest) is given
  type: dict
  contains:
    dir:
      description: The directory O(metrics_dest) resolves to, or null when nothing would be written.
      returned: when O(metrics_dest) is given
      type: str
    sha256:
      description: The SHA-256 checksum of C(idmapguard_host.prom) there, or null when there is no such file.
      returned: when O(metrics_dest) is given
      type: str
helper:
  description:
    - What is installed at O(helper), so that a caller can tell an installed, current helper from one
      to (re)install without looking at the host again. Not part of the host facts.
  returned: always
  type: dict
  contains:
    path:
      description: The O(helper) path.
      returned: always
      type: str
    present:
      description: A regular file is there.
      returned: always
      type: bool
    sha256:
      description: Its SHA-256 checksum, or null.
      returned: always
      type: str
    version:
      description: What C(--version) printed (for example C(idmapped-mount 0.1.0)), or null when it did not run.
      returned: always
      type: str
    runs:
      description: C(--version) ran and succeeded.
      returned: always
      type: bool
    uid:
      description: Owner of the file, or null.
      returned: always
      type: int
    gid:
      description: Group of the file, or null.
      returned: always
      type: int
    mode:
      description: Permission bits of the file in octal (C(0755)), or null.
      returned: always
      type: str
    dir_uid:
      description: Owner of the directory holding it, or null when there is no such directory.
      returned: always
      type: int
    dir_gid:
      description: Group of that directory, or null.
      returned: always
      type: int
    dir_mode:
      description: Permission bits of that directory in octal, or null.
      returned: always
      type: str
    architecture:
      description: The host's machine architecture (C(uname -m)), which decides the binary it needs.
      returned: always
      type: str
      sample: x86_64
    probe_args:
      description:
        - The arguments after the helper binary of the probe this module ran (or would have run) on graphroot's
          filesystem. A caller that installs the helper afterwards runs it with these, and has the facts judged
          again on the controller (the rollout does, instead of a second call of this module).
      returned: always
      type: list
      elements: str
canary:
  description: The live canary's result, or null when it did not run.
  returned: always
  type: dict
  contains:
    ran:
      description:
        - Whether the canary ran to a conclusion. A canary that does not (Podman fails, a signal)
          makes the module fail, with the store cleaned up, so a returned result always says true;
          callers test it to tell a finished canary from C(canary=null) (not run).
      returned: when the canary ran
      type: bool
    image:
      description: The unique name of the canary's image (removed again).
      returned: when the canary ran
      type: str
    container:
      description: The unique name of the canary's container (removed again).
      returned: when the canary ran
      type: str
    uidmap:
      description: UID map used.
      returned: when the canary ran
      type: str
    gidmap:
      description: GID map used.
      returned: when the canary ran
      type: str
    new_mapped_layers:
      description: Mapped copies the container's creation added (0 means the layer was shared).
      returned: when the canary ran
      type: int
    new_mapped_layer_inodes:
      description: Inodes those copies held.
      returned: when the canary ran
      type: int
    inodes_delta:
      description: Inodes used on graphroot's filesystem after the canary minus before.
      returned: when the canary ran
      type: int
    store_restored:
      description:
        - The store's JSON (minus timestamps), its mapped copies and the inode count of its filesystem are as
          before, and the cleanup had no error.
        - On a store that never held an image, Podman creates a few lock files on first use, so the first canary
          there reports a small positive RV(canary.inodes_delta) and false here.
      returned: when the canary ran
      type: bool
    cleanup_errors:
      description: Errors of the cleanup steps, if any.
      returned: when the canary ran
      type: list
      elements: str
    error:
      description:
        - Why the canary did not reach a conclusion. Such a canary makes the module fail with this
          text in its message, so in a returned result it is null.
      returned: when the canary ran
      type: str
    leftovers_removed:
      description: Objects of earlier canary or proof runs whose process is gone (killed), removed first.
      returned: when the canary ran
      type: list
      elements: str
proof:
  description: The correctness proof's result, or null when O(proof) is false.
  returned: always
  type: dict
  contains:
    ran:
      description: The proof ran (false in check mode and where the verdict is not C(shares)).
      returned: when O(proof=true)
      type: bool
    would_run:
      description: In check mode or when it did not run, whether it would have run (the verdict is C(shares)).
      returned: when the proof did not run
      type: bool
    why:
      description: Why the proof ran (the verdict is C(shares), or only C(_CONTAINERS_OVERLAY_DISABLE_IDMAP) stands in the way).
      returned: when the proof ran
      type: str
    skipped:
      description: Why the proof did not run.
      returned: when the proof did not run
      type: str
    passed:
      description:
        - Every check passed, or failed and is listed in O(proof_accept), or failed exactly as a known upstream bug
          predicts for this Podman (unless O(proof_strict=true)); null when it did not run.
      returned: when O(proof=true)
      type: bool
    checks:
      description:
        - One entry per check, C(start), C(ownership), C(file_caps), C(commit), each with C(ok) (true, false, or
          null when not run because the container did not start), C(message), C(evidence) (what was seen
          inside and on disk), C(reference) (the upstream issue it guards against), C(problems) (what went wrong,
          each with a C(kind) and C(text)) and, when failed, C(workaround) and, when the failure is a known
          upstream bug on this Podman, C(known_issues).
      returned: when O(proof=true)
      type: dict
      sample: {"start": {"ok": true, "message": "the container started with the map", "evidence": {"rc": 0}}}
    failed_checks:
      description: Names of the checks whose C(ok) is not true.
      returned: when O(proof=true)
      type: list
      elements: str
    outcome:
      description: C(passed) (every check held), C(known_issue) (only known upstream bugs failed), C(failed); null when it did not run.
      returned: when O(proof=true)
      type: str
    known_issues:
      description:
        - Failed checks the known-issue table predicts on this Podman, each with its issues (C(id), C(title),
          C(reference), C(fixed_in), C(workaround)). With O(proof_strict=true) they are listed here and fail the proof.
      returned: when O(proof=true)
      type: dict
      sample: {"commit": [{"id": "container-libs#1126", "fixed_in": "Podman 6.1.2 (c/storage 1.64.1)"}]}
    summary:
      description: One line, for example C(passed with known upstream issues (failed - commit)); the checks and issue ids in brackets.
      returned: when the proof ran
      type: str
    strict:
      description: O(proof_strict) as the proof used it.
      returned: when the proof ran
      type: bool
    accepted_failures:
      description: Failed checks listed in O(proof_accept).
      returned: when the proof ran
      type: list
      elements: str
    ids:
      description: Container ids the proof's files are owned by (C(mapped), C(unmapped)) and the v3 capability's C(cap_rootid).
      returned: when the proof ran
      type: dict
    image_files:
      description: The host files copied into the proof's image.
      returned: when the proof ran
      type: list
      elements: str
    uidmap:
      description: UID map used.
      returned: when the proof ran
      type: str
    gidmap:
      description: GID map used.
      returned: when the proof ran
      type: str
    cleanup_errors:
      description: Errors of the cleanup steps, if any.
      returned: when the proof ran
      type: list
      elements: str
    leftovers_removed:
      description: Objects of earlier runs whose process is gone, removed first.
      returned: when the proof ran
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import module_runner
from ansible_collections.idmapguard.storage.plugins.module_utils.metrics_textfile import observe_host_file
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap_support import (
    ARGUMENT_SPEC,
    SupportError,
    SupportParams,
    gather,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(ARGUMENT_SPEC, metrics_dest=dict(type="str")),
        supports_check_mode=True,
    )
    metrics_dest = module.params.pop("metrics_dest")
    params = SupportParams(**module.params)
    if "/" not in params.podman:
        params.podman = module.get_bin_path(params.podman) or params.podman
    try:
        result = gather(params, module_runner(module), module.check_mode)
    except SupportError as exc:
        module.fail_json(msg=str(exc))
    else:
        for warning in result.warnings:
            module.warn(warning)
        extra = {} if metrics_dest is None else {"metrics": observe_host_file(metrics_dest)}
        module.exit_json(changed=result.changed, ansible_facts={"idmapguard": result.facts},
                         helper=result.helper, **dict(result.facts, **extra))


if __name__ == "__main__":
    main()
