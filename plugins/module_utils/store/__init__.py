# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The containers/storage store library: the only code that opens a file of a store.

A store is built from its location, one value (``Store(StoreLocation(...))``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.idmapguard.storage.plugins.module_utils.store.location import StoreLocation  # noqa: F401
from ansible_collections.idmapguard.storage.plugins.module_utils.store.store import Store  # noqa: F401
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage  # noqa: F401

__all__ = ["Store", "StoreLocation", "fs_usage"]
