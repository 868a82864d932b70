# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage_conf module's backend (host side): `write` applies an edit, `safety` refuses edits
that would orphan or break the store and asks Podman whether it accepts a file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name
