# -*- coding: utf-8 -*-
"""The guard's unit tests use the store library's synthetic store (tests/unit/.../store/fake_store.py)."""

import os
import sys

STORE_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "store")
if STORE_TESTS not in sys.path:
    sys.path.insert(0, STORE_TESTS)
