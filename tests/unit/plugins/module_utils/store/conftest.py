# -*- coding: utf-8 -*-
"""Fixtures of the store library's unit tests."""

import pytest

from fake_store import FakeStore  # pylint: disable=import-error


@pytest.fixture
def fake_store(tmp_path):
    return FakeStore(tmp_path)
