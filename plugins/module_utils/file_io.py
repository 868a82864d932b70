# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file primitives the host side shares: read a text file that may be absent, replace a file
atomically, and a file's sha256.

Callers turn the OSError into their own error type (StoreError, MetricsError, ...), because each
says what a failed write means for its own data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import os
import tempfile
from typing import Optional


def read_text(path: str) -> Optional[str]:
    """The text of the file at ``path``; None when it cannot be read (absent, unreadable, not text)."""
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def sha256_file(path: str) -> str:
    """The hex sha256 of the file at ``path`` (read in 64 KiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def replace_file(path: str, data: bytes, mode: int, tmp: Optional[str] = None) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, give it ``mode`` and rename it
    over ``path``, so a reader sees the old or the new content, never half of one.

    ``tmp`` names the temp file (a fixed name a caller can recognise and clean up); without it
    a unique ``.NAME.*.tmp`` is made, which no ``*.NAME``-matching reader picks up. On failure
    the temp file is removed and the OSError raised; ``path`` is then unchanged.
    """
    directory = os.path.dirname(path) or "."
    if tmp is None:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
