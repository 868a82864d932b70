# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""storage_conf backend: write a file atomically, back it up, put it back, say what undoes it.

Standard library only: the candidate is written to a temporary file in the same directory (same
filesystem, so the final rename is atomic) and renamed over the old file with the old file's
mode, owner and SELinux label.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import os
import shutil
import stat
import tempfile
import time
from typing import Any, Dict, Optional

SELINUX_XATTR = "security.selinux"


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
    """A temporary file next to `path`, named `.<name>.*.tmp` (never `*.conf`, so Podman does not
    read it as a drop-in meanwhile)."""
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp",
                               dir=os.path.dirname(path) or ".")
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    # Readable by Podman like the final file; replace() gives it the old file's mode.
    os.chmod(tmp, 0o644)
    return tmp


def _copy_attributes(src_path: str, tmp: str) -> None:
    """Give TMP the mode, owner and SELinux label of the file it replaces."""
    try:
        info = os.stat(src_path)
    except FileNotFoundError:
        return
    os.chmod(tmp, stat.S_IMODE(info.st_mode))
    try:
        os.chown(tmp, info.st_uid, info.st_gid)
    except PermissionError:
        pass  # not root: the file stays ours, as it was
    try:
        os.setxattr(tmp, SELINUX_XATTR, os.getxattr(src_path, SELINUX_XATTR))
    except (OSError, AttributeError):
        pass  # no SELinux (or no label): nothing to keep


def replace(tmp: str, path: str) -> None:
    """Rename TMP over PATH, keeping PATH's mode, owner and SELinux label; the directory is synced
    so the rename survives a crash."""
    _copy_attributes(path, tmp)
    os.rename(tmp, path)
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(path: str) -> str:
    """A date-marked copy next to PATH (the naming of Ansible's backup_local)."""
    dest = "%s.%d.%s~" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S"))
    shutil.copy2(path, dest)
    return dest


def restore(path: str, previous: Optional[bytes]) -> None:
    """Put back the file as it was before the write (remove it if there was none)."""
    if previous is None:
        os.unlink(path)
        return
    replace(write_candidate(path, previous), path)
