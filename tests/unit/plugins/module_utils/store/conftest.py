# -*- coding: utf-8 -*-
"""Fixtures of the store library's unit tests."""

import pytest

from ansible_collections.idmapguard.storage.tests.unit.plugins.module_utils.store.fake_store import FakeStore


@pytest.fixture
def fake_store(tmp_path):
    return FakeStore(tmp_path)
