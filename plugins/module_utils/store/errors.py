# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the store library. The module turns each into one fail_json message."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name


class StoreError(Exception):
    """The store cannot be read or changed (missing files, I/O errors, lock failures)."""


class TamperedStoreError(StoreError):
    """Store metadata or layout is not what containers/storage writes; nothing is deleted."""


class NoFreeInodeError(StoreError):
    """The store has no free inode and none could be freed without touching metadata."""


class MountedError(StoreError):
    """A path to delete is or holds a mount point; deletion stopped before crossing it."""


class DeleteError(StoreError):
    """An entry could not be deleted: ``errno_name`` (EPERM, EBUSY, ...) and ``relpath``, the
    entry that failed, relative to the parent of the tree being deleted."""

    def __init__(self, message: str, errno_value: int, relpath: str) -> None:
        super().__init__(message)
        self.errno_value = errno_value
        self.relpath = relpath

    @property
    def errno_name(self) -> str:
        import errno as errno_module
        return errno_module.errorcode.get(self.errno_value, "E%d" % self.errno_value)
