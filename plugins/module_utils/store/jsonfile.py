# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and write the JSON lists of a store, keeping every field we do not know.

Writing matches pkg/ioutils.AtomicWriteFile as layers.go/images.go use it: a temp file in the
same directory, fsynced, renamed over the old file, so a reader sees the old or the new list
and never half of one. The rename needs one free inode for the temp file (see prune.py for how
a store at 0 free inodes gets one).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
from typing import Any, Dict, List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.file_io import replace_file
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError, TamperedStoreError


def read_json_list(path: str, missing_ok: bool = True) -> Optional[List[Dict[str, Any]]]:
    """The list of objects in ``path``; None when it does not exist (and ``missing_ok``).

    An empty file is an empty list, as c/storage treats it (``len(data) == 0``).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise StoreError("%s does not exist" % path)
    except OSError as exc:
        raise StoreError("cannot read %s: %s" % (path, exc))
    if not data.strip():
        return []
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TamperedStoreError("%s is not valid JSON: %s" % (path, exc))
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TamperedStoreError("%s is not a JSON list of objects" % path)
    return value


def write_json_list(path: str, records: List[Dict[str, Any]], mode: int = 0o600) -> None:
    """Replace ``path`` atomically with ``records`` (compact, like Go's json.Marshal)."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, ".%s.idmapguard-tmp" % os.path.basename(path))
    data = json.dumps(records, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    try:
        replace_file(path, data, mode, tmp=tmp)
    except OSError as exc:
        raise StoreError("cannot write %s: %s" % (path, exc))
    fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
