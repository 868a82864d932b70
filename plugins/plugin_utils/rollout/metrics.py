# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the host's metrics file needs writing: a converged host costs one module call.

idmap_support (with `metrics_dest`) returns the checksum of the host's metrics file in the call
the rollout makes anyway. The file's content is rendered here by the same functions the
metrics_textfile module uses (module_utils/metrics_textfile.py), from the same record as it
travels to the module (JSON), so the module runs only where it would change the file; where it
would not, the file stays as it is either way (the module writes only on change)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import json
from typing import Any, Mapping

from ansible_collections.idmapguard.storage.plugins.module_utils.metrics_textfile import host_metrics, render


def write_due(record: Mapping[str, Any], helper_version: str, observed: Any) -> bool:
    """False only where OBSERVED (idmap_support's `metrics`) shows that nothing would be written
    (no textfile directory) or that the file already holds what RECORD renders to."""
    if not isinstance(observed, Mapping) or "dir" not in observed:
        return True  # not looked at: the module decides
    if observed.get("dir") is None:
        return False  # no textfile directory: the module would write nothing
    sent = json.loads(json.dumps(dict(record)))  # the record as the module receives it
    text = render(host_metrics(sent, helper_version=str(helper_version or "")))
    return hashlib.sha256(text.encode("utf-8")).hexdigest() != observed.get("sha256")
