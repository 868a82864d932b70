# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the fleet report's files on the controller (the fleet_report_files action plugin).

Each file is written temp-then-rename, so a reader (a browser, AWX) never sees half a report,
and only when its content differs from what is there.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List

# file name -> what goes in it; JSON is the report data without the (HTML-only) chart
FILE_NAMES = ("fleet-report.md", "fleet-report.html", "fleet-report.json")


class ReportFilesError(RuntimeError):
    """The report directory or a file in it cannot be written."""


def report_json(report: Dict[str, Any]) -> str:
    """The report as the JSON file holds it: everything but the inline SVG chart."""
    return json.dumps({k: v for k, v in report.items() if k != "chart_svg"}, indent=4, sort_keys=True) + "\n"


def _write_if_changed(directory: str, name: str, content: str, mode: int) -> bool:
    path = os.path.join(directory, name)
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


def write_report_files(directory: str, files: Dict[str, str], mode: int = 0o644) -> List[str]:
    """Write {file name: content} into directory (made 0755 if missing); the names written."""
    for name in files:
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise ReportFilesError("not a plain file name: %r" % name)
    try:
        os.makedirs(directory, 0o755, exist_ok=True)
        return [name for name in sorted(files) if _write_if_changed(directory, name, files[name], mode)]
    except OSError as exc:
        raise ReportFilesError("cannot write the fleet report in %s: %s" % (directory, exc))
