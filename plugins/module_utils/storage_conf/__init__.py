# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage_conf module's backend (host side): its argument spec, defined once, and `run()`.

The action plugin (plugins/action/storage_conf.py) edits the TOML on the controller and sends, in
the internal `_edit` option, the edited text along with the checksum of the text it edited, so a
file changed by someone else in between is never overwritten. `run()` refuses edits that would
orphan or break the store (`safety`), has Podman judge the candidate, writes it (`write`) and
says what undoes it. Every failure is a StorageConfError (`errors`); the module turns it into
fail_json at its one place.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import Runner
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    DEFAULT_STORAGE_CONF,
    VENDOR_STORAGE_CONF,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf.errors import (
    StorageConfConflict,
    StorageConfError,
    StorageConfInvalid,
    StorageConfMisuse,
    StorageConfRefused,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf.safety import (
    check_safety,
    clear_marker,
    podman_store,
    validation_env,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf.write import (
    backup,
    read_bytes,
    replace,
    restore,
    sha1_of,
    undo_of,
    write_candidate,
)

__all__ = ["StorageConfError", "StorageConfConflict", "StorageConfInvalid", "StorageConfMisuse",
           "StorageConfRefused", "argument_spec", "user_argument_spec", "run"]

# Where `podman` is looked for besides PATH (Ansible's get_bin_path adds the sbin directories).
EXTRA_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
RunnerFor = Callable[[Dict[str, str]], Runner]


def user_argument_spec() -> Dict[str, Any]:
    """The options a task gives; the action plugin validates them with this same spec."""
    return dict(
        path=dict(type="path", default=DEFAULT_STORAGE_CONF),
        vendor_path=dict(type="path", default=VENDOR_STORAGE_CONF),
        settings=dict(type="dict", default={}),
        absent=dict(type="list", elements="str", default=[]),
        backup=dict(type="bool", default=False),
        validate=dict(type="bool", default=True),
        allow_store_change=dict(type="bool", default=False),
        dropin=dict(type="bool", default=False),
    )


def argument_spec() -> Dict[str, Any]:
    """The module's spec: the user options plus what the action plugin sends."""
    spec = user_argument_spec()
    # Sent by the action plugin only: content, source, source_sha1, changed_keys,
    # store_before, store_after, dropin_sets (see plugins/action/storage_conf.py).
    spec["_edit"] = dict(type="dict")
    return spec


def find_podman() -> Optional[str]:
    path = os.pathsep.join([os.environ.get("PATH", "")] + list(EXTRA_BIN_DIRS))
    return shutil.which("podman", path=path)


def _require_podman(what: str) -> str:
    podman = find_podman()
    if not podman:
        raise StorageConfError("podman is not installed (or not in PATH), so it cannot %s; nothing changed" % what)
    return podman


def _store_in_use(runner_for: RunnerFor, podman: str) -> Dict[str, Any]:
    """The store settings Podman uses now, from every file it reads: what a drop-in changes."""
    try:
        return podman_store(runner_for({}), podman, None)
    except StorageConfInvalid as exc:
        raise StorageConfError("cannot ask Podman which store settings it uses now, so the drop-in cannot be "
                               "judged; nothing changed: %s" % exc)


def _check_dropin_wins(path: str, previous: Optional[bytes], dropin_sets: Dict[str, Any],
                       podman: Dict[str, Any]) -> None:
    """After the write: Podman must use the mount program our drop-in sets. A file read after it
    that sets mount_program (a later drop-in; the driver-less spelling is not in the facts) would
    override it: put the drop-in back as it was and refuse."""
    if "mount_program" not in dropin_sets:
        return
    wanted, used = dropin_sets["mount_program"] or None, podman.get("mount_program") or None
    if wanted != used:
        restore(path, previous)
        raise StorageConfRefused(
            "refusing %s: it sets mount_program = %r but Podman still uses %r, so a storage.conf file it reads "
            "later sets it (drop-ins are read sorted by file name across the drop-in directories). %s was put "
            "back as it was; nothing changed." % (path, wanted or "", used or "", path))


def run(params: Dict[str, Any], check_mode: bool, runner_for: RunnerFor,
        podman: Optional[str] = None) -> Dict[str, Any]:
    """The storage_conf module: the result for exit_json (with `warnings` for module.warn), or a
    StorageConfError saying what was (not) changed. `runner_for(env)` runs a command with `env`
    added to its environment; `podman` is found on the host unless given."""
    try:
        return _apply(params, check_mode, runner_for, podman)
    except OSError as exc:
        raise StorageConfError("cannot write %s: %s" % (params["path"], exc))


def _apply(params: Dict[str, Any], check_mode: bool, runner_for: RunnerFor,
           podman: Optional[str]) -> Dict[str, Any]:
    path = params["path"]
    edit = params["_edit"]
    if not edit or edit.get("content") is None:
        raise StorageConfMisuse("storage_conf runs through its action plugin; call it as idmapguard.storage.storage_conf")
    content = edit["content"].encode("utf-8")
    store_before = edit.get("store_before") or {}
    store_after = edit.get("store_after") or {}
    result = dict(changed=False, path=path, source=edit.get("source") or path,
                  changed_keys=edit.get("changed_keys") or [], warnings=[])  # type: Dict[str, Any]

    # The controller edited what it read; refuse to overwrite anything else.
    source_path = edit.get("source") or path
    existing = read_bytes(path)
    if source_path != path and existing is not None:
        raise StorageConfConflict("%s appeared on the host while it was being edited; run again" % path)
    if edit.get("source_sha1") is not None:
        current = read_bytes(source_path)
        if (sha1_of(current) if current is not None else "") != edit["source_sha1"]:
            raise StorageConfConflict("%s changed on the host while it was being edited; run again" % source_path)

    if existing == content:
        return result

    dropin_sets = edit.get("dropin_sets") or {}
    if params["dropin"]:
        podman = podman or _require_podman("judge what a drop-in changes")
        store_before = _store_in_use(runner_for, podman)
        store_after = dict(store_before, **dropin_sets)
    safety = check_safety(store_before, store_after, params["allow_store_change"])
    result["store_changes"] = safety.store_changes
    if safety.marker is not None:
        result["mount_program_marker"] = dict(path=safety.marker.path, content=safety.marker.content,
                                              cleared=safety.marker.clear, reason=safety.marker.reason)
    result["changed"] = True
    result["undo"] = undo_of(path, existing)
    if check_mode:
        return result

    if params["validate"]:
        podman = podman or _require_podman("judge the edited file")
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    tmp = write_candidate(path, content)
    try:
        if params["validate"]:
            scratch = tempfile.mkdtemp(prefix="idmapguard-storage-conf.")
            try:
                if params["dropin"]:
                    # with every file Podman reads, the candidate last
                    podman_store(runner_for(validation_env(None, scratch, dropin=tmp)), podman, None)
                else:
                    podman_store(runner_for(validation_env(tmp, scratch)), podman, tmp)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        if params["backup"] and existing is not None:
            result["backup_file"] = backup(path)
        replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if params["validate"]:
        # Read the file where it now is, the way every later Podman command reads it: Podman
        # fills defaults differently for CONTAINERS_STORAGE_CONF than for its default path.
        try:
            conf = None if path == DEFAULT_STORAGE_CONF or params["dropin"] else path
            result["podman"] = podman_store(runner_for(validation_env(conf)), podman, conf)
        except StorageConfInvalid as exc:
            restore(path, existing)
            raise StorageConfInvalid("%s (at %s; the previous file was put back)" % (exc, path))
        _check_dropin_wins(path, existing, dropin_sets, result["podman"])
        for key, wanted in sorted(store_after.items()):
            reported = result["podman"].get(key)
            if key in ("driver", "graphroot", "runroot") and wanted and reported and reported != wanted:
                # libpod keeps the values it first recorded in its database and prefers them.
                result["warnings"].append(
                    "storage.conf now says %s = %r but Podman still uses %r (recorded in libpod's database); "
                    "`podman system reset` makes it follow storage.conf" % (key, wanted, reported))
    if safety.marker is not None:
        result["mount_program_marker"]["cleared"] = clear_marker(safety.marker)
    return result
