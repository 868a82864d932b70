# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""toml_edit on the vendor storage.conf files kept in tests/fixtures/storage-conf."""

import difflib
import pathlib

import pytest

from ansible_collections.idmapguard.storage.plugins.plugin_utils.toml_edit import (
    TomlEditError,
    apply_edits,
    get_value,
    parse,
    store_view,
)

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "storage-conf"
VENDOR_FILES = sorted(FIXTURES.glob("*.conf"))
MOUNT_PROGRAM = "storage.options.overlay.mount_program"


def read(path):
    return path.read_text(encoding="utf-8")


def changed_lines(before, after):
    """Lines removed and added between two texts (unchanged lines left out)."""
    sm = difflib.SequenceMatcher(a=before.splitlines(True), b=after.splitlines(True), autojunk=False)
    removed, added = [], []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag != "equal":
            removed += sm.a[i1:i2]
            added += sm.b[j1:j2]
    return removed, added


def test_all_vendor_files_are_present():
    names = {p.name for p in VENDOR_FILES}
    assert {"debian-bookworm.conf", "debian-trixie.conf", "debian-sid.conf",
            "containers-storage-upstream.conf", "rhel-containers-common.conf"} <= names


@pytest.mark.parametrize("path", VENDOR_FILES, ids=lambda p: p.name)
def test_add_then_remove_mount_program_round_trips_to_the_same_bytes(path):
    original = read(path)
    added = apply_edits(original, {MOUNT_PROGRAM: "/usr/bin/fuse-overlayfs"})
    assert added.changed_keys == [MOUNT_PROGRAM]
    removed_lines, added_lines = changed_lines(original, added.text)
    assert removed_lines == []
    assert added_lines == ['mount_program = "/usr/bin/fuse-overlayfs"\n']
    restored = apply_edits(added.text, absent=[MOUNT_PROGRAM])
    assert restored.text == original


@pytest.mark.parametrize("path", VENDOR_FILES, ids=lambda p: p.name)
def test_configure_edit_touches_only_the_edited_keys_and_is_idempotent(path):
    original = read(path)
    with_fuse = apply_edits(original, {MOUNT_PROGRAM: "/usr/bin/fuse-overlayfs"}).text
    fixed = apply_edits(with_fuse, {"storage.driver": "overlay"}, [MOUNT_PROGRAM])
    removed, added = changed_lines(with_fuse, fixed.text)
    assert removed == ['mount_program = "/usr/bin/fuse-overlayfs"\n']
    # Files that already say driver = "overlay" get no new line for it.
    if get_value(parse(original), "storage.driver") == "overlay":
        assert added == []
    else:
        assert added == ['driver = "overlay"\n']
    again = apply_edits(fixed.text, {"storage.driver": "overlay"}, [MOUNT_PROGRAM])
    assert not again.changed
    assert again.text == fixed.text
    assert store_view(fixed.text)["mount_program"] is None
    assert store_view(fixed.text)["driver"] == "overlay"


@pytest.mark.parametrize("path", VENDOR_FILES, ids=lambda p: p.name)
def test_no_edit_returns_the_file_unchanged(path):
    original = read(path)
    result = apply_edits(original, {}, [MOUNT_PROGRAM, "storage.nothing.here"])
    assert not result.changed
    assert result.text == original
    assert parse(original).as_string() == original


def test_replacing_a_value_keeps_its_comment_and_neighbours():
    text = '[storage]\ndriver = "vfs"  # site choice\n\n# keep me\nrunroot = "/run/x"\n'
    result = apply_edits(text, {"storage.driver": "overlay"})
    assert result.text == '[storage]\ndriver = "overlay"  # site choice\n\n# keep me\nrunroot = "/run/x"\n'


def test_types_are_kept_strings_stay_strings_in_inline_tables():
    text = read(FIXTURES / "debian-bookworm.conf")
    result = apply_edits(text, {"storage.options.pull_options.enable_partial_images": True})
    removed, added = changed_lines(text, result.text)
    assert removed == ['pull_options = {enable_partial_images = "false", use_hard_links = "false", ostree_repos=""}\n']
    assert added == ['pull_options = {enable_partial_images = "true", use_hard_links = "false", ostree_repos=""}\n']


def test_types_are_kept_booleans_stay_booleans_and_arrays_stay_arrays():
    text = '[storage]\ntransient_store = false\n[storage.options]\nadditionalimagestores = [\n]\n'
    result = apply_edits(text, {"storage.transient_store": "true",
                                "storage.options.additionalimagestores": ["/srv/ro"]})
    doc = parse(result.text)
    assert get_value(doc, "storage.transient_store") is True
    assert get_value(doc, "storage.options.additionalimagestores") == ["/srv/ro"]
    with pytest.raises(TomlEditError, match="boolean"):
        apply_edits(text, {"storage.transient_store": "maybe"})
    with pytest.raises(TomlEditError, match="array"):
        apply_edits(text, {"storage.options.additionalimagestores": "/srv/ro"})


def test_equal_value_of_another_python_type_is_a_change_only_when_toml_differs():
    text = '[storage.options.overlay]\nmountopt = "nodev"\n'
    assert not apply_edits(text, {"storage.options.overlay.mountopt": "nodev"}).changed
    # 1 and True are equal in Python but not in TOML.
    text = '[storage]\nflag = 1\n'
    with pytest.raises(TomlEditError):
        apply_edits(text, {"storage.flag": True})


def test_mapping_values_merge_key_by_key():
    text = '[storage]\ndriver = "overlay"\n\n[storage.options.overlay]\nmountopt = "nodev"\n'
    result = apply_edits(text, {"storage.options.overlay": {"mountopt": "nodev,metacopy=on"}})
    assert result.changed_keys == ["storage.options.overlay.mountopt"]
    assert 'driver = "overlay"' in result.text


def test_missing_tables_are_created():
    result = apply_edits("", {"storage.driver": "overlay", MOUNT_PROGRAM: "/usr/bin/fuse-overlayfs"})
    doc = parse(result.text)
    assert get_value(doc, "storage.driver") == "overlay"
    assert get_value(doc, MOUNT_PROGRAM) == "/usr/bin/fuse-overlayfs"


def test_setting_below_a_scalar_fails_clearly():
    with pytest.raises(TomlEditError, match="storage.driver is a str, not a table"):
        apply_edits('[storage]\ndriver = "overlay"\n', {"storage.driver.x": 1})


def test_null_is_refused():
    with pytest.raises(TomlEditError, match="absent"):
        apply_edits('[storage]\n', {"storage.driver": None})


@pytest.mark.parametrize("text,line,column", [
    ('[storage]\ndriver = "overlay\n', 2, None),
    ('[storage]\ndriver = "overlay"\nrunroot = = "/run"\n', 3, None),
    ('[storage\ndriver = "overlay"\n', 1, None),
])
def test_malformed_files_fail_with_line_and_column(text, line, column):
    with pytest.raises(TomlEditError) as info:
        apply_edits(text, {"storage.driver": "overlay"}, name="/etc/containers/storage.conf")
    assert info.value.line == line
    assert info.value.column is not None and info.value.column >= 1
    assert "/etc/containers/storage.conf is not valid TOML: line %d, column %d" % (line, info.value.column) \
        in str(info.value)


def test_store_view_reads_the_legacy_mount_program_key():
    text = '[storage]\ndriver = "overlay"\n[storage.options]\nmount_program = "/usr/bin/fuse-overlayfs"\n'
    view = store_view(text)
    assert view == {"driver": "overlay", "graphroot": "/var/lib/containers/storage",
                    "runroot": "/run/containers/storage", "imagestore": None, "transient_store": False,
                    "mount_program": "/usr/bin/fuse-overlayfs"}


@pytest.mark.parametrize("path", VENDOR_FILES, ids=lambda p: p.name)
def test_store_view_is_what_the_host_reads(path):
    """One producer: the controller's view of a file is podman_host's reading of it."""
    from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import settings_from_conf_text
    text = read(path)
    assert store_view(text) == settings_from_conf_text(text).store_view()


def test_store_view_sees_a_split_imagestore():
    assert store_view('[storage]\nimagestore = "/img"\n')["imagestore"] == "/img"


@pytest.mark.parametrize("key", ["", "storage..driver", "."])
def test_bad_keys_are_refused(key):
    with pytest.raises(TomlEditError, match="invalid key"):
        apply_edits("[storage]\n", {key: "x"})


class TaggedStr(str):
    """Stands in for ansible-core 2.19's tagged strings (a str subclass)."""


def test_str_subclasses_from_ansible_compare_equal_to_the_file():
    text = '[storage]\ndriver = "overlay"\n'
    result = apply_edits(text, {TaggedStr("storage.driver"): TaggedStr("overlay")})
    assert not result.changed
    assert result.text == text
