# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage_conf module's one error type; the module turns it into fail_json at one place."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Dict


class StorageConfError(Exception):
    """The change was not made; the message says what, and what was (or was not) changed.

    `fields` are the extra keys of the failed result (for example `refused: true`)."""

    fields = {}  # type: Dict[str, Any]

    def message(self) -> str:
        return str(self)


class StorageConfRefused(StorageConfError):
    """The edit would orphan or break the container store, or a file Podman reads later would
    override it; nothing was changed."""

    fields = {"refused": True}


class StorageConfInvalid(StorageConfError):
    """Podman does not accept the edited file; nothing was changed (or the old file was put back)."""

    def message(self) -> str:
        return "Podman rejects the edited file, nothing changed: %s" % self


class StorageConfConflict(StorageConfError):
    """The file changed on the host after the controller read it."""


class StorageConfMisuse(StorageConfError):
    """The module was called without its action plugin (no edit to apply)."""
