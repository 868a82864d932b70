# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""storage_conf backend: check, validate, write atomically; the module's argument spec.

The action plugin sends, in the internal `_edit` option, the edited text along with the checksum
of the text it edited, so a file changed by someone else in between is never overwritten.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import os
import shutil
import stat
import tempfile
from typing import Any, Dict, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import module_runner
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    DEFAULT_STORAGE_CONF,
    VENDOR_STORAGE_CONF,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf.safety import (
    StorageConfInvalid,
    StorageConfRefused,
    check_safety,
    clear_marker,
    podman_store,
    validation_env,
)


class StorageConfConflict(Exception):
    """The file changed on the host after the controller read it."""


class StorageConfMisuse(Exception):
    """The module was called without its action plugin (no edit to apply)."""


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
    )


def argument_spec() -> Dict[str, Any]:
    """The module's spec: the user options plus what the action plugin sends."""
    spec = user_argument_spec()
    # Sent by the action plugin only: content, source, source_sha1, changed_keys,
    # store_before, store_after (see plugins/action/storage_conf.py).
    spec["_edit"] = dict(type="dict")
    return spec


def sha1_of(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # nosec: change detection, not security


def read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def undo_of(path: str, previous: Optional[bytes]) -> Dict[str, Any]:
    """What puts PATH back as it was before this write: its content, mode and owner, or that it
    did not exist. The rollout's rollback writes (or removes) exactly this; TOML is UTF-8."""
    if previous is None:
        return {"path": path, "existed": False, "content": None, "mode": None, "owner": None, "group": None}
    info = os.stat(path)
    return {"path": path, "existed": True, "content": previous.decode("utf-8"),
            "mode": "%04o" % stat.S_IMODE(info.st_mode), "owner": str(info.st_uid), "group": str(info.st_gid)}


def write_candidate(path: str, content: bytes) -> str:
    """A temporary file next to `path` (same filesystem, so the final rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp",
                               dir=os.path.dirname(path) or ".")
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    # Readable by Podman like the final file; atomic_move copies the old file's mode anyway.
    os.chmod(tmp, 0o644)
    return tmp


def apply(module: Any) -> Dict[str, Any]:
    """Everything between the parameters and exit_json; raises the domain exceptions."""
    p = module.params
    path = p["path"]
    edit = p["_edit"]
    if not edit or edit.get("content") is None:
        raise StorageConfMisuse("storage_conf runs through its action plugin; call it as idmapguard.storage.storage_conf")
    content = edit["content"].encode("utf-8")
    store_before = edit.get("store_before") or {}
    store_after = edit.get("store_after") or {}
    result: Dict[str, Any] = dict(changed=False, path=path, source=edit.get("source") or path,
                                  changed_keys=edit.get("changed_keys") or [])

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

    safety = check_safety(store_before, store_after, p["allow_store_change"])
    result["store_changes"] = safety.store_changes
    if safety.marker is not None:
        result["mount_program_marker"] = dict(path=safety.marker.path, content=safety.marker.content,
                                              cleared=safety.marker.clear, reason=safety.marker.reason)
    result["changed"] = True
    result["undo"] = undo_of(path, existing)
    if module.check_mode:
        return result

    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    podman = module.get_bin_path("podman", required=p["validate"])
    tmp = write_candidate(path, content)
    try:
        if p["validate"]:
            scratch = tempfile.mkdtemp(prefix="idmapguard-storage-conf.")
            try:
                podman_store(module_runner(module, validation_env(tmp, scratch)), podman, tmp)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        if p["backup"] and existing is not None:
            result["backup_file"] = module.backup_local(path)
        module.atomic_move(tmp, path, unsafe_writes=False)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if p["validate"]:
        # Read the file where it now is, the way every later Podman command reads it: Podman
        # fills defaults differently for CONTAINERS_STORAGE_CONF than for its default path.
        try:
            conf = None if path == DEFAULT_STORAGE_CONF else path
            result["podman"] = podman_store(module_runner(module, validation_env(conf)), podman, conf)
        except StorageConfInvalid as exc:
            restore(module, path, existing)
            raise StorageConfInvalid("%s (at %s; the previous file was put back)" % (exc, path))
        for key, wanted in sorted(store_after.items()):
            reported = result["podman"].get(key)
            if key in ("driver", "graphroot", "runroot") and wanted and reported and reported != wanted:
                # libpod keeps the values it first recorded in its database and prefers them.
                module.warn("storage.conf now says %s = %r but Podman still uses %r (recorded in libpod's "
                            "database); `podman system reset` makes it follow storage.conf" % (key, wanted, reported))
    if safety.marker is not None:
        result["mount_program_marker"]["cleared"] = clear_marker(safety.marker)
    return result


def restore(module: Any, path: str, previous: Optional[bytes]) -> None:
    """Put back the file as it was before the write (remove it if there was none)."""
    if previous is None:
        os.unlink(path)
        return
    tmp = write_candidate(path, previous)
    module.atomic_move(tmp, path, unsafe_writes=False)


def run_module(module: Any) -> None:
    """The one place where domain errors become fail_json."""
    try:
        result = apply(module)
    except StorageConfRefused as exc:
        module.fail_json(msg=str(exc), refused=True, changed=False)
    except StorageConfInvalid as exc:
        module.fail_json(msg="Podman rejects the edited file, nothing changed: %s" % exc, changed=False)
    except (StorageConfConflict, StorageConfMisuse) as exc:
        module.fail_json(msg=str(exc), changed=False)
    except OSError as exc:
        module.fail_json(msg="cannot write %s: %s" % (module.params["path"], exc), changed=False)
    module.exit_json(**result)
