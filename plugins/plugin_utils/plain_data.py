# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain Python data from what ansible-core hands a filter or an action plugin.

Its values are str/int/float/dict/list subclasses (tagged, unsafe, lazy containers) that
cannot always be deep-copied, compared by type, or dumped by a foreign library (tomlkit).
`plain` is the one conversion: the rollout's filters and the storage.conf editor both use it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from collections.abc import Mapping
from typing import Any


def plain(value: Any) -> Any:
    """VALUE with every mapping a dict of str keys, every list or tuple a list, and every
    bool, int, float and str of exactly that type; anything else as it is."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
