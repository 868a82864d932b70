# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import os
import stat

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.file_io import replace_file, sha256_file


def test_sha256_file_matches_hashlib_across_blocks(tmp_path):
    data = os.urandom((1 << 16) * 2 + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("tmp_name", [None, ".f.fixed-tmp"])
def test_replace_file_replaces_with_mode_and_leaves_no_temp(tmp_path, tmp_name):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    tmp = str(tmp_path / tmp_name) if tmp_name else None
    replace_file(str(path), b"new", 0o640, tmp=tmp)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(str(tmp_path))) == ["f"]


def test_replace_file_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    # the rename target is a non-empty directory: rename(2) fails after the temp file is written
    target = tmp_path / "d"
    target.mkdir()
    (target / "keep").write_bytes(b"x")
    with pytest.raises(OSError):
        replace_file(str(target), b"new", 0o644)
    assert (target / "keep").read_bytes() == b"x"
    assert sorted(os.listdir(str(tmp_path))) == ["d"]


def test_read_text_is_none_for_absent_and_non_text_files(tmp_path):
    from ansible_collections.idmapguard.storage.plugins.module_utils.file_io import read_text
    text = tmp_path / "t"
    text.write_text("a=1\n")
    binary = tmp_path / "b"
    binary.write_bytes(b"\xff\xfe\x00")
    assert read_text(str(text)) == "a=1\n"
    assert read_text(str(tmp_path / "absent")) is None
    assert read_text(str(binary)) is None
