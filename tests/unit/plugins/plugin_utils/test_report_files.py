# -*- coding: utf-8 -*-
"""plugin_utils.report_files: the fleet report's files, written whole and only when changed."""

import json
import os

import pytest

from ansible_collections.idmapguard.storage.plugins.plugin_utils.report_files import (
    ReportFilesError,
    report_json,
    write_report_files,
)


def test_writes_every_file_into_a_new_directory(tmp_path):
    dest = tmp_path / "a" / "report"
    written = write_report_files(str(dest), {"fleet-report.md": "# r\n", "fleet-report.html": "<p>r</p>"})
    assert written == ["fleet-report.html", "fleet-report.md"]
    assert (dest / "fleet-report.md").read_text() == "# r\n"
    assert oct(os.stat(str(dest / "fleet-report.html")).st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(str(dest))) == ["fleet-report.html", "fleet-report.md"]  # no temp files left


def test_unchanged_files_are_not_rewritten(tmp_path):
    write_report_files(str(tmp_path), {"fleet-report.md": "same", "fleet-report.json": "{}"})
    before = os.stat(str(tmp_path / "fleet-report.md")).st_ino
    written = write_report_files(str(tmp_path), {"fleet-report.md": "same", "fleet-report.json": "{\"a\": 1}"})
    assert written == ["fleet-report.json"]
    assert os.stat(str(tmp_path / "fleet-report.md")).st_ino == before


@pytest.mark.parametrize("name", ["../x", "sub/x", "..", ""])
def test_refuses_paths_outside_the_directory(tmp_path, name):
    with pytest.raises(ReportFilesError):
        write_report_files(str(tmp_path), {name: "x"})


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ReportFilesError, match="cannot write the fleet report"):
        write_report_files(str(blocker / "report"), {"fleet-report.md": "x"})


def test_json_leaves_the_chart_out():
    data = json.loads(report_json({"summary": {"hosts": 1}, "hosts": [{"host": "a"}], "chart_svg": "<svg/>"}))
    assert data == {"summary": {"hosts": 1}, "hosts": [{"host": "a"}]}
