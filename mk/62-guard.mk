# The copy-cache guard (plugins/module_utils/copy_cache_guard/, installed by roles/remediate).
# Integration tests drive real Podman on lab hosts (bookworm 4.3, trixie 5.4, sid 5.8 + fuse-overlayfs).
GUARD_PYTEST := cd $(CURDIR) && python -m pytest -q -p no:cacheprovider -rA

.PHONY: test-guard bench-guard-soak

# What `make test` runs (~4 min warm): the watch-mode guard evicting as hard as it can against
# create/rm/run loops on every lab Podman, and the LRU budget / keep_maps on a real store.
test-guard: deps
	$(GUARD_PYTEST) tests/integration/test_guard.py

# The soak of issue 10: bookworm and trixie, 10 minutes each (SOAK_SECONDS to shorten), one new
# map per second, role defaults vs the old timer in the same run. Not part of `make test`.
bench-guard-soak: deps
	cd $(CURDIR) && python tests/bench/bench_guard_soak.py --seconds $${SOAK_SECONDS:-600}

TEST_TARGETS += test-guard
