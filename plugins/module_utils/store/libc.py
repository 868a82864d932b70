# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The C library, loaded once for the few calls Python's os module lacks (statx,
name_to_handle_at, the ioprio syscalls); None where it cannot be loaded, and callers fall back."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import ctypes
import ctypes.util
import errno
import os
from typing import Any, Optional, Tuple


def _load():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


LIBC = _load()

# include/uapi/linux/fcntl.h and stat.h
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
STATX_BASIC_STATS = 0x000007ff
STATX_MNT_ID = 0x00001000
STATX_ATTR_IMMUTABLE = 0x00000010
STATX_ATTR_APPEND = 0x00000020


class Statx(ctypes.Structure):
    """struct statx (include/uapi/linux/stat.h), 0x100 bytes; offsets in the comments.
    The four timestamps (struct statx_timestamp, 16 bytes each) are not read here."""
    _fields_ = [("stx_mask", ctypes.c_uint32), ("stx_blksize", ctypes.c_uint32),  # 0x00
                ("stx_attributes", ctypes.c_uint64),  # 0x08
                ("stx_nlink", ctypes.c_uint32), ("stx_uid", ctypes.c_uint32),  # 0x10
                ("stx_gid", ctypes.c_uint32), ("stx_mode", ctypes.c_uint16), ("_spare0", ctypes.c_uint16),
                ("stx_ino", ctypes.c_uint64), ("stx_size", ctypes.c_uint64),  # 0x20
                ("stx_blocks", ctypes.c_uint64), ("stx_attributes_mask", ctypes.c_uint64),  # 0x30
                ("stx_times", ctypes.c_uint8 * 64),  # 0x40: atime, btime, ctime, mtime
                ("stx_rdev_major", ctypes.c_uint32), ("stx_rdev_minor", ctypes.c_uint32),  # 0x80
                ("stx_dev_major", ctypes.c_uint32), ("stx_dev_minor", ctypes.c_uint32),
                ("stx_mnt_id", ctypes.c_uint64),  # 0x90
                ("_spare", ctypes.c_uint8 * 104)]  # 0x98 .. 0x100


_STATX = getattr(LIBC, "statx", None) if LIBC is not None else None
if _STATX is not None:
    _STATX.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Statx)]
    _STATX.restype = ctypes.c_int


def statx(dir_fd: int, name: str, flags: int, mask: int) -> Optional[Statx]:
    """statx(2) of ``name`` relative to ``dir_fd`` (``""`` with AT_EMPTY_PATH: the fd itself).

    None where there is no statx (libc before glibc 2.28, ENOSYS from a kernel before 4.11,
    EPERM from a container's seccomp filter of before statx): the caller falls back. Raises OSError for what stat would raise."""
    if _STATX is None:
        return None
    buf = Statx()
    if _STATX(dir_fd, os.fsencode(name), flags, mask, ctypes.byref(buf)) == 0:
        return buf
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):  # stat itself never says EPERM; old seccomp filters do
        return None
    raise OSError(err, os.strerror(err), name)


def statx_buffer() -> Optional[Tuple[Any, Statx, Any]]:
    """(the raw statx function, one Statx buffer, a pointer to it), for a walk that stats every
    entry: a new structure per call, and this module's wrapper around it, cost a third of the
    pre-flight walk's CPU (make bench-prune). The caller passes the name as bytes, reads the
    return value (0, else -1 and ``ctypes.get_errno()``) and the buffer before its next call.
    None where there is no statx in libc."""
    if _STATX is None or LIBC is None:
        return None
    buf = Statx()
    # A function object of its own without argtypes: ctypes then passes the ints and bytes as
    # they are instead of checking them on every call (0.6 us a call here against 1.0 us).
    return LIBC["statx"], buf, ctypes.byref(buf)
